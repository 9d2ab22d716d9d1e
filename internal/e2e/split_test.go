package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/testkit"
)

// Issue 11, finding 8: /metrics and the admin API shared one address with
// the module's validation API, so none could be firewalled apart. With
// --validation-addr the module's routes live on their own listener and
// nothing of the admin side is reachable there, nor the reverse.
func TestValidationAPIApartFromAdminAndMetrics(t *testing.T) {
	dir := t.TempDir()
	ap := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"),
		freeArgs("http-addr", "grpc-addr", "admin-addr", "validation-addr"), "http", "grpc", "admin", "validation")
	key, err := os.ReadFile(filepath.Join(dir, "data", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, addr, path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(`{"access_token":"isobox.x"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	admin, validation := ap.Addr("admin"), ap.Addr("validation")
	adminKey := strings.TrimSpace(string(key))
	for _, c := range []struct {
		what         string
		method, addr string
		path, auth   string
		want         int
	}{
		// The module's routes answer on the validation listener (a bad
		// portal credential is refused by the route, not missing)...
		{"validate on validation", "POST", validation, "/v1/token/validate", "nobody:wrong", http.StatusUnauthorized},
		{"mint on validation", "POST", validation, "/v1/token/mint", "nobody:wrong", http.StatusUnauthorized},
		{"healthz on validation", "GET", validation, "/healthz", "", http.StatusOK},
		// ...and nowhere else.
		{"validate on admin", "POST", admin, "/v1/token/validate", "nobody:wrong", http.StatusNotFound},
		{"mint on admin", "POST", admin, "/v1/token/mint", "nobody:wrong", http.StatusNotFound},
		// The admin side is not on the validation listener, even with the key.
		{"metrics on validation", "GET", validation, "/metrics", "", http.StatusNotFound},
		{"admin API on validation", "GET", validation, "/v1/clients", adminKey, http.StatusNotFound},
		{"metrics on admin", "GET", admin, "/metrics", "", http.StatusOK},
		{"admin API on admin", "GET", admin, "/v1/clients", adminKey, http.StatusOK},
	} {
		if got := call(c.method, c.addr, c.path, c.auth); got != c.want {
			t.Errorf("%s: %s %s = %d, want %d", c.what, c.method, c.path, got, c.want)
		}
	}
	if !strings.Contains(ap.Stdout.String(), "validation API on http://"+validation) {
		t.Errorf("start line does not name the validation address: %q", ap.Stdout.String())
	}
}
