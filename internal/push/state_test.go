package push

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/testkit"
)

// Channels adds up the subscribers of every instance per transport;
// WebSockets lists this instance's own with what the admin API shows of
// them, the last mid written included.
func TestChannelsOverInstancesAndWebSocketState(t *testing.T) {
	n := testkit.NATS(t)
	a := startRelay(t, n.ClientURL(), nil)
	b := startRelay(t, n.ClientURL(), nil)
	s := a.srv.cfg.Signer
	ch, pub := newID(), newID()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dev, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.subURL, "http")+"/bitrix/subws/?CHANNEL_ID="+s.SignChannel(ch)+"&frameBytes=2048&device=isobox-relay-5ccf7f0a1b2c",
		&websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {"arduino-WebSocket-Client" + strings.Repeat("\xff", 300)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.CloseNow()
	a.waitRegistered(t)
	b.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"/"+s.SignPublic(pub))
	b.waitRegistered(t)
	poll, err := http.NewRequestWithContext(ctx, "GET", b.subURL+"/bitrix/sub/?CHANNEL_ID="+s.SignChannel(ch), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if resp, err := http.DefaultClient.Do(poll); err == nil {
			resp.Body.Close()
		}
	}()
	b.waitRegistered(t)

	cs, err := a.srv.Channels(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []ChannelState{{ID: ch, WebSockets: 2, Polls: 1}, {ID: pub, Public: true, WebSockets: 1}}
	if len(cs) != 2 || cs[0] != want[0] || cs[1] != want[1] {
		t.Fatalf("channels %+v, want %+v", cs, want)
	}
	if cs, _ := a.srv.Channels(ctx, 1); len(cs) != 1 || cs[0].ID != ch {
		t.Errorf("limit 1: %+v", cs)
	}
	insts, err := b.srv.Instances(ctx)
	if err != nil || len(insts) != 2 {
		t.Fatalf("instances %+v, %v", insts, err)
	}

	if code, _ := b.publish(t, ch, body("one"), nil); code != 200 {
		t.Fatal("publish failed")
	}
	frame := readN(t, dev, 1)
	var subs []Subscriber
	for deadline := time.Now().Add(10 * time.Second); ; {
		// The mid is stored after the frame is written: wait for it.
		if subs = a.srv.WebSockets(); len(subs) == 1 && subs[0].LastMid == frame[0].Mid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WebSockets %+v, want the device with mid %s", subs, frame[0].Mid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := subs[0]
	if d.Remote != "127.0.0.1" || d.FrameBytes != 2048 || d.Device != "isobox-relay-5ccf7f0a1b2c" || d.UserAgent != "arduino-WebSocket-Client" || len(d.Channels) != 1 || d.Channels[0] != "p"+ch || d.Since.IsZero() {
		t.Errorf("device state %+v", d)
	}
}
