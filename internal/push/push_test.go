package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	pushv1 "github.com/isobox/isobox/api/isobox/push/v1"
	"github.com/isobox/isobox/internal/testkit"
)

const testKey = "0cc175b9c0f1b6a831c399e269772661-test-key"

func testSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner(testKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// relay is one push server instance on real loopback listeners.
type relay struct {
	srv        *Server
	subURL     string // http://host for /bitrix/sub/ and /bitrix/subws/
	pubURL     string // http://host for /bitrix/pub/
	registered chan struct{}
	dispatched chan uint64
}

// waitDispatched waits until the relay has fanned out message seq.
func (r *relay) waitDispatched(t testing.TB, seq uint64) {
	t.Helper()
	for {
		select {
		case s := <-r.dispatched:
			if s >= seq {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not dispatched after 10s", seq)
		}
	}
}

func startRelay(t testing.TB, natsURL string, mod func(*Config)) *relay {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Name("test-relay"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg := Config{Signer: testSigner(t), PollTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(ctx, cfg, nc, log)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{srv: srv, registered: make(chan struct{}, 64)}
	srv.hub.onRegister = func() { r.registered <- struct{}{} }
	r.dispatched = make(chan uint64, 1024)
	srv.hub.onDispatch = func(seq uint64) {
		select {
		case r.dispatched <- seq:
		default:
		}
	}
	sub := http.NewServeMux()
	sub.Handle("/bitrix/sub/", srv.SubscribeHandler())
	sub.Handle("/bitrix/subws/", srv.SubscribeHandler())
	pub := http.NewServeMux()
	pub.Handle("/bitrix/pub/", srv.PublishHandler())
	pub.Handle("GET /server-stat/", srv.StatHandler())
	hs, hp := httptest.NewServer(sub), httptest.NewServer(pub)
	r.subURL, r.pubURL = hs.URL, hp.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close(ctx)
		hs.Close()
		hp.Close()
	})
	return r
}

func (r *relay) waitRegistered(t testing.TB) {
	t.Helper()
	select {
	case <-r.registered:
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber not registered after 10s")
	}
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startMid is the mid before the first message: replay everything.
func (r *relay) startMid() string { return mid{epoch: r.srv.Epoch()}.String() }

func (r *relay) dial(t *testing.T, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/?"+query, nil)
	if err != nil {
		t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func (r *relay) publish(t *testing.T, channels, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.pubURL+"/bitrix/pub/?CHANNEL_ID="+url.QueryEscape(channels), strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *relay) publishBatch(t *testing.T, rb *pushv1.RequestBatch) (int, []byte) {
	t.Helper()
	body, err := proto.Marshal(rb)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(r.pubURL+"/bitrix/pub/?binaryMode=true&hostname=portal.test", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func batchOf(bodies []string, ids ...string) *pushv1.RequestBatch {
	var msgs []*pushv1.IncomingMessage
	for _, b := range bodies {
		im := &pushv1.IncomingMessage{Body: b, Expiry: 86400, Type: "test_cmd"}
		for _, id := range ids {
			raw, _ := hex.DecodeString(id)
			im.Receivers = append(im.Receivers, &pushv1.Receiver{Id: raw, IsPrivate: true})
		}
		msgs = append(msgs, im)
	}
	return &pushv1.RequestBatch{Requests: []*pushv1.Request{{Command: &pushv1.Request_IncomingMessages{
		IncomingMessages: &pushv1.IncomingMessagesRequest{Messages: msgs}}}}}
}

type object struct {
	ID      int64           `json:"id"`
	Mid     string          `json:"mid"`
	Channel string          `json:"channel"`
	Tag     string          `json:"tag"`
	Time    string          `json:"time"`
	Text    json.RawMessage `json:"text"`
}

var framed = regexp.MustCompile(`#!NGINXNMS!#(.*?)#!NGINXNME!#`)

// parseFrame cuts messages out of a text frame exactly as BX.PullClient
// does (a regular expression that does not cross newlines).
func parseFrame(t *testing.T, frame []byte) []object {
	t.Helper()
	var out []object
	for _, m := range framed.FindAllSubmatch(frame, -1) {
		var o object
		if err := json.Unmarshal(m[1], &o); err != nil {
			t.Fatalf("frame element %q: %v", m[1], err)
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		t.Fatalf("no message in frame %q", frame)
	}
	return out
}

func read(t *testing.T, c *websocket.Conn) (websocket.MessageType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, b
}

// readN reads text frames until n messages arrived.
func readN(t *testing.T, c *websocket.Conn, n int) []object {
	t.Helper()
	var out []object
	for len(out) < n {
		_, b := read(t, c)
		out = append(out, parseFrame(t, b)...)
	}
	if len(out) != n {
		t.Fatalf("got %d messages, want %d", len(out), n)
	}
	return out
}

func commandOf(t *testing.T, text json.RawMessage) string {
	t.Helper()
	var v struct {
		Command string `json:"command"`
	}
	if err := json.Unmarshal(text, &v); err != nil {
		t.Fatal(err)
	}
	return v.Command
}

func body(cmd string) string {
	return `{"module_id":"test","command":"` + cmd + `","params":{"n":1},"extra":{"server_time_unix":1}}`
}

var digits26 = regexp.MustCompile(`^[0-9]{26}$`)

func TestWebSocketReceivesTextPublishFramedAsPushServer(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	priv, pub, shared := newID(), newID(), newID()
	c := r.dial(t, "CHANNEL_ID="+url.QueryEscape(s.SignComposite(priv, pub)+"/"+s.SignChannel(shared))+"&revision=19")
	r.waitRegistered(t)

	// Pretty-printed bodies are put on one line, so clients can cut them out.
	if code, b := r.publish(t, priv, "{\n \"module_id\": \"test\",\n \"command\": \"one\"\n}", map[string]string{"Message-Expiry": "60"}); code != 200 {
		t.Fatalf("publish = %d %q", code, b)
	}
	typ, frame := read(t, c)
	if typ != websocket.MessageText {
		t.Fatalf("frame type %v, want text", typ)
	}
	o := parseFrame(t, frame)
	if len(o) != 1 {
		t.Fatalf("got %d messages", len(o))
	}
	m := o[0]
	if !digits26.MatchString(m.Mid) || m.Mid[:10] != r.startMid()[:10] {
		t.Errorf("mid %q: want 26 digits starting with the epoch", m.Mid)
	}
	if m.ID != 1 || m.Channel != priv || len(m.Tag) != 3 {
		t.Errorf("id %d channel %q tag %q", m.ID, m.Channel, m.Tag)
	}
	if _, err := time.Parse(http.TimeFormat, m.Time); err != nil || !strings.HasSuffix(m.Time, " GMT") {
		t.Errorf("time %q is not RFC 1123 GMT: %v", m.Time, err)
	}
	if string(m.Text) != `{"module_id":"test","command":"one"}` {
		t.Errorf("text = %s", m.Text)
	}

	// The shared channel, then a message for both channels: delivered once.
	r.publish(t, shared, body("two"), nil)
	r.publish(t, priv+"/"+shared, body("three"), nil)
	got := readN(t, c, 2)
	if commandOf(t, got[0].Text) != "two" || commandOf(t, got[1].Text) != "three" || got[0].Mid >= got[1].Mid {
		t.Errorf("got %+v", got)
	}
}

func TestBinaryModeReceivesProtobufPublish(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	priv, pub := newID(), newID()
	c := r.dial(t, "CHANNEL_ID="+url.QueryEscape(s.SignComposite(priv, pub))+"&binaryMode=true&revision=19")
	r.waitRegistered(t)
	if code, b := r.publishBatch(t, batchOf([]string{body("a"), body("b")}, priv)); code != 200 {
		t.Fatalf("publish = %d %q", code, b)
	}
	var msgs []*pushv1.OutgoingMessage
	for len(msgs) < 2 {
		typ, frame := read(t, c)
		if typ != websocket.MessageBinary {
			t.Fatalf("frame type %v, want binary", typ)
		}
		var rb pushv1.ResponseBatch
		if err := proto.Unmarshal(frame, &rb); err != nil {
			t.Fatal(err)
		}
		for _, resp := range rb.GetResponses() {
			msgs = append(msgs, resp.GetOutgoingMessages().GetMessages()...)
		}
	}
	for i, m := range msgs {
		if id := hex.EncodeToString(m.GetId()); !digits26.MatchString(id) {
			t.Errorf("message %d: hex id %q is not a 26-digit mid", i, id)
		}
		if m.GetSender().GetType() != pushv1.SenderType_BACKEND {
			t.Errorf("message %d: sender %v, want BACKEND", i, m.GetSender())
		}
		if m.GetExpiry() != 86400 || m.GetCreated() == 0 {
			t.Errorf("message %d: expiry %d created %d", i, m.GetExpiry(), m.GetCreated())
		}
	}
	if msgs[0].GetBody() != body("a") || msgs[1].GetBody() != body("b") {
		t.Errorf("bodies %q %q", msgs[0].GetBody(), msgs[1].GetBody())
	}
}

func TestReplayDeliversSeveralMessagesInOneFrameAndJSONFormat(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	ch := newID()
	if code, _ := r.publishBatch(t, batchOf([]string{body("a"), body("b"), body("c")}, ch)); code != 200 {
		t.Fatalf("publish = %d", code)
	}
	r.waitDispatched(t, 3)
	// History after the start mid arrives as one frame of three messages.
	c := r.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"&mid="+r.startMid())
	_, frame := read(t, c)
	got := parseFrame(t, frame)
	if len(got) != 3 || commandOf(t, got[0].Text) != "a" || commandOf(t, got[2].Text) != "c" {
		t.Fatalf("frame %s", frame)
	}

	// format=json answers a JSON array of the same objects (long poll).
	resp, err := http.Get(r.subURL + "/bitrix/sub/?CHANNEL_ID=" + s.SignChannel(ch) + "&format=json&mid=" + got[0].Mid)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var arr []object
	if err := json.NewDecoder(resp.Body).Decode(&arr); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, decode %v", resp.StatusCode, err)
	}
	if len(arr) != 2 || arr[0].Mid != got[1].Mid || arr[1].Mid != got[2].Mid {
		t.Fatalf("json = %+v", arr)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS header missing")
	}
}

func TestBadOrMissingSignatureIsRefused(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	id := newID()
	other, _ := NewSigner("another key", "sha1")
	for name, q := range map[string]string{
		"wrong key":       other.SignChannel(id),
		"unsigned":        id,
		"uppercase":       strings.ToUpper(s.SignChannel(id)),
		"composite wrong": id + ":" + newID() + "." + s.Sign(id),
		"public unsigned": "public:" + id,
		"missing":         "",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/?CHANNEL_ID="+url.QueryEscape(q), nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("websocket: err %v resp %v, want 400", err, resp)
			}
			hr, err := http.Get(r.subURL + "/bitrix/sub/?CHANNEL_ID=" + url.QueryEscape(q))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(hr.Body)
			hr.Body.Close()
			want := ErrBadChannel.Error()
			if q == "" {
				want = ErrNoChannel.Error()
			}
			if hr.StatusCode != 400 || string(b) != want {
				t.Fatalf("long poll = %d %q, want 400 %q", hr.StatusCode, b, want)
			}
		})
	}
	// The public form is accepted with its own signature.
	c := r.dial(t, "CHANNEL_ID="+url.QueryEscape(s.SignPublic(id))+"&mid="+r.startMid())
	c.CloseNow()
}

func TestReconnectWithMidReplaysExactlyTheMissedMessages(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	ch, noise := newID(), newID()
	q := "CHANNEL_ID=" + s.SignChannel(ch)
	c := r.dial(t, q)
	r.waitRegistered(t)
	r.publish(t, ch, body("m1"), nil)
	first := readN(t, c, 1)[0]
	c.Close(websocket.StatusNormalClosure, "")

	r.publish(t, ch, body("m2"), nil)
	r.publish(t, noise, body("other channel"), nil)
	r.publish(t, ch, body("m3"), nil)

	c = r.dial(t, q+"&mid="+first.Mid)
	r.waitRegistered(t)
	r.publish(t, ch, body("m4"), nil)
	got := readN(t, c, 3)
	var cmds []string
	for _, o := range got {
		cmds = append(cmds, commandOf(t, o.Text))
	}
	if strings.Join(cmds, ",") != "m2,m3,m4" {
		t.Fatalf("got %v, want m2,m3,m4", cmds)
	}
	if !(first.Mid < got[0].Mid && got[0].Mid < got[1].Mid && got[1].Mid < got[2].Mid) {
		t.Errorf("mids not increasing: %s %s %s %s", first.Mid, got[0].Mid, got[1].Mid, got[2].Mid)
	}
}

func TestExpiredMessagesAreNotReplayed(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	ch := newID()
	r.publish(t, ch, body("short"), map[string]string{"Message-Expiry": "5"})
	r.publish(t, ch, body("long"), nil) // default 24h
	// Both in the hub before the subscriber comes: else they may arrive
	// live, which no expiry filters (seen once under load).
	r.waitDispatched(t, 2)
	later := time.Now().Add(time.Minute)
	r.srv.hub.clock = func() time.Time { return later }
	c := r.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"&mid="+r.startMid())
	got := readN(t, c, 1)
	if commandOf(t, got[0].Text) != "long" {
		t.Fatalf("got %s, want only the unexpired message", got[0].Text)
	}
}

func TestHistoryGapIsAnnounced(t *testing.T) {
	srvNATS := testkit.NATS(t)
	// A history cap small enough that early messages are dropped.
	small := func(c *Config) { c.HistoryBytes = 4096 }
	a := startRelay(t, srvNATS.ClientURL(), small)
	s := a.srv.cfg.Signer
	ch := newID()
	pad := strings.Repeat("x", 600)
	for i := range 12 {
		a.publish(t, ch, `{"module_id":"test","command":"c`+string(rune('a'+i))+`","params":{"pad":"`+pad+`"}}`, nil)
	}
	// A second instance starts with only what the stream still holds.
	b := startRelay(t, srvNATS.ClientURL(), small)
	c := b.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"&mid="+b.startMid())
	_, frame := read(t, c)
	got := parseFrame(t, frame)
	var gap struct {
		ModuleID string            `json:"module_id"`
		Command  string            `json:"command"`
		Params   map[string]string `json:"params"`
	}
	if err := json.Unmarshal(got[0].Text, &gap); err != nil {
		t.Fatal(err)
	}
	if gap.ModuleID != "isobox" || gap.Command != "history_gap" || gap.Params["reason"] != "history_lost" {
		t.Fatalf("first message %s, want a history_gap notice", got[0].Text)
	}
	if len(got) < 2 || len(got) > 12 || gap.Params["next_mid"] >= got[1].Mid {
		t.Fatalf("after the gap: %d messages, next_mid %s", len(got)-1, gap.Params["next_mid"])
	}
	if commandOf(t, got[len(got)-1].Text) != "cl" {
		t.Errorf("last replayed %s, want the newest", got[len(got)-1].Text)
	}

	// A mid from another stream (another epoch) is a reset.
	old := mid{epoch: b.srv.Epoch() - 100, seq: 5}.String()
	c2 := b.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"&mid="+old)
	_, frame = read(t, c2)
	if !strings.Contains(string(frame), `"reason":"history_reset"`) {
		t.Fatalf("frame %s, want history_reset", frame)
	}
}

