package delivery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// Breaker states.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// worker delivers one handler's queue: its own consumer, at most
// Concurrency deliveries in flight, and a circuit breaker. Nothing it does
// waits on another handler.
type worker struct {
	s      *Service
	cons   jetstream.Consumer
	slot   chan struct{} // one token per free delivery slot (item attempt)
	groups chan struct{} // one token per queue message in flight

	mu        sync.Mutex
	h         HandlerInfo
	changed   chan struct{} // closed and replaced on every state change
	failures  int           // consecutive failed attempts
	openUntil time.Time     // breaker open until then (zero: closed)
	cooldown  time.Duration
	probing   bool // half-open: the probe is in flight
	delivered int64
	failed    int64
}

func newWorker(s *Service, h HandlerInfo, cons jetstream.Consumer) *worker {
	w := &worker{s: s, h: h, cons: cons, slot: make(chan struct{}, s.cfg.Concurrency),
		groups: make(chan struct{}, s.cfg.Concurrency), changed: make(chan struct{})}
	for range s.cfg.Concurrency {
		w.slot <- struct{}{}
		w.groups <- struct{}{}
	}
	return w
}

func (w *worker) info() HandlerInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.h
}

// notifyLocked wakes everything waiting for a state change; w.mu is held.
func (w *worker) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *worker) setPaused(p bool) {
	w.mu.Lock()
	wasOpen := !w.openUntil.IsZero()
	w.h.Paused = p
	if !p {
		w.failures, w.openUntil, w.cooldown, w.probing = 0, time.Time{}, 0, false
	}
	w.notifyLocked()
	h := w.h
	w.mu.Unlock()
	if !p && wasOpen {
		w.s.log.Info("delivery: circuit closed (handler resumed)", "handler", h.Key, "url", h.URL, "client_id", h.ClientID)
	}
}

// open reports whether the handler takes deliveries now: not paused and
// its circuit closed.
func (w *worker) open() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.h.Paused && w.openUntil.IsZero()
}

func (w *worker) breakerState() string {
	now := w.s.cfg.Clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.openUntil.IsZero():
		return BreakerClosed
	case now.Before(w.openUntil):
		return BreakerOpen
	default:
		return BreakerHalfOpen
	}
}

// breakerRecheck bounds a wait for an open circuit's cooldown: the
// cooldown is measured on the service's Clock, which need not run with the
// timers (an injected clock), so the state is looked at again this often.
const breakerRecheck = 2 * time.Second

// fetchable reports whether the worker may fetch now; if not, how long to
// wait at most and a channel closed on the next state change.
func (w *worker) fetchable() (bool, time.Duration, <-chan struct{}) {
	now := w.s.cfg.Clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.h.Paused:
		return false, time.Hour, w.changed
	case w.openUntil.IsZero():
		return true, 0, nil
	case w.openUntil.After(now):
		return false, min(w.openUntil.Sub(now), breakerRecheck), w.changed
	case w.probing:
		return false, time.Hour, w.changed
	default:
		return true, 0, nil
	}
}

