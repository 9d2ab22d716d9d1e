package auditlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

func openLog(t *testing.T) (*Log, *testkit.Clock) {
	t.Helper()
	l, err := Open(context.Background(), testkit.JetStream(t, testkit.NATS(t).ClientURL()), 1)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testkit.Clock{}
	l.now = clock.Now
	return l, clock
}

// Entries come back newest first, filtered by time and actor and bounded;
// Each goes oldest first from a position or a time; fields are bounded.
func TestListFilterAndEach(t *testing.T) {
	l, clock := openLog(t)
	ctx := context.Background()
	var marks []time.Time
	for i, actor := range []string{"alice", "bob", "alice", "bob", "alice"} {
		marks = append(marks, clock.Now())
		if err := l.Record(ctx, Entry{Source: SourceCLI, Actor: actor, Action: "handler.pause", Target: strings.Repeat("k", 300+i)}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
	}
	all, err := l.List(ctx, Filter{})
	if err != nil || len(all) != 5 || all[0].Seq != 5 || all[4].Seq != 1 || len(all[0].Target) != 255 || all[0].ID <= all[1].ID {
		t.Fatalf("List = %d entries (%v), first %+v", len(all), err, all[0])
	}
	if es, _ := l.List(ctx, Filter{Actor: "alice", Limit: 2}); len(es) != 2 || es[0].Seq != 5 || es[1].Seq != 3 {
		t.Errorf("alice, limit 2: %+v", es)
	}
	if es, _ := l.List(ctx, Filter{Since: marks[3]}); len(es) != 2 {
		t.Errorf("since the 4th: %d entries", len(es))
	}
	if es, _ := l.List(ctx, Filter{Until: marks[2]}); len(es) != 2 || es[0].Seq != 2 {
		t.Errorf("until the 3rd: %+v", es)
	}
	var seqs []uint64
	collect := func(e Entry) error { seqs = append(seqs, e.Seq); return nil }
	if err := l.Each(ctx, Filter{}, 2, collect); err != nil || len(seqs) != 3 || seqs[0] != 3 {
		t.Errorf("Each after 2: %v %v", seqs, err)
	}
	seqs = nil
	if err := l.Each(ctx, Filter{Since: marks[4]}, 0, collect); err != nil || len(seqs) != 1 || seqs[0] != 5 {
		t.Errorf("Each since the 5th: %v %v", seqs, err)
	}
	seqs = nil
	if err := l.Each(ctx, Filter{}, 5, collect); err != nil || len(seqs) != 0 {
		t.Errorf("Each after the last: %v %v", seqs, err)
	}
}
