// Package peercheck tells, on /readyz, whether the other service accepts
// this one's service key. authprovider and eventrelay authenticate each
// other with a shared key (service.key); with different keys each side's
// calls are refused while both would otherwise look healthy and events
// pile up in the outbox. A Checker probes the peer with a call that has
// no effect, keeps the last answer for the readiness check, and logs one
// line when the answer changes (not one per probe).
package peercheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrKeyRejected is what a Probe wraps when the peer refused the key.
var ErrKeyRejected = errors.New("the peer refused the service key")

// Config configures a Checker.
type Config struct {
	// Peer names the other service and where it is, for messages:
	// "eventrelay at http://127.0.0.1:8090".
	Peer string
	// KeyFile is this service's key file, for the remedy in messages.
	KeyFile string
	// Probe makes one call to the peer with the key. It returns nil when
	// the peer accepted the key, an error wrapping ErrKeyRejected when it
	// refused it, and any other error when the peer could not be asked.
	Probe func(ctx context.Context) error
	// Interval is the time between probes once the peer answered; 0 = 30s.
	// While the peer cannot be asked, probes come sooner (1s doubling up to
	// Interval).
	Interval time.Duration
	Log      *slog.Logger
	// Registry gets isobox_peer_key_probes_total{result}; nil = none.
	Registry prometheus.Registerer
}

// Checker keeps the peer's last verdict on the key.
type Checker struct {
	cfg    Config
	probes *prometheus.CounterVec

	mu       sync.Mutex
	rejected error // non-nil while the peer refuses the key
}

// New returns a Checker; call Run to start probing.
func New(cfg Config) *Checker {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Checker{cfg: cfg, probes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "isobox_peer_key_probes_total",
		Help: "Probes of the other service with the service key, by result (accepted, rejected, unreachable).",
	}, []string{"result"})}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(c.probes)
	}
	return c
}

// Ready is the readiness check: an error while the peer refuses the key.
// An unreachable peer is not this service's fault and does not make it
// unready (the outbox and the retries absorb it).
func (c *Checker) Ready(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rejected
}

// Run probes until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	retry := time.Second
	for {
		delay := c.cfg.Interval
		if !c.ProbeOnce(ctx) {
			delay = min(retry, c.cfg.Interval)
			retry *= 2
		} else {
			retry = time.Second
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// ProbeOnce asks the peer once and records the verdict; it reports whether
// the peer answered.
func (c *Checker) ProbeOnce(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := c.cfg.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.probes.WithLabelValues("accepted").Inc()
		if c.rejected != nil {
			c.cfg.Log.Info("service key accepted again", "peer", c.cfg.Peer)
		}
		c.rejected = nil
		return true
	case errors.Is(err, ErrKeyRejected):
		c.probes.WithLabelValues("rejected").Inc()
		if c.rejected == nil {
			c.rejected = fmt.Errorf("%s refuses the service key in %s: give both services the same key file (--service-key-file) and restart the one whose key changed", c.cfg.Peer, c.cfg.KeyFile)
			c.cfg.Log.Error("wrong service key", "peer", c.cfg.Peer, "key_file", c.cfg.KeyFile,
				"err", c.rejected)
		}
		return true
	default:
		c.probes.WithLabelValues("unreachable").Inc()
		return false
	}
}
