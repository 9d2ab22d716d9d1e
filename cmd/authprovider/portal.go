package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/gateway"
	"github.com/isobox/isobox/internal/peercheck"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/validator"
)

// portalConfig holds the portal-protocol and token-check settings.
type portalConfig struct {
	CacheSize      int
	CacheTTL       time.Duration
	NegativeTTL    time.Duration
	RevocationPoll time.Duration
	PortalAuthTTL  time.Duration
	OutboxRetryMax time.Duration
}

func (c *portalConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.CacheSize, "token-cache-size", 100_000, "token-check cache: most answers kept in memory")
	fs.DurationVar(&c.CacheTTL, "token-cache-ttl", 30*time.Second, "token-check cache: how long a valid token's answer is reused (revocations drop it sooner)")
	fs.DurationVar(&c.NegativeTTL, "token-cache-negative-ttl", 2*time.Second, "token-check cache: how long an unknown, revoked or expired token's answer is reused")
	fs.DurationVar(&c.RevocationPoll, "revocation-poll", 250*time.Millisecond, "how often the revocation feed is read, so that tokens revoked on any instance leave this one's cache")
	fs.DurationVar(&c.PortalAuthTTL, "portal-auth-cache-ttl", 10*time.Second, "how long a portal's verified client_id/secret is reused without a database read")
	fs.DurationVar(&c.OutboxRetryMax, "outbox-retry-max", time.Minute, "longest pause between attempts to hand queued rest.event.call items to eventrelay")
}

// mountPortal adds the portal ↔ OAuth-server protocol (/oauth/register/,
// /rest/{method}), app.info and the validation API used by the PHP module
// (PortalTokens) and eventrelay (EventAuth).
func mountPortal(ctx context.Context, a *app) error {
	pc := a.cfg.Portal
	if a.oauth == nil {
		return fmt.Errorf("portal: the OAuth service is not mounted")
	}
	key, created, err := secret.LoadOrCreate(a.cfg.serviceKeyPath(), 48)
	if err != nil {
		return fmt.Errorf("service key: %w", err)
	}
	a.log.Info("service key ready", "path", a.cfg.serviceKeyPath(), "created", created)

	v := validator.New(a.oauth, validator.Config{
		CacheSize: pc.CacheSize, CacheTTL: pc.CacheTTL, NegativeTTL: pc.NegativeTTL, PollInterval: pc.RevocationPoll,
	}, a.log)
	portals := validator.NewPortals(a.oauth, pc.PortalAuthTTL, nil)
	svc := validator.NewService(a.oauth, v, portals, validator.ServiceConfig{
		PublicURL:   a.cfg.PublicURL,
		FallbackURL: func() string { return a.scheme() + "://" + a.d.Addr("http") },
	})
	registry := portal.NewRegistry(a.db, a.oauth, nil)
	relay := portal.NewRelay(a.db, portal.RelayConfig{URL: a.cfg.RelayURL, ServiceKey: key, RetryMax: pc.OutboxRetryMax, Client: a.tls.relayClient()}, a.log)
	h := portal.New(portal.Config{Registration: a.cfg.PortalRegistration}, svc, a.oauth, registry, relay, a.log)
	forget := func(id string) {
		v.ForgetClient(id)
		portals.Forget(id)
	}
	// Changes made here and through any other path (admin API, CLI) drop
	// the client's cached answers at once on this instance.
	h.OnClientChange = forget
	a.oauth.OnClientChange(forget)
	// /rest/ calls are counted by method and answer on the way through.
	rest := http.NewServeMux()
	h.Register(rest)
	a.bitrix.Handle("/oauth/register/", rest)
	a.bitrix.Handle("/rest/", restMetrics(a.d.Registry, a.log, h.Known, rest))

	tokenv1.RegisterPortalTokensServer(a.grpc, &validator.PortalTokensServer{S: svc, Log: a.log})
	tokenv1.RegisterEventAuthServer(a.grpc, &validator.EventAuthServer{S: svc, Log: a.log})
	a.grpcAuth[validator.PortalTokensService] = svc.PortalCheck
	a.grpcAuth[validator.EventAuthService] = validator.ServiceKeyCheck(key)
	a.validationRegs = append(a.validationRegs, tokenv1.RegisterPortalTokensHandler, tokenv1.RegisterEventAuthHandler)
	// The module's hot path, served without the gateway's loopback gRPC hop
	// (same JSON; the gateway route stays for the other methods).
	a.validation.Handle("POST "+validator.ValidatePath, gateway.NoStore(svc.ValidateHandler(a.log)))

	// A relay with another service key refuses every batch: say so on
	// /readyz instead of filling the outbox quietly.
	peer := peercheck.New(peercheck.Config{
		Peer: "eventrelay at " + a.cfg.RelayURL, KeyFile: a.cfg.serviceKeyPath(), Interval: a.cfg.PeerCheckInterval,
		Probe: relayKeyProbe(a.cfg.RelayURL, key, a.tls.relayClient()), Log: a.log, Registry: a.d.Registry,
	})
	a.d.Ready("service-key", peer.Ready)

	bg, cancel := context.WithCancel(context.Background())
	go v.Run(bg)
	go relay.Run(bg)
	go peer.Run(bg)
	a.d.OnClose(func(context.Context) { cancel() })

	// A cache that cannot follow the feed may serve a revoked token until
	// --token-cache-ttl; say so on /readyz.
	a.d.Ready("revocation-feed", func(context.Context) error {
		if age := v.Stats().FeedAge; age > 10*pc.RevocationPoll+5*time.Second {
			return fmt.Errorf("revocation feed last read %s ago", age.Round(time.Second))
		}
		return nil
	})
	registerPortalMetrics(a.d.Registry, v, relay, h)
	return nil
}

