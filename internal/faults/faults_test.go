package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// The short subset of `make faults`, against the real topology: a NATS
// node and a relay are SIGKILLed and a NATS node is partitioned under
// load, and nothing acknowledged is lost (events, and push messages to
// their WebSocket and long-poll subscribers), nothing crashes.
func TestShortFaults(t *testing.T) {
	dsn := testkit.MariaDB(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bins, err := Build(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := StartTopology(ctx, bins, dir, dsn, Shape{})
	if topo != nil {
		defer topo.Close()
		defer func() {
			if t.Failed() {
				for _, p := range topo.all() {
					if b, err := os.ReadFile(p.log); err == nil {
						t.Logf("%s log (tail):\n%s", p.name, tail(string(b), 3000))
					}
				}
			}
		}()
	}
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	sum, err := Run(ctx, topo, Short(), Options{Before: 2 * time.Second, After: 2 * time.Second, Down: 2 * time.Second, Progress: &progress})
	t.Log("\n" + progress.String() + sum.AuthLine() + "\n" + sum.PushLine() + "\n" + sum.Line())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scenarios != len(Short()) || sum.Acked == 0 {
		t.Fatalf("%s: want %d scenarios with events acknowledged", sum.Line(), len(Short()))
	}
	for _, o := range sum.Outcomes {
		if !o.OK() {
			t.Errorf("%s: lost %d, push missing %d %v, crashes %v, err %v", o.Scenario, o.Lost, o.Push.Missing, o.Push.MissingIDs, o.Crashes, o.Err)
		}
		if o.Auth.Checks == 0 || o.Auth.Refreshes == 0 {
			t.Errorf("%s: no token check or refresh grant answered during the scenario", o.Scenario)
		}
		if o.Acked == 0 {
			t.Errorf("%s: no event acknowledged during the scenario", o.Scenario)
		}
		if o.Push.Published == 0 || o.Push.Received == 0 {
			t.Errorf("%s: no push message published and received during the scenario", o.Scenario)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
