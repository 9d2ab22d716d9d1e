package devices

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/testkit"
)

// subs is a relay instance's WebSocket subscribers as a test sets them.
type subs struct {
	mu sync.Mutex
	s  []push.Subscriber
}

func (s *subs) set(v ...push.Subscriber) { s.mu.Lock(); s.s = v; s.mu.Unlock() }
func (s *subs) get() []push.Subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]push.Subscriber(nil), s.s...)
}

func tracker(t *testing.T, url, instance string, src *subs, clock *testkit.Clock) *Tracker {
	t.Helper()
	tr, err := Open(context.Background(), Config{JS: testkit.JetStream(t, url), Instance: instance, Source: src.get})
	if err != nil {
		t.Fatal(err)
	}
	tr.now = clock.Now
	return tr
}

func scan(t *testing.T, tr *Tracker) {
	t.Helper()
	if err := tr.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func list(t *testing.T, tr *Tracker) []Record {
	t.Helper()
	recs, err := tr.List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

const board = "arduino-WebSocket-Client"

// Two relay instances share the bucket: a board that moves from one to
// the other is shown connected to the second, and the first one's
// "left" does not overwrite that; browsers are not devices.
func TestBoardMovesBetweenInstances(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a, b subs
	ta := tracker(t, url, "relay-a", &a, clock)
	tb := tracker(t, url, "relay-b", &b, clock)

	since := clock.Now()
	dev := push.Subscriber{Remote: "10.0.0.7", UserAgent: board, Channels: []string{"p0123456789abcdef0123456789abcdef"}, Since: since}
	browser := push.Subscriber{Remote: "10.0.0.8", UserAgent: "Mozilla/5.0", Channels: []string{"pfedcba9876543210fedcba9876543210"}, Since: since}
	small := push.Subscriber{Remote: "10.0.0.9", UserAgent: "curl/8", FrameBytes: 2048, Channels: []string{"u00112233445566778899aabbccddeeff"}, Since: since}
	a.set(dev, browser, small)
	scan(t, ta)
	recs := list(t, ta)
	if len(recs) != 2 {
		t.Fatalf("devices %+v: want the board and the small-frames client, not the browser", recs)
	}
	for _, r := range recs {
		if !r.Connected || r.Instance != "relay-a" || r.Remote == "10.0.0.8" {
			t.Errorf("record %+v", r)
		}
	}

	// The board reconnects to relay-b (after relay-a lost it) before
	// relay-a notices it is gone.
	clock.Advance(time.Second)
	dev.Since, dev.LastMid = clock.Now(), "17000000000000000000000042"
	b.set(dev)
	scan(t, tb)
	a.set(small)
	scan(t, ta)
	for _, r := range list(t, tb) {
		if r.Remote == "10.0.0.7" && (!r.Connected || r.Instance != "relay-b" || r.LastMid != dev.LastMid) {
			t.Errorf("the moved board: %+v; want connected to relay-b with its mid", r)
		}
	}

	// relay-b loses it: not connected, last seen and mid kept.
	clock.Advance(time.Second)
	b.set()
	left := clock.Now()
	scan(t, tb)
	for _, r := range list(t, ta) {
		if r.Remote == "10.0.0.7" && (r.Connected || r.LastMid != dev.LastMid || r.SeenMs < left.UnixMilli()) {
			t.Errorf("the board after leaving: %+v", r)
		}
	}
}

// A record whose instance stopped confirming it (the instance died) stops
// counting as connected after three beats; a live instance's heartbeat
// keeps its boards connected.
func TestDeadInstanceBoardsTurnDisconnected(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a, b subs
	ta := tracker(t, url, "relay-a", &a, clock)
	tb := tracker(t, url, "relay-b", &b, clock)
	a.set(push.Subscriber{Remote: "10.0.0.7", UserAgent: board, Channels: []string{"p0123456789abcdef0123456789abcdef"}, Since: clock.Now()})
	b.set(push.Subscriber{Remote: "10.0.0.9", UserAgent: board, Channels: []string{"p0123456789abcdef0123456789abcdef"}, Since: clock.Now()})
	scan(t, ta)
	scan(t, tb)
	// relay-a dies: it scans no more. relay-b keeps scanning across four
	// beats.
	for range 4 {
		clock.Advance(time.Minute)
		scan(t, tb)
	}
	got := map[string]bool{}
	for _, r := range list(t, tb) {
		got[r.Remote] = r.Connected
	}
	if got["10.0.0.7"] || !got["10.0.0.9"] || len(got) != 2 {
		t.Errorf("connected by address %v: want relay-a's board gone, relay-b's connected", got)
	}
}

// Untrusted text from the handshake stays bounded: a board with a huge
// channel list or name still gets a record within the bucket's value size.
func TestHugeSubscriberStillRecorded(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a subs
	ta := tracker(t, url, "relay-a", &a, clock)
	var chans []string
	for range 100 {
		chans = append(chans, "p"+strings.Repeat("a", 32))
	}
	a.set(push.Subscriber{Remote: "10.0.0.7", UserAgent: board + strings.Repeat("x", 200), Channels: chans, Since: clock.Now()})
	scan(t, ta)
	recs := list(t, ta)
	if len(recs) != 1 || len(recs[0].Channels) == 0 || len(recs[0].Channels) > 8 {
		t.Fatalf("records %+v", recs)
	}
}

func byKey(recs []Record) map[string]Record {
	m := map[string]Record{}
	for _, r := range recs {
		m[r.Key] = r
	}
	return m
}

// A board that names itself keeps one record across a new DHCP address and
// a channel renewal; two named boards behind one address (NAT) with the
// same channel stay two.
func TestNamedBoardIsOneRecord(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a subs
	ta := tracker(t, url, "relay-a", &a, clock)
	chA, chB := "p0123456789abcdef0123456789abcdef", "pfedcba9876543210fedcba9876543210"
	one := push.Subscriber{Remote: "10.0.0.7", UserAgent: board, Device: "isobox-relay-5ccf7f0a1b2c", Channels: []string{chA}, Since: clock.Now()}
	two := push.Subscriber{Remote: "10.0.0.7", UserAgent: board, Device: "isobox-relay-5ccf7f0a1b2d", Channels: []string{chA}, Since: clock.Now()}
	a.set(one, two)
	scan(t, ta)
	recs := list(t, ta)
	if len(recs) != 2 || recs[0].Device == recs[1].Device || recs[0].Key[0] != 'n' {
		t.Fatalf("two named boards behind one address: %+v", recs)
	}
	firstKey := key(one)

	// The first board gets a new address and, after a renewal, a new channel.
	clock.Advance(time.Minute)
	one.Remote, one.Channels, one.Since = "10.0.0.23", []string{chB}, clock.Now()
	a.set(one, two)
	scan(t, ta)
	got := byKey(list(t, ta))
	r, ok := got[firstKey]
	if len(got) != 2 || !ok || r.Remote != "10.0.0.23" || r.Channels[0] != chB || r.Device != one.Device || !r.Connected {
		t.Fatalf("after a new address and channel: %+v, want one record for %s at 10.0.0.23", got, one.Device)
	}

	// A reconnect seen before the old connection ended: one record, the
	// newer connection's address.
	clock.Advance(time.Second)
	again := one
	again.Remote, again.Since = "10.0.0.24", clock.Now()
	a.set(again, one, two)
	scan(t, ta)
	if r := byKey(list(t, ta))[firstKey]; r.Remote != "10.0.0.24" || r.SinceMs != again.Since.UnixMilli() {
		t.Errorf("two connections of one board: %+v, want the newer one", r)
	}
}

// A board that upgrades to firmware that sends its name: its unnamed record
// (same address and channels) is removed once no board holds it. While an
// older board behind the same address still holds it (on another
// instance), it stays.
func TestUpgradedBoardReplacesUnnamedRecord(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a, b subs
	ta := tracker(t, url, "relay-a", &a, clock)
	tb := tracker(t, url, "relay-b", &b, clock)
	ch := []string{"p0123456789abcdef0123456789abcdef"}
	old := push.Subscriber{Remote: "10.0.0.7", UserAgent: board, FrameBytes: 2048, Channels: ch, Since: clock.Now()}
	a.set(old)
	scan(t, ta)
	if recs := list(t, ta); len(recs) != 1 || recs[0].Device != "" || recs[0].Key != legacyKey(old.Remote, ch) {
		t.Fatalf("old firmware: %+v", recs)
	}

	// Upgraded and rebooted: the same board, now named, on the same instance.
	clock.Advance(10 * time.Second)
	named := old
	named.Device, named.Since = "isobox-relay-5ccf7f0a1b2c", clock.Now()
	a.set(named)
	scan(t, ta)
	recs := list(t, ta)
	if len(recs) != 1 || recs[0].Device != named.Device || !recs[0].Connected {
		t.Fatalf("after the upgrade: %+v, want only the named record", recs)
	}

	// Another old board behind the same address, held by relay-b: a named
	// board appearing on relay-a leaves its record alone until it is gone.
	other := old
	other.Since = clock.Now()
	b.set(other)
	scan(t, tb)
	a.set()
	scan(t, ta) // the named board leaves relay-a ...
	clock.Advance(time.Second)
	named.Since = clock.Now()
	a.set(named) // ... and comes back
	scan(t, ta)
	if got := byKey(list(t, ta)); len(got) != 2 || !got[legacyKey(old.Remote, ch)].Connected {
		t.Fatalf("an old board still connected: %+v, want its record kept", got)
	}
	clock.Advance(time.Second)
	b.set()
	scan(t, tb)
	scan(t, ta)
	if recs := list(t, ta); len(recs) != 1 || recs[0].Device != named.Device {
		t.Fatalf("the old board gone: %+v, want only the named record", recs)
	}
}

// The finding (session 6 review): device= is a label any holder of a
// channel signature chooses, and each new name became a 30-day record, so
// one client reconnecting with new names filled the bucket (38k records
// in a run) and made every list slow. Now one address has at most
// MaxNamesPerAddress names recorded per NamesWindow; the rest share the
// record of their address and channels. Another address is not affected.
func TestOneAddressCannotFillTheBucketWithNames(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a subs
	ta := tracker(t, url, "relay-a", &a, clock)
	ch := "p0123456789abcdef0123456789abcdef"
	flood := func(round int) []push.Subscriber {
		var v []push.Subscriber
		for i := range 3 * MaxNamesPerAddress {
			v = append(v, push.Subscriber{Remote: "10.0.0.66", UserAgent: board, Device: fmt.Sprintf("fake-%d-%d", round, i),
				Channels: []string{ch}, Since: clock.Now()})
		}
		return v
	}
	honest := push.Subscriber{Remote: "10.0.0.7", UserAgent: board, Device: "isobox-relay-5ccf7f0a1b2c", Channels: []string{ch}, Since: clock.Now()}
	count := func() (named, unnamed int, seenHonest bool) {
		for _, r := range list(t, ta) {
			switch {
			case r.Device == honest.Device:
				seenHonest = true
			case r.Device != "":
				named++
			default:
				unnamed++
			}
		}
		return
	}
	for round := range 3 { // the flood reconnects with new names
		clock.Advance(time.Minute)
		a.set(append(flood(round), honest)...)
		scan(t, ta)
		if named, unnamed, ok := count(); named != MaxNamesPerAddress || unnamed != 1 || !ok {
			t.Fatalf("round %d: %d named and %d unnamed records from the flooding address (honest board listed: %v), want %d and 1",
				round, named, unnamed, ok, MaxNamesPerAddress)
		}
	}
	// A day later the address may name boards again (the old records
	// stay until they expire).
	clock.Advance(NamesWindow + time.Minute)
	a.set(append(flood(9), honest)...)
	scan(t, ta)
	if named, _, _ := count(); named != 2*MaxNamesPerAddress {
		t.Fatalf("after the window: %d named records, want %d", named, 2*MaxNamesPerAddress)
	}
}

// The finding (session 6 review): anyone with a channel signature can
// connect under another board's name (MACs are visible on the LAN), and
// the record then showed the claimant's address with nothing to tell. Now
// a record says which other address was connected under the same name at
// the same time, on this instance or another, and stops saying so within a
// beat once only one is left.
func TestAClaimedNameIsFlagged(t *testing.T) {
	url := testkit.NATS(t).ClientURL()
	clock := &testkit.Clock{}
	var a, b subs
	ta := tracker(t, url, "relay-a", &a, clock)
	tb := tracker(t, url, "relay-b", &b, clock)
	ch := "p0123456789abcdef0123456789abcdef"
	const name = "isobox-relay-5ccf7f0a1b2c"
	victim := push.Subscriber{Remote: "10.0.0.7", UserAgent: board, Device: name, Channels: []string{ch}, Since: clock.Now()}
	a.set(victim)
	scan(t, ta)
	rec := func() Record {
		t.Helper()
		recs := list(t, ta)
		if len(recs) != 1 {
			t.Fatalf("records %+v, want one", recs)
		}
		return recs[0]
	}
	if r := rec(); r.AlsoFrom != "" {
		t.Fatalf("one board: also from %q", r.AlsoFrom)
	}

	clock.Advance(time.Second)
	claimant := push.Subscriber{Remote: "10.0.0.99", Device: name, FrameBytes: 2048, Channels: []string{ch}, Since: clock.Now()}
	b.set(claimant)
	scan(t, tb)
	if r := rec(); r.Remote != "10.0.0.99" || r.AlsoFrom != "10.0.0.7" {
		t.Fatalf("claimed on another instance: %+v, want 10.0.0.99 also from 10.0.0.7", r)
	}
	clock.Advance(time.Minute) // the victim's instance writes again
	scan(t, ta)
	if r := rec(); r.Remote != "10.0.0.7" || r.AlsoFrom != "10.0.0.99" {
		t.Fatalf("the victim's next write: %+v, want 10.0.0.7 also from 10.0.0.99", r)
	}

	b.set() // the claimant leaves
	scan(t, tb)
	clock.Advance(time.Minute)
	scan(t, ta)
	if r := rec(); r.Remote != "10.0.0.7" || r.AlsoFrom != "" || !r.Connected {
		t.Fatalf("after the claimant left: %+v, want 10.0.0.7 alone", r)
	}

	// Two connections under one name on the same instance.
	clock.Advance(time.Second)
	twin := victim
	twin.Remote, twin.Since = "10.0.0.8", clock.Now()
	a.set(victim, twin)
	scan(t, ta)
	if r := rec(); r.Remote != "10.0.0.8" || r.AlsoFrom != "10.0.0.7" {
		t.Fatalf("two connections on one instance: %+v, want 10.0.0.8 also from 10.0.0.7", r)
	}
}
