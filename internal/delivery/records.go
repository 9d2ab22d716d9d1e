package delivery

import (
	"context"
	"encoding/json"
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

// load reads the history back from StreamLog.
func (r *records) load(ctx context.Context) error {
	st, err := r.js.Stream(ctx, events.StreamLog)
	if err != nil {
		return fmt.Errorf("delivery: log stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("delivery: log stream: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("delivery: read log: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	left := int(info.State.Msgs)
	for {
		batch, err := cons.Fetch(max(min(500, left), 1), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("delivery: read log: %w", err)
		}
		n := 0
		done := false
		for m := range batch.Messages() {
			n++
			left--
			var recs []Record
			if json.Unmarshal(m.Data(), &recs) == nil {
				for _, rec := range recs {
					r.apply(rec, true)
				}
			}
			if meta, err := m.Metadata(); err == nil && meta.Sequence.Stream >= last {
				done = true
			}
		}
		if done || n == 0 {
			return nil
		}
	}
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
