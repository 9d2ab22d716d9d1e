package push

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// hub is one relay's registry of subscribers: which channel has which
// subscribers here, the last message fanned out, and the recent-history
// ring. The live consumer is its only writer of messages.
type hub struct {
	log   *slog.Logger
	st    *store
	cfg   *Config
	met   *metrics
	clock func() time.Time

	mu    sync.RWMutex
	chans map[chanKey]map[*sub]struct{}
	subs  map[*sub]struct{}
	// lastSeq is the highest sequence fanned out. The single consumer
	// goroutine stores it while holding mu for reading; register reads it
	// holding mu for writing, so "registered at L" means "every message
	// after L reaches me". Atomic for the lock-free readers.
	lastSeq atomic.Uint64
	// epoch is the epoch of the stream being tailed, changed together
	// with lastSeq (under mu) when the tail starts over on a re-created
	// stream; until then the pair stays that of the old stream.
	epoch     atomic.Uint64
	ring      ring
	ringMu    sync.Mutex
	closed    bool
	resetting chan struct{} // non-nil while the tail restarts on a re-created stream; closed when done
	reset     chan struct{} // signalled by Server.watch when the stream changed

	ws, polls atomic.Int64

	replaySem chan struct{} // bounds concurrent JetStream history reads

	// onRegister and onDispatch, if set (tests), are called after a
	// subscriber registered and after a message was fanned out.
	onRegister func()
	onDispatch func(seq uint64)
}

func newHub(st *store, cfg *Config, log *slog.Logger, met *metrics) *hub {
	h := &hub{
		log:       log,
		st:        st,
		cfg:       cfg,
		met:       met,
		clock:     time.Now,
		chans:     map[chanKey]map[*sub]struct{}{},
		subs:      map[*sub]struct{}{},
		ring:      ring{maxMsgs: cfg.RecentMessages, maxBytes: cfg.RecentBytes},
		replaySem: make(chan struct{}, 4),
		reset:     make(chan struct{}, 1),
	}
	h.epoch.Store(st.epoch.Load())
	return h
}

// run tails the stream from its current end (after loading the last
// ring.maxMsgs messages into the ring) and fans every new message out,
// until ctx is done. The ordered consumer re-creates itself on any gap or
// NATS reconnect, resuming after the last message it delivered. When the
// stream itself was re-created (reset), every subscriber is disconnected
// (1012) and the tail starts over on the new stream.
func (h *hub) run(ctx context.Context, ready chan<- error) {
	first := true
	for {
		cc, err := h.follow(ctx)
		if first {
			first = false
			ready <- err
			if err != nil {
				return
			}
		} else if err != nil {
			h.log.Error("push: tail stream", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case <-ctx.Done():
			cc.Stop()
			return
		case <-h.reset:
			cc.Stop()
			h.log.Error("push: the history stream was re-created (data lost or stream deleted); subscribers reconnect and are told history_reset",
				"epoch", h.st.epoch.Load(), "old_epoch", h.epoch.Load())
			// Subscribers of the old stream get nothing more (their mids
			// would not mean the same); new ones wait until the tail has
			// started over.
			h.mu.Lock()
			h.resetting = make(chan struct{})
			h.mu.Unlock()
			for _, s := range h.snapshot() {
				s.restart()
			}
		}
	}
}

// follow starts tailing the stream and clears resetting.
func (h *hub) follow(ctx context.Context) (jetstream.ConsumeContext, error) {
	first, last, err := h.st.bounds(ctx)
	if err != nil {
		return nil, err
	}
	start := last + 1
	if n := uint64(h.ring.maxMsgs); n > 0 && last >= first && last > 0 {
		start = max(first, last-min(last, n)+1)
	}
	h.ringMu.Lock()
	h.ring.msgs, h.ring.bytes = nil, 0
	h.ringMu.Unlock()
	epoch := h.st.epoch.Load()
	h.mu.Lock()
	h.lastSeq.Store(last)
	h.epoch.Store(epoch)
	if h.resetting != nil {
		close(h.resetting)
		h.resetting = nil
	}
	h.mu.Unlock()
	c, err := h.st.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjectMsg},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(start, 1),
	})
	if err != nil {
		return nil, err
	}
	return c.Consume(func(jm jetstream.Msg) {
		md, err := jm.Metadata()
		if err != nil {
			return
		}
		m, err := h.st.toMessage(epoch, md.Sequence.Stream, md.Timestamp, jm.Headers(), jm.Data())
		if err != nil {
			h.log.Warn("push: skipping malformed stored message", "seq", md.Sequence.Stream, "err", err)
			return
		}
		h.dispatch(m)
	})
}

// dispatch adds m to the ring and queues it for every local subscriber of
// one of its channels. Messages at or below lastSeq (the ring being filled
// at start, or a consumer redelivery) only go to the ring.
func (h *hub) dispatch(m *message) {
	if m.mid.epoch != h.epoch.Load() {
		return // a late message of a consumer stopped by a reset
	}
	h.ringMu.Lock()
	if len(h.ring.msgs) == 0 || h.ring.msgs[len(h.ring.msgs)-1].mid.seq < m.mid.seq {
		h.ring.add(m)
	}
	h.ringMu.Unlock()

	h.mu.RLock()
	defer h.mu.RUnlock()
	if m.mid.seq <= h.lastSeq.Load() {
		return
	}
	var frames [3][]byte // by format, for the channel being fanned out
	for _, k := range m.to {
		clear(frames[:])
		for s := range h.chans[k] {
			f := frames[s.format]
			if f == nil {
				f = appendFrame(nil, s.format, []item{{m: m, ch: k}})
				frames[s.format] = f
			}
			s.offer(item{m: m, ch: k, frame: f})
		}
	}
	h.lastSeq.Store(m.mid.seq)
	if h.onDispatch != nil {
		h.onDispatch(m.mid.seq)
	}
}

