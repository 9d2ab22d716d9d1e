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

// NATSPartition cuts NATS node i off from the other two (its routes are
// dropped; its clients stay connected to it) for o.Down, heals, and waits
// until the node is current again.
func NATSPartition(i int) Scenario {
	return Scenario{Name: fmt.Sprintf("partition nats-%d", i+1), Inject: func(ctx context.Context, t *Topology, o Options) error {
		t.partition(i, true)
		// The cut node must notice it lost the cluster (its /healthz
		// fails), else the partition did not take.
		err := t.NATS[i].waitUnready(ctx, 30*time.Second)
		pause(ctx, o.Down)
		t.partition(i, false)
		if err != nil {
			return err
		}
		return t.NATS[i].waitReady(ctx, 90*time.Second)
	}}
}

// MariaDBRestart restarts the database server under load with restart
// (which returns once it answers again), then waits until both
// authprovider instances are ready.
func MariaDBRestart(restart func(context.Context) error) Scenario {
	return Scenario{Name: "restart mariadb", Inject: func(ctx context.Context, t *Topology, o Options) error {
		if err := restart(ctx); err != nil {
			return err
		}
		for _, p := range t.Auth {
			if err := p.waitReady(ctx, 90*time.Second); err != nil {
				return err
			}
		}
		return nil
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
		NATSPartition(2),
		RelayKill(0), RelayKill(1),
		AuthKill(0), AuthKill(1),
		RollingUpgrade(),
	}
}

// Short is the subset the test command runs.
func Short() []Scenario {
	return []Scenario{NATSNodeKill(0), RelayKill(0), NATSPartition(1)}
}