func TestTwoRelaysShareChannelsThroughNATS(t *testing.T) {
	n := testkit.NATS(t)
	a := startRelay(t, n.ClientURL(), nil)
	b := startRelay(t, n.ClientURL(), nil)
	s := a.srv.cfg.Signer
	ch := newID()
	c := a.dial(t, "CHANNEL_ID="+s.SignChannel(ch))
	a.waitRegistered(t)
	if code, _ := b.publish(t, ch, body("across"), nil); code != 200 {
		t.Fatal("publish on b failed")
	}
	got := readN(t, c, 1)
	if commandOf(t, got[0].Text) != "across" {
		t.Fatalf("got %s", got[0].Text)
	}

	// b knows the subscriber on a is online.
	resp, err := http.Get(b.pubURL + "/bitrix/pub/?CHANNEL_ID=" + ch + "/" + newID())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var in infos
	if err := json.Unmarshal(raw, &in); err != nil || len(in.Infos) != 1 || in.Infos[0].Channel != ch || in.Infos[0].Subscribers != 1 {
		t.Fatalf("online = %s (%v)", raw, err)
	}

	// And so does the protobuf channel-stats request the portal sends.
	id, _ := hex.DecodeString(ch)
	code, out := b.publishBatch(t, &pushv1.RequestBatch{Requests: []*pushv1.Request{{Command: &pushv1.Request_ChannelStats{
		ChannelStats: &pushv1.ChannelStatsRequest{Channels: []*pushv1.ChannelId{{Id: id, IsPrivate: true}}}}}}})
	var rb pushv1.ResponseBatch
	if err := proto.Unmarshal(out, &rb); err != nil || code != 200 {
		t.Fatalf("stats = %d %v", code, err)
	}
	if st := rb.GetResponses()[0].GetChannelStats().GetChannels(); len(st) != 1 || !st[0].GetIsOnline() {
		t.Fatalf("channel stats %v", st)
	}

	// /server-stat/ lists both instances.
	resp, err = http.Get(b.pubURL + "/server-stat/")
	if err != nil {
		t.Fatal(err)
	}
	var stats []stat
	json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if len(stats) != 2 {
		t.Fatalf("server-stat lists %d instances, want 2", len(stats))
	}
}

