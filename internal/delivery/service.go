// Package delivery is where an event is DELIVERED: it fans each stored
// ingest batch out to per-handler queues, runs each handler's workers
// (their own JetStream consumer, concurrency limit and circuit breaker, so a
// slow or dead handler delays no one else), builds the Bitrix form payload
// with a fresh auth block from authprovider, signs it (Standard Webhooks),
// retries on a schedule and dead-letters what never succeeds.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/isobox/isobox/internal/events"
)

// ErrInvalidOption wraps every bad configuration value.
var ErrInvalidOption = errors.New("delivery: invalid option")

// Clock tells the time; tests inject one to stamp records and signatures.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// DefaultSchedule returns the default retry schedule: the delays before
// the 2nd, 3rd, ... attempt (Svix's schedule; ~33h in total). Each call
// returns a new slice, so no caller can change the default of another.
func DefaultSchedule() []time.Duration {
	return []time.Duration{5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
}

// DefaultDeny returns the handler address ranges refused unless configured
// otherwise: "this network" (0.0.0.0/8, which Linux connects to the host
// itself), link-local (169.254.0.0/16: cloud metadata at 169.254.169.254,
// ECS task metadata at 169.254.170.2; fe80::/10), the unspecified ::, and
// the other clouds' metadata addresses. IPv4-mapped IPv6 forms are refused
// with their IPv4 range. LAN and loopback addresses are allowed: on-prem
// handlers live there (the relay's own listeners are refused separately,
// see Config.Self). Each call returns a new slice.
func DefaultDeny() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("fd00:ec2::254/128"),
		netip.MustParsePrefix("100.100.100.200/32"),
	}
}

// Config configures the delivery service. Zero values mean the defaults
// named per field.
type Config struct {
	JS jetstream.JetStream
	// Auth builds the auth block at delivery time; required.
	Auth AuthBuilder
	// Schedule is the delay before each retry; its length is the number of
	// retries. Nil means DefaultSchedule(); an empty non-nil slice means no
	// retries.
	Schedule []time.Duration
	// Jitter spreads each delay by ±Jitter×delay. Zero means 0.1; negative
	// disables jitter.
	Jitter float64
	// Timeout bounds one attempt; a 2xx within it is success. Zero = 3s.
	Timeout time.Duration
	// Concurrency is the number of in-flight deliveries per handler. Zero
	// means 4.
	Concurrency int
	// MaxResponseBody bounds how much of a handler's answer is read. Zero
	// means 64 KiB.
	MaxResponseBody int64
	// FollowRedirects follows 3xx answers (not followed by default: a 3xx
	// is a failure).
	FollowRedirects bool
	// Deny lists address ranges handlers may not resolve to. Nil means
	// DefaultDeny().
	Deny []netip.Prefix
	// Self returns the relay's own listener addresses (ingest, unsigned
	// push publishing, admin, gRPC, embedded NATS); a handler that resolves
	// to one of them is refused, so an app cannot make the relay post into
	// its own endpoints. An unspecified address (0.0.0.0:p, [::]:p) stands
	// for every local address on port p. It is called on every new
	// connection, so it may learn the addresses late (listeners bound
	// after Start). Nil refuses nothing beyond Deny.
	Self func() []netip.AddrPort
	// BreakerFailures consecutive failures open a handler's circuit. Zero
	// means 5.
	BreakerFailures int
	// BreakerCooldown is how long an open circuit waits before one probe;
	// it doubles on each failed probe up to 10 minutes. Zero means 30s.
	BreakerCooldown time.Duration
	// RotationOverlap is how long a rotated-out signing secret still signs.
	// Zero means 24h.
	RotationOverlap time.Duration
	// SecretsKey encrypts signing secrets at rest (32 bytes); required.
	SecretsKey []byte
	// AuthCacheTTL is how long an auth block without a token (webhooks,
	// events without a user) is reused. Zero means 10s; negative disables.
	AuthCacheTTL time.Duration
	// DedupWindow is how long an accepted item id is remembered, so that
	// the same item handed off again is delivered once. Zero means 2h; it
	// should match events.StreamsConfig.DedupWindow.
	DedupWindow time.Duration
	// MaxRecords bounds the delivery records kept in memory. Zero = 200000.
	MaxRecords int
	// Clock tells the time; nil means the system clock.
	Clock Clock
	Log   *slog.Logger
	// Registry receives the delivery metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Ingested reports the events accepted by ingest, for Stats; nil = 0.
	Ingested func() int64
}

