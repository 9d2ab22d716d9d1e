package e2e_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// failLines returns the FAIL lines of doctor's output.
func failLines(out string) []string {
	var fails []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAIL") {
			fails = append(fails, l)
		}
	}
	return fails
}

// Issue 12: a `doctor` subcommand on each service checks the database,
// NATS, the other service, key file modes, TLS certificate expiry, the
// registration state and the clock, one actionable line per problem, and
// exits non-zero when something is wrong. Each case runs the real
// binaries: a healthy pair passes, then one thing at a time is broken.
func TestDoctor(t *testing.T) {
	k := &keyPair{t: t, dir: t.TempDir(), apGRPC: freeAddr(t), relayHTTP: freeAddr(t)}
	key := filepath.Join(k.dir, "service.key")
	writeKey(t, key, strings.Repeat("k", 48))
	er := k.relay(key)
	ap := k.auth(key)
	apBin, erBin := testkit.Build(t, authproviderPkg), testkit.Build(t, eventrelayPkg)
	authData, relayData := filepath.Join(k.dir, "auth"), filepath.Join(k.dir, "relay")
	apArgs := func(extra ...string) []string {
		return append([]string{"doctor", "--data-dir", authData, "--admin-addr", ap.Addr("admin"), "--grpc-addr", k.apGRPC,
			"--relay-url", "http://" + k.relayHTTP, "--service-key-file", key}, extra...)
	}
	erArgs := func(extra ...string) []string {
		return append([]string{"doctor", "--data-dir", relayData, "--admin-addr", er.Addr("admin"),
			"--auth-grpc-addr", k.apGRPC, "--service-key-file", key}, extra...)
	}
	// A server started from nothing has no portal approved yet: the one
	// problem authprovider's doctor reports, with the command that fixes it.
	r := runBin(t, k.dir, apBin, nil, apArgs()...)
	if fails := failLines(r.stdout); r.code != 1 || len(fails) != 1 || !strings.Contains(fails[0], "run authprovider portal allow --host") {
		t.Errorf("doctor before any portal is approved: exit %d, fails %q\n%s", r.code, fails, r.stdout)
	}
	if r := runBin(t, k.dir, apBin, nil, "portal", "allow", "--host", "portal.example", "--data-dir", authData); r.code != 0 {
		t.Fatalf("portal allow: %d %s", r.code, r.stderr)
	}
	healthy := map[string]struct {
		bin  string
		args []string
		want []string
	}{
		"authprovider": {apBin, apArgs(), []string{"ok    database sqlite ", "ok    admin key ", "ok    service key " + key + " (mode 0600)",
			"ok    registration: no portal registered yet; 1 host(s) approved", "ok    authprovider ready", "ok    clock agrees with authprovider",
			"ok    eventrelay (--relay-url) at " + k.relayHTTP + " reachable"}},
		"eventrelay": {erBin, erArgs(), []string{"ok    relay admin key ", "ok    service key ", "ok    NATS: embedded", "ok    eventrelay ready",
			"ok    clock agrees with eventrelay", "ok    authprovider gRPC (--auth-grpc-addr) at " + k.apGRPC + " reachable"}},
	}
	for name, c := range healthy {
		r := runBin(t, k.dir, c.bin, nil, c.args...)
		if r.code != 0 || len(failLines(r.stdout)) > 0 {
			t.Errorf("%s doctor on a healthy setup: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s doctor does not say %q:\n%s", name, w, r.stdout)
			}
		}
	}

	// One broken thing at a time: its line, exit 1.
	expiring := testkit.TLS(t) // valid for a day
	broken := []struct {
		what string
		bin  string
		args []string
		want string
	}{
		{"unreachable database", apBin, apArgs("--db", "mysql://isobox:secret@tcp(127.0.0.1:1)/isobox"),
			"FAIL  database mysql isobox@tcp(127.0.0.1:1)/isobox: "},
		{"database never created", apBin, apArgs("--db", "sqlite:"+filepath.Join(k.dir, "none.db")),
			"(the server creates it on its first start)"},
		{"eventrelay down", apBin, apArgs("--relay-url", "http://"+freeAddr(t)),
			"FAIL  eventrelay (--relay-url) at "},
		{"authprovider down", erBin, erArgs("--auth-grpc-addr", freeAddr(t)),
			"FAIL  authprovider gRPC (--auth-grpc-addr) at "},
		{"NATS down", erBin, erArgs("--nats-url", "nats://"+freeAddr(t)),
			"FAIL  NATS server at "},
		{"expiring certificate", apBin, apArgs("--tls-cert-file", expiring.CertFile, "--tls-key-file", expiring.KeyFile),
			"FAIL  TLS certificate " + expiring.CertFile + " expires on "},
		{"expiring relay certificate", erBin, erArgs("--tls-cert-file", expiring.CertFile, "--tls-key-file", expiring.KeyFile),
			"FAIL  TLS certificate " + expiring.CertFile + " expires on "},
		{"service not running", apBin, apArgs("--admin-addr", freeAddr(t)),
			"FAIL  authprovider: http://"},
		{"bad --db form", apBin, apArgs("--db", "postgres://x"),
			"FAIL  settings: --db: "},
	}
	for _, c := range broken {
		r := runBin(t, k.dir, c.bin, nil, c.args...)
		if r.code != 1 || !strings.Contains(r.stdout, c.want) {
			t.Errorf("%s: exit %d, want 1 and a line with %q:\n%s%s", c.what, r.code, c.want, r.stdout, r.stderr)
		}
	}

	// A clock an hour off: the doctor compares its own clock with the Date
	// of the service's /readyz answer (here a stand-in service on loopback
	// whose clock is an hour behind).
	skewed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
		w.Write([]byte("database: ok\n"))
	}))
	defer skewed.Close()
	for name, c := range map[string]struct {
		bin  string
		args []string
	}{
		"authprovider": {apBin, apArgs("--admin-addr", strings.TrimPrefix(skewed.URL, "http://"))},
		"eventrelay":   {erBin, erArgs("--admin-addr", strings.TrimPrefix(skewed.URL, "http://"))},
	} {
		r := runBin(t, k.dir, c.bin, nil, c.args...)
		if fails := failLines(r.stdout); r.code != 1 || len(fails) != 1 || !strings.Contains(fails[0], "FAIL  clock: this machine and "+name+" differ by 1h0m") ||
			!strings.Contains(fails[0], "NTP") {
			t.Errorf("%s doctor with the service's clock an hour off: exit %d, fails %q", name, r.code, fails)
		}
	}

	// Key files others can read.
	for name, c := range map[string]struct {
		bin  string
		args []string
		file string
	}{
		"authprovider": {apBin, apArgs(), filepath.Join(authData, "admin.key")},
		"eventrelay":   {erBin, erArgs(), filepath.Join(relayData, "relay-admin.key")},
	} {
		os.Chmod(c.file, 0o644)
		r := runBin(t, k.dir, c.bin, nil, c.args...)
		os.Chmod(c.file, 0o600)
		want := c.file + " has mode 0644: others can read or change it; run chmod 600 " + c.file
		if r.code != 1 || !strings.Contains(r.stdout, want) {
			t.Errorf("%s doctor with a 0644 key: exit %d, want a line with %q:\n%s", name, r.code, want, r.stdout)
		}
	}

	// The other service has another key: both doctors say so (through
	// each service's /readyz), exit 1.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ap.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(k.dir, "other.key")
	writeKey(t, other, strings.Repeat("o", 48))
	ap = k.auth(other)
	for name, c := range map[string]struct {
		bin   string
		args  []string
		admin string
	}{
		"authprovider": {apBin, apArgs("--admin-addr", ap.Addr("admin"), "--service-key-file", other), ap.Addr("admin")},
		"eventrelay":   {erBin, erArgs(), er.Addr("admin")},
	} {
		waitHTTP(t, "http://"+c.admin+"/readyz", func(code int, body string) bool {
			return code == http.StatusServiceUnavailable && strings.Contains(body, "refuses the service key")
		})
		r := runBin(t, k.dir, c.bin, nil, c.args...)
		if r.code != 1 || !strings.Contains(r.stdout, "refuses the service key in ") {
			t.Errorf("%s doctor with the other service on another key: exit %d\n%s", name, r.code, r.stdout)
		}
	}
}