func TestLongPollDeliversAndTimesOutAsPushServer(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) { c.PollTimeout = 300 * time.Millisecond })
	s := r.srv.cfg.Signer
	ch := newID()
	url := r.subURL + "/bitrix/sub/?CHANNEL_ID=" + s.SignChannel(ch)

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-r.registered
	if resp.StatusCode != 304 || resp.Header.Get("Expires") != expiresMarker || !digits26.MatchString(resp.Header.Get("Last-Message-Id")) {
		t.Fatalf("timeout answer %d, Expires %q, Last-Message-Id %q", resp.StatusCode, resp.Header.Get("Expires"), resp.Header.Get("Last-Message-Id"))
	}
	if resp.Header.Get("Access-Control-Expose-Headers") != "Last-Message-Id" {
		t.Errorf("CORS expose header missing")
	}
	last := resp.Header.Get("Last-Message-Id")

	type result struct {
		code int
		body []byte
		last string
	}
	poll := func(mid string) result {
		resp, err := http.Get(url + "&mid=" + mid)
		if err != nil {
			return result{}
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return result{resp.StatusCode, b, resp.Header.Get("Last-Message-Id")}
	}
	done := make(chan result, 1)
	go func() { done <- poll(last) }()
	r.waitRegistered(t)
	r.publish(t, ch, body("poll"), nil)
	// As a client does: a 304 (the 300 ms hold may pass first on a busy
	// machine) is followed by a poll from its Last-Message-Id, which
	// replays the message.
	res := <-done
	for i := 0; res.code == http.StatusNotModified && i < 20; i++ {
		res = poll(res.last)
	}
	if res.code != 200 {
		t.Fatalf("poll = %d %q", res.code, res.body)
	}
	if got := parseFrame(t, res.body); len(got) != 1 || commandOf(t, got[0].Text) != "poll" {
		t.Fatalf("poll body %s", res.body)
	}

	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	or, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	or.Body.Close()
	if or.StatusCode != 200 || or.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("OPTIONS = %d %v", or.StatusCode, or.Header)
	}
}

