package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// ErrNotFound is returned for an unknown delivery or a message that has
// left the stream (older than the retention).
var ErrNotFound = errors.New("delivery: not found")

// requeue puts one event on its handler's queue again as a new message
// (attempts start over); msgID makes a repeated replay request idempotent.
func (s *Service) requeue(ctx context.Context, portal string, e entry, msgID string) error {
	v := viewOf(e.Form)
	h := handlerKey(portal, v.clientID, v.appToken, v.url)
	if err := s.ensureHandler(ctx, h); err != nil {
		return err
	}
	// The record first: the worker may deliver before publish returns, and
	// its record must win.
	prev, had := s.records.get(e.ID)
	s.records.update(Record{ID: e.ID, Handler: h.Key, URL: h.URL, ClientID: h.ClientID, Portal: portal,
		Event: v.event, Status: StatusPending, CreatedMs: e.ReceivedMs, UpdatedMs: s.cfg.Clock.Now().UnixMilli(), History: prev.History}, true)
	if _, err := s.publishGroup(ctx, &group{Portal: portal, Handler: h.Key, Entries: []entry{e}}, msgID); err != nil {
		if had {
			s.records.update(prev, true)
		}
		return fmt.Errorf("delivery: requeue %s: %w", e.ID, err)
	}
	return nil
}

// find returns the entry for id in a queue or dead-letter message.
func find(g *group, id string) (entry, bool) {
	for _, e := range g.Entries {
		if e.ID == id {
			return e, true
		}
	}
	return entry{}, false
}

// ReplayDelivery sends one delivery again, whatever its state: a dead
// letter is moved back to its queue; a delivered event is sent once more
// (from the queue stream, while within the retention).
// stored is a delivery's event as stored: its group, entry, and the
// stream message that holds it.
type stored struct {
	g      *group
	e      entry
	stream string
	st     jetstream.Stream
	seq    uint64
}

// load reads the stored event of rec: its dead letter while dead, else
// the queue message of its last attempt.
func (s *Service) load(ctx context.Context, rec Record) (stored, error) {
	id := rec.ID
	out := stored{stream: events.StreamQueue, seq: rec.Seq}
	if rec.Status == StatusDead && rec.DeadSeq > 0 {
		out.stream, out.seq = events.StreamDead, rec.DeadSeq
	}
	if out.seq == 0 {
		return stored{}, fmt.Errorf("%w: delivery %s has not been attempted yet", ErrNotFound, id)
	}
	st, err := s.js.Stream(ctx, out.stream)
	if err != nil {
		return stored{}, err
	}
	out.st = st
	raw, err := st.GetMsg(ctx, out.seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return stored{}, fmt.Errorf("%w: delivery %s is past the retention", ErrNotFound, id)
	}
	if err != nil {
		return stored{}, fmt.Errorf("delivery: read %s/%d: %w", out.stream, out.seq, err)
	}
	if out.g, err = decodeGroup(raw.Data); err != nil {
		return stored{}, err
	}
	e, ok := find(out.g, id)
	if !ok {
		return stored{}, fmt.Errorf("%w: delivery %s not in %s/%d", ErrNotFound, id, out.stream, out.seq)
	}
	out.e = e
	return out, nil
}

// Payload returns the form fields a delivery's handler receives, in
// order, without the auth block (minted per attempt, not kept).
func (s *Service) Payload(ctx context.Context, id string) ([][2]string, error) {
	rec, ok := s.records.get(id)
	if !ok {
		return nil, fmt.Errorf("%w: delivery %s", ErrNotFound, id)
	}
	sd, err := s.load(ctx, rec)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for pair := range strings.SplitSeq(string(payloadBody(sd.e.Form, nil)), "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		out = append(out, [2]string{unescape(k), unescape(v)})
	}
	return out, nil
}

func (s *Service) ReplayDelivery(ctx context.Context, id string) error {
	rec, ok := s.records.get(id)
	if !ok {
		return fmt.Errorf("%w: delivery %s", ErrNotFound, id)
	}
	sd, err := s.load(ctx, rec)
	if err != nil {
		return err
	}
	g, e, stream, st, seq := sd.g, sd.e, sd.stream, sd.st, sd.seq
	if err := s.requeue(ctx, g.Portal, e, id+":replay:"+strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
		return err
	}
	if stream == events.StreamDead {
		if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			s.log.Warn("delivery: remove replayed dead letter", "seq", seq, "err", err)
		}
	}
	return nil
}

// ReplayDead moves dead letters back to their queues: those of one handler
// (or all when handler is ""), dead-lettered at or after since (all when
// zero). It returns the replayed delivery ids.
func (s *Service) ReplayDead(ctx context.Context, handler string, since time.Time) ([]string, error) {
	st, err := s.js.Stream(ctx, events.StreamDead)
	if err != nil {
		return nil, err
	}
	subject := events.SubjectDead + "*"
	if handler != "" {
		subject = events.SubjectDead + handler
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	left := int(ci.NumPending)
	for left > 0 {
		batch, err := cons.Fetch(max(min(200, left), 1), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return ids, err
		}
		n, more := 0, true
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return ids, err
			}
			more = meta.NumPending > 0
			left--
			g, err := decodeGroup(m.Data())
			if err != nil {
				s.log.Error("delivery: undecodable dead letter", "seq", meta.Sequence.Stream, "err", err)
				continue
			}
			e := g.Entries[0]
			if err := s.requeue(ctx, g.Portal, e, e.ID+":dlq:"+itoa(meta.Sequence.Stream)); err != nil {
				return ids, err
			}
			if err := st.DeleteMsg(ctx, meta.Sequence.Stream); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				s.log.Warn("delivery: remove replayed dead letter", "seq", meta.Sequence.Stream, "err", err)
			}
			ids = append(ids, e.ID)
		}
		if n == 0 || !more {
			return ids, nil
		}
	}
	return ids, nil
}
