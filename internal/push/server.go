package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the push server's configuration. Every zero value means the
// documented default, so Config{Signer: s} works.
type Config struct {
	// Signer checks subscribers' channel signatures (required).
	Signer *Signer
	// PollTimeout is how long a long poll is held; zero means 40s, the
	// push server's value.
	PollTimeout time.Duration
	// PingInterval is how often an idle WebSocket is pinged (a control
	// frame) and how long it has to answer; zero means 45s, under the 60s
	// idle timeout of a default nginx in front.
	PingInterval time.Duration
	// WriteTimeout bounds one WebSocket write; zero means 10s.
	WriteTimeout time.Duration
	// DefaultExpiry applies to a message published without Message-Expiry
	// (or with 0); zero means 24h, as the portal's default expiry.
	DefaultExpiry time.Duration
	// MaxExpiry caps a message's expiry and is how long the stream keeps
	// messages; zero means 24h.
	MaxExpiry time.Duration
	// HistoryBytes caps the stream's size; the oldest messages go first,
	// and a subscriber that would have needed them is told (history_gap).
	// Zero means 1 GiB.
	HistoryBytes int64
	// Replicas of the stream in a NATS cluster; zero means 1.
	Replicas int
	// MaxPayload bounds a publish request body; zero means 1 MiB (the
	// portal's limit_max_payload).
	MaxPayload int64
	// MaxQueueBytes is how far (in body bytes) a WebSocket subscriber may
	// fall behind before it is disconnected to catch up from history; zero
	// means 4 MiB.
	MaxQueueBytes int
	// RecentMessages and RecentBytes bound the in-memory copy of recent
	// history that answers reconnects without asking JetStream; zero
	// means 10000 messages and 32 MiB.
	RecentMessages int
	RecentBytes    int
	// ReplayMaxMessages caps how many stored messages one reconnect reads
	// from the history stream: a client further behind (or with a mid of
	// another epoch, which asks for everything) gets the newest ones after
	// a history_gap notice. Zero means 10000.
	ReplayMaxMessages int
	// ReplayMaxBytes caps the body bytes one reconnect keeps for its
	// client (read messages are filtered as they arrive); older matching
	// messages past it are dropped and a history_gap notice says so. Zero
	// means 8 MiB.
	ReplayMaxBytes int
	// MaxSubsPerIP caps the subscribers (long polls and WebSockets) held
	// at once from one client address (IPv6: per /64); MaxSubsPerChannel
	// caps the subscribers of one channel on this instance. More are
	// refused with 429. Zero means 128 and 64; negative means no cap.
	MaxSubsPerIP      int
	MaxSubsPerChannel int
	// PublishSignature, when set, makes the publish endpoint require
	// ?signature= hex HMAC of the body with the signature key, as a portal
	// in shared mode sends it.
	PublishSignature bool
	// PresenceWait bounds how long an online query waits for other relay
	// instances; zero means 250ms.
	PresenceWait time.Duration
	// RenewalKeep is how long a channel renewal (the portal's
	// pull/channel_expire) is remembered and sent again to subscribers of
	// the old channel; zero means DefaultRenewalKeep (90 days).
	RenewalKeep time.Duration
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (c *Config) withDefaults() (*Config, error) {
	cc := *c
	if cc.Signer == nil {
		return nil, errors.New("push: config: no signer")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cc.PollTimeout, 40*time.Second)
	def(&cc.PingInterval, 45*time.Second)
	def(&cc.WriteTimeout, 10*time.Second)
	def(&cc.DefaultExpiry, 24*time.Hour)
	def(&cc.MaxExpiry, 24*time.Hour)
	def(&cc.PresenceWait, 250*time.Millisecond)
	def(&cc.RenewalKeep, DefaultRenewalKeep)
	if cc.DefaultExpiry > cc.MaxExpiry {
		cc.DefaultExpiry = cc.MaxExpiry
	}
	if cc.HistoryBytes <= 0 {
		cc.HistoryBytes = 1 << 30
	}
	if cc.Replicas <= 0 {
		cc.Replicas = 1
	}
	if cc.MaxPayload <= 0 {
		cc.MaxPayload = 1 << 20
	}
	if cc.MaxQueueBytes <= 0 {
		cc.MaxQueueBytes = 4 << 20
	}
	if cc.RecentMessages <= 0 {
		cc.RecentMessages = 10000
	}
	if cc.RecentBytes <= 0 {
		cc.RecentBytes = 32 << 20
	}
	if cc.ReplayMaxMessages <= 0 {
		cc.ReplayMaxMessages = 10000
	}
	if cc.ReplayMaxBytes <= 0 {
		cc.ReplayMaxBytes = 8 << 20
	}
	if cc.MaxSubsPerIP == 0 {
		cc.MaxSubsPerIP = 128
	}
	if cc.MaxSubsPerChannel == 0 {
		cc.MaxSubsPerChannel = 64
	}
	return &cc, nil
}

// Server is a running push server: one relay instance.
type Server struct {
	cfg   *Config
	log   *slog.Logger
	nc    *nats.Conn
	st    *store
	renew *renewals
	hub   *hub
	met   *metrics
	id    string
	peer  peers

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	connID atomic.Uint64
	start  time.Time
	caps   *caps
	// tooLarge counts messages not sent to frameBytes= subscribers for
	// being larger than their frames (the admin API's push state).
	tooLarge atomic.Uint64
}

// New creates the stream (or updates its limits), starts tailing it and
// answering other instances' presence queries. It returns when the relay
// is ready to serve. Stop it with Close.
func New(ctx context.Context, cfg Config, nc *nats.Conn, log *slog.Logger) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, nc, c)
	if err != nil {
		return nil, err
	}
	renew, err := openRenewals(ctx, st.js, c)
	if err != nil {
		return nil, err
	}
	met := newMetrics(c.Registerer)
	srv := &Server{cfg: c, log: log, nc: nc, st: st, renew: renew, met: met, id: nc.Opts.Name + "-" + randomID(), start: time.Now(),
		caps: newCaps(c.MaxSubsPerIP, c.MaxSubsPerChannel)}
	srv.hub = newHub(st, c, log, met)
	srv.base, srv.cancel = context.WithCancel(context.Background())
	met.bind(srv.hub)

	ready := make(chan error, 1)
	srv.wg.Add(1)
	go func() { defer srv.wg.Done(); srv.hub.run(srv.base, ready) }()
	select {
	case err := <-ready:
		if err != nil {
			srv.cancel()
			srv.wg.Wait()
			return nil, fmt.Errorf("push: tail stream: %w", err)
		}
	case <-ctx.Done():
		srv.cancel()
		srv.wg.Wait()
		return nil, ctx.Err()
	}
	if err := srv.startCluster(); err != nil {
		srv.Close(context.Background())
		return nil, err
	}
	srv.wg.Add(2)
	go func() { defer srv.wg.Done(); srv.pinger() }()
	go func() { defer srv.wg.Done(); srv.watch() }()
	log.Info("push: ready", "stream", streamName, "epoch", srv.hub.epoch.Load(), "last_seq", srv.hub.last(), "instance", srv.id)
	return srv, nil
}