// register adds s to the hub and returns the sequence it is live from.
func (h *hub) register(s *sub) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if wait := h.resetting; wait != nil && !h.closed {
		h.mu.Unlock()
		select {
		case <-wait:
		case <-time.After(10 * time.Second):
		}
		h.mu.Lock()
	}
	if h.closed || h.resetting != nil {
		return 0, false
	}
	for _, k := range s.keys {
		set := h.chans[k]
		if set == nil {
			set = make(map[*sub]struct{}, 1)
			h.chans[k] = set
		}
		set[s] = struct{}{}
	}
	h.subs[s] = struct{}{}
	if s.ws != nil {
		h.ws.Add(1)
	} else {
		h.polls.Add(1)
	}
	if h.onRegister != nil {
		defer h.onRegister()
	}
	return h.lastSeq.Load(), true
}

func (h *hub) unregister(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	for _, k := range s.keys {
		if set := h.chans[k]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(h.chans, k)
			}
		}
	}
	if s.ws != nil {
		h.ws.Add(-1)
	} else {
		h.polls.Add(-1)
	}
}

// last returns the highest sequence fanned out.
func (h *hub) last() uint64 { return h.lastSeq.Load() }

// position returns the mid of the last message fanned out, epoch and
// sequence from the same stream.
func (h *hub) position() mid {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return mid{epoch: h.epoch.Load(), seq: h.lastSeq.Load()}
}

// counts returns, for each key with local subscribers, how many.
func (h *hub) counts(keys []chanKey) map[chanKey]int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := map[chanKey]int{}
	for _, k := range keys {
		if n := len(h.chans[k]); n > 0 {
			out[k] = n
		}
	}
	return out
}

// snapshot returns the current subscribers.
func (h *hub) snapshot() []*sub {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*sub, 0, len(h.subs))
	for s := range h.subs {
		out = append(out, s)
	}
	return out
}

// history returns the messages for s with from <= seq <= to, in order, and
// the gap notice to send first, if any: client is the mid the client gave.
//
// It is bounded whatever the client asks for (a mid of another epoch asks
// for the whole stream): at most ReplayMaxMessages stored messages are
// read, the newest ones, and they are filtered as they arrive, keeping at
// most ReplayMaxBytes of matching bodies (the newest). Whatever is left
// out is announced by the history_gap notice, whose next_mid is where the
// replay starts.
func (h *hub) history(ctx context.Context, s *sub, client mid, to uint64) ([]item, *message, error) {
	epoch := h.epoch.Load()
	from := client.seq + 1
	var gap *message
	reason := ""
	if client.epoch != epoch {
		reason, from = "history_reset", 1
	}
	now := h.clock()
	var items []item
	kept, skipTo, capped := 0, uint64(0), false
	keep := func(m *message) {
		if m.expired(now) {
			return
		}
		k, ok := s.matches(m)
		if !ok {
			return
		}
		items = append(items, item{m: m, ch: k})
		kept += len(m.body)
		for kept > h.cfg.ReplayMaxBytes && len(items) > 1 {
			kept -= len(items[0].m.body)
			skipTo, capped = items[0].m.mid.seq, true
			items[0] = item{}
			items = items[1:]
		}
	}
	h.ringMu.Lock()
	fromRing := reason == "" && h.ring.covers(from, to)
	if fromRing {
		for _, m := range h.ring.since(from, to) {
			keep(m)
		}
	}
	h.ringMu.Unlock()
	if !fromRing && from <= to {
		select {
		case h.replaySem <- struct{}{}:
			defer func() { <-h.replaySem }()
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		first, _, err := h.st.bounds(ctx)
		if err != nil {
			return nil, nil, err
		}
		if from < first {
			if reason == "" {
				reason = "history_lost"
			}
			from = first
		}
		if to >= from && to-from >= uint64(h.cfg.ReplayMaxMessages) {
			from = to - uint64(h.cfg.ReplayMaxMessages) + 1
			capped = true
		}
		err = h.st.read(ctx, epoch, from, to, func(m *message) {
			h.met.replayMsgs.Inc()
			h.met.replayBytes.Add(float64(len(m.body)))
			keep(m)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	next := max(from-1, skipTo)
	if capped {
		h.met.replayCapped.Inc()
		if reason == "" {
			reason = "history_truncated"
		}
	}
	if reason != "" {
		gap = gapMessage(client, mid{epoch: epoch, seq: next}, reason, h.clock())
		h.met.gaps.Inc()
	}
	return items, gap, nil
}

// gapMessage is the notice a subscriber gets instead of messages that are
// no longer stored: module "isobox", command "history_gap", so that
// BX.PullClient code can subscribe to it like any module's command. Its mid
// is the position the client resumes from.
func gapMessage(client, next mid, reason string, now time.Time) *message {
	body := `{"module_id":"isobox","command":"history_gap","params":{"reason":"` + reason +
		`","mid":"` + client.String() + `","next_mid":"` + next.String() + `"},"extra":{}}`
	return &message{mid: next, created: now, expiry: 0, body: []byte(body)}
}

// closeAll stops accepting subscribers and ends every current one.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	for _, s := range h.snapshot() {
		s.shutdown()
	}
}
