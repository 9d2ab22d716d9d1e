package e2e_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/testkit"
)

// TestServerEndpointWithoutPortInHost: a real portal's HTTP client sends
// Host without the port, and authprovider on its defaults (no --public-url)
// handed out server_endpoint http://127.0.0.1/rest/ instead of
// http://127.0.0.1:PORT/rest/: apps then refreshed at the wrong address.
func TestServerEndpointWithoutPortInHost(t *testing.T) {
	dir := t.TempDir()
	bin := testkit.Build(t, authproviderPkg)
	p := testkit.Start(t, dir, bin, serverArgs[authproviderPkg], "http", "grpc", "admin")
	grpcAddr := "--grpc-addr=" + p.Addr("grpc")
	r := runBin(t, dir, bin, nil, "client", "add", "--name", "app", "--scope", "user", "--json", grpcAddr)
	var cl map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &cl); err != nil {
		t.Fatalf("client add: %q %q", r.stdout, r.stderr)
	}
	r = runBin(t, dir, bin, nil, "token", "issue", "--client", cl["client_id"], "--user", "1", "--json", grpcAddr)
	var tok map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil {
		t.Fatalf("token issue: %q %q", r.stdout, r.stderr)
	}
	_, port, _ := net.SplitHostPort(p.Addr("http"))
	for _, host := range []string{"127.0.0.1", "127.0.0.1:" + port} {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {cl["client_id"]}, "client_secret": {cl["client_secret"]}, "refresh_token": {tok["refresh_token"].(string)}}
		req, _ := http.NewRequest("POST", "http://"+p.Addr("http")+"/oauth/token/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if want := "http://127.0.0.1:" + port + "/rest/"; out["server_endpoint"] != want {
			t.Errorf("Host %q: server_endpoint %v, want %s (%v)", host, out["server_endpoint"], want, out)
		}
		tok = out
	}
}

// TestWarnsWithoutPublicURLOnANonLoopbackListener: derived from each
// request's Host, server_endpoint is only as right as the portal's HTTP
// client; on a LAN listener the administrator should say it.
func TestWarnsWithoutPublicURLOnANonLoopbackListener(t *testing.T) {
	dir := t.TempDir()
	bin := testkit.Build(t, authproviderPkg)
	p := testkit.Start(t, dir, bin, []string{"--http-addr", "0.0.0.0:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "a")}, "admin")
	if !strings.Contains(p.Logs(), `"level":"WARN","msg":"--public-url is empty`) {
		t.Errorf("no warning without --public-url on 0.0.0.0:\n%s", p.Logs())
	}
	p = testkit.Start(t, dir, bin, []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "b")}, "admin")
	if strings.Contains(p.Logs(), "--public-url is empty") {
		t.Errorf("warning on loopback:\n%s", p.Logs())
	}
}
