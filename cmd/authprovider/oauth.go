package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	adminv1 "github.com/isobox/isobox/api/isobox/admin/v1"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/oauth/adminapi"
)

// oauthConfig holds OAuth settings beyond the common ones in config.
type oauthConfig struct {
	// JanitorInterval is how often expired codes and tokens are deleted.
	JanitorInterval time.Duration
}

func (c *oauthConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.JanitorInterval, "janitor-interval", time.Minute, "how often expired codes, tokens and revocation records are deleted (in batches of 1000 rows)")
}

// mountOAuth adds the OAuth 2.0 server: /oauth/token/ on the Bitrix-facing
// mux, the admin API (gRPC + gateway), introspection and revocation. It
// builds a.oauth, which the portal feature (mounted after it) uses.
func mountOAuth(ctx context.Context, a *app) error {
	svc, err := oauth.New(a.db, oauth.Config{
		TokenPrefix:     a.cfg.TokenPrefix,
		AccessTTL:       a.cfg.AccessTTL,
		RefreshTTL:      a.cfg.RefreshTTL,
		CodeTTL:         a.cfg.CodeTTL,
		RefreshGrace:    a.cfg.RefreshGrace,
		PublicURL:       a.cfg.PublicURL,
		JanitorInterval: a.cfg.OAuth.JanitorInterval,
	}, a.log)
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	a.oauth = svc
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "isobox_oauth_token_requests_total",
		Help: "Requests to /oauth/token/ by HTTP status.",
	}, []string{"code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "isobox_oauth_token_request_seconds",
		Help:    "Time to answer /oauth/token/.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{})
	a.d.Registry.MustRegister(reqs, dur)
	token := promhttp.InstrumentHandlerCounter(reqs, promhttp.InstrumentHandlerDuration(dur, svc.TokenHandler()))
	for _, p := range oauth.TokenPaths() {
		a.bitrix.Handle(p, token)
	}

	adminv1.RegisterAdminServer(a.grpc, &adminapi.Server{
		S: svc, Log: a.log,
		Host: func() string { return a.d.Addr("http") },
	})
	a.grpcAuth[adminapi.ServiceName] = a.adminCheck
	a.gatewayRegs = append(a.gatewayRegs, adminv1.RegisterAdminHandler)

	jctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.RunJanitor(jctx)
	}()
	a.d.OnDrain(func(context.Context) {
		stop()
		<-done
	})
	return nil
}
