package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pushMessage is one message as a subscriber reads it (text framing).
type pushMessage struct {
	Mid  string `json:"mid"`
	Text struct {
		ModuleID string `json:"module_id"`
		Command  string `json:"command"`
		Params   struct {
			Reason     string `json:"reason"`
			Mid        string `json:"mid"`
			NextMid    string `json:"next_mid"`
			Bytes      int    `json:"bytes"`
			FrameBytes int    `json:"frame_bytes"`
			Pad        string `json:"pad"`
		} `json:"params"`
	} `json:"text"`
}

// readPush reads frames until n messages have come.
func readPush(t *testing.T, c *websocket.Conn, n int) []pushMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []pushMessage
	for len(out) < n {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(out), n, err)
		}
		for _, part := range strings.Split(string(b), "#!NGINXNME!#") {
			if part = strings.TrimPrefix(part, "#!NGINXNMS!#"); part == "" {
				continue
			}
			var m pushMessage
			if err := json.Unmarshal([]byte(part), &m); err != nil {
				t.Fatalf("message %.200q: %v", part, err)
			}
			out = append(out, m)
		}
	}
	return out
}

// Issue 14: a single message larger than a board's frameBytes= used to go
// alone in a frame the board cannot take: its connection broke, it came
// back with its mid, got the same message in its replay, broke again. Now
// such a subscriber gets a history_gap notice (reason message_too_large)
// with the message's mid instead, so its position moves past it, and stays
// connected; other subscribers get the message itself; it is counted
// (metric, admin API), logged once per connection.
func TestPushMessageLargerThanFrameBytes(t *testing.T) {
	r := startOpsRelay(t, "a-signature-key-for-the-large-message-test-0123")
	ch := "5d41402abc4b2a76b9719d911017c592"
	signed := r.signer.SignChannel(ch)
	board := r.subscribe(t, signed, "arduino-WebSocket-Client/1.0", "&frameBytes=1024")
	browser := r.subscribe(t, signed, "Mozilla/5.0", "")
	publish := func(body string) {
		t.Helper()
		resp, err := http.Post("http://"+r.p.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("publish = %d", resp.StatusCode)
		}
	}
	big := `{"module_id":"t","command":"big","params":{"pad":"` + strings.Repeat("x", 3<<10) + `"}}`
	small := `{"module_id":"t","command":"small","params":{}}`
	publish(big)
	publish(small)

	got := readPush(t, browser, 2)
	if got[0].Text.Command != "big" || len(got[0].Text.Params.Pad) != 3<<10 || got[1].Text.Command != "small" {
		t.Fatalf("the subscriber without frameBytes got %+v", got)
	}
	bigMid := got[0].Mid
	got = readPush(t, board, 2)
	n := got[0].Text
	if n.ModuleID != "isobox" || n.Command != "history_gap" || n.Params.Reason != "message_too_large" ||
		got[0].Mid != bigMid || n.Params.Mid != bigMid || n.Params.NextMid != bigMid || n.Params.Bytes != len(big) || n.Params.FrameBytes != 1024 {
		t.Fatalf("instead of the large message the board got %+v; want a message_too_large notice with mid %s", got[0], bigMid)
	}
	if got[1].Text.Command != "small" {
		t.Fatalf("after the notice the board got %+v", got[1])
	}

	// Still connected: a second large one and a live small one come as
	// well; the log line is not repeated.
	publish(big)
	publish(small)
	if got = readPush(t, board, 2); got[0].Text.Params.Reason != "message_too_large" || got[1].Text.Command != "small" {
		t.Fatalf("second round: %+v", got)
	}
	if n := strings.Count(r.p.Logs(), "larger than the subscriber's frameBytes"); n != 1 {
		t.Errorf("the relay logged %d lines for two large messages on one connection, want 1:\n%s", n, r.p.Logs())
	}
	_, m := getBody(t, "http://"+r.p.Addr("admin")+"/metrics")
	if v := metricValue(t, m, "isobox_push_messages_too_large_total"); v != 2 {
		t.Errorf("isobox_push_messages_too_large_total = %v, want 2", v)
	}
	var state struct {
		Instances []struct {
			MessagesTooLarge string `json:"messages_too_large"`
		} `json:"instances"`
	}
	if code := r.call(t, r.key, "GET", "/v1/relay/push/channels", nil, &state); code != 200 || len(state.Instances) != 1 || state.Instances[0].MessagesTooLarge != "2" {
		t.Errorf("push state: %d %+v, want one instance with messages_too_large 2", code, state)
	}

	// The devices view counts them for the board (its tracker scans every
	// few seconds).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var devs struct {
			Devices []struct {
				Name             string `json:"name"`
				MessagesTooLarge string `json:"messages_too_large"`
			} `json:"devices"`
		}
		r.call(t, r.key, "GET", "/v1/relay/push/devices", nil, &devs)
		if len(devs.Devices) == 1 && devs.Devices[0].MessagesTooLarge == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices: %+v, want the board with messages_too_large 2", devs)
		}
		time.Sleep(100 * time.Millisecond) // polling an observable condition
	}

	// A board reconnecting from before both gets its replay through: the
	// notices in place of the large ones, and stays connected.
	board.CloseNow()
	again := r.subscribe(t, signed, "arduino-WebSocket-Client/1.0", "&frameBytes=1024")
	got = readPush(t, again, 4)
	for i, want := range []string{"message_too_large", "small", "message_too_large", "small"} {
		if got[i].Text.Params.Reason != want && got[i].Text.Command != want {
			t.Fatalf("replay message %d: %+v, want %s", i, got[i], want)
		}
	}
	publish(small)
	if got = readPush(t, again, 1); got[0].Text.Command != "small" {
		t.Fatalf("live after the replay: %+v", got)
	}
	if n := strings.Count(r.p.Logs(), "larger than the subscriber's frameBytes"); n != 2 {
		t.Errorf("%d log lines after a second connection, want 2", n)
	}
}