// Epoch returns the stream's epoch, the first 10 digits of every mid.
func (srv *Server) Epoch() uint64 { return srv.hub.epoch.Load() }

// Ready reports whether NATS is connected.
func (srv *Server) Ready(ctx context.Context) error {
	if !srv.nc.IsConnected() {
		return errors.New("push: NATS not connected")
	}
	return nil
}

// Shutdown ends every subscriber: WebSockets are closed with 1001 (clients
// reconnect, to another instance if there is one), long polls answer 304.
// New subscribers are refused. It does not wait.
func (srv *Server) Shutdown() { srv.hub.closeAll() }

// Close shuts down (if not done), waits for WebSocket readers to end
// (bounded by ctx) and stops tailing the stream.
func (srv *Server) Close(ctx context.Context) {
	srv.Shutdown()
	for _, s := range srv.hub.snapshot() {
		if s.ws != nil {
			select {
			case <-s.ws.done:
			case <-ctx.Done():
				s.ws.c.CloseNow()
			}
		}
	}
	for _, sub := range srv.subs {
		sub.Unsubscribe()
	}
	srv.cancel()
	srv.wg.Wait()
}

// pinger pings every WebSocket once per PingInterval, spread over the
// interval in one-second buckets so that pings do not come in bursts.
func (srv *Server) pinger() {
	buckets := uint64(srv.cfg.PingInterval / time.Second)
	if buckets == 0 {
		buckets = 1
	}
	tick := time.NewTicker(srv.cfg.PingInterval / time.Duration(buckets))
	defer tick.Stop()
	var n uint64
	for {
		select {
		case <-srv.base.Done():
			return
		case <-tick.C:
		}
		n++
		for _, s := range srv.hub.snapshot() {
			if s.ws != nil && s.ws.id%buckets == n%buckets {
				go s.ws.ping()
			}
		}
	}
}