// gate holds an item of a fetched message while the handler is paused or
// its circuit is open (the message's ack deadline is extended meanwhile),
// so that neither calls the handler nor spends an attempt. When the cooldown is over exactly one
// message goes through as the probe. It returns false when ctx ends.
func (w *worker) gate(ctx context.Context) bool {
	for {
		now := w.s.cfg.Clock.Now()
		w.mu.Lock()
		ch := w.changed
		wait := breakerRecheck // well within the ack wait
		switch {
		case w.h.Paused:
		case w.openUntil.IsZero():
			w.mu.Unlock()
			return true
		case w.openUntil.After(now):
			wait = min(wait, w.openUntil.Sub(now))
		case !w.probing:
			w.probing = true
			w.mu.Unlock()
			return true
		}
		w.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// result counts an attempt's outcome for the circuit breaker and logs the
// circuit's transitions: opened, closed by a successful attempt, and a
// failed probe that keeps it open longer.
func (w *worker) result(ok bool) {
	now := w.s.cfg.Clock.Now()
	w.mu.Lock()
	wasOpen, probe := !w.openUntil.IsZero(), w.probing
	defer func() {
		isOpen, h, failures, cooldown := !w.openUntil.IsZero(), w.h, w.failures, w.cooldown
		w.mu.Unlock()
		log := w.s.log.With("handler", h.Key, "url", h.URL, "client_id", h.ClientID)
		switch {
		case !wasOpen && isOpen:
			log.Warn("delivery: circuit opened; the handler gets no deliveries until a probe succeeds",
				"consecutive_failures", failures, "probe_in", cooldown.String())
		case wasOpen && !isOpen:
			log.Info("delivery: circuit closed; the probe succeeded")
		case wasOpen && probe && !ok:
			log.Warn("delivery: circuit stays open; the probe failed", "probe_in", cooldown.String())
		}
	}()
	if ok {
		w.delivered++
		w.failures, w.openUntil, w.cooldown = 0, time.Time{}, 0
	} else {
		w.failed++
		w.failures++
		if w.failures >= w.s.cfg.BreakerFailures {
			if w.cooldown == 0 {
				w.cooldown = w.s.cfg.BreakerCooldown
			} else if w.probing {
				w.cooldown = min(2*w.cooldown, max(10*time.Minute, w.s.cfg.BreakerCooldown))
			}
			w.openUntil = now.Add(w.cooldown)
		}
	}
	w.probing = false
	w.notifyLocked()
}

// neutral ends an attempt that was never sent (refused before calling
// the handler): only a half-open probe slot is given back.
func (w *worker) neutral() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.probing = false
	w.notifyLocked()
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		// One group token per group in flight; item attempts take slots.
		select {
		case <-w.groups:
		case <-ctx.Done():
			return
		}
		if ok, wait, ch := w.fetchable(); !ok {
			w.groups <- struct{}{}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-ch:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		batch, err := w.cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			w.groups <- struct{}{}
			if ctx.Err() == nil {
				w.s.log.Warn("delivery: fetch", "handler", w.h.Key, "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		var m jetstream.Msg
		for x := range batch.Messages() {
			m = x
		}
		cancel()
		if m == nil {
			w.groups <- struct{}{}
			continue
		}
		w.s.wg.Add(1)
		go func() {
			defer w.s.wg.Done()
			defer func() { w.groups <- struct{}{} }()
			w.process(ctx, m)
		}()
	}
}

// outcome is one item's attempt.
type outcome struct {
	e   entry
	res result
}

// process delivers one group: each item once (in order, up to Concurrency
// at a time), then settles the message: delivered items are done, refused
// ones are dead-lettered, failed ones go back to the queue as one retry
// group due after the schedule's delay (or to the dead letters after the
// last retry). The message is acknowledged only after that is stored.
func (w *worker) process(ctx context.Context, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		w.s.log.Error("delivery: message metadata", "err", err)
		m.Term()
		return
	}
	g, err := decodeGroup(m.Data())
	if err != nil {
		w.s.log.Error("delivery: undecodable queue message, terminated", "err", err, "seq", meta.Sequence.Stream)
		m.Term()
		return
	}
	now := w.s.cfg.Clock.Now()
	if g.DueMs > now.UnixMilli() {
		// A retry fetched before it is due: put it back until then.
		m.NakWithDelay(time.Duration(g.DueMs-now.UnixMilli()) * time.Millisecond)
		return
	}
	// Keep the message ours while its items are attempted.
	stopTick := make(chan struct{})
	defer close(stopTick)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopTick:
				return
			case <-t.C:
				m.InProgress()
			}
		}
	}()

	attempt := g.Attempt + 1
	views := make([]view, len(g.Entries))
	for i, e := range g.Entries {
		views[i] = viewOf(e.Form)
	}
	// One BuildBatch for the group's auth blocks instead of a call per
	// delivery; only while the handler takes deliveries, so that no token
	// is minted for an item that then waits out a cooldown.
	var pre []*prebuilt
	if w.open() {
		pre = w.s.sender.prebuild(ctx, g.Portal, views)
	} else {
		pre = make([]*prebuilt, len(g.Entries))
	}
	outs := make([]outcome, len(g.Entries))
	var wg sync.WaitGroup
	aborted := false
	for i, e := range g.Entries {
		if !w.gate(ctx) {
			aborted = true
			break
		}
		select {
		case <-w.slot:
		case <-ctx.Done():
			aborted = true
		}
		if aborted {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { w.slot <- struct{}{} }()
			res := w.s.sender.deliver(ctx, g.Portal, e, views[i], pre[i])
			if !res.aborted {
				w.s.m.attempt(g.Handler, res)
				if res.permanent && res.status == 0 {
					w.neutral() // a refusal says nothing about the handler's health
				} else {
					w.result(res.ok)
				}
			}
			outs[i] = outcome{e: e, res: res}
		}()
	}
	wg.Wait()
	for _, o := range outs {
		if o.res.aborted {
			aborted = true
		}
	}
	if aborted {
		// Shutting down: leave the message unacknowledged; after a restart
		// it comes back (items delivered meanwhile are delivered again).
		return
	}
	w.settle(ctx, m, meta.Sequence.Stream, g, attempt, outs)
}

