package e2e_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// keyPair starts eventrelay and authprovider pointing at each other, each
// with its own service key file, probing each other every 100ms.
type keyPair struct {
	t                 *testing.T
	dir               string
	apGRPC, relayHTTP string
}

func (k *keyPair) relay(keyFile string) *testkit.Proc {
	return testkit.Start(k.t, k.dir, testkit.Build(k.t, eventrelayPkg), []string{
		"--http-addr", k.relayHTTP, "--publish-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(k.dir, "relay"), "--auth-grpc-addr", k.apGRPC,
		"--service-key-file", keyFile, "--peer-check-interval", "100ms"}, "admin", "http")
}

func (k *keyPair) auth(keyFile string) *testkit.Proc {
	return testkit.Start(k.t, k.dir, testkit.Build(k.t, authproviderPkg), []string{
		"--http-addr", "127.0.0.1:0", "--grpc-addr", k.apGRPC, "--admin-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(k.dir, "auth"), "--relay-url", "http://" + k.relayHTTP,
		"--service-key-file", keyFile, "--peer-check-interval", "100ms"}, "admin", "grpc")
}

func writeKey(t *testing.T, path, key string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitHTTP polls url (a black-box binary's) until ok accepts the answer.
func waitHTTP(t *testing.T, url string, ok func(code int, body string) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var code int
	var body string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
			if ok(code, body) {
				return code, body
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: still %d %q after 30s", url, code, body)
	return 0, ""
}

var rejectedProbes = regexp.MustCompile(`isobox_peer_key_probes_total\{result="rejected"\} (\d+)`)

// Issue 12: "A wrong service key: both /readyz say 200 while events pile
// up in the outbox." Now each side probes the other with its key: both
// /readyz answer 503 naming the peer and the key file, each logs ONE
// error line however many probes were refused, and a restart with the
// right key makes both ready again.
func TestWrongServiceKeyMakesBothUnready(t *testing.T) {
	k := &keyPair{t: t, dir: t.TempDir(), apGRPC: freeAddr(t), relayHTTP: freeAddr(t)}
	keyA, keyB := filepath.Join(k.dir, "a.key"), filepath.Join(k.dir, "b.key")
	writeKey(t, keyA, strings.Repeat("a", 48))
	writeKey(t, keyB, strings.Repeat("b", 48))
	er := k.relay(keyB)
	ap := k.auth(keyA)

	for _, c := range []struct {
		name string
		p    *testkit.Proc
		want []string
	}{
		{"authprovider", ap, []string{"service-key: eventrelay at http://" + k.relayHTTP + " refuses the service key in " + keyA}},
		{"eventrelay", er, []string{"service-key: authprovider at " + k.apGRPC + " refuses the service key in " + keyB}},
	} {
		admin := "http://" + c.p.Addr("admin")
		_, body := waitHTTP(t, admin+"/readyz", func(code int, body string) bool {
			return code == http.StatusServiceUnavailable && strings.Contains(body, "service-key:")
		})
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s /readyz = %q, want it to say %q", c.name, body, w)
			}
		}
		// Many refused probes later...
		waitHTTP(t, admin+"/metrics", func(_ int, body string) bool {
			m := rejectedProbes.FindStringSubmatch(body)
			n := 0
			if m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			return n >= 5
		})
		// ...still one error line.
		if n := strings.Count(c.p.Logs(), `"msg":"wrong service key"`); n != 1 {
			t.Errorf("%s logged %d 'wrong service key' lines, want 1:\n%s", c.name, n, c.p.Logs())
		}
		if !strings.Contains(c.p.Logs(), `"level":"ERROR","msg":"wrong service key"`) {
			t.Errorf("%s: the wrong key is not logged at ERROR:\n%s", c.name, c.p.Logs())
		}
	}

	// authprovider restarted with eventrelay's key: both ready again.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ap.Stop(ctx); err != nil {
		t.Fatalf("stop authprovider: %v", err)
	}
	ap = k.auth(keyB)
	for name, p := range map[string]*testkit.Proc{"authprovider": ap, "eventrelay": er} {
		waitHTTP(t, "http://"+p.Addr("admin")+"/readyz", func(code int, body string) bool {
			return code == http.StatusOK && strings.Contains(body, "service-key: ok")
		})
		if strings.Contains(p.Logs(), "refuses the service key") && name == "authprovider" {
			t.Errorf("authprovider with the right key still complains:\n%s", p.Logs())
		}
	}
	if !strings.Contains(er.Logs(), `"msg":"service key accepted again"`) {
		t.Errorf("eventrelay did not log the recovery:\n%s", er.Logs())
	}
}
