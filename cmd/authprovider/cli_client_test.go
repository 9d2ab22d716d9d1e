package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/testkit"
)

// cli runs the authprovider binary's CLI in-process against a server.
type cli struct {
	t       *testing.T
	dataDir string
	grpc    string
}

func (c cli) run(args ...string) (string, error) {
	c.t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--data-dir", c.dataDir, "--grpc-addr", c.grpc)
	err := run(context.Background(), args, &out, &errb)
	return out.String(), err
}

func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out, err := c.run(append(args, "--json")...)
	if err != nil {
		c.t.Fatalf("authprovider %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("authprovider %s: output %q is not JSON: %v", strings.Join(args, " "), out, err)
	}
}

func postForm(t *testing.T, u string, f url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, f)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("POST %s: %d %q", u, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// TestCLIAndAdminAPI runs the real server binary and drives it with the
// client/token CLI (admin gRPC) and the admin REST gateway.
func TestCLIAndAdminAPI(t *testing.T) {
	dir := t.TempDir()
	p := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"),
		[]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--token-prefix", "lan."},
		"http", "grpc", "admin")
	c := cli{t: t, dataDir: filepath.Join(dir, "data"), grpc: p.Addr("grpc")}
	tokenURL := "http://" + p.Addr("http") + "/oauth/token/"

	var created struct{ ClientID, ClientSecret string }
	var raw map[string]string
	c.json(&raw, "client", "add", "--name", "Relay board", "--scope", "pull,user", "--access-ttl", "10m", "--token-prefix", "esp.", "--redirect-uri", "https://relay.lan/cb")
	created.ClientID, created.ClientSecret = raw["client_id"], raw["client_secret"]
	if !strings.HasPrefix(created.ClientID, "local.") || len(created.ClientSecret) != 50 || len(raw) != 2 {
		t.Fatalf("client add --json = %v", raw)
	}

	var show map[string]any
	c.json(&show, "client", "show", created.ClientID)
	if show["scope"] != "pull,user" || show["access_ttl"].(float64) != 600 || show["token_prefix"] != "esp." || show["status"] != "L" {
		t.Fatalf("client show = %v", show)
	}
	var list []map[string]any
	c.json(&list, "client", "list")
	if len(list) != 1 || list[0]["client_id"] != created.ClientID {
		t.Fatalf("client list = %v", list)
	}

	// token issue prints the /oauth/token/ JSON; the refresh token works at /oauth/token/.
	var tok map[string]any
	c.json(&tok, "token", "issue", "--client", created.ClientID, "--user", "3")
	for _, k := range []string{"access_token", "refresh_token", "expires", "expires_in", "scope", "domain", "server_endpoint", "status", "user_id"} {
		if _, ok := tok[k]; !ok {
			t.Fatalf("token issue --json lacks %q: %v", k, tok)
		}
	}
	if !strings.HasPrefix(tok["access_token"].(string), "esp.") || tok["expires_in"].(float64) != 600 {
		t.Fatalf("token issue = %v", tok)
	}
	code, r := postForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {created.ClientID},
		"client_secret": {created.ClientSecret}, "refresh_token": {tok["refresh_token"].(string)}})
	if code != 200 || !strings.HasPrefix(r["access_token"].(string), "esp.") || r["server_endpoint"] != "http://"+p.Addr("http")+"/rest/" {
		t.Fatalf("refresh with the issued token: %d %v", code, r)
	}
	access := r["access_token"].(string)

	var in map[string]any
	c.json(&in, "token", "introspect", access)
	if in["active"] != true || in["client_id"] != created.ClientID || in["token_type"] != "access_token" || in["user_id"].(float64) != 3 {
		t.Fatalf("introspect = %v", in)
	}
	c.json(&in, "token", "introspect", tok["access_token"].(string)) // rotated away
	if in["active"] != false {
		t.Fatalf("introspect of a rotated token = %v", in)
	}
	var toks []map[string]any
	c.json(&toks, "token", "list", "--client", created.ClientID)
	if len(toks) != 2 {
		t.Fatalf("token list = %v", toks)
	}

	// Admin REST face: the key is required; introspection and revocation.
	key, err := os.ReadFile(filepath.Join(c.dataDir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	admin := "http://" + p.Addr("admin")
	req, _ := http.NewRequest(http.MethodGet, admin+"/v1/clients", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/clients without the key = %d", resp.StatusCode)
	}
	rest := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	if st, m := rest("GET", "/v1/clients/"+created.ClientID, ""); st != 200 || m["client_id"] != created.ClientID {
		t.Fatalf("GET /v1/clients/{id} = %d %v", st, m)
	}
	if st, m := rest("PATCH", "/v1/clients/"+created.ClientID, `{"name":"Relay board 2","refresh_ttl":86400}`); st != 200 || m["name"] != "Relay board 2" || m["scope"] != "pull,user" {
		t.Fatalf("PATCH /v1/clients/{id} = %d %v", st, m)
	}
	if st, m := rest("POST", "/v1/tokens", `{"client_id":"`+created.ClientID+`","user_id":"8","scope":"pull"}`); st != 200 || m["scope"] != "pull" || m["refresh_token"] == "" {
		t.Fatalf("POST /v1/tokens = %d %v", st, m)
	}
	if st, m := rest("DELETE", "/v1/tokens?client_id="+created.ClientID+"&user_id=8", ""); st != 200 || m["revoked"] != "2" {
		t.Fatalf("DELETE /v1/tokens = %d %v", st, m)
	}
	if st, m := rest("GET", "/v1/clients/local.none", ""); st != 404 || m["error"] == nil {
		t.Fatalf("GET unknown client = %d %v", st, m)
	}
	if st, m := rest("POST", "/v1/oauth/introspect", `{"token":"`+access+`"}`); st != 200 || m["active"] != true {
		t.Fatalf("REST introspect = %d %v", st, m)
	}
	if st, _ := rest("POST", "/v1/oauth/revoke", `{"token":"`+access+`"}`); st != 200 {
		t.Fatalf("REST revoke = %d", st)
	}
	if st, m := rest("POST", "/v1/oauth/introspect", `{"token":"`+access+`"}`); st != 200 || m["active"] == true {
		t.Fatalf("introspect after revoke = %d %v", st, m)
	}

	if st, body := func() (int, string) {
		resp, err := http.Get(admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}(); st != 200 || !strings.Contains(body, `isobox_oauth_token_requests_total{code="200"} 1`) {
		t.Fatalf("/metrics lacks the token request counter: %d", st)
	}

	// Deactivate, rotate, delete.
	if _, err := c.run("client", "update", created.ClientID, "--active=false"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run("token", "issue", "--client", created.ClientID, "--user", "3"); err == nil || !strings.Contains(err.Error(), "inactive") {
		t.Fatalf("token issue for an inactive client: %v", err)
	}
	if code, r := postForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {created.ClientID},
		"client_secret": {created.ClientSecret}, "refresh_token": {r["refresh_token"].(string)}}); code != 400 || r["error"] != "invalid_client" {
		t.Fatalf("refresh for an inactive client: %d %v", code, r)
	}
	var rot map[string]string
	c.json(&rot, "client", "rotate-secret", created.ClientID)
	if rot["client_id"] != created.ClientID || len(rot["client_secret"]) != 50 || rot["client_secret"] == created.ClientSecret {
		t.Fatalf("rotate-secret = %v", rot)
	}
	if _, err := c.run("client", "delete", created.ClientID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run("client", "show", created.ClientID); err == nil || !strings.Contains(err.Error(), "not") {
		t.Fatalf("show after delete: %v", err)
	}
}
