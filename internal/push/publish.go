package push

import (
	"context"
	"strings"

	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	pushv1 "github.com/isobox/isobox/api/isobox/push/v1"
)

// Errors of the publish endpoint, sent as text/plain with HTTP 400; the
// first is the push server's own text.
var (
	// ErrEmpty is returned for a publish without a body.
	ErrEmpty = errors.New("Empty post requests are not allowed.")
	// ErrBatch is returned for a binaryMode body that is not a valid
	// RequestBatch.
	ErrBatch = errors.New("Request batch is not correct.")
	// ErrSignature is returned when the publish signature is required and
	// missing or wrong (HTTP 403).
	ErrSignature = errors.New("Signature is not correct.")
)

// batch is a decoded RequestBatch: messages to store, and stats queries to
// answer, in request order.
type batch struct {
	msgs  []pending
	reqs  []*pushv1.Request // the stats requests
	count int               // requests in the batch
}

// decodeBatch parses a RequestBatch body. Every message must name at least
// one receiver with a 16-byte id and carry a JSON object body; the first
// bad one refuses the whole batch, so that nothing of a broken batch is
// published. maxExpiry and defExpiry are in seconds.
func decodeBatch(body []byte, defExpiry, maxExpiry uint32) (*batch, error) {
	var rb pushv1.RequestBatch
	if err := proto.Unmarshal(body, &rb); err != nil {
		return nil, ErrBatch
	}
	b := &batch{count: len(rb.GetRequests())}
	for _, r := range rb.GetRequests() {
		switch c := r.GetCommand().(type) {
		case *pushv1.Request_IncomingMessages:
			for _, im := range c.IncomingMessages.GetMessages() {
				p, err := decodeIncoming(im, defExpiry, maxExpiry)
				if err != nil {
					return nil, err
				}
				b.msgs = append(b.msgs, p)
			}
		case *pushv1.Request_ChannelStats:
			for _, ch := range c.ChannelStats.GetChannels() {
				if len(ch.GetId()) != idLen {
					return nil, ErrBadChannel
				}
			}
			b.reqs = append(b.reqs, r)
		case *pushv1.Request_ServerStats:
			b.reqs = append(b.reqs, r)
		default:
			return nil, ErrBatch
		}
	}
	return b, nil
}

func decodeIncoming(im *pushv1.IncomingMessage, defExpiry, maxExpiry uint32) (pending, error) {
	rs := im.GetReceivers()
	if len(rs) == 0 {
		return pending{}, ErrNoChannel
	}
	if len(rs) > MaxChannels {
		return pending{}, ErrBadChannel
	}
	var to []chanKey
	for _, r := range rs {
		if len(r.GetId()) != idLen {
			return pending{}, ErrBadChannel
		}
		kind := kindPublic
		if r.GetIsPrivate() {
			kind = kindPrivate
		}
		k := makeKey(kind, r.GetId())
		dup := false
		for _, o := range to {
			dup = dup || o == k
		}
		if !dup {
			to = append(to, k)
		}
	}
	body, err := normalizeBody([]byte(im.GetBody()))
	if err != nil {
		return pending{}, err
	}
	return pending{to: to, body: body, expiry: clampExpiry(im.GetExpiry(), defExpiry, maxExpiry)}, nil
}

func clampExpiry(e, def, max uint32) uint32 {
	if e == 0 {
		return def
	}
	return min(e, max)
}

// parseExpiry reads the Message-Expiry header: seconds; anything else (or
// nothing, or 0) is the default, as the push server treats it.
func parseExpiry(h string, def, max uint32) uint32 {
	n, err := strconv.ParseUint(h, 10, 32)
	if err != nil {
		return def
	}
	return clampExpiry(uint32(n), def, max)
}

