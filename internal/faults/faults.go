// Package faults is the fault harness: it builds isobox's production shape
// from real processes on loopback (Topology: a 3-node NATS JetStream
// cluster, two authprovider instances on MariaDB, two eventrelay
// instances), runs a load of events through it, injects one failure per
// scenario (a SIGKILLed NATS node, a SIGKILLed relay mid-delivery, ...)
// and checks the invariants afterwards: every acknowledged event delivered
// at least once, duplicates counted by webhook-id, valid tokens keep
// validating, refresh chains never branch, every acknowledged push message
// received by every subscriber of its channel (or a gap notice for it), no
// process exiting by itself. cmd/faults runs it (`make faults`); a short subset runs in the
// test command.
package faults

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Scenario is one injected failure, run while the load flows.
type Scenario struct {
	Name string
	// Inject does the damage and repairs it (restarts what it killed),
	// returning once the topology is whole again.
	Inject func(ctx context.Context, t *Topology, o Options) error
}

// Options bound a run.
type Options struct {
	// Before and After are how long the load runs before the failure and
	// after the repair. Down is how long a killed process stays down.
	Before, After, Down time.Duration
	// Drain bounds the wait for the acknowledged events (and push
	// messages) to be delivered.
	Drain time.Duration
	// Late, when set, keeps watching for that much longer when events are
	// still missing at the end of the drain: those that arrive meanwhile
	// were late, not lost (Outcome.Late).
	Late time.Duration
	// Workers sending events concurrently.
	Workers int
	// Progress receives a line per scenario; nil discards.
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Before <= 0 {
		o.Before = 3 * time.Second
	}
	if o.After <= 0 {
		o.After = 3 * time.Second
	}
	if o.Down <= 0 {
		o.Down = 3 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 90 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Outcome is what one scenario cost.
type Outcome struct {
	Scenario   string
	Acked      int
	Lost       int           // acknowledged, not delivered by the end of the drain (and of Options.Late)
	Late       int           // delivered after the drain's end, within Options.Late
	LateBy     time.Duration // how long after the drain's end the last late one arrived
	Duplicated int           // deliveries beyond the first of an id
	Longest    time.Duration // longest time no ingest call succeeded
	Crashes    []string      // processes that exited by themselves
	Missing    []string      // a few of the lost ids, to look up in the relays' history
	Auth       AuthStats     // token checks and refresh grants meanwhile
	Push       PushStats     // push publishes and their subscribers meanwhile
	Err        error         // the scenario could not be run or repaired
}

// OK reports whether the invariants held.
func (o Outcome) OK() bool {
	return o.Err == nil && o.Lost == 0 && len(o.Crashes) == 0 && len(o.Auth.Refused) == 0 && len(o.Auth.Branches) == 0 && o.Push.Missing == 0
}

// Summary is the sum over scenarios.
type Summary struct {
	Scenarios, Acked, Lost, Duplicated int
	Longest                            time.Duration
	Auth                               AuthStats // summed; Window is the longest
	Push                               PushStats // summed
	Outcomes                           []Outcome
}

// Line is the summary line `make faults` ends with.
func (s Summary) Line() string {
	return fmt.Sprintf("faults: %d scenarios, %d acked, %d lost, %d duplicated, %d ms longest unavailability",
		s.Scenarios, s.Acked, s.Lost, s.Duplicated, s.Longest.Milliseconds())
}

// AuthLine is the line on token checks and refresh chains.
func (s Summary) AuthLine() string {
	return fmt.Sprintf("faults: tokens: %d checks, %d refused, %d ms longest refusal window; refresh: %d grants, %d branched, %d answers lost",
		s.Auth.Checks, len(s.Auth.Refused), s.Auth.Window.Milliseconds(), s.Auth.Refreshes, len(s.Auth.Branches), s.Auth.LostChains)
}

// PushLine is the line on push publishes and their subscribers.
func (s Summary) PushLine() string {
	return fmt.Sprintf("faults: push: %d published, %d received, %d gap notices, %d missing, %d duplicated",
		s.Push.Published, s.Push.Received, s.Push.Gaps, s.Push.Missing, s.Push.Duplicated)
}

// OK reports whether every scenario kept the invariants.
func (s Summary) OK() bool {
	for _, o := range s.Outcomes {
		if !o.OK() {
			return false
		}
	}
	return true
}

// Run runs the scenarios one after another on t.
func Run(ctx context.Context, t *Topology, scenarios []Scenario, o Options) (Summary, error) {
	o.defaults()
	h, err := startHandler()
	if err != nil {
		return Summary{}, err
	}
	defer h.close()
	auth, err := newAuthLoad(ctx, t)
	if err != nil {
		return Summary{}, err
	}
	push, err := newPushLoad(ctx, t)
	if err != nil {
		return Summary{}, err
	}
	defer push.close()
	var sum Summary
	seen := map[string]bool{} // every acknowledged id so far
	for _, sc := range scenarios {
		out := runOne(ctx, t, h, auth, push, sc, o, seen)
		fmt.Fprintf(o.Progress, "faults: %-28s acked %6d  lost %d  duplicated %d  longest unavailability %d ms; tokens %d checks, window %d ms; %d refreshes; push %d published, %d received, %d gaps, %d missing, %d duplicated%s\n",
			sc.Name, out.Acked, out.Lost, out.Duplicated, out.Longest.Milliseconds(), out.Auth.Checks, out.Auth.Window.Milliseconds(), out.Auth.Refreshes,
			out.Push.Published, out.Push.Received, out.Push.Gaps, out.Push.Missing, out.Push.Duplicated, problems(out))
		sum.Auth.Checks += out.Auth.Checks
		sum.Auth.Refreshes += out.Auth.Refreshes
		sum.Auth.Refused = append(sum.Auth.Refused, out.Auth.Refused...)
		sum.Auth.Branches = append(sum.Auth.Branches, out.Auth.Branches...)
		sum.Auth.LostChains += out.Auth.LostChains
		sum.Auth.Window = max(sum.Auth.Window, out.Auth.Window)
		sum.Push.Published += out.Push.Published
		sum.Push.Received += out.Push.Received
		sum.Push.Gaps += out.Push.Gaps
		sum.Push.Missing += out.Push.Missing
		sum.Push.Duplicated += out.Push.Duplicated
		sum.Outcomes = append(sum.Outcomes, out)
		sum.Scenarios++
		sum.Acked += out.Acked
		sum.Lost += out.Lost
		sum.Duplicated += out.Duplicated
		sum.Longest = max(sum.Longest, out.Longest)
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
	}
	return sum, nil
}

func problems(o Outcome) string {
	s := ""
	if o.Err != nil {
		s += "  ERROR " + o.Err.Error()
	}
	for _, c := range o.Crashes {
		s += "  CRASH " + c
	}
	for _, r := range o.Auth.Refused {
		s += "  TOKEN REFUSED " + r
	}
	for _, b := range o.Auth.Branches {
		s += "  CHAIN BRANCHED " + b
	}
	if len(o.Missing) > 0 {
		s += fmt.Sprintf("  MISSING e.g. %v", o.Missing)
	}
	if len(o.Push.MissingIDs) > 0 {
		s += fmt.Sprintf("  PUSH MISSING e.g. %v", o.Push.MissingIDs)
	}
	return s
}

func runOne(ctx context.Context, t *Topology, h *handler, auth *authLoad, push *pushLoad, sc Scenario, o Options, seen map[string]bool) Outcome {
	out := Outcome{Scenario: sc.Name}
	l := newLoad(t, h.URL)
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { l.run(lctx, o.Workers); close(loadDone) }()
	authDone := make(chan struct{})
	go func() { auth.run(lctx); close(authDone) }()
	pushDone := make(chan struct{})
	go func() { push.publish(lctx, 2); close(pushDone) }()
	pause(ctx, o.Before)
	out.Err = sc.Inject(ctx, t, o)
	pause(ctx, o.After)
	stopLoad()
	<-loadDone
	<-authDone
	<-pushDone
	out.Auth = auth.take()
	published := push.take()
	ids, longest := l.take()
	out.Acked, out.Longest = len(ids), longest
	// A scenario's items must be new, or an earlier delivery of the same
	// id would hide a loss.
	for _, id := range ids {
		if seen[id] && out.Err == nil {
			out.Err = fmt.Errorf("harness: id %s acknowledged in an earlier scenario too", id)
		}
		seen[id] = true
	}
	// Every acknowledged item and push message must arrive; wait
	// (bounded) for the last.
	deadline := time.Now().Add(o.Drain)
	for {
		missing := 0
		for _, id := range ids {
			if h.count(id) == 0 {
				missing++
			}
		}
		out.Lost = missing
		out.Push = push.check(published)
		if missing == 0 && out.Push.Missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		pause(ctx, 200*time.Millisecond) // polling black-box processes, bounded by Drain
	}
	if out.Lost > 0 {
		fmt.Fprintf(o.Progress, "faults: %s: %d acknowledged events not delivered within the %v drain; consumers:\n%s",
			sc.Name, out.Lost, o.Drain, t.consumerReport(ctx))
		if o.Late > 0 {
			out.Late, out.LateBy = waitLate(ctx, h, ids, o.Late)
			out.Lost -= out.Late
			fmt.Fprintf(o.Progress, "faults: %s: %d of them delivered later, the last %v after the drain; %d still missing after %v more\n",
				sc.Name, out.Late, out.LateBy.Round(100*time.Millisecond), out.Lost, o.Late)
		}
	}
	for _, id := range ids {
		switch n := h.count(id); {
		case n > 1:
			out.Duplicated += n - 1
		case n == 0 && len(out.Missing) < 5:
			out.Missing = append(out.Missing, id)
		}
	}
	out.Push.Gaps = push.takeGaps()
	out.Crashes = t.Crashes()
	return out
}

// waitLate waits up to within for the ids not delivered yet and returns
// how many arrived and when the last did.
func waitLate(ctx context.Context, h *handler, ids []string, within time.Duration) (int, time.Duration) {
	var missing []string
	for _, id := range ids {
		if h.count(id) == 0 {
			missing = append(missing, id)
		}
	}
	start := time.Now()
	arrived, last := 0, time.Duration(0)
	for len(missing) > 0 && time.Since(start) < within && ctx.Err() == nil {
		pause(ctx, 200*time.Millisecond) // polling black-box processes, bounded by within
		rest := missing[:0]
		for _, id := range missing {
			if h.count(id) == 0 {
				rest = append(rest, id)
			} else {
				arrived++
				last = time.Since(start)
			}
		}
		missing = rest
	}
	return arrived, last
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