func (c *Config) validate() error {
	if c.JS == nil || c.Auth == nil {
		return fmt.Errorf("%w: JS and Auth are required", ErrInvalidOption)
	}
	if len(c.SecretsKey) != 32 {
		return fmt.Errorf("%w: SecretsKey must be 32 bytes", ErrInvalidOption)
	}
	// The service keeps its own copies: a caller changing its slices
	// later cannot change a running service.
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule()
	} else {
		c.Schedule = slices.Clone(c.Schedule)
	}
	for _, d := range c.Schedule {
		if d < 0 {
			return fmt.Errorf("%w: negative retry delay %v", ErrInvalidOption, d)
		}
	}
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.Jitter > 1 {
		return fmt.Errorf("%w: jitter %v > 1", ErrInvalidOption, c.Jitter)
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxResponseBody <= 0 {
		c.MaxResponseBody = 64 << 10
	}
	if c.Deny == nil {
		c.Deny = DefaultDeny()
	} else {
		c.Deny = slices.Clone(c.Deny)
	}
	if c.BreakerFailures <= 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = 30 * time.Second
	}
	if c.RotationOverlap <= 0 {
		c.RotationOverlap = 24 * time.Hour
	}
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = 10 * time.Second
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 2 * time.Hour
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 200000
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Service runs fan-out and delivery.
type Service struct {
	cfg     Config
	js      jetstream.JetStream
	log     *slog.Logger
	sender  *sender
	secrets *Secrets
	records *records
	seen    *seenSet
	m       *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	handlers map[string]*worker
	kvH      jetstream.KeyValue
}

// New validates cfg and prepares the service; Start runs it. The streams
// must exist (events.Setup).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, js: cfg.JS, log: cfg.Log, handlers: map[string]*worker{}}
	s.m = newMetrics(cfg.Registry)
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(newGauges(s))
	}
	kv, err := cfg.JS.KeyValue(ctx, events.BucketHandlers)
	if err != nil {
		return nil, fmt.Errorf("delivery: handlers bucket: %w", err)
	}
	s.kvH = kv
	s.secrets, err = NewSecrets(ctx, cfg.JS, cfg.SecretsKey, cfg.RotationOverlap, cfg.Clock)
	if err != nil {
		return nil, err
	}
	s.sender = newSender(cfg, s.secrets)
	s.records = newRecords(cfg.JS, cfg.MaxRecords, cfg.Log)
	s.seen = newSeenSet(cfg.DedupWindow)
	return s, nil
}

// Secrets returns the signing secret store.
func (s *Service) Secrets() *Secrets { return s.secrets }

// Start loads the delivery history and the known handlers, then starts
// the fan-out and every handler's workers. It returns once they run.
func (s *Service) Start(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.records.follow(ctx, s.ctx, &s.wg); err != nil {
		s.cancel()
		return err
	}
	// Every instance reads all of StreamIn for the dedup set (seen.go),
	// so that instances sharing the fan-out agree on duplicates.
	if err := s.seen.follow(ctx, s.ctx, s.js, s.cfg.Clock, s.log, &s.wg); err != nil {
		s.cancel()
		return err
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.records.run(s.ctx) }()
	// Watch the handlers bucket rather than list it: the initial values
	// start the known handlers' workers, and later changes made by other
	// relay instances (a handler seen first there, a pause or resume) reach
	// this instance's workers too.
	watch, err := s.kvH.WatchAll(s.ctx)
	if err != nil {
		return fmt.Errorf("delivery: watch handlers: %w", err)
	}
	for initial := true; initial; {
		select {
		case <-ctx.Done():
			watch.Stop()
			return fmt.Errorf("delivery: load handlers: %w", ctx.Err())
		case e, ok := <-watch.Updates():
			if !ok {
				return errors.New("delivery: load handlers: watch ended")
			}
			if e == nil { // the initial values are all in
				initial = false
				continue
			}
			if err := s.applyHandler(ctx, e); err != nil {
				watch.Stop()
				return err
			}
		}
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watchHandlers(s.ctx, watch) }()
	fo, err := s.js.CreateOrUpdateConsumer(ctx, events.StreamIn, jetstream.ConsumerConfig{
		Durable:       events.ConsumerFanout,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       10 * time.Second,
		MaxAckPending: 4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("delivery: fan-out consumer: %w", err)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.fanout(s.ctx, fo) }()
	return nil
}

// Stop stops fetching and waits (bounded by ctx) for in-flight deliveries
// to end; their messages are redelivered after a restart if not acked.
func (s *Service) Stop(ctx context.Context) {
	if err := s.Close(ctx); err != nil {
		s.log.Warn("delivery: stopped with deliveries still in flight", "err", err)
	}
}

// Close is Stop that reports ctx's error when in-flight work (goroutines
// of the fan-out, the workers and their attempts) had not ended in time.
func (s *Service) Close(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.records.flush(context.WithoutCancel(ctx))
	return err
}

// retryDelay is the wait before attempt n+1 after attempt n failed.
func (s *Service) retryDelay(n int, retryAfter time.Duration) time.Duration {
	d := s.cfg.Schedule[min(n-1, len(s.cfg.Schedule)-1)]
	if retryAfter > 0 {
		// Honour the handler's Retry-After, within the schedule's span.
		return min(retryAfter, s.cfg.Schedule[len(s.cfg.Schedule)-1]*2+time.Minute)
	}
	if s.cfg.Jitter > 0 && d > 0 {
		spread := float64(d) * s.cfg.Jitter
		d += time.Duration((rand.Float64()*2 - 1) * spread)
	}
	return max(d, 0)
}
