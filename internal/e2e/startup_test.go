package e2e_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// freeArgs moves every listener to a free loopback port. The defaults are
// fixed ports (that is what `make run` uses); tests must not collide with a
// developer's running copy or with each other.
func freeArgs(flags ...string) []string {
	var args []string
	for _, f := range flags {
		args = append(args, "--"+f, "127.0.0.1:0")
	}
	return args
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServicesStartOnEmbeddedDefaultsAndStopOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	ap := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"),
		freeArgs("http-addr", "grpc-addr", "admin-addr"), "http", "grpc", "admin")
	er := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay"),
		freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "http", "publish", "grpc", "admin")

	for name, p := range map[string]*testkit.Proc{"authprovider": ap, "eventrelay": er} {
		admin := "http://" + p.Addr("admin")
		if code, body := get(t, admin+"/readyz"); code != 200 {
			t.Errorf("%s /readyz = %d %q", name, code, body)
		}
		if code, _ := get(t, admin+"/healthz"); code != 200 {
			t.Errorf("%s /healthz = %d", name, code)
		}
		if code, body := get(t, admin+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
			t.Errorf("%s /metrics = %d, no go_goroutines", name, code)
		}
	}

	// Embedded defaults land under ./data of the working directory, and the
	// admin key is private.
	st, err := os.Stat(filepath.Join(dir, "data", "admin.key"))
	if err != nil {
		t.Fatalf("admin key: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("admin.key mode = %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "authprovider.db")); err != nil {
		t.Errorf("embedded database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "nats")); err != nil {
		t.Errorf("embedded NATS store: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, p := range map[string]*testkit.Proc{"authprovider": ap, "eventrelay": er} {
		if err := p.Stop(ctx); err != nil {
			t.Errorf("%s: exit after SIGTERM: %v\n%s", name, err, p.Logs())
		}
		if !strings.Contains(p.Logs(), `"msg":"stopped"`) {
			t.Errorf("%s did not log a clean stop", name)
		}
	}
}

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	for _, c := range []struct{ pkg, env string }{
		{"github.com/isobox/isobox/cmd/authprovider", "AUTHPROVIDER_HTTP_ADDR"},
		{"github.com/isobox/isobox/cmd/eventrelay", "EVENTRELAY_NATS_URL"},
	} {
		out, err := exec.Command(testkit.Build(t, c.pkg), "--help").CombinedOutput()
		if err != nil {
			t.Errorf("%s --help: %v", c.pkg, err)
		}
		if !strings.Contains(string(out), c.env) || !strings.Contains(string(out), "--data-dir") {
			t.Errorf("%s --help does not list --data-dir and %s:\n%s", c.pkg, c.env, out)
		}
	}
}

func TestEnvironmentConfiguresTheServer(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUTHPROVIDER_DATA_DIR", filepath.Join(dir, "elsewhere"))
	ap := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"),
		freeArgs("http-addr", "grpc-addr", "admin-addr"), "admin")
	if _, err := os.Stat(filepath.Join(dir, "elsewhere", "admin.key")); err != nil {
		t.Fatalf("AUTHPROVIDER_DATA_DIR ignored: %v\n%s", err, ap.Logs())
	}
}
