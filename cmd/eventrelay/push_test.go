package main_test

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

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/testkit"
)

// The push channel as wired into the real binary: the signature key file
// made on first start, subscribe on --http-addr, publish on
// --publish-addr, and WebSockets closed with 1001 on SIGTERM.
func TestPushChannelInTheBinary(t *testing.T) {
	dir := t.TempDir()
	var args []string
	for _, f := range []string{"http-addr", "publish-addr", "grpc-addr", "admin-addr"} {
		args = append(args, "--"+f, "127.0.0.1:0")
	}
	er := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay"),
		append(args, "--nats-sync-always=false"), "http", "publish", "grpc", "admin")

	keyFile := filepath.Join(dir, "data", "push-signature.key")
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("push-signature.key: %v, mode %v; want a 0600 file", err, st)
	}
	key, err := secret.Read(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(er.Logs(), key) {
		t.Fatal("the signature key is in the logs")
	}
	signer, err := push.NewSigner(key, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	ch := "5d41402abc4b2a76b9719d911017c592"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// mid = 0 in any epoch: the first frame is a history_reset notice, so
	// the test knows the subscriber is live without waiting for it.
	c, _, err := websocket.Dial(ctx, "ws://"+er.Addr("http")+"/bitrix/subws/?CHANNEL_ID="+signer.SignChannel(ch)+"&mid=00000000000000000000000000", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, b, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(b), "history_reset") {
		t.Fatalf("first frame %q, %v", b, err)
	}
	resp, err := http.Post("http://"+er.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json",
		strings.NewReader(`{"module_id":"test","command":"hello","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish = %d", resp.StatusCode)
	}
	_, b, err = c.Read(ctx)
	if err != nil || !regexp.MustCompile(`^#!NGINXNMS!#\{"id":1,"mid":"[0-9]{26}".*"text":\{"module_id":"test","command":"hello","params":\{\}\}\}#!NGINXNME!#$`).Match(b) {
		t.Fatalf("message frame %q, %v", b, err)
	}

	// A bad signature is refused before the upgrade.
	_, r, err := websocket.Dial(ctx, "ws://"+er.Addr("http")+"/bitrix/subws/?CHANNEL_ID="+ch+".0000", nil)
	if err == nil || r == nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad signature: %v, %v", err, r)
	}
	// Online state and server statistics on the publish address.
	resp, err = http.Get("http://" + er.Addr("publish") + "/bitrix/pub/?CHANNEL_ID=" + ch)
	if err != nil {
		t.Fatal(err)
	}
	online, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(online) != `{"infos":[{"channel":"`+ch+`","subscribers":1}]}` {
		t.Fatalf("online = %s", online)
	}

	done := make(chan error, 1)
	go func() { _, _, err := c.Read(context.Background()); done <- err }()
	if err := er.Stop(ctx); err != nil {
		t.Fatalf("stop: %v\n%s", err, er.Logs())
	}
	if err := <-done; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("on shutdown the subscriber got %v, want close 1001", err)
	}
}

// metricValue returns the value of an unlabelled metric in a Prometheus
// text exposition.
func metricValue(t *testing.T, exposition, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// Issue 11, finding 5, on the real binary: long polls of a signed channel
// with a mid from another epoch on a long history read a bounded number of
// stored messages each (the relay's own count), not the whole stream.
func TestPushReplayWithForeignMidIsBounded(t *testing.T) {
	s := bareStack(t)
	relay := s.startRelay(t, "--nats-sync-always=false", "--push-replay-max-messages", "50")
	key, err := secret.Read(filepath.Join(s.data, "push-signature.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := push.NewSigner(key, "sha1")
	busy := "5d41402abc4b2a76b9719d911017c592"
	pad := strings.Repeat("x", 1000)
	for i := range 400 {
		resp, err := http.Post("http://"+relay.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+busy, "application/json",
			strings.NewReader(`{"module_id":"t","command":"c`+strconv.Itoa(i)+`","params":{"pad":"`+pad+`"}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("publish %d = %d", i, resp.StatusCode)
		}
	}
	foreign := "17000000000000000000000001" // another epoch, seq 1
	for range 8 {
		code, body := getBody(t, "http://"+relay.Addr("http")+"/bitrix/sub/?CHANNEL_ID="+signer.SignChannel("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")+"&mid="+foreign)
		if code != 200 || !strings.Contains(body, "history_gap") {
			t.Fatalf("poll with a foreign mid: %d %.200s", code, body)
		}
	}
	_, m := getBody(t, "http://"+relay.Addr("admin")+"/metrics")
	if read := metricValue(t, m, "isobox_push_replay_read_messages_total"); read > 8*50 {
		t.Errorf("8 polls read %v stored messages, want at most 400 (50 each) of the 400+ in the history", read)
	}
	if bytes := metricValue(t, m, "isobox_push_replay_read_bytes_total"); bytes > 8*50*1100 {
		t.Errorf("8 polls read %v bytes", bytes)
	}
}

// Issue 11, finding 8: the publish endpoint answered
// Access-Control-Allow-Origin: * and took text/plain POSTs, so any page on
// the portal host could publish. Browser requests are refused now and no
// answer allows another origin; the portal's own requests still work.
func TestPublishRefusesBrowsers(t *testing.T) {
	s := bareStack(t)
	relay := s.startRelay(t, "--nats-sync-always=false")
	pub := "http://" + relay.Addr("publish")
	ch := "5d41402abc4b2a76b9719d911017c592"
	do := func(method, path, ctype string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, pub+path, strings.NewReader(`{"module_id":"t","command":"c","params":{}}`))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for name, c := range map[string]struct {
		method, ctype string
		hdr           map[string]string
	}{
		"cross-origin fetch": {"POST", "application/json", map[string]string{"Origin": "http://portal.lan"}},
		"form, text/plain":   {"POST", "text/plain", nil},
		"form, multipart":    {"POST", "multipart/form-data; boundary=x", nil},
		"Sec-Fetch-Site":     {"POST", "application/json", map[string]string{"Sec-Fetch-Site": "same-site"}},
		"preflight":          {"OPTIONS", "", map[string]string{"Access-Control-Request-Method": "POST"}},
		"online query":       {"GET", "", map[string]string{"Origin": "http://evil.lan"}},
	} {
		path := "/bitrix/pub/?CHANNEL_ID=" + ch
		resp := do(c.method, path, c.ctype, c.hdr)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", name, v)
		}
	}
	// The portal's publish (PHP, no browser headers) still works, without
	// CORS headers.
	for _, path := range []string{"/bitrix/pub/?CHANNEL_ID=" + ch, "/server-stat/"} {
		method := "POST"
		if path == "/server-stat/" {
			method = "GET"
		}
		resp := do(method, path, "application/json", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s %s: %d, ACAO %q", method, path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}