// PublishHandler serves /bitrix/pub/ for the portal: POST publishes (JSON
// text with CHANNEL_ID, or a protobuf RequestBatch with binaryMode=true)
// and answers once every message is stored; GET with CHANNEL_ID answers
// which channels have subscribers.
//
// Only the portal's server publishes: a request a browser made is refused
// (403), and no answer carries Access-Control-Allow-Origin, so that a page
// (on the portal host or anywhere) can neither publish nor read online
// state. The portal's PHP sends neither Origin nor Sec-Fetch-* headers.
func (srv *Server) PublishHandler() http.Handler {
	return srv.serverOnly(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			srv.servePublish(w, r)
		case http.MethodGet:
			srv.serveChannelStats(w, r)
		default:
			w.Header().Set("Allow", "GET, POST")
			writeText(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	})
}

// serverOnly refuses browser requests and strips CORS headers: the
// publish listener's routes are for the portal's server alone.
func (srv *Server) serverOnly(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = &noCORS{ResponseWriter: w}
		if why := browserRequest(r); why != "" {
			srv.met.publishErrors.WithLabelValues("browser").Inc()
			writeText(w, http.StatusForbidden, "The publish endpoint does not accept browser requests ("+why+").")
			return
		}
		next(w, r)
	})
}

// browserRequest says why r looks like a browser's request, or "": an
// Origin header (every browser POST, and any cross-origin request), a
// Sec-Fetch-* header, or a body type an HTML form or a "simple" CORS
// request can send without a preflight.
func browserRequest(r *http.Request) string {
	if r.Header.Get("Origin") != "" {
		return "Origin"
	}
	for _, h := range []string{"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest"} {
		if r.Header.Get(h) != "" {
			return h
		}
	}
	if r.Method == http.MethodOptions {
		return "preflight"
	}
	if r.Method == http.MethodPost {
		ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		switch strings.ToLower(strings.TrimSpace(ct)) {
		case "text/plain", "multipart/form-data":
			return "Content-Type " + ct
		}
	}
	return ""
}

// noCORS drops Access-Control-* headers from every answer.
type noCORS struct {
	http.ResponseWriter
	wrote bool
}

func (w *noCORS) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		for k := range w.Header() {
			if strings.HasPrefix(k, "Access-Control-") {
				w.Header().Del(k)
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noCORS) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *noCORS) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// StatHandler serves /server-stat/: a JSON array with every instance's
// statistics.
func (srv *Server) StatHandler() http.Handler {
	return srv.serverOnly(func(w http.ResponseWriter, r *http.Request) {
		st, err := srv.stats(r.Context())
		if err != nil {
			srv.log.Warn("push: server stats", "err", err)
		}
		if st == nil {
			st = []json.RawMessage{}
		}
		b, _ := json.Marshal(st)
		writeText(w, http.StatusOK, string(b))
	})
}

func (srv *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, srv.cfg.MaxPayload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			srv.met.publishErrors.WithLabelValues("too_large").Inc()
			writeText(w, http.StatusRequestEntityTooLarge, "")
			return
		}
		writeText(w, http.StatusBadRequest, "Malformed request body.")
		return
	}
	q := r.URL.Query()
	if srv.cfg.PublishSignature {
		if !srv.cfg.Signer.valid(string(body), q.Get("signature")) {
			srv.met.publishErrors.WithLabelValues("signature").Inc()
			writeText(w, http.StatusForbidden, ErrSignature.Error())
			return
		}
	}
	def := uint32(srv.cfg.DefaultExpiry / time.Second)
	maxE := uint32(srv.cfg.MaxExpiry / time.Second)
	if q.Get("binaryMode") == "true" {
		srv.publishBatch(w, r, body, def, maxE)
		return
	}
	keys, err := ParseChannels(q.Get("CHANNEL_ID"), srv.cfg.Signer, false)
	if err != nil {
		srv.met.publishErrors.WithLabelValues("channel").Inc()
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	nb, err := normalizeBody(body)
	if err != nil {
		srv.met.publishErrors.WithLabelValues("body").Inc()
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	p := pending{to: keys, body: nb, expiry: parseExpiry(r.Header.Get("Message-Expiry"), def, maxE)}
	if err := srv.store(r.Context(), []pending{p}); err != nil {
		srv.log.Error("push: publish", "err", err)
		writeText(w, http.StatusServiceUnavailable, "Message could not be stored.")
		return
	}
	srv.met.published.WithLabelValues("text").Inc()
	writeText(w, http.StatusOK, "")
}

func (srv *Server) store(ctx context.Context, msgs []pending) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.st.publish(ctx, msgs); err != nil {
		return err
	}
	// Stored: a renewal that is not remembered is logged, not refused (the
	// publisher would publish the message again).
	if err := srv.renew.record(ctx, msgs); err != nil {
		srv.log.Error("push: publish", "err", err)
	}
	return nil
}

