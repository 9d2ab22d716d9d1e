package main_test

import (
	"context"
	"io"
	"net/http"
	"os"
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