func TestPublishErrorsAndLimits(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) { c.MaxPayload = 1000 })
	id := newID()
	for name, tc := range map[string]struct {
		channels, body string
		code           int
		text           string
	}{
		"no channel":  {"", body("x"), 400, ErrNoChannel.Error()},
		"bad channel": {"xyz", body("x"), 400, ErrBadChannel.Error()},
		"bad sig":     {id + ".00", body("x"), 400, ErrBadChannel.Error()},
		"empty body":  {id, "", 400, ErrEmpty.Error()},
		"not json":    {id, "hello", 400, ErrBody.Error()},
		"json array":  {id, "[1]", 400, ErrBody.Error()},
		"too large":   {id, `{"p":"` + strings.Repeat("x", 2000) + `"}`, 413, ""},
	} {
		t.Run(name, func(t *testing.T) {
			code, text := r.publish(t, tc.channels, tc.body, nil)
			if code != tc.code || text != tc.text {
				t.Fatalf("= %d %q, want %d %q", code, text, tc.code, tc.text)
			}
		})
	}
	if code, _ := r.publishBatch(t, batchOf([]string{body("x")}, "abcd")); code != 400 {
		t.Errorf("batch with a 2-byte receiver id = %d, want 400", code)
	}
	resp, err := http.Post(r.pubURL+"/bitrix/pub/?binaryMode=true", "", strings.NewReader("\xff\xff\xff"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("garbage batch = %d, want 400", resp.StatusCode)
	}
}

