package portal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/isobox/isobox/internal/store"
)

// RelayConfig configures the hand-off of rest.event.call items to eventrelay.
type RelayConfig struct {
	// URL is eventrelay's ingest base URL; items go to URL + "/v1/events".
	URL string
	// ServiceKey authenticates authprovider to eventrelay.
	ServiceKey string
	// Timeout bounds one POST to the relay; 0 = 5s.
	Timeout time.Duration
	// RetryMin and RetryMax bound the outbox's back-off; 0 = 500ms and 1m.
	RetryMin, RetryMax time.Duration
	// Client is the HTTP client; nil = a default one.
	Client *http.Client
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Relay hands event batches to eventrelay. A batch the relay does not
// take at once (down, timeout, 5xx) goes to the event_outbox table and a
// background sender drains the outbox in arrival order with back-off.
// While anything waits in the outbox, new batches queue behind it, so a
// portal's events reach the relay in the order it sent them.
type Relay struct {
	db  *store.DB
	cfg RelayConfig
	log *slog.Logger

	wake    chan struct{}
	pending atomic.Int64 // batches waiting in the outbox, as far as this process knows
	seqMu   sync.Mutex
	lastSeq int64
}

// NewRelay returns a Relay; call Run to drain the outbox.
func NewRelay(db *store.DB, cfg RelayConfig, log *slog.Logger) *Relay {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return &Relay{db: db, cfg: cfg, log: log, wake: make(chan struct{}, 1)}
}

// errPermanent marks a relay answer that retrying cannot change.
var errPermanent = errors.New("portal: relay refused the batch")

// post sends one batch. id is sent as Idempotency-Key so that a batch sent
// again after a lost answer is stored once.
func (r *Relay) post(ctx context.Context, id, portal, body string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL+"/v1/events", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+r.cfg.ServiceKey)
	req.Header.Set("X-Isobox-Portal", portal)
	req.Header.Set("Idempotency-Key", id)
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("portal: relay: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusRequestEntityTooLarge,
		resp.StatusCode == http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: HTTP %d", errPermanent, resp.StatusCode)
	default:
		// 401/403 are a key mismatch the administrator fixes; 5xx, 429 pass.
		return fmt.Errorf("portal: relay answered HTTP %d", resp.StatusCode)
	}
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Relay) nextSeq() int64 {
	r.seqMu.Lock()
	defer r.seqMu.Unlock()
	n := time.Now().UnixNano()
	if n <= r.lastSeq {
		n = r.lastSeq + 1
	}
	r.lastSeq = n
	return n
}

// Submit hands one batch (a form body of QUERY[...] items) to the relay,
// directly if nothing is queued, else (or if the relay does not take it)
// through the outbox. It returns nil once the batch is stored by the relay
// or in the outbox.
func (r *Relay) Submit(ctx context.Context, portal, body string) error {
	id := newID()
	// The count may briefly run below zero when a drain races an insert;
	// either way nothing of this process is known to wait.
	if r.pending.Load() <= 0 {
		err := r.post(ctx, id, portal, body)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPermanent) {
			// The portal ignores rest.event.call's answer: this log line is
			// the only trace of the refused batch.
			r.log.Error("portal: relay refused an event batch; it is not delivered", "portal", portal, "bytes", len(body), "err", err)
			return err
		}
		r.log.Warn("portal: relay unavailable, keeping events in the outbox", "err", err)
	}
	now := r.cfg.Now()
	_, err := r.db.ExecContext(ctx, `INSERT INTO event_outbox (id, seq, portal, body, attempts, next_at, dead, last_error, created_at)
		VALUES (?, ?, ?, ?, 0, 0, 0, '', ?)`, id, r.nextSeq(), portal, body, now.Unix())
	if err != nil {
		return fmt.Errorf("portal: store events in the outbox: %w", err)
	}
	r.pending.Add(1)
	r.kick()
	return nil
}

func (r *Relay) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many live batches wait in the outbox.
func (r *Relay) Pending(ctx context.Context) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM event_outbox WHERE dead = 0`).Scan(&n)
	return n, err
}

// Run drains the outbox until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	if n, err := r.Pending(ctx); err == nil {
		r.pending.Store(int64(n))
	}
	delay := time.Duration(0)
	failures := 0
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if r.pending.Load() <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-time.After(r.cfg.RetryMax):
				// Another instance may have queued batches.
				if n, err := r.Pending(ctx); err == nil {
					r.pending.Store(int64(n))
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		sent, err := r.DrainOnce(ctx)
		switch {
		case err != nil:
			failures++
			delay = backoff(r.cfg.RetryMin, r.cfg.RetryMax, failures)
			if failures == 1 || failures%10 == 0 {
				r.log.Warn("portal: outbox: relay still unavailable", "err", err, "failures", failures, "retry_in", delay)
			}
		case sent:
			failures, delay = 0, 0
		default:
			delay = 0
			if failures > 0 {
				r.log.Info("portal: outbox drained", "after_failures", failures)
			}
			failures = 0
		}
	}
}

// backoff is RetryMin doubled per failure, capped at RetryMax.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// DrainOnce sends the oldest waiting batch. sent is false when the outbox
// is empty; err is the relay's failure (the batch stays for a retry).
func (r *Relay) DrainOnce(ctx context.Context) (sent bool, err error) {
	var id, portal, body string
	var attempts int
	err = r.db.QueryRowContext(ctx, `SELECT id, portal, body, attempts FROM event_outbox WHERE dead = 0 ORDER BY seq LIMIT 1`).
		Scan(&id, &portal, &body, &attempts)
	if errors.Is(err, sql.ErrNoRows) {
		r.pending.Store(0)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("portal: read outbox: %w", err)
	}
	perr := r.post(ctx, id, portal, body)
	switch {
	case perr == nil:
		if _, err := r.db.ExecContext(ctx, `DELETE FROM event_outbox WHERE id = ?`, id); err != nil {
			return false, fmt.Errorf("portal: delete sent batch: %w", err)
		}
		r.pending.Add(-1)
		return true, nil
	case errors.Is(perr, errPermanent):
		r.log.Error("portal: outbox: relay refused a batch; kept as dead", "id", id, "portal", portal, "err", perr)
		_, err := r.db.ExecContext(ctx, `UPDATE event_outbox SET dead = 1, attempts = ?, last_error = ? WHERE id = ?`, attempts+1, truncate(perr.Error(), 255), id)
		if err != nil {
			return false, fmt.Errorf("portal: mark batch dead: %w", err)
		}
		r.pending.Add(-1)
		return true, nil
	default:
		r.db.ExecContext(ctx, `UPDATE event_outbox SET attempts = ?, last_error = ?, next_at = ? WHERE id = ?`,
			attempts+1, truncate(perr.Error(), 255), r.cfg.Now().Unix(), id)
		return false, perr
	}
}

// truncate returns s as valid UTF-8 of at most n bytes, cut on a rune
// boundary: MariaDB's utf8mb4 columns refuse invalid UTF-8 (a windows-1251
// portal's bytes, half a Cyrillic letter) where SQLite would store it.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// PendingHint returns how many batches this process believes wait in the
// outbox (no database read; for metrics).
func (r *Relay) PendingHint() int64 { return r.pending.Load() }