func registerPortalMetrics(reg *prometheus.Registry, v *validator.Validator, relay *portal.Relay, h *portal.Handler) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "isobox_token_cache_hits_total", Help: "Token checks answered from memory."},
			func() float64 { return float64(v.Stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "isobox_token_cache_misses_total", Help: "Token checks that read the database."},
			func() float64 { return float64(v.Stats().Misses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "isobox_token_cache_dropped_total", Help: "Cached tokens dropped by revocations."},
			func() float64 { return float64(v.Stats().Dropped) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "isobox_token_cache_entries", Help: "Token-check answers in memory."},
			func() float64 { return float64(v.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "isobox_event_outbox_pending", Help: "rest.event.call batches waiting for eventrelay."},
			func() float64 { return float64(relay.PendingHint()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "isobox_portal_address_mismatch_total",
			Help: "Portal calls whose client_redirect_uri differed from the registered address (ignored; `portal update` moves a portal)."},
			func() float64 { return float64(h.AddressMismatches()) }),
	)
}

// restMetrics counts and times /rest/ calls by method (methods next does
// not know count as "other", so that no caller can add label values) and
// HTTP status, and logs each call at debug level.
func restMetrics(reg prometheus.Registerer, log *slog.Logger, known func(string) bool, next http.Handler) http.Handler {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "isobox_rest_calls_total",
		Help: "Calls to /rest/{method} (the portal protocol and app.info) by method and HTTP status.",
	}, []string{"method", "code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "isobox_rest_call_seconds",
		Help:    "Time to answer a /rest/ call, by method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method"})
	reg.MustRegister(calls, dur)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := portal.RESTMethod(r.URL.Path)
		if !known(method) {
			method = "other"
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		took := time.Since(start)
		calls.WithLabelValues(method, codeLabel(sw.code)).Inc()
		dur.WithLabelValues(method).Observe(took.Seconds())
		if log.Enabled(r.Context(), slog.LevelDebug) { // no argument boxing per call otherwise
			log.Debug("rest call", "method", method, "status", sw.code, "took", took.String(), "remote", r.RemoteAddr)
		}
	})
}

// codeLabel is the status label of isobox_rest_calls_total, without an
// allocation for the usual ones.
func codeLabel(code int) string {
	switch code {
	case http.StatusOK:
		return "200"
	case http.StatusBadRequest:
		return "400"
	case http.StatusUnauthorized:
		return "401"
	case http.StatusForbidden:
		return "403"
	case http.StatusNotFound:
		return "404"
	}
	return strconv.Itoa(code)
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// relayKeyProbe asks eventrelay's ingest whether it accepts key, with a
// call that stores nothing: a POST carrying the key but no X-Isobox-Portal
// header is refused with 400 after the key was checked, and with 401 when
// the key is wrong.
func relayKeyProbe(relayURL, key string, client *http.Client) func(context.Context) error {
	url := strings.TrimRight(relayURL, "/") + "/v1/events"
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return nil
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: HTTP %d", peercheck.ErrKeyRejected, resp.StatusCode)
		}
		return fmt.Errorf("eventrelay answered HTTP %d", resp.StatusCode)
	}
}