func TestPublishSignatureWhenRequired(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) { c.PublishSignature = true })
	id := newID()
	b := body("signed")
	if code, _ := r.publish(t, id, b, nil); code != http.StatusForbidden {
		t.Fatalf("unsigned publish = %d, want 403", code)
	}
	resp, err := http.Post(r.pubURL+"/bitrix/pub/?CHANNEL_ID="+id+"&signature="+r.srv.cfg.Signer.Sign(b), "application/json", strings.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signed publish = %d", resp.StatusCode)
	}
}

func TestKeepAliveIsPingControlFramesAndShutdownSays1001(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) { c.PingInterval = time.Second })
	s := r.srv.cfg.Signer
	pinged := make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/?CHANNEL_ID="+s.SignChannel(newID()), &websocket.DialOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			select {
			case pinged <- struct{}{}:
			default:
			}
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	r.waitRegistered(t)
	frames := make(chan error, 1)
	go func() {
		_, b, err := c.Read(context.Background())
		if err == nil {
			err = errors.New("data frame: " + string(b))
		}
		frames <- err
	}()
	select {
	case <-pinged:
	case err := <-frames:
		t.Fatalf("before any ping: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no ping within 10s")
	}
	r.srv.Shutdown()
	err = <-frames
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after shutdown: %v, want close 1001", err)
	}
}

