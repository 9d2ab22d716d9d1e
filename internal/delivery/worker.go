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
	wake chan struct{} // pause/resume/breaker changes
	// resumed is closed when a paused handler is resumed.
	resumed chan struct{}

	mu        sync.Mutex
	h         HandlerInfo
	failures  int       // consecutive failed attempts
	openUntil time.Time // breaker open until then
	cooldown  time.Duration
	probing   bool // half-open: a probe is in flight
	delivered int64
	failed    int64
}

func newWorker(s *Service, h HandlerInfo, cons jetstream.Consumer) *worker {
	w := &worker{s: s, h: h, cons: cons, slot: make(chan struct{}, s.cfg.Concurrency), wake: make(chan struct{}, 1), resumed: make(chan struct{})}
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

func (w *worker) setPaused(p bool) {
	w.mu.Lock()
	was := w.h.Paused
	w.h.Paused = p
	if !p {
		w.failures, w.openUntil, w.cooldown, w.probing = 0, time.Time{}, 0, false
		if was {
			close(w.resumed)
		}
	} else if !was {
		w.resumed = make(chan struct{})
	}
	w.mu.Unlock()
	w.poke()
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
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

// admit says how many messages may be fetched now (0 = wait up to the
// returned duration, or for a wake-up).
func (w *worker) admit() (int, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h.Paused {
		return 0, time.Hour
	}
	if w.openUntil.IsZero() {
		return w.s.cfg.Concurrency, 0
	}
	if wait := time.Until(w.openUntil); wait > 0 {
		return 0, wait
	}
	if w.probing {
		return 0, time.Hour // the probe's result wakes us
	}
	w.probing = true
	return 1, 0
}

func (w *worker) result(ok bool) {
	w.mu.Lock()
	if ok {
		w.delivered++
		w.failures, w.openUntil, w.cooldown = 0, time.Time{}, 0
	} else {
		w.failed++
		w.failures++
		if w.failures >= w.s.cfg.BreakerFailures {
			if w.cooldown == 0 {
				w.cooldown = w.s.cfg.BreakerCooldown
			} else if !w.openUntil.IsZero() {
				w.cooldown = min(2*w.cooldown, max(10*time.Minute, w.s.cfg.BreakerCooldown))
			}
			w.openUntil = time.Now().Add(w.cooldown)
		}
	}
	w.probing = false
	w.mu.Unlock()
	w.poke()
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		n, wait := w.admit()
		if n == 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-w.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		// Wait for one free slot, then take every other free one.
		select {
		case <-w.slot:
		case <-ctx.Done():
			return
		}
		got := 1
		for got < n {
			select {
			case <-w.slot:
				got++
				continue
			default:
			}
			break
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
		if used == 0 {
			w.mu.Lock()
			w.probing = false // nothing to probe with
			w.mu.Unlock()
		}
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
	if !w.holdWhilePaused(ctx, m) {
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

// holdWhilePaused keeps a message that was fetched just before the
// handler was paused until it is resumed, extending its ack deadline, so
// that a pause neither calls the handler nor spends an attempt. It
// returns false when ctx ends first.
func (w *worker) holdWhilePaused(ctx context.Context, m jetstream.Msg) bool {
	for {
		w.mu.Lock()
		paused, resumed := w.h.Paused, w.resumed
		w.mu.Unlock()
		if !paused {
			return true
		}
		t := time.NewTimer(2 * time.Second) // well within the ack wait
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-resumed:
		case <-t.C:
			m.InProgress()
		}
		t.Stop()
	}
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
