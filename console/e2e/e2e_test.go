// Package e2e tests the web console in a real browser: headless Chromium
// (Debian's chromium, /usr/bin/chromium) driven by playwright-core from npm
// (console.spec.js), against the real authprovider and eventrelay binaries.
// npm installs playwright-core into this directory on the first run; it
// never downloads a browser.
//
// ISOBOX_UPDATE_SCREENSHOTS=1 writes the screenshots to docs/console-*.png
// (shown by docs/console.md); otherwise they go to a temporary directory.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/isobox/isobox/internal/devices"
	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/testkit"
)

// xss is markup in untrusted text, as console.spec.js's XSS.
const xss = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`

const (
	adminPW  = "correct horse battery staple"
	viewerPW = "only looking, never touching"
)

// freePort returns a loopback port free at the time of the call, for the
// one address two binaries must know of each other before either starts.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// npmInstall installs playwright-core (pinned by package-lock.json) unless
// it is there already.
func npmInstall(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
}

func TestConsoleInBrowser(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("Debian's chromium is required (scripts/deps.sh installs it): %v", err)
	}
	npmInstall(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	erBin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	cli := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(apBin, append(args, "--data-dir", data)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("authprovider %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cli(adminPW+"\n", "console", "user", "add", "--name", "admin", "--role", "admin")
	cli(viewerPW+"\n", "console", "user", "add", "--name", "olga", "--role", "viewer")
	var portal struct{ ClientID, ClientSecret string }
	var raw map[string]any
	if err := json.Unmarshal([]byte(cli("", "portal", "add", "--host", "portal.lan", "--json")), &raw); err != nil {
		t.Fatal(err)
	}
	portal.ClientID, portal.ClientSecret = raw["client_id"].(string), raw["client_secret"].(string)

	// eventrelay's push signature key from the environment: the relay
	// settings page must show it redacted.
	sigKey := "e2e-signature-key-" + strings.Repeat("5", 40)
	t.Setenv("EVENTRELAY_PUSH_SIGNATURE_KEY", sigKey)
	relayGRPC := "127.0.0.1:" + freePort(t)
	ap := testkit.Start(t, dir, apBin, []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", data, "--console-relay-grpc-addr", relayGRPC, "--console-sample-interval", "500ms"}, "http", "grpc", "admin")
	relay := testkit.Start(t, dir, erBin, []string{"--http-addr", "127.0.0.1:0", "--publish-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--grpc-addr", relayGRPC, "--data-dir", data, "--auth-grpc-addr", ap.Addr("grpc"), "--retry-schedule", "200ms",
		"--breaker-failures", "10"}, "http", "publish", "grpc", "admin")

	relayCLI := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(erBin, append(args, "--grpc-addr", relayGRPC, "--data-dir", data)...).CombinedOutput()
		if err != nil {
			t.Fatalf("eventrelay %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// A change through eventrelay's own CLI: the console's audit page
	// shows it beside authprovider's entries.
	relayCLI("dlq", "replay", "--yes")

	// The handler answers 500 until it is healed.
	var healed atomic.Bool
	var delivered atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/heal" {
			healed.Store(true)
			return
		}
		if !healed.Load() {
			http.Error(w, `{"error":"handler is down"}`, http.StatusInternalServerError)
			return
		}
		delivered.Add(1)
		w.Write([]byte(`{"result":true}`))
	}))
	defer hook.Close()
	consoleURL := "http://" + ap.Addr("admin")
	// Another origin whose page posts a form to the console on load.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s/console/apps"><input name=name value="Evil app"><input name=csrf value=guess></form><script>document.getElementById('f').submit()</script>`, consoleURL)
	}))
	defer evil.Close()

	// A relay board whose User-Agent is markup, listening with small
	// frames and naming itself as the firmware does.
	signer, err := push.NewSigner(sigKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	const deviceChannel = "0123456789abcdef0123456789abcdef"
	const deviceID = "isobox-relay-5ccf7f0a1b2c"
	// A name that is markup is refused before the upgrade ...
	if c, resp, err := websocket.Dial(context.Background(), "ws://"+relay.Addr("http")+"/bitrix/subws/?CHANNEL_ID="+signer.SignChannel(deviceChannel)+
		"&device="+url.QueryEscape(xss), nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		if c != nil {
			c.CloseNow()
		}
		t.Fatalf("device=<markup>: err %v resp %v, want 400", err, resp)
	}
	// ... so only someone with NATS access could write such a record (or
	// another version of the relay): the console must show it as text all
	// the same.
	putDeviceRecord(t, relay, data, devices.Record{Key: "n-e2e-markup", Device: xss, Name: "arduino-WebSocket-Client", Remote: "10.9.9.9",
		Channels: []string{"p" + deviceChannel}, SinceMs: time.Now().UnixMilli(), SeenMs: time.Now().UnixMilli(), TooLarge: 3, AlsoFrom: "10.8.8.8"})
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer dcancel()
	board, _, err := websocket.Dial(dctx, "ws://"+relay.Addr("http")+"/bitrix/subws/?CHANNEL_ID="+signer.SignChannel(deviceChannel)+"&frameBytes=2048&device="+deviceID,
		&websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {xss}}})
	if err != nil {
		t.Fatal(err)
	}
	defer board.CloseNow()
	boardGot := make(chan string, 4)
	go func() {
		for {
			_, b, err := board.Read(dctx)
			if err != nil {
				close(boardGot)
				return
			}
			boardGot <- string(b)
		}
	}()

	shots := t.TempDir()
	if os.Getenv("ISOBOX_UPDATE_SCREENSHOTS") == "1" {
		shots, _ = filepath.Abs(filepath.Join("..", "..", "docs"))
	}
	cmd := exec.Command("node", "console.spec.js")
	cmd.Env = append(os.Environ(), "CONSOLE_URL="+consoleURL, "EVIL_URL="+evil.URL, "INGEST_URL=http://"+relay.Addr("http")+"/v1/events",
		"PORTAL_AUTH="+portal.ClientID+":"+portal.ClientSecret, "HOOK_URL="+hook.URL, "SHOTS_DIR="+shots,
		"ADMIN_PASSWORD="+adminPW, "VIEWER_PASSWORD="+viewerPW, "DEVICE_CHANNEL="+deviceChannel, "DEVICE_ID="+deviceID, "SIGNATURE_KEY="+sigKey)
	out, err := cmd.CombinedOutput()
	t.Logf("console.spec.js:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v\nauthprovider:\n%s\neventrelay:\n%s", err, ap.Logs(), relay.Logs())
	}
	if delivered.Load() != 1 {
		t.Errorf("the replayed event reached the healed handler %d times, want 1", delivered.Load())
	}
	for _, name := range []string{"login", "overview", "overview-ru", "apps", "deliveries", "delivery", "dlq", "handlers", "audit", "settings", "portals", "tokens", "push", "devices", "relaysettings"} {
		if st, err := os.Stat(filepath.Join(shots, "console-"+name+".png")); err != nil || st.Size() < 5000 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	// The board got the console's test message (and only the admin's).
	select {
	case f := <-boardGot:
		if !strings.Contains(f, `"module_id":"isobox","command":"test"`) || !strings.Contains(f, `"text":"hello board","sent_by":"admin"`) {
			t.Errorf("the board got %q", f)
		}
	case <-dctx.Done():
		t.Error("the board got no test message")
	}
	select {
	case f, ok := <-boardGot:
		if ok {
			t.Errorf("the board got a second frame %q (the viewer's test message?)", f)
		}
	default:
	}
	// The browser's changes are in the audit log the CLI exports.
	exp := cli("", "audit", "export")
	for _, want := range []string{`"action":"app.create"`, `"action":"dlq.replay"`, `"action":"handler.pause"`, `"actor":"olga","action":"login"`} {
		if !strings.Contains(exp, want) {
			t.Errorf("audit export lacks %s:\n%s", want, exp)
		}
	}
	if strings.Contains(exp, "Evil app") || strings.Contains(exp, "Viewer app") {
		t.Errorf("a refused change is in the audit log:\n%s", exp)
	}
	// The console's relay changes are in eventrelay's own log too, under
	// the console's user.
	rexp := relayCLI("audit", "export")
	for _, want := range []string{`"source":"console","actor":"admin","action":"dlq.replay"`, `"source":"console","actor":"admin","action":"handler.pause"`,
		`"source":"console","actor":"admin","action":"signing-secret.rotate"`, `"source":"cli"`} {
		if !strings.Contains(rexp, want) {
			t.Errorf("eventrelay audit export lacks %s:\n%s", want, rexp)
		}
	}
}

// putDeviceRecord writes r into the relay's devices bucket through its
// embedded NATS server (URL from its log, the client nkey from the data
// directory), as an operator's tool could.
func putDeviceRecord(t *testing.T, relay *testkit.Proc, data string, r devices.Record) {
	t.Helper()
	var natsURL string
	for line := range strings.SplitSeq(relay.Logs(), "\n") {
		var rec struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "embedded NATS server started" {
			natsURL = rec.URL
		}
	}
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(data, "nats-client.nk"))
	if err != nil || natsURL == "" {
		t.Fatalf("the relay's embedded NATS (url %q): %v", natsURL, err)
	}
	js := testkit.JetStream(t, natsURL, opt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, devices.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, r.Key, b); err != nil {
		t.Fatal(err)
	}
}