func TestStreamResetIsAnnouncedNotSilent(t *testing.T) {
	n := testkit.NATS(t)
	r := startRelay(t, n.ClientURL(), nil)
	s := r.srv.cfg.Signer
	ch := newID()
	q := "CHANNEL_ID=" + s.SignChannel(ch)
	c := r.dial(t, q+"&mid="+r.startMid())
	r.publish(t, ch, body("old"), nil)
	old := readN(t, c, 1)[0]
	oldEpoch := r.srv.Epoch()

	// Someone deletes the stream (or NATS lost its data).
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, streamName); err != nil {
		t.Fatal(err)
	}
	// The watcher's tick, run now: the stream is re-created with a later
	// epoch and every subscriber is disconnected with 1012.
	if changed, err := r.srv.st.check(ctx); err != nil || !changed {
		t.Fatalf("check after delete: changed %v, %v", changed, err)
	}
	if e := r.srv.st.epoch.Load(); e <= oldEpoch {
		t.Fatalf("epoch %d after reset, want > %d", e, oldEpoch)
	}
	r.srv.hub.reset <- struct{}{}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusServiceRestart {
		t.Fatalf("subscriber got %v, want close 1012", err)
	}

	// The client comes back with its old mid: history_reset, then the new stream.
	r.publish(t, ch, body("new"), nil)
	c2 := r.dial(t, q+"&mid="+old.Mid)
	got := readN(t, c2, 2)
	if !strings.Contains(string(got[0].Text), `"reason":"history_reset"`) || commandOf(t, got[1].Text) != "new" {
		t.Fatalf("after reset got %s, %s", got[0].Text, got[1].Text)
	}
	if r.srv.Epoch() <= oldEpoch {
		t.Errorf("mids still numbered in epoch %d", r.srv.Epoch())
	}
	if got[1].Mid <= old.Mid {
		t.Errorf("new mid %s not after old %s", got[1].Mid, old.Mid)
	}
}

