package e2e_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// The finding (a clean-clone CI run of the install test): the console's
// handlers page answered 502 although eventrelay was up and ready.
// authprovider had started first; its gRPC connection to eventrelay had
// failed while the relay was down and was waiting out gRPC's reconnect
// backoff, which grows to two minutes, and every call during a backoff
// fails at once. Now a lost connection to the peer is retried at least
// every second and a console page waits briefly for it: after the relay
// has been down for ten seconds, the first page asked once it is ready
// answers 200.
func TestConsoleReachesARelayThatStartedLater(t *testing.T) {
	dir := t.TempDir()
	apBin := testkit.Build(t, authproviderPkg)
	serviceKey, adminKey := filepath.Join(dir, "service.key"), filepath.Join(dir, "relay-admin.key")
	writeKey(t, serviceKey, strings.Repeat("s", 48))
	writeKey(t, adminKey, strings.Repeat("r", 48))
	relayGRPC, relayHTTP := freeAddr(t), freeAddr(t)
	apData := filepath.Join(dir, "auth")

	add := exec.Command(apBin, "console", "user", "add", "--name", "ann", "--role", "admin", "--data-dir", apData)
	add.Stdin = strings.NewReader("correct horse battery\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("console user add: %v %s", err, out)
	}
	ap := testkit.Start(t, dir, apBin, []string{
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", apData, "--relay-url", "http://" + relayHTTP, "--service-key-file", serviceKey,
		"--console-relay-grpc-addr", relayGRPC, "--console-relay-admin-key-file", adminKey}, "admin", "grpc")
	admin := "http://" + ap.Addr("admin")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, admin+"/console/login", strings.NewReader(url.Values{"name": {"ann"}, "password": {"correct horse battery"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", admin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	page := func() int {
		t.Helper()
		resp, err := c.Get(admin + "/console/handlers")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The relay stays down for ten seconds while the console is used: its
	// connection attempts fail and, with gRPC's defaults, the backoff grows
	// past six seconds.
	down := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	for range tick.C {
		if code := page(); code != http.StatusBadGateway {
			t.Fatalf("handlers page with eventrelay down: %d, want 502", code)
		}
		if time.Since(down) > 10*time.Second {
			break
		}
	}
	tick.Stop()

	er := testkit.Start(t, dir, testkit.Build(t, eventrelayPkg), []string{
		"--http-addr", relayHTTP, "--publish-addr", "127.0.0.1:0", "--grpc-addr", relayGRPC, "--admin-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "relay"), "--auth-grpc-addr", ap.Addr("grpc"),
		"--service-key-file", serviceKey, "--admin-key-file", adminKey}, "admin", "grpc")
	waitHTTP(t, "http://"+er.Addr("admin")+"/readyz", func(code int, _ string) bool { return code == http.StatusOK })
	if code := page(); code != http.StatusOK {
		t.Fatalf("handlers page once eventrelay is ready: %d, want 200\n%s", code, ap.Logs())
	}
}