func (w *worker) settle(ctx context.Context, m jetstream.Msg, seq uint64, g *group, attempt int, outs []outcome) {
	s := w.s
	now := s.cfg.Clock.Now()
	h := w.info()
	retry := &group{Portal: g.Portal, Handler: g.Handler, Attempt: attempt}
	var retryAfter time.Duration
	var recs []Record
	for _, o := range outs {
		rec := Record{ID: o.e.ID, Handler: h.Key, URL: h.URL, ClientID: h.ClientID, Portal: g.Portal, Event: o.res.event,
			CreatedMs: o.e.ReceivedMs, Seq: seq, Attempts: attempt, UpdatedMs: now.UnixMilli(), LastStatus: o.res.status, LastError: o.res.err,
			LastLatencyMs: o.res.took.Milliseconds()}
		prev, _ := s.records.get(o.e.ID)
		rec.History = withAttempt(prev.History, Attempt{AtMs: now.UnixMilli(), Status: o.res.status, Error: o.res.err, LatencyMs: o.res.took.Milliseconds()})
		switch {
		case o.res.ok:
			rec.Status = StatusDelivered
			s.m.delivered.Inc()
			s.m.e2e.Observe(time.Since(time.UnixMilli(o.e.ReceivedMs)).Seconds())
		case o.res.permanent || attempt > len(s.cfg.Schedule):
			dseq, err := s.deadLetter(ctx, g, o.e, attempt, seq, o.res)
			if err != nil {
				s.log.Error("delivery: dead-letter", "id", o.e.ID, "err", err)
				m.NakWithDelay(time.Second)
				return
			}
			rec.Status, rec.DeadSeq = StatusDead, dseq
			s.m.dead.Inc()
			s.log.Warn("delivery: dead-lettered", "id", o.e.ID, "handler", h.Key, "url", h.URL, "client_id", h.ClientID,
				"portal", g.Portal, "event", o.res.event, "attempts", attempt, "last_status", o.res.status, "err", o.res.err,
				"permanent", o.res.permanent)
		default:
			retry.Entries = append(retry.Entries, o.e)
			retryAfter = max(retryAfter, o.res.retryAfter)
			rec.Status = StatusRetrying
			s.m.retried.Inc()
		}
		recs = append(recs, rec)
	}
	if len(retry.Entries) > 0 {
		delay := s.retryDelay(attempt, retryAfter)
		retry.DueMs = now.Add(delay).UnixMilli()
		for i := range recs {
			if recs[i].Status == StatusRetrying {
				recs[i].NextAttemptMs = retry.DueMs
			}
		}
	}
	// Records before the retry is queued: the next attempt's record must
	// come after this one.
	for _, r := range recs {
		s.records.update(r, true)
	}
	if len(retry.Entries) > 0 {
		// The id is derived from this message and the events retried, so
		// settling it twice (a crash before the ack) stores the same retry
		// once and a different one too (contentID). Not cut short by
		// shutdown (ctx is the service's, cancelled by Close): the attempts
		// were made, and a Nak now would deliver the succeeded items again.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := s.publishGroup(pctx, retry, retry.contentID(fmt.Sprintf("r:%d:", seq)))
		cancel()
		if err != nil {
			s.log.Error("delivery: queue retry", "handler", g.Handler, "err", err)
			m.NakWithDelay(time.Second)
			return
		}
	}
	if err := m.Ack(); err != nil {
		s.log.Warn("delivery: ack", "handler", g.Handler, "err", err)
	}
}

// deadLetter stores one item in the dead-letter stream and returns its
// sequence.
func (s *Service) deadLetter(ctx context.Context, g *group, e entry, attempts int, queueSeq uint64, res result) (uint64, error) {
	dead := group{Portal: g.Portal, Handler: g.Handler, Attempt: attempts, Entries: []entry{e}}
	msg := &nats.Msg{Subject: events.SubjectDead + g.Handler, Data: dead.encode(), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID+":"+itoa(queueSeq))
	msg.Header.Set("Isobox-Last-Error", res.err)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}