func TestLongPollBinaryModeAndServerStatsRequest(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	ch := newID()
	r.publishBatch(t, batchOf([]string{body("bin")}, ch))
	resp, err := http.Get(r.subURL + "/bitrix/sub/?CHANNEL_ID=" + r.srv.cfg.Signer.SignChannel(ch) + "&binaryMode=true&mid=" + r.startMid())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rb pushv1.ResponseBatch
	if err := proto.Unmarshal(raw, &rb); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("poll = %d %q, %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	msgs := rb.GetResponses()[0].GetOutgoingMessages().GetMessages()
	first := mid{epoch: r.srv.Epoch(), seq: 1}.String()
	if len(msgs) != 1 || msgs[0].GetBody() != body("bin") || hex.EncodeToString(msgs[0].GetId()) != first {
		t.Fatalf("messages %v", msgs)
	}

	code, out := r.publishBatch(t, &pushv1.RequestBatch{Requests: []*pushv1.Request{{Command: &pushv1.Request_ServerStats{ServerStats: &pushv1.ServerStatsRequest{}}}}})
	var sb pushv1.ResponseBatch
	if err := proto.Unmarshal(out, &sb); err != nil || code != 200 || len(sb.GetResponses()) != 1 {
		t.Fatalf("server stats = %d, %v", code, err)
	}
	var st []stat
	if err := json.Unmarshal([]byte(sb.GetResponses()[0].GetServerStats().GetJson()), &st); err != nil || len(st) != 1 || st[0].LastMid != first {
		t.Fatalf("server stats json %q, %v", sb.GetResponses()[0].GetServerStats().GetJson(), err)
	}
}

func TestSlowSubscriberIsDroppedAndCatchesUpFromHistory(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) {
		c.MaxQueueBytes = 64 << 10
		c.WriteTimeout = 5 * time.Second
		c.ReplayMaxBytes = 64 << 20 // the whole 20 MB backlog replays
	})
	ch := newID()
	q := "CHANNEL_ID=" + r.srv.cfg.Signer.SignChannel(ch)
	c := r.dial(t, q)
	r.waitRegistered(t)
	r.publish(t, ch, body("first"), nil)
	last := readN(t, c, 1)[0].Mid
	// The client reads nothing while 20 MB are published: more than the
	// loopback socket buffers hold, so the queue passes its 64 KiB limit.
	const n = 200
	pad := strings.Repeat("x", 100<<10)
	for i := range n {
		b := `{"module_id":"test","command":"c` + strconv.Itoa(i) + `","params":{"pad":"` + pad + `"}}`
		if code, _ := r.publish(t, ch, b, nil); code != 200 {
			t.Fatalf("publish %d = %d", i, code)
		}
	}
	// commands checks the order of the messages in a frame cheaply (the
	// frames are large) and returns the mid of the last one.
	got := 0
	commands := func(frame []byte) string {
		t.Helper()
		var mid string
		for _, part := range bytes.Split(frame, []byte(frameStart))[1:] {
			i := bytes.Index(part, []byte(`"mid":"`))
			j := bytes.Index(part, []byte(`"command":"c`))
			if i < 0 || j < 0 {
				t.Fatalf("frame part %.80q", part)
			}
			mid = string(part[i+7 : i+33])
			rest := part[j+len(`"command":"c`):]
			if want := strconv.Itoa(got) + `"`; !bytes.HasPrefix(rest, []byte(want)) {
				t.Fatalf("message %d is c%.8s", got, rest)
			}
			got++
		}
		return mid
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.SetReadLimit(-1)
	for {
		_, frame, err := c.Read(ctx)
		if err != nil {
			break
		}
		if m := commands(frame); m != "" {
			last = m
		}
		if got == n {
			t.Fatal("all messages delivered to a client that did not read: never disconnected")
		}
	}
	var m dto.Metric
	r.srv.met.slow.Write(&m)
	if v := m.GetCounter().GetValue(); v != 1 {
		t.Fatalf("slow disconnects = %v, want 1", v)
	}
	// Back with its last mid, it gets the rest, in order, once (from
	// history: wait until the relay has seen them all, so that none
	// arrives live into a queue already over its limit).
	r.waitDispatched(t, n+1)
	c2 := r.dial(t, q+"&mid="+last)
	c2.SetReadLimit(-1)
	for got < n {
		_, frame := read(t, c2)
		commands(frame)
	}
}

// A backlog replays in frames the ESP8266 relays' WebSocket library takes
// (it refuses frames over 15 KiB): many messages, none lost, none too big.
func TestReplayFramesStaySmallForDevices(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), nil)
	s := r.srv.cfg.Signer
	ch := newID()
	const n = 300
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = body(strings.Repeat("x", 40) + strconv.Itoa(i))
	}
	if code, _ := r.publishBatch(t, batchOf(bodies, ch)); code != 200 {
		t.Fatalf("publish = %d", code)
	}
	r.waitDispatched(t, n)
	c := r.dial(t, "CHANNEL_ID="+s.SignChannel(ch)+"&mid="+r.startMid())
	got, frames := 0, 0
	for got < n {
		_, frame := read(t, c)
		frames++
		if len(frame) > 15<<10 {
			t.Fatalf("frame %d is %d bytes, over 15 KiB", frames, len(frame))
		}
		got += len(parseFrame(t, frame))
	}
	if got != n || frames < 2 {
		t.Fatalf("%d messages in %d frames", got, frames)
	}
}

