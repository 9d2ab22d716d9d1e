package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
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

// DiskFull fills the JetStream store of the given NATS nodes (0-based;
// the topology needs Shape.StoreSize) with a filler file while the load
// flows. With every node full, ingest must refuse (the refusal is printed
// to o.Progress) and nothing acknowledged may be lost; then the filler is
// removed and the full nodes are restarted (JetStream switches itself off
// on a full disk and comes back with the process: docs/reliability.md).
func DiskFull(nodes ...int) Scenario {
	name := "disk full"
	if len(nodes) < 3 {
		for _, i := range nodes {
			name += fmt.Sprintf(" nats-%d", i+1)
		}
	} else {
		name += " all nodes"
	}
	return Scenario{Name: name, Inject: func(ctx context.Context, t *Topology, o Options) error {
		if len(t.mounts) == 0 {
			return fmt.Errorf("faults: %s needs the stores on their own tmpfs (Shape.StoreSize)", name)
		}
		var fillers []string
		defer func() {
			for _, f := range fillers {
				os.Remove(f)
			}
		}()
		for _, i := range nodes {
			f := filepath.Join(t.Stores[i], "faults-filler")
			fillers = append(fillers, f)
			if err := fill(f); err != nil {
				return err
			}
		}
		var err error
		if len(nodes) == len(t.NATS) {
			// Ingest must say no, clearly, while the disks are full.
			var answer string
			answer, err = waitRefusal(ctx, t, 60*time.Second)
			fmt.Fprintf(o.Progress, "faults: %s: ingest answered %s\n", name, answer)
		}
		pause(ctx, o.Down)
		for _, f := range fillers {
			if rerr := os.Remove(f); rerr != nil && err == nil {
				err = rerr
			}
		}
		fillers = nil
		for _, i := range nodes {
			t.NATS[i].stop(30 * time.Second)
		}
		for _, i := range nodes {
			if serr := t.NATS[i].start(); serr != nil {
				return serr
			}
		}
		for _, i := range nodes {
			if werr := t.NATS[i].waitReady(ctx, 120*time.Second); werr != nil {
				return werr
			}
		}
		for _, p := range t.Relays {
			if werr := p.waitReady(ctx, 90*time.Second); werr != nil {
				return werr
			}
		}
		return err
	}}
}

// fill writes zeros to path until the file system is full.
func fill(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("faults: fill %s: %w", path, err)
		}
	}
}

// waitRefusal posts a probe event to each relay until one refuses it,
// and returns the refusal (status and body).
func waitRefusal(ctx context.Context, t *Topology, within time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	l := newLoad(t, "http://127.0.0.1:1/probe")
	for i := 0; ; i++ {
		body, _ := json.Marshal([]map[string]any{l.item()})
		url := t.RelayURLs[i%len(t.RelayURLs)] + "/v1/events"
		_, err := l.post(ctx, url, body)
		var refused *refusal
		if errors.As(err, &refused) {
			return refused.Error(), nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("faults: ingest kept accepting events with every store full")
		}
		pause(ctx, 200*time.Millisecond) // polling black-box processes, bounded by within
	}
}
