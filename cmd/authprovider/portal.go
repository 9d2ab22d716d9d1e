package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
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
		FallbackURL: func() string { return "http://" + a.d.Addr("http") },
	})
	registry := portal.NewRegistry(a.db, a.oauth, nil)
	relay := portal.NewRelay(a.db, portal.RelayConfig{URL: a.cfg.RelayURL, ServiceKey: key, RetryMax: pc.OutboxRetryMax}, a.log)
	h := portal.New(portal.Config{Registration: a.cfg.PortalRegistration}, svc, a.oauth, registry, relay, a.log)
	forget := func(id string) {
		v.ForgetClient(id)
		portals.Forget(id)
	}
	// Changes made here and through any other path (admin API, CLI) drop
	// the client's cached answers at once on this instance.
	h.OnClientChange = forget
	a.oauth.OnClientChange(forget)
	h.Register(a.bitrix)

	tokenv1.RegisterPortalTokensServer(a.grpc, &validator.PortalTokensServer{S: svc, Log: a.log})
	tokenv1.RegisterEventAuthServer(a.grpc, &validator.EventAuthServer{S: svc, Log: a.log})
	a.grpcAuth[validator.PortalTokensService] = svc.PortalCheck
	a.grpcAuth[validator.EventAuthService] = validator.ServiceKeyCheck(key)
	a.gatewayRegs = append(a.gatewayRegs, tokenv1.RegisterPortalTokensHandler, tokenv1.RegisterEventAuthHandler)
	// The module's hot path, served without the gateway's loopback gRPC hop
	// (same JSON; the gateway route stays for the other methods).
	a.admin.Handle("POST "+validator.ValidatePath, svc.ValidateHandler(a.log))

	bg, cancel := context.WithCancel(context.Background())
	go v.Run(bg)
	go relay.Run(bg)
	a.d.OnClose(func(context.Context) { cancel() })

	// A cache that cannot follow the feed may serve a revoked token until
	// --token-cache-ttl; say so on /readyz.
	a.d.Ready("revocation-feed", func(context.Context) error {
		if age := v.Stats().FeedAge; age > 10*pc.RevocationPoll+5*time.Second {
			return fmt.Errorf("revocation feed last read %s ago", age.Round(time.Second))
		}
		return nil
	})
	registerPortalMetrics(a.d.Registry, v, relay)
	return nil
}

func registerPortalMetrics(reg *prometheus.Registry, v *validator.Validator, relay *portal.Relay) {
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
	)
}
