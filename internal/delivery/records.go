package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusRetrying  = "retrying"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
)

// Record is what the admin API shows of one delivery.
type Record struct {
	ID            string `json:"id"`
	Handler       string `json:"handler"`
	URL           string `json:"url"`
	ClientID      string `json:"client_id,omitempty"`
	Portal        string `json:"portal"`
	Event         string `json:"event"`
	Status        string `json:"status"`
	Attempts      int    `json:"attempts,omitempty"`
	LastError     string `json:"last_error,omitempty"`
	LastStatus    int    `json:"last_status,omitempty"`
	CreatedMs     int64  `json:"created_ms"`
	UpdatedMs     int64  `json:"updated_ms,omitempty"`
	NextAttemptMs int64  `json:"next_attempt_ms,omitempty"`
	// Seq is the handler-queue message that carried the last attempt.
	Seq uint64 `json:"seq,omitempty"`
	// DeadSeq is the dead-letter message while the delivery is dead.
	DeadSeq uint64 `json:"dead_seq,omitempty"`
	// LastLatencyMs is the handler's response time in the last attempt.
	LastLatencyMs int64 `json:"last_latency_ms,omitempty"`
	// History is the latest attempts (at most maxHistory), oldest first.
	History []Attempt `json:"history,omitempty"`
}

// Attempt is one HTTP attempt of a delivery, for the admin API.
type Attempt struct {
	AtMs      int64  `json:"at_ms"`
	Status    int    `json:"status,omitempty"`
	Error     string `json:"error,omitempty"`
	LatencyMs int64  `json:"latency_ms,omitempty"`
}

// maxHistory bounds the attempts a record keeps.
const maxHistory = 10

// withAttempt returns h with a appended, the oldest dropped past maxHistory.
func withAttempt(h []Attempt, a Attempt) []Attempt {
	out := append(append(make([]Attempt, 0, len(h)+1), h...), a)
	if len(out) > maxHistory {
		out = out[len(out)-maxHistory:]
	}
	return out
}

// records keeps the delivery records in memory (bounded, oldest evicted)
// and appends every change to StreamLog in batches: one stored message per
// flush, not per change, so the history costs few fsyncs. A crash loses at
// most the last flush interval of history, never an event.
type records struct {
	js  jetstream.JetStream
	log *slog.Logger
	max int

	mu      sync.Mutex
	byID    map[string]*Record
	order   []string // first-seen order, oldest first
	pending []Record
	kick    chan struct{}
	// changed is closed (and dropped) on the next record change; made only
	// when someone waits for one (see changes).
	changed chan struct{}
}

const (
	flushEvery = 100 * time.Millisecond
	flushMax   = 1000
)

func newRecords(js jetstream.JetStream, maxRecords int, log *slog.Logger) *records {
	return &records{js: js, log: log, max: maxRecords, byID: map[string]*Record{}, kick: make(chan struct{}, 1)}
}

// update stores rec; with overwrite false an existing record is kept.
func (r *records) update(rec Record, overwrite bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.apply(rec, overwrite) {
		return
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.pending = append(r.pending, rec)
	if len(r.pending) >= flushMax {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// changes returns a channel closed on the next record change.
func (r *records) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

func (r *records) apply(rec Record, overwrite bool) bool {
	old, ok := r.byID[rec.ID]
	if ok && !overwrite {
		return false
	}
	if ok {
		if rec.CreatedMs == 0 {
			rec.CreatedMs = old.CreatedMs
		}
		*old = rec
		return true
	}
	r.byID[rec.ID] = &rec
	r.order = append(r.order, rec.ID)
	if len(r.order) > r.max {
		drop := len(r.order) - r.max
		for _, id := range r.order[:drop] {
			delete(r.byID, id)
		}
		r.order = append([]string(nil), r.order[drop:]...)
	}
	return true
}

func (r *records) run(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		r.flush(ctx)
	}
}

func (r *records) flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// Chunks well below the broker's max payload (URLs and errors vary).
	for len(batch) > 0 {
		n := min(len(batch), flushMax)
		var data []byte
		for {
			var err error
			if data, err = json.Marshal(batch[:n]); err != nil {
				r.log.Error("delivery: encode records", "err", err)
				return
			}
			if len(data) <= 512<<10 || n == 1 {
				break
			}
			n /= 2
		}
		if _, err := r.js.Publish(ctx, events.SubjectLog, data); err != nil {
			r.log.Warn("delivery: write records (history only; events are unaffected)", "err", err, "records", len(batch))
			return
		}
		batch = batch[n:]
	}
}

// follow reads the history back from StreamLog and keeps reading it, so
// that the changes made by every relay instance (each flushes its own)
// reach this instance's admin API. It returns once the history stored
// before the call is in (or ctx ends); the reading goes on in a goroutine
// counted by wg until run ends.
// Records are applied in the log's order, the order in which the instances
// stored them, so every instance ends with the same state for each id.
func (r *records) follow(ctx, run context.Context, wg *sync.WaitGroup) error {
	st, err := r.js.Stream(ctx, events.StreamLog)
	if err != nil {
		return fmt.Errorf("delivery: log stream: %w", err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("delivery: read log: %w", err)
	}
	pending := int(cons.CachedInfo().NumPending)
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("delivery: read log: %w", err)
	}
	caughtUp := make(chan struct{})
	if pending == 0 {
		close(caughtUp)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		stop := context.AfterFunc(run, it.Stop)
		defer stop()
		for n := 0; ; {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || run.Err() != nil {
				return
			}
			if err != nil {
				r.log.Warn("delivery: history reader", "err", err)
				continue
			}
			var recs []Record
			if json.Unmarshal(m.Data(), &recs) == nil {
				r.mu.Lock()
				for _, rec := range recs {
					r.applyLogged(rec)
				}
				r.mu.Unlock()
			}
			if n++; n == pending {
				close(caughtUp)
			}
		}
	}()
	select {
	case <-caughtUp:
		return nil
	case <-ctx.Done():
		it.Stop()
		return fmt.Errorf("delivery: read log: %w", ctx.Err())
	}
}

// applyLogged applies a record read from the log; r.mu is held. A new
// delivery's first record (pending, from the fan-out) never overwrites:
// another instance may have delivered it and logged that first. A replay's
// pending record (it has UpdatedMs) does.
func (r *records) applyLogged(rec Record) {
	r.apply(rec, rec.Status != StatusPending || rec.UpdatedMs != 0)
}

func (r *records) get(id string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.byID[id]
	if !ok {
		return Record{}, false
	}
	return *rec, true
}

// Filter selects records; empty fields match all.
type Filter struct {
	App, Handler, Event, Status string
	Limit                       int
}

func (r *records) list(f Filter) []Record {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for i := len(r.order) - 1; i >= 0 && len(out) < f.Limit; i-- {
		rec := r.byID[r.order[i]]
		if (f.App != "" && rec.ClientID != f.App) || (f.Handler != "" && rec.Handler != f.Handler) ||
			(f.Event != "" && rec.Event != f.Event) || (f.Status != "" && rec.Status != f.Status) {
			continue
		}
		out = append(out, *rec)
	}
	return out
}
