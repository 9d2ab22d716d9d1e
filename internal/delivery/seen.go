package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// seenSet remembers the delivery ids accepted within the dedup window and
// the ingest message that first carried each, so that an item handed off
// again in a later call is queued once.
//
// Several relay instances share the fan-out consumer, so the messages of
// StreamIn are split between them. For all of them to agree which message
// first carried an id, every instance reads ALL of StreamIn (an ordered
// consumer, follow) and the fan-out of message seq first waits until this
// instance has read StreamIn up to seq (waitUpto): the decision then
// depends only on the stream's content, not on which instance fetched what.
type seenSet struct {
	window time.Duration

	mu    sync.Mutex
	first map[string]uint64 // id -> StreamIn sequence of its first occurrence
	queue []seenEntry       // in acceptance order, for expiry
	upto  uint64            // StreamIn read up to this sequence
	read  int               // messages read by follow
	moved chan struct{}     // closed (and replaced) when upto grows
}

type seenEntry struct {
	id  string
	seq uint64
	ms  int64
}

func newSeenSet(window time.Duration) *seenSet {
	return &seenSet{window: window, first: map[string]uint64{}, moved: make(chan struct{})}
}

// dup reports whether id was first accepted in an earlier ingest message
// than seq. The same message seen again (redelivered) is not a duplicate.
func (s *seenSet) dup(id string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.first[id]
	return ok && f < seq
}

func (s *seenSet) add(id string, seq uint64, ms int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(id, seq, ms)
}

func (s *seenSet) addLocked(id string, seq uint64, ms int64) {
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
	s.mu.Lock()
	defer s.mu.Unlock()
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

// readMsg records the items of StreamIn message seq and moves upto.
func (s *seenSet) readMsg(seq uint64, data []byte) {
	batches, err := events.DecodeCommitLite(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil { // an undecodable message is terminated by the fan-out
		for _, b := range batches {
			for _, it := range b.Items {
				s.addLocked(it.ID, seq, b.ReceivedMs)
			}
		}
	}
	s.read++
	s.advanceLocked(seq)
}

func (s *seenSet) advanceLocked(seq uint64) {
	if seq > s.upto {
		s.upto = seq
		close(s.moved)
		s.moved = make(chan struct{})
	}
}

// waitUpto waits until StreamIn has been read up to seq.
func (s *seenSet) waitUpto(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		upto, moved := s.upto, s.moved
		s.mu.Unlock()
		if upto >= seq {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("delivery: dedup reader at ingest message %d, waiting for %d: %w", upto, seq, ctx.Err())
		}
	}
}

// follow reads StreamIn from the start of the dedup window and keeps
// reading until run ends. It returns once every message stored before the
// call has been read (the set is rebuilt), or ctx ends; the reading goes on
// in a goroutine counted by wg.
func (s *seenSet) follow(ctx, run context.Context, js jetstream.JetStream, clock Clock, log *slog.Logger, wg *sync.WaitGroup) error {
	st, err := js.Stream(ctx, events.StreamIn)
	if err != nil {
		return fmt.Errorf("delivery: dedup rebuild: %w", err)
	}
	last := st.CachedInfo().State.LastSeq
	start := clock.Now().Add(-s.window)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	if err != nil {
		return fmt.Errorf("delivery: dedup rebuild: %w", err)
	}
	// The window's messages stored so far; later ones move upto as
	// they are read.
	pending := int(cons.CachedInfo().NumPending)
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("delivery: dedup rebuild: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		stop := context.AfterFunc(run, it.Stop)
		defer stop()
		lastPrune := time.Time{}
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || run.Err() != nil {
				return
			}
			if err != nil {
				// The ordered consumer recreates itself after a broker
				// failure; the fan-out waits meanwhile.
				log.Warn("delivery: dedup reader", "err", err)
				continue
			}
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			s.readMsg(meta.Sequence.Stream, m.Data())
			if now := clock.Now(); now.Sub(lastPrune) > time.Second {
				s.prune(now)
				lastPrune = now
			}
		}
	}()
	// Once the window's messages are read, everything up to last counts
	// as read: the messages before the window are older than any
	// duplicate to drop.
	for {
		s.mu.Lock()
		n, moved := s.read, s.moved
		s.mu.Unlock()
		if n >= pending {
			break
		}
		select {
		case <-moved:
		case <-ctx.Done():
			it.Stop()
			return fmt.Errorf("delivery: dedup rebuild: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	s.advanceLocked(last)
	s.mu.Unlock()
	return nil
}
