package portal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/phpform"
	"github.com/isobox/isobox/internal/testkit"
)

// php runs the portal stand-in with the real php CLI.
func php(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("php", append([]string{filepath.Join("testdata", "portal.php")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php portal.php %s: %v\n%s", args[0], err, stderr.String())
	}
	return out
}

func runCLI(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("authprovider %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPortalStandInAgainstAuthprovider runs the whole drop-in protocol
// against the real binary, as an unmodified portal does it: the
// administrator approves the host, the PHP stand-in registers, creates a
// local app, mints, checks, gets a code that the app exchanges and
// refreshes at /oauth/token/, and submits events that must reach the
// relay byte for byte. Then another instance (a second OAuth service on
// the same database) revokes the token and the running server must refuse
// it through its revocation feed.
func TestPortalStandInAgainstAuthprovider(t *testing.T) {
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	for _, backend := range []struct {
		name string
		dsn  func(t *testing.T, dir string) (flag, open string)
	}{
		{"sqlite", func(t *testing.T, dir string) (string, string) {
			return "", "sqlite://" + filepath.Join(dir, "data", "authprovider.db")
		}},
		{"mariadb", func(t *testing.T, dir string) (string, string) { d := testkit.MariaDB(t); return d, d }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			dir := t.TempDir()
			dbFlag, dbOpen := backend.dsn(t, dir)
			common := []string{"--data-dir", filepath.Join(dir, "data")}
			if dbFlag != "" {
				common = append(common, "--db", dbFlag)
			}
			// Approved once, and only for the portal holding this licence key:
			// the stand-in signs its registration as CRestUtil::signLicenseRequest does.
			keyFile := filepath.Join(dir, "license_key.php")
			if err := os.WriteFile(keyFile, []byte(`<? $LICENSE_KEY = "TEST-LICENSE-KEY"; ?>`), 0o600); err != nil {
				t.Fatal(err)
			}
			runCLI(t, dir, bin, append([]string{"portal", "allow", "--host", "portal.box.local", "--once", "--licence-key-file", keyFile}, common...)...)

			relay := newRelayStub(t)
			args := append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
				"--relay-url", relay.srv.URL, "--revocation-poll", "50ms"}, common...)
			ap := testkit.Start(t, dir, bin, args, "http", "grpc", "admin")
			base := "http://" + ap.Addr("http")

			var st struct {
				PortalClientID, PortalClientSecret, AppClientID string
				FirstAccessToken, RefreshedAccessToken          string
				EventBody                                       string
			}
			out := php(t, "flow", base, "http://portal.box.local", "TEST-LICENSE-KEY")
			if err := json.Unmarshal(out, &struct {
				A *string `json:"portal_client_id"`
				B *string `json:"portal_client_secret"`
				C *string `json:"app_client_id"`
				D *string `json:"first_access_token"`
				E *string `json:"refreshed_access_token"`
				F *string `json:"event_body"`
			}{&st.PortalClientID, &st.PortalClientSecret, &st.AppClientID, &st.FirstAccessToken, &st.RefreshedAccessToken, &st.EventBody}); err != nil {
				t.Fatalf("stand-in output %q: %v", out, err)
			}

			got := relay.next(t)
			if got.body != st.EventBody {
				t.Fatalf("relay got\n%s\nportal sent QUERY as\n%s", got.body, st.EventBody)
			}
			if got.portal != st.PortalClientID || !strings.HasPrefix(got.auth, "Bearer ") || len(got.auth) < 40 {
				t.Fatalf("relay headers %+v", got)
			}
			items, err := phpform.Decode(got.body)
			if err != nil || items.Array("QUERY").Len() != 2 {
				t.Fatalf("relay body: %v", err)
			}

			// The cache and the outbox are visible to the operator, and the
			// revocation feed is being read.
			for path, want := range map[string]string{"/metrics": "isobox_token_cache_hits_total", "/readyz": ""} {
				resp, err := http.Get("http://" + ap.Addr("admin") + path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
					t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
				}
			}

			// The one-time approval is used up: a second registration is refused.
			list := runCLI(t, dir, bin, append([]string{"portal", "allowlist", "--json"}, common...)...)
			if strings.TrimSpace(list) != "[]" {
				t.Errorf("allowlist after the one-time registration: %s", list)
			}
			portals := runCLI(t, dir, bin, append([]string{"portal", "list", "--json"}, common...)...)
			if !strings.Contains(portals, st.PortalClientID) || !strings.Contains(portals, `"apps": 1`) {
				t.Errorf("portal list: %s", portals)
			}

			// Revoked by another instance sharing the database.
			ctx := context.Background()
			db := testkit.OpenStore(t, dbOpen)
			other, err := oauth.New(db, oauth.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Revoke(ctx, st.RefreshedAccessToken); err != nil {
				t.Fatal(err)
			}
			var res map[string]any
			json.Unmarshal(php(t, "expect-revoked", base, "http://portal.box.local", st.PortalClientID, st.PortalClientSecret, st.RefreshedAccessToken), &res)
			if res["error"] != "invalid_token" {
				t.Fatalf("after revocation rest.check = %v", res)
			}
			// The first chain is untouched.
			json.Unmarshal(php(t, "expect-revoked", base, "http://portal.box.local", st.PortalClientID, "wrong-secret", st.FirstAccessToken), &res)
			if res["error"] != "invalid_client" {
				t.Fatalf("wrong portal secret: %v", res)
			}

			// A portal that lost its options registers again: refused while
			// its host is registered, accepted once after the administrator's
			// rebind, and its app follows it to the new identity.
			var rr struct {
				Registered     bool   `json:"registered"`
				Error          any    `json:"error"`
				PortalClientID string `json:"portal_client_id"`
				AccessToken    string `json:"access_token"`
			}
			json.Unmarshal(php(t, "reregister", base, "http://portal.box.local", "TEST-LICENSE-KEY", st.AppClientID), &rr)
			if rr.Registered || rr.Error != "ACCESS_DENIED" || !strings.Contains(ap.Logs(), "already registered") {
				t.Fatalf("re-registration without proof: %+v", rr)
			}
			runCLI(t, dir, bin, append([]string{"portal", "rebind", "--host", "portal.box.local", "--licence-key-file", keyFile}, common...)...)
			rr.Error = nil
			json.Unmarshal(php(t, "reregister", base, "http://portal.box.local", "TEST-LICENSE-KEY", st.AppClientID), &rr)
			if !rr.Registered || rr.PortalClientID == st.PortalClientID || rr.AccessToken == "" || rr.Error != nil {
				t.Fatalf("re-registration after portal rebind: %+v", rr)
			}
		})
	}
}
