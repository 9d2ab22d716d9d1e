package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/testkit"
)

// opsRelay is a running eventrelay binary and its admin key.
type opsRelay struct {
	p         *testkit.Proc
	key       string
	signer    *push.Signer
	bin, data string
}

// startOpsRelay starts eventrelay with sigKey as its push signature key.
func startOpsRelay(t *testing.T, sigKey string, extra ...string) *opsRelay {
	t.Helper()
	dir := t.TempDir()
	args := append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "--nats-sync-always=false", "--push-signature-key", sigKey)
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	p := testkit.Start(t, dir, bin, append(args, extra...), "http", "publish", "grpc", "admin")
	key, err := secret.Read(filepath.Join(dir, "data", "relay-admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := push.NewSigner(sigKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	return &opsRelay{p: p, key: key, signer: signer, bin: bin, data: filepath.Join(dir, "data")}
}

// call makes a REST call on the admin listener with the admin key (or
// another key) and decodes the JSON answer into out.
func (r *opsRelay) call(t *testing.T, key, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+r.p.Addr("admin")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && json.Unmarshal(b, out) != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// subscribe opens a WebSocket subscriber with the given User-Agent and
// extra query, and reads the history_reset notice that says it is live.
func (r *opsRelay) subscribe(t *testing.T, channelID, agent, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+r.p.Addr("http")+"/bitrix/subws/?CHANNEL_ID="+channelID+"&mid=00000000000000000000000000"+query,
		&websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {agent}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "history_reset") {
		t.Fatalf("first frame %q, %v", b, err)
	}
	return c
}

type channelsAnswer struct {
	Instances []struct {
		ID         string `json:"id"`
		Websockets string `json:"websockets"`
	} `json:"instances"`
	Channels []struct {
		ID         string `json:"id"`
		Public     bool   `json:"public"`
		Websockets int    `json:"websockets"`
		Polls      int    `json:"polls"`
	} `json:"channels"`
}

type deviceAnswer struct {
	Key        string   `json:"key"`
	Name       string   `json:"name"`
	Remote     string   `json:"remote"`
	Channels   []string `json:"channels"`
	Instance   string   `json:"instance"`
	Connected  bool     `json:"connected"`
	LastSeenMs string   `json:"last_seen_ms"`
	LastMid    string   `json:"last_mid"`
	FrameBytes int      `json:"frame_bytes"`
	Device     string   `json:"device"`
}

var midInFrame = regexp.MustCompile(`"mid":"([0-9]{26})"`)

// The relay admin API's push part against the real binary: channels with
// subscribers by transport, a relay board recognised as a device (and a
// browser not), a test message reaching the board, the device's last mid
// and disconnect, and the effective settings with secrets redacted.
func TestRelayOpsPushChannelsDevicesTestMessageSettings(t *testing.T) {
	const sigSecret = "a-signature-key-that-must-not-leak-0123456789"
	r := startOpsRelay(t, sigSecret)

	// Without the key, every RelayOps route is refused.
	for _, route := range [][2]string{{"GET", "/v1/relay/push/channels"}, {"GET", "/v1/relay/push/devices"}, {"POST", "/v1/relay/push/test"}, {"GET", "/v1/relay/settings"}} {
		var e struct{ Error string }
		if code := r.call(t, "", route[0], route[1], map[string]any{}, &e); code != http.StatusUnauthorized || e.Error != "invalid_credentials" {
			t.Errorf("%s %s without key: %d %q", route[0], route[1], code, e.Error)
		}
		if code := r.call(t, "wrong", route[0], route[1], map[string]any{}, &e); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong key: %d", route[0], route[1], code)
		}
	}

	board := "0123456789abcdef0123456789abcdef"
	browser := "fedcba9876543210fedcba9876543210"
	pub := "00112233445566778899aabbccddeeff"
	bc := r.subscribe(t, r.signer.SignChannel(board), "arduino-WebSocket-Client", "&frameBytes=2048&device=isobox-relay-5ccf7f0a1b2c")
	r.subscribe(t, r.signer.SignChannel(browser)+"/"+r.signer.SignPublic(pub), "Mozilla/5.0 (X11; Linux x86_64)", "")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ch channelsAnswer
	waitFor(t, ctx, "three channels listed with one WebSocket each", func() bool {
		ch = channelsAnswer{}
		if code := r.call(t, r.key, "GET", "/v1/relay/push/channels", nil, &ch); code != 200 {
			t.Fatalf("channels: %d", code)
		}
		return len(ch.Channels) == 3
	})
	seen := map[string]bool{}
	for _, c := range ch.Channels {
		if c.Websockets != 1 || c.Polls != 0 {
			t.Errorf("channel %+v: want 1 WebSocket, 0 polls", c)
		}
		seen[c.ID] = c.Public
	}
	if p, ok := seen[pub]; !ok || !p || seen[board] || seen[browser] {
		t.Errorf("channels %+v: want %s, %s private and %s public", ch.Channels, board, browser, pub)
	}
	if len(ch.Instances) != 1 || ch.Instances[0].Websockets != "2" {
		t.Errorf("instances %+v: want one with 2 WebSockets", ch.Instances)
	}

	// A test message reaches the board, through the same publish path as
	// the portal's.
	var sent struct {
		Subscribers int    `json:"subscribers"`
		Body        string `json:"body"`
	}
	if code := r.call(t, r.key, "POST", "/v1/relay/push/test", map[string]any{"channel": r.signer.SignChannel(board), "text": "ping <b>1</b>"}, &sent); code != 200 || sent.Subscribers != 1 {
		t.Fatalf("test push: %d %+v", code, sent)
	}
	_, frame, err := bc.Read(ctx)
	if err != nil || !strings.Contains(string(frame), `"module_id":"isobox","command":"test"`) || !strings.Contains(string(frame), `ping \u003cb\u003e1\u003c/b\u003e`) {
		t.Fatalf("board got %q, %v", frame, err)
	}
	m := midInFrame.FindSubmatch(frame)
	if m == nil {
		t.Fatalf("no mid in %q", frame)
	}
	wantMid := string(m[1])

	// The board is a device with that mid; the browser is not.
	var devs struct {
		Devices []deviceAnswer `json:"devices"`
	}
	waitFor(t, ctx, "the board listed with the test message's mid", func() bool {
		devs.Devices = nil
		r.call(t, r.key, "GET", "/v1/relay/push/devices", nil, &devs)
		return len(devs.Devices) == 1 && devs.Devices[0].LastMid == wantMid
	})
	d := devs.Devices[0]
	if !d.Connected || d.Name != "arduino-WebSocket-Client" || d.Remote != "127.0.0.1" || d.FrameBytes != 2048 ||
		d.Device != "isobox-relay-5ccf7f0a1b2c" || !strings.HasPrefix(d.Key, "n") || len(d.Channels) != 1 || d.Channels[0] != "p"+board || d.Instance == "" || d.LastSeenMs == "" {
		t.Errorf("device %+v", d)
	}
	// A test message to a public channel reaches its subscriber.
	if code := r.call(t, r.key, "POST", "/v1/relay/push/test", map[string]any{"channel": pub, "public": true}, &sent); code != 200 || sent.Subscribers != 1 {
		t.Errorf("test push to a public channel: %d %+v", code, sent)
	}

	// Bad input: Bitrix-shaped 400s.
	for _, body := range []map[string]any{
		{"channel": "xyz"},
		{"channel": strings.Repeat("A", 32)},
		{"channel": board, "text": strings.Repeat("x", 1001)},
	} {
		var e struct{ Error, ErrorDescription string }
		if code := r.call(t, r.key, "POST", "/v1/relay/push/test", body, &e); code != http.StatusBadRequest || e.Error != "invalid_request" {
			t.Errorf("test push %v: %d %+v", body, code, e)
		}
	}

	// The board leaves: no longer connected, last seen kept.
	bc.Close(websocket.StatusNormalClosure, "")
	waitFor(t, ctx, "the board listed as not connected", func() bool {
		devs.Devices = nil
		r.call(t, r.key, "GET", "/v1/relay/push/devices", nil, &devs)
		return len(devs.Devices) == 1 && !devs.Devices[0].Connected
	})
	if devs.Devices[0].LastMid != wantMid || devs.Devices[0].Key != d.Key {
		t.Errorf("after leaving: %+v", devs.Devices[0])
	}

	// Settings: every flag, where it came from, secrets redacted.
	var st struct {
		Settings []struct{ Name, Value, Source string } `json:"settings"`
	}
	if code := r.call(t, r.key, "GET", "/v1/relay/settings", nil, &st); code != 200 {
		t.Fatalf("settings: %d", code)
	}
	got := map[string][2]string{}
	for _, s := range st.Settings {
		got[s.Name] = [2]string{s.Value, s.Source}
	}
	if v := got["push-signature-key"]; v != [2]string{"(set, not shown)", "flag"} {
		t.Errorf("push-signature-key: %v", v)
	}
	if v := got["http-addr"]; v != [2]string{"127.0.0.1:0", "flag"} {
		t.Errorf("http-addr: %v", v)
	}
	if v := got["retry-schedule"]; v[1] != "default" || v[0] != "5s,1m,5m,30m,2h,5h,10h,10h" {
		t.Errorf("retry-schedule: %v", v)
	}
	if _, ok := got["print-config"]; ok || len(got) < 50 {
		t.Errorf("settings: %d entries, print-config listed: %v", len(got), ok)
	}
	raw, _ := json.Marshal(st)
	if strings.Contains(string(raw), sigSecret) || strings.Contains(r.p.Logs(), sigSecret) {
		t.Error("the signature key is shown in the settings or the logs")
	}
}
