package delivery

import (
	"context"
	"encoding/json"
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
	s    *Service
	cons jetstream.Consumer
	slot chan struct{} // one token per free delivery slot

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
	w := &worker{s: s, h: h, cons: cons, slot: make(chan struct{}, s.cfg.Concurrency), changed: make(chan struct{})}
	for range s.cfg.Concurrency {
		w.slot <- struct{}{}
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
	defer w.mu.Unlock()
	w.h.Paused = p
	if !p {
		w.failures, w.openUntil, w.cooldown, w.probing = 0, time.Time{}, 0, false
	}
	w.notifyLocked()
}

func (w *worker) breakerState() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.openUntil.IsZero():
		return BreakerClosed
	case time.Now().Before(w.openUntil):
		return BreakerOpen
	default:
		return BreakerHalfOpen
	}
}

// fetchable reports whether the worker may fetch now; if not, how long to
// wait at most and a channel closed on the next state change.
func (w *worker) fetchable() (bool, time.Duration, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.h.Paused:
		return false, time.Hour, w.changed
	case w.openUntil.IsZero():
		return true, 0, nil
	case time.Until(w.openUntil) > 0:
		return false, time.Until(w.openUntil), w.changed
	case w.probing:
		return false, time.Hour, w.changed
	default:
		return true, 0, nil
	}
}

// gate holds a fetched message while the handler is paused or its circuit
// is open, extending the message's ack deadline, so that neither calls the
// handler nor spends an attempt. When the cooldown is over exactly one
// message goes through as the probe. It returns false when ctx ends.
func (w *worker) gate(ctx context.Context, m jetstream.Msg) bool {
	for {
		w.mu.Lock()
		ch := w.changed
		wait := 2 * time.Second // well within the ack wait
		switch {
		case w.h.Paused:
		case w.openUntil.IsZero():
			w.mu.Unlock()
			return true
		case time.Until(w.openUntil) > 0:
			wait = min(wait, time.Until(w.openUntil))
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
			m.InProgress()
		}
		t.Stop()
	}
}

func (w *worker) result(ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
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
			w.openUntil = time.Now().Add(w.cooldown)
		}
	}
	w.probing = false
	w.notifyLocked()
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		// Wait for one free slot, then take every other free one.
		select {
		case <-w.slot:
		case <-ctx.Done():
			return
		}
		got := 1
		for got < w.s.cfg.Concurrency {
			select {
			case <-w.slot:
				got++
				continue
			default:
			}
			break
		}
		if ok, wait, ch := w.fetchable(); !ok {
			w.release(got)
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
		batch, err := w.cons.Fetch(got, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			w.release(got)
			if ctx.Err() == nil {
				w.s.log.Warn("delivery: fetch", "handler", w.h.Key, "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		used := 0
		for m := range batch.Messages() {
			used++
			w.s.wg.Add(1)
			go func() {
				defer w.s.wg.Done()
				defer w.release(1)
				w.process(ctx, m)
			}()
		}
		cancel()
		w.release(got - used)
	}
}

func (w *worker) release(n int) {
	for range n {
		w.slot <- struct{}{}
	}
}

// process makes one attempt at one queue message and settles it: ack on
// success, a delayed nak for a retry, or a move to the dead letters.
func (w *worker) process(ctx context.Context, m jetstream.Msg) {
	if !w.gate(ctx, m) {
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		w.s.log.Error("delivery: message metadata", "err", err)
		m.Term()
		return
	}
	q, err := decodeQueued(m.Data())
	if err != nil {
		w.s.log.Error("delivery: undecodable queue message, terminated", "err", err, "seq", meta.Sequence.Stream)
		m.Term()
		w.result(true)
		return
	}
	attempt := int(meta.NumDelivered)
	h := w.info()
	rec := Record{ID: q.Item.ID, Handler: h.Key, URL: h.URL, ClientID: h.ClientID, Portal: q.Portal,
		Event: q.Item.Event(), CreatedMs: q.ReceivedMs, Seq: meta.Sequence.Stream, Attempts: attempt}
	res := w.s.sender.deliver(ctx, q, m)
	if res.aborted {
		// Shutting down while waiting for authprovider: leave the message
		// unacknowledged; it is redelivered after a restart.
		return
	}
	w.s.m.attempt(h.Key, res)
	now := w.s.cfg.Clock.Now()
	rec.UpdatedMs = now.UnixMilli()
	rec.LastStatus = res.status
	rec.LastError = res.err
	switch {
	case res.ok:
		if err := m.Ack(); err != nil {
			w.s.log.Warn("delivery: ack", "id", q.Item.ID, "err", err)
		}
		rec.Status = StatusDelivered
		w.s.m.delivered.Inc()
		w.s.m.e2e.Observe(time.Since(time.UnixMilli(q.ReceivedMs)).Seconds())
		w.result(true)
	case res.permanent || attempt > len(w.s.cfg.Schedule):
		w.result(res.permanent) // a policy refusal says nothing about the handler's health
		seq, err := w.s.deadLetter(ctx, q, meta.Sequence.Stream, res)
		if err != nil {
			w.s.log.Error("delivery: dead-letter", "id", q.Item.ID, "err", err)
			m.NakWithDelay(time.Second)
			return
		}
		m.Ack()
		rec.Status = StatusDead
		rec.DeadSeq = seq
		w.s.m.dead.Inc()
	default:
		w.result(false)
		delay := w.s.retryDelay(attempt, res.retryAfter)
		m.NakWithDelay(delay)
		rec.Status = StatusRetrying
		rec.NextAttemptMs = now.Add(delay).UnixMilli()
		w.s.m.retried.Inc()
	}
	w.s.records.update(rec, true)
}

// deadLetter stores q in the dead-letter stream and returns its sequence.
func (s *Service) deadLetter(ctx context.Context, q *queued, queueSeq uint64, res result) (uint64, error) {
	data, err := json.Marshal(q)
	if err != nil {
		return 0, err
	}
	msg := &nats.Msg{Subject: events.SubjectDead + q.Handler, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, q.Item.ID+":"+itoa(queueSeq))
	msg.Header.Set("Isobox-Last-Error", res.err)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}
