package push

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/testkit"
)

// A device with little RAM (an ESP8266 relay speaking TLS) asks for small
// frames with frameBytes=: the backlog comes in frames no larger, none lost.
func TestReplayFramesHonourFrameBytes(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	ch := newID()
	const n = 100
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = body(strings.Repeat("x", 40) + strconv.Itoa(i))
	}
	if code, _ := r.publishBatch(t, batchOf(bodies, ch)); code != 200 {
		t.Fatalf("publish = %d", code)
	}
	r.waitDispatched(t, n)
	c := r.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"&mid="+r.startMid()+"&frameBytes=2048")
	got, frames := 0, 0
	for got < n {
		_, frame := read(t, c)
		frames++
		if len(frame) > 2048 {
			t.Fatalf("frame %d is %d bytes, over the 2048 asked for", frames, len(frame))
		}
		got += len(parseFrame(t, frame))
	}
	if got != n || frames < 5 {
		t.Fatalf("%d messages in %d frames", got, frames)
	}
}

func TestBadFrameBytesIsRefused(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	ch := r.srv.cfg.Signer.SignChannel(newID())
	for _, v := range []string{"abc", "1023", "-1", "0", "2048x", ""} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/?CHANNEL_ID="+ch+"&frameBytes="+v, nil)
		cancel()
		if v == "" { // absent: the default
			if err != nil {
				t.Fatalf("frameBytes empty: %v", err)
			}
			c.CloseNow()
			continue
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("frameBytes=%q: err %v resp %v, want 400", v, err, resp)
		}
	}
}

func TestIsRenewal(t *testing.T) {
	for body, want := range map[string]bool{
		`{"module_id":"pull","command":"channel_expire","params":{"action":"reconnect","new_channel":{"id":"a.b"}}}`: true,
		`{"module_id":"pull","command":"channel_expire","params":{"action":"reconnect"}}`:                            false,
		`{"module_id":"pull","command":"channel_expire","params":{"new_channel":{"id":""}}}`:                         false,
		`{"module_id":"app","command":"channel_expire","params":{"new_channel":{"id":"a.b"}}}`:                       false,
		`{"module_id":"pull","command":"config_expire","params":{}}`:                                                 false,
		`{"module_id":"pull","command":"channel_expire","params":{"new_channel":{"id":1}}}`:                          false,
		`not json channel_expire`: false,
	} {
		if got := isRenewal([]byte(body)); got != want {
			t.Errorf("isRenewal(%s) = %v, want %v", body, got, want)
		}
	}
}
