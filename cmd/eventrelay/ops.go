package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/auditlog"
	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/devices"
	"github.com/isobox/isobox/internal/push"
)

// opsServer is the RelayOps admin service: push state, devices, test
// messages, settings.
type opsServer struct {
	relayv1.UnimplementedRelayOpsServer
	push    *push.Server
	devices *devices.Tracker
	// publish is the push publish endpoint, called in process: a test
	// message passes the same checks as the portal's publishes. signer
	// signs public channel ids, and bodies when publishes must carry
	// ?signature= (signBodies).
	publish    http.Handler
	signer     *push.Signer
	signBodies bool
	settings   func() []*relayv1.Setting
	audit      *auditlog.Log
}

// unavailable is a storage error as the API's answer.
func unavailable(err error) error { return status.Error(codes.Unavailable, err.Error()) }

func clampLimit(n int32) int {
	switch {
	case n <= 0:
		return 500
	case n > 10000:
		return 10000
	}
	return int(n)
}

func (o *opsServer) ListPushChannels(ctx context.Context, req *relayv1.ListPushChannelsRequest) (*relayv1.ListPushChannelsResponse, error) {
	limit := clampLimit(req.GetLimit())
	insts, err := o.push.Instances(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "push instances: %v", err)
	}
	chans, err := o.push.Channels(ctx, 0)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "push channels: %v", err)
	}
	resp := &relayv1.ListPushChannelsResponse{Truncated: len(chans) > limit}
	for _, in := range insts {
		resp.Instances = append(resp.Instances, &relayv1.PushInstance{Id: in.ID, Websockets: in.WebSockets, Polls: in.Polls,
			Channels: int64(in.Channels), LastMid: in.LastMid, UptimeS: int64(in.Uptime / time.Second), MessagesTooLarge: int64(in.MessagesTooLarge)})
	}
	for _, c := range chans[:min(len(chans), limit)] {
		resp.Channels = append(resp.Channels, &relayv1.PushChannel{Id: c.ID, Public: c.Public, Websockets: int32(c.WebSockets), Polls: int32(c.Polls)})
	}
	return resp, nil
}

func (o *opsServer) ListDevices(ctx context.Context, req *relayv1.ListDevicesRequest) (*relayv1.ListDevicesResponse, error) {
	recs, err := o.devices.List(ctx, clampLimit(req.GetLimit()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	resp := &relayv1.ListDevicesResponse{}
	for _, r := range recs {
		resp.Devices = append(resp.Devices, &relayv1.Device{Key: r.Key, Name: r.Name, Remote: r.Remote, Channels: r.Channels, Instance: r.Instance,
			Connected: r.Connected, ConnectedSinceMs: r.SinceMs, LastSeenMs: r.SeenMs, LastMid: r.LastMid, FrameBytes: int32(r.FrameBytes), Device: r.Device,
			MessagesTooLarge: int64(r.TooLarge), AlsoFrom: r.AlsoFrom})
	}
	return resp, nil
}

// maxTestText bounds a test message's text.
const maxTestText = 1000

// testChannel reads the channel of a test message: 32 lowercase hex
// digits, a signed id's signature ("id.sig", as the portal hands it out)
// dropped.
func testChannel(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if id, _, ok := strings.Cut(s, "."); ok {
		s = id
	}
	if len(s) != 32 {
		return "", false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return s, true
}

func (o *opsServer) SendTestPush(ctx context.Context, req *relayv1.SendTestPushRequest) (*relayv1.SendTestPushResponse, error) {
	id, ok := testChannel(req.GetChannel())
	if !ok {
		return nil, status.Error(codes.InvalidArgument, "channel: give a channel id, 32 hex digits (a signed id's .signature may follow)")
	}
	text := req.GetText()
	if len(text) > maxTestText || !utf8.ValidString(text) {
		return nil, status.Errorf(codes.InvalidArgument, "text: at most %d bytes of UTF-8", maxTestText)
	}
	if text == "" {
		text = "isobox test message"
	}
	type params struct {
		Text   string `json:"text"`
		SentBy string `json:"sent_by"`
		SentAt int64  `json:"sent_at"`
	}
	body, err := json.Marshal(struct {
		ModuleID string   `json:"module_id"`
		Command  string   `json:"command"`
		Params   params   `json:"params"`
		Extra    struct{} `json:"extra"`
	}{ModuleID: "isobox", Command: "test", Params: params{Text: text, SentBy: actorOf(ctx), SentAt: time.Now().Unix()}})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode: %v", err)
	}
	// A public channel is published to in its signed form, as the portal
	// hands it out; a private one by its id.
	channel := id
	if req.GetPublic() {
		channel = o.signer.SignPublic(id)
	}
	q := url.Values{"CHANNEL_ID": {channel}}
	if o.signBodies {
		q.Set("signature", o.signer.Sign(string(body)))
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/bitrix/pub/?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "127.0.0.1:0"
	w := &recorder{header: http.Header{}}
	o.publish.ServeHTTP(w, r)
	if w.code != http.StatusOK {
		code := codes.Unavailable
		if w.code < 500 {
			code = codes.InvalidArgument
		}
		return nil, status.Errorf(code, "publish answered %d: %s", w.code, strings.TrimSpace(w.body.String()))
	}
	resp := &relayv1.SendTestPushResponse{Body: string(body)}
	if chans, err := o.push.Channels(ctx, 0); err == nil {
		for _, c := range chans {
			if c.ID == id && c.Public == req.GetPublic() {
				resp.Subscribers = int32(c.WebSockets + c.Polls)
			}
		}
	}
	return resp, nil
}

// recorder is the ResponseWriter of an in-process publish.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.body.Len() < 4096 {
		w.body.Write(b[:min(len(b), 4096-w.body.Len())])
	}
	return len(b), nil
}

func (o *opsServer) GetSettings(context.Context, *relayv1.GetSettingsRequest) (*relayv1.GetSettingsResponse, error) {
	return &relayv1.GetSettingsResponse{Settings: o.settings()}, nil
}

// notShown replaces a secret's value in the settings.
const notShown = "(set, not shown)"

// effectiveSettings lists every server flag with the value in effect and
// where it came from: the values of flags that hold a secret are replaced
// (as --print-config does), credentials in NATS URLs masked.
func effectiveSettings(fs *flag.FlagSet, p *cmdline.Parsed) []*relayv1.Setting {
	var out []*relayv1.Setting
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "version", "print-config":
			return
		}
		v := f.Value.String()
		switch {
		case v != "" && cmdline.IsSecret(f.Name):
			v = notShown
		case f.Name == "nats-url" && v != "":
			v = natsDescribe(v)
		}
		src := p.Source[f.Name]
		if src == "" {
			src = "default"
		}
		out = append(out, &relayv1.Setting{Name: f.Name, Value: v, Source: src})
	})
	return out
}