// subRequest is a parsed subscribe request.
type subRequest struct {
	keys   []chanKey
	format format
	mid    mid
	hasMid bool
	epoch  uint64
	// frameBytes caps this WebSocket's frames (frameBytes=, isobox's own
	// parameter for small devices); 0 = maxFrameBytes.
	frameBytes int
	// device is the stable name a relay board gives itself (device=,
	// isobox's own parameter; see ParseDeviceID); "" if none.
	device string
}

func (srv *Server) parseSub(r *http.Request) (subRequest, error) {
	q := r.URL.Query()
	keys, err := ParseChannels(q.Get("CHANNEL_ID"), srv.cfg.Signer, true)
	if err != nil {
		return subRequest{}, err
	}
	req := subRequest{keys: keys, epoch: srv.hub.epoch.Load()}
	switch {
	case q.Get("binaryMode") == "true":
		req.format = formatBinary
	case q.Get("format") == "json":
		req.format = formatJSON
	}
	req.mid, req.hasMid = parseMid(q.Get("mid"))
	if v := q.Get("frameBytes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < minFrameBytes {
			return subRequest{}, ErrFrameBytes
		}
		req.frameBytes = min(n, maxFrameBytes)
	}
	if vs := q["device"]; len(vs) > 0 {
		if len(vs) > 1 {
			return subRequest{}, ErrDeviceID
		}
		if req.device, err = ParseDeviceID(vs[0]); err != nil {
			return subRequest{}, err
		}
	}
	return req, nil
}

func (req subRequest) newSub(maxQueue int) *sub {
	s := &sub{keys: req.keys, format: req.format, maxQueue: maxQueue}
	if req.hasMid {
		if req.mid.epoch == req.epoch {
			s.lastSeq = req.mid.seq
		}
	} else {
		s.live = true
	}
	return s
}

// SubscribeHandler serves /bitrix/sub/ (long polling, or a WebSocket when
// the request is an upgrade) and /bitrix/subws/ (WebSocket).
func (srv *Server) SubscribeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrade := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
		if r.Method == http.MethodOptions {
			serveOptions(w)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, OPTIONS")
			setCORS(w.Header())
			http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
			return
		}
		req, err := srv.parseSub(r)
		if err != nil {
			srv.met.refused.Inc()
			if upgrade {
				writeBadRequest(w)
				return
			}
			writeText(w, http.StatusBadRequest, err.Error())
			return
		}
		release, capped := srv.caps.acquire(r.RemoteAddr, req.keys)
		if capped != "" {
			srv.met.limited.WithLabelValues(capped).Inc()
			w.Header().Set("Retry-After", "30")
			writeText(w, http.StatusTooManyRequests, "Too many subscribers per "+capped)
			return
		}
		if upgrade {
			srv.serveWS(w, r, req, release)
			return
		}
		defer release()
		srv.servePoll(w, r, req)
	})
}

func writeText(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain")
	setCORS(h)
	w.WriteHeader(status)
	if text != "" {
		w.Write([]byte(text))
	}
}

// watch checks every few seconds that the history stream is the one being
// tailed, re-creating it if it was deleted, and resets the hub if it is a
// new stream.
func (srv *Server) watch() {
	t := time.NewTicker(helloEvery)
	defer t.Stop()
	for {
		select {
		case <-srv.base.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(srv.base, helloEvery)
		changed, err := srv.st.check(ctx)
		cancel()
		if err != nil {
			srv.log.Warn("push: stream check", "err", err)
			continue
		}
		if changed {
			select {
			case srv.hub.reset <- struct{}{}:
			default:
			}
		}
	}
}
