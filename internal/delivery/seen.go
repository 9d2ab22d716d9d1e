package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// seenSet remembers the delivery ids accepted within the dedup window and
// the ingest message that first carried each, so that an item handed off
// again in a later call is queued once. It is used by the fan-out only
// (one goroutine) and rebuilt from StreamIn at start.
type seenSet struct {
	window time.Duration
	first  map[string]uint64 // id -> StreamIn sequence of its first occurrence
	queue  []seenEntry       // in acceptance order, for expiry
}

type seenEntry struct {
	id  string
	seq uint64
	ms  int64
}

func newSeenSet(window time.Duration) *seenSet {
	return &seenSet{window: window, first: map[string]uint64{}}
}

// dup reports whether id was first accepted in an earlier ingest message
// than seq. The same message seen again (redelivered) is not a duplicate.
func (s *seenSet) dup(id string, seq uint64) bool {
	f, ok := s.first[id]
	return ok && f < seq
}

func (s *seenSet) add(id string, seq uint64, ms int64) {
	if f, ok := s.first[id]; ok && f <= seq {
		return
	}
	s.first[id] = seq
	s.queue = append(s.queue, seenEntry{id, seq, ms})
}

// maxSeen bounds the ids remembered (~100 bytes each): past it the oldest
// are forgotten before the window ends, so the window is effectively
// shorter under a sustained flood rather than memory unbounded.
const maxSeen = 2_000_000

func (s *seenSet) prune(now time.Time) {
	cut := now.Add(-s.window).UnixMilli()
	i := 0
	for i < len(s.queue) && (s.queue[i].ms < cut || len(s.queue)-i > maxSeen) {
		if s.first[s.queue[i].id] == s.queue[i].seq {
			delete(s.first, s.queue[i].id)
		}
		i++
	}
	if i > 0 {
		s.queue = append([]seenEntry(nil), s.queue[i:]...)
	}
}

// load reads the ingest messages of the last window from StreamIn.
func (s *seenSet) load(ctx context.Context, js jetstream.JetStream, now time.Time) error {
	st, err := js.Stream(ctx, events.StreamIn)
	if err != nil {
		return fmt.Errorf("delivery: dedup rebuild: %w", err)
	}
	start := now.Add(-s.window)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	if err != nil {
		return fmt.Errorf("delivery: dedup rebuild: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("delivery: dedup rebuild: %w", err)
	}
	left := int(info.NumPending)
	for left > 0 {
		batch, err := cons.Fetch(min(left, 256), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("delivery: dedup rebuild: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			left--
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			batches, err := events.DecodeCommitLite(m.Data())
			if err != nil {
				continue
			}
			for _, b := range batches {
				for _, it := range b.Items {
					s.add(it.ID, meta.Sequence.Stream, b.ReceivedMs)
				}
			}
		}
		if n == 0 {
			break
		}
	}
	return nil
}
