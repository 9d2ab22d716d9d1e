// Package auditlog is eventrelay's audit log: who changed what, when and
// from where, through the relay's admin API (its CLI, the web console, the
// REST gateway). It lives in a JetStream stream, so every relay instance
// on one NATS cluster writes to and reads from the same log, and it is
// bounded by age and size (the oldest entries go first).
package auditlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names in NATS.
const (
	Stream  = "ISOBOX_RELAY_AUDIT"
	subject = "isobox.relay.audit"
)

// Bounds of the stream.
const (
	MaxAge      = 400 * 24 * time.Hour
	MaxBytes    = 256 << 20
	maxEntry    = 8 << 10
	maxScanBack = 100000 // entries a filtered listing reads at most
)

// Sources of a change.
const (
	SourceAdminAPI = "admin-api"
	SourceCLI      = "cli"
	SourceConsole  = "console"
)

// Entry is one change. The JSON shape is the web console's audit entry's,
// plus the stream sequence.
type Entry struct {
	ID     string    `json:"id"`
	Seq    uint64    `json:"seq,omitempty"`
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"`
}

// Log is the audit stream.
type Log struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	now    func() time.Time
}

// Open creates the stream (or updates its limits).
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Log, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "isobox eventrelay audit log: changes made through the relay admin API",
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      MaxAge,
		MaxBytes:    MaxBytes,
		MaxMsgSize:  maxEntry,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: stream %s: %w", Stream, err)
	}
	return &Log{js: js, stream: st, now: time.Now}, nil
}

// cut bounds a field to n bytes, dropping what is not UTF-8 (a rune cut
// in two included).
func cut(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// NewID returns an entry id for time at: sortable (the time in
// milliseconds first, then randomness), 29 characters. The web console's
// audit log uses the same form.
func NewID(at time.Time) string {
	b := make([]byte, 8)
	rand.Read(b)
	return fmt.Sprintf("%013x%s", at.UnixMilli(), hex.EncodeToString(b))[:29]
}

// Record appends e; its ID and At are set here. Detail must hold no
// secret.
func (l *Log) Record(ctx context.Context, e Entry) error {
	at := l.now().UTC()
	e.ID = NewID(at)
	e.At, e.Seq = at, 0
	e.Source, e.Actor, e.Action = cut(e.Source, 16), cut(e.Actor, 64), cut(e.Action, 64)
	e.Target, e.Detail, e.Remote = cut(e.Target, 255), cut(e.Detail, 4000), cut(e.Remote, 128)
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := l.js.Publish(ctx, subject, data); err != nil {
		return fmt.Errorf("audit log: write: %w", err)
	}
	return nil
}

// Filter selects entries; zero fields match all.
type Filter struct {
	Since, Until time.Time
	Actor        string
	Limit        int
}

func (f Filter) match(e Entry) bool {
	return (f.Since.IsZero() || !e.At.Before(f.Since)) && (f.Until.IsZero() || !e.At.After(f.Until)) && (f.Actor == "" || e.Actor == f.Actor)
}

func decode(seq uint64, data []byte) (Entry, bool) {
	var e Entry
	if json.Unmarshal(data, &e) != nil {
		return Entry{}, false
	}
	e.Seq = seq
	return e, true
}

// List returns entries, newest first: at most f.Limit (200 when zero; at
// most 10,000), reading back at most 100,000 entries.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	f.Limit = min(f.Limit, 10000)
	info, err := l.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	var out []Entry
	for seq, n := last, 0; seq >= first && seq > 0 && n < maxScanBack && len(out) < f.Limit; seq, n = seq-1, n+1 {
		m, err := l.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // aged out meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("audit log: read %d: %w", seq, err)
		}
		e, ok := decode(seq, m.Data)
		if !ok {
			continue
		}
		if !f.Since.IsZero() && e.At.Before(f.Since) {
			break // older from here on
		}
		if f.match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Each calls fn with every entry matching f (f.Limit ignored), oldest
// first, after sequence after (0: from the start).
func (l *Log) Each(ctx context.Context, f Filter, after uint64, fn func(Entry) error) error {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	last := info.State.LastSeq
	if last == 0 || after >= last {
		return nil
	}
	// Entries are filtered by their own time, not the stream's: instances'
	// clocks differ a little, and the log is small (changes people make).
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("audit log: read: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("audit log: read: %w", err)
			}
			seq := md.Sequence.Stream
			if e, ok := decode(seq, m.Data()); ok && f.match(e) {
				if err := fn(e); err != nil {
					return err
				}
			}
			if seq >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("audit log: read: %w", err)
		}
		if got == 0 {
			return nil // the rest aged out while being read
		}
	}
}
