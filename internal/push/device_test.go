package push

import (
	"context"
	"io"
	"net/http"
	"net/url"
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

// device= is a strictly checked label: a bad one is refused with 400 before
// the upgrade and for a long poll, as a bad frameBytes= is; a good one is
// accepted by both transports (a long poll just holds it).
func TestDeviceIDParameter(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) { c.PollTimeout = 200 * time.Millisecond })
	ch := r.srv.cfg.Signer.SignChannel(newID())
	bad := []string{"", strings.Repeat("a", MaxDeviceIDLen+1), "a b", "a/b", "relay\x00", "<script>", "r\u00e9lais", "a&device=b", "x;y", "a\nb", "a+b"}
	for _, v := range bad {
		q := "?CHANNEL_ID=" + ch + "&device=" + url.QueryEscape(v)
		if v == "a&device=b" { // given twice
			q = "?CHANNEL_ID=" + ch + "&device=a&device=b"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/"+q, nil)
		cancel()
		if err == nil {
			c.CloseNow()
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("WebSocket device=%q: err %v resp %v, want 400", v, err, resp)
		}
		pr, err := http.Get(r.subURL + "/bitrix/sub/" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(pr.Body)
		pr.Body.Close()
		if pr.StatusCode != http.StatusBadRequest || string(b) != ErrDeviceID.Error() {
			t.Fatalf("long poll device=%q: %d %q, want 400 %q", v, pr.StatusCode, b, ErrDeviceID)
		}
	}
	good := "isobox-relay-5ccf7f0a1b2c"
	c := r.dial(t, "CHANNEL_ID="+ch+"&device="+good)
	defer c.CloseNow()
	r.waitRegistered(t)
	if subs := r.srv.WebSockets(); len(subs) != 1 || subs[0].Device != good {
		t.Fatalf("WebSockets %+v, want device %s", subs, good)
	}
	pr, err := http.Get(r.subURL + "/bitrix/sub/?CHANNEL_ID=" + ch + "&device=" + strings.Repeat("Z9._-", MaxDeviceIDLen/5))
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusNotModified {
		t.Fatalf("long poll with a good device=: %d, want 304 (held, then timed out)", pr.StatusCode)
	}
}