// Issue 11, finding 5: a signed channel with a mid of another epoch asked
// for the whole history, which the relay read into memory before
// filtering. Replays now read at most ReplayMaxMessages stored messages
// (the newest), keep at most ReplayMaxBytes of matching ones, and say what
// they left out with history_gap. Counted by the relay's own metrics.
func TestReplayIsBoundedWhateverTheMid(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) {
		c.RecentMessages = 5 // the ring never covers the replay
		c.ReplayMaxMessages = 100
		c.ReplayMaxBytes = 4 << 10
	})
	s := r.srv.cfg.Signer
	busy, quiet := newID(), newID()
	const n = 600
	pad := strings.Repeat("x", 200)
	for i := range n {
		if code, _ := r.publish(t, busy, body("c"+strconv.Itoa(i)+pad), nil); code != 200 {
			t.Fatalf("publish %d = %d", i, code)
		}
	}
	r.waitDispatched(t, n)
	counter := func(c prometheus.Counter) float64 {
		var m dto.Metric
		c.Write(&m)
		return m.GetCounter().GetValue()
	}
	otherEpoch := mid{epoch: r.srv.Epoch() - 1000, seq: 3}.String()

	// A quiet channel: nothing to replay, and at most 100 messages read.
	c := r.dial(t, "CHANNEL_ID="+s.SignChannel(quiet)+"&mid="+otherEpoch)
	got := readN(t, c, 1)
	if commandOf(t, got[0].Text) != "history_gap" {
		t.Fatalf("first message %s, want history_gap", got[0].Text)
	}
	if read := counter(r.srv.met.replayMsgs); read > 100 {
		t.Errorf("replay read %v messages, want at most 100", read)
	}

	// The busy channel: the newest messages within 4 KiB, after the gap
	// notice, in order, ending with the last one published.
	before := counter(r.srv.met.replayMsgs)
	c = r.dial(t, "CHANNEL_ID="+s.SignChannel(busy)+"&mid="+otherEpoch)
	_, frame := read(t, c)
	msgs := parseFrame(t, frame)
	if commandOf(t, msgs[0].Text) != "history_gap" {
		t.Fatalf("first message %s, want history_gap", msgs[0].Text)
	}
	replayed := msgs[1:]
	bytes := 0
	for _, m := range replayed {
		bytes += len(m.Text)
	}
	if len(replayed) == 0 || bytes > 5<<10 || !strings.HasPrefix(commandOf(t, replayed[len(replayed)-1].Text), "c599") {
		t.Errorf("replayed %d messages, %d bytes, last %s; want the newest within 4 KiB", len(replayed), bytes, replayed[len(replayed)-1].Text)
	}
	if read := counter(r.srv.met.replayMsgs) - before; read > 100 {
		t.Errorf("replay read %v messages, want at most 100", read)
	}
	if counter(r.srv.met.replayCapped) < 2 {
		t.Errorf("capped replays = %v, want 2", counter(r.srv.met.replayCapped))
	}
}

// Subscribers per client address and per channel are capped (429): one
// LAN host cannot hold the relay's connections (issue 11, findings 5, 8).
func TestSubscriberCaps(t *testing.T) {
	r := startRelay(t, testkit.NATS(t).ClientURL(), func(c *Config) {
		c.MaxSubsPerIP = 3
		c.MaxSubsPerChannel = 2
	})
	s := r.srv.cfg.Signer
	one := newID()
	dialStatus := func(ch string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/?CHANNEL_ID="+s.SignChannel(ch), nil)
		if err == nil {
			t.Cleanup(func() { c.CloseNow() })
			return 101
		}
		if resp == nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if a, b := dialStatus(one), dialStatus(one); a != 101 || b != 101 {
		t.Fatalf("first two subscribers: %d %d", a, b)
	}
	if got := dialStatus(one); got != http.StatusTooManyRequests {
		t.Errorf("third subscriber of one channel: %d, want 429", got)
	}
	if got := dialStatus(newID()); got != 101 {
		t.Errorf("another channel: %d", got)
	}
	if got := dialStatus(newID()); got != http.StatusTooManyRequests {
		t.Errorf("fourth subscriber from one address: %d, want 429", got)
	}
	// A long poll counts too.
	resp, err := http.Get(r.subURL + "/bitrix/sub/?CHANNEL_ID=" + s.SignChannel(newID()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("long poll over the cap: %d", resp.StatusCode)
	}
}
