package faults

import (
	"context"
	"fmt"
	"time"
)

// killRestart SIGKILLs p, keeps it down for o.Down, starts it again and
// waits until it is ready.
func killRestart(ctx context.Context, p *proc, o Options, ready time.Duration) error {
	p.kill()
	pause(ctx, o.Down)
	if err := p.start(); err != nil {
		return err
	}
	return p.waitReady(ctx, ready)
}

// NATSNodeKill SIGKILLs NATS node i (0-based) and restarts it.
func NATSNodeKill(i int) Scenario {
	return Scenario{Name: fmt.Sprintf("sigkill nats-%d", i+1), Inject: func(ctx context.Context, t *Topology, o Options) error {
		return killRestart(ctx, t.NATS[i], o, 90*time.Second)
	}}
}

// RelayKill SIGKILLs eventrelay i mid-delivery (the load keeps it
// delivering) and restarts it.
func RelayKill(i int) Scenario {
	return Scenario{Name: fmt.Sprintf("sigkill eventrelay-%d", i+1), Inject: func(ctx context.Context, t *Topology, o Options) error {
		return killRestart(ctx, t.Relays[i], o, 90*time.Second)
	}}
}

// AuthKill SIGKILLs authprovider i and restarts it (relay i mints its
// delivery tokens there, and verifies portal credentials).
func AuthKill(i int) Scenario {
	return Scenario{Name: fmt.Sprintf("sigkill authprovider-%d", i+1), Inject: func(ctx context.Context, t *Topology, o Options) error {
		return killRestart(ctx, t.Auth[i], o, 60*time.Second)
	}}
}

// RollingUpgrade stops (SIGTERM) and starts every service instance in
// turn, then every NATS node, waiting for each to be ready before the
// next: the procedure of docs/reliability.md, with traffic flowing.
func RollingUpgrade() Scenario {
	return Scenario{Name: "rolling restart", Inject: func(ctx context.Context, t *Topology, o Options) error {
		for _, p := range append(append(append([]*proc(nil), t.Relays...), t.Auth...), t.NATS...) {
			p.stop(45 * time.Second)
			if err := p.start(); err != nil {
				return err
			}
			if err := p.waitReady(ctx, 90*time.Second); err != nil {
				return err
			}
		}
		return nil
	}}
}

// All is the full set `make faults` runs.
func All() []Scenario {
	return []Scenario{
		NATSNodeKill(0), NATSNodeKill(1), NATSNodeKill(2),
		RelayKill(0), RelayKill(1),
		AuthKill(0), AuthKill(1),
		RollingUpgrade(),
	}
}

// Short is the subset the test command runs.
func Short() []Scenario {
	return []Scenario{NATSNodeKill(0), RelayKill(0)}
}