func (srv *Server) publishBatch(w http.ResponseWriter, r *http.Request, body []byte, def, maxE uint32) {
	if len(body) == 0 {
		writeText(w, http.StatusBadRequest, ErrEmpty.Error())
		return
	}
	b, err := decodeBatch(body, def, maxE)
	if err != nil {
		srv.met.publishErrors.WithLabelValues("batch").Inc()
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(b.msgs) > 0 {
		if err := srv.store(r.Context(), b.msgs); err != nil {
			srv.log.Error("push: publish", "err", err)
			writeText(w, http.StatusServiceUnavailable, "Message could not be stored.")
			return
		}
		srv.met.published.WithLabelValues("protobuf").Add(float64(len(b.msgs)))
	}
	if len(b.reqs) == 0 {
		writeText(w, http.StatusOK, "")
		return
	}
	var rb pushv1.ResponseBatch
	for _, req := range b.reqs {
		switch c := req.GetCommand().(type) {
		case *pushv1.Request_ChannelStats:
			var keys []chanKey
			for _, ch := range c.ChannelStats.GetChannels() {
				keys = append(keys, makeKey(kindOf(ch.GetIsPrivate()), ch.GetId()))
			}
			on, err := srv.online(r.Context(), keys)
			if err != nil {
				srv.log.Warn("push: channel stats", "err", err)
			}
			resp := &pushv1.ChannelStatsResponse{}
			for _, ch := range c.ChannelStats.GetChannels() {
				k := makeKey(kindOf(ch.GetIsPrivate()), ch.GetId())
				resp.Channels = append(resp.Channels, &pushv1.ChannelStats{Id: ch.GetId(), IsPrivate: ch.GetIsPrivate(), IsOnline: on[k] > 0})
			}
			rb.Responses = append(rb.Responses, &pushv1.Response{Command: &pushv1.Response_ChannelStats{ChannelStats: resp}})
		case *pushv1.Request_ServerStats:
			st, _ := srv.stats(r.Context())
			j, _ := json.Marshal(st)
			rb.Responses = append(rb.Responses, &pushv1.Response{Command: &pushv1.Response_ServerStats{ServerStats: &pushv1.JsonResponse{Json: string(j)}}})
		}
	}
	out, _ := proto.Marshal(&rb)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

func kindOf(private bool) byte {
	if private {
		return kindPrivate
	}
	return kindPublic
}

// infos is the push server's answer to GET /bitrix/pub/?CHANNEL_ID=.
type infos struct {
	Infos []info `json:"infos"`
}

type info struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

func (srv *Server) serveChannelStats(w http.ResponseWriter, r *http.Request) {
	keys, err := ParseChannels(r.URL.Query().Get("CHANNEL_ID"), srv.cfg.Signer, false)
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	on, err := srv.online(r.Context(), keys)
	if err != nil {
		srv.log.Warn("push: channel stats", "err", err)
	}
	out := infos{Infos: []info{}}
	for _, k := range keys {
		if n := on[k]; n > 0 {
			out.Infos = append(out.Infos, info{Channel: k.hex(), Subscribers: n})
		}
	}
	b, _ := json.Marshal(out)
	writeText(w, http.StatusOK, string(b))
}
