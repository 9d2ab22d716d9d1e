package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// group is one handler-queue message: events for one handler, in the
// order they were accepted, that share their attempt count. The fan-out
// writes one group per handler per round (so a burst of events for a
// handler costs one stored message, one fsync); a retry writes the items
// that failed as a new group.
type group struct {
	Portal  string `json:"portal"`
	Handler string `json:"handler"`
	// Attempt counts the attempts already made for these items.
	Attempt int `json:"attempt,omitempty"`
	// DueMs is when the next attempt is due (retries), unix milliseconds.
	DueMs   int64   `json:"due_ms,omitempty"`
	Entries []entry `json:"-"`
}

// entry is one event of a group: its delivery id and the item in its
// stored form (read with viewOf, delivered with payloadBody).
type entry struct {
	ReceivedMs int64
	ID, Form   string
}

// The stored form of a group is text: a magic line, the group's header as
// a JSON line, then one line per event "<received_ms> <id> <form>"
// (cheaper than JSON, still readable with `nats stream get`).
const groupMagic = "isobox-group v1\n"

func (g *group) encode() []byte {
	h, _ := json.Marshal(g)
	buf := make([]byte, 0, len(groupMagic)+len(h)+1+len(g.Entries)*512)
	buf = append(buf, groupMagic...)
	buf = append(buf, h...)
	buf = append(buf, '\n')
	for _, e := range g.Entries {
		buf = strconv.AppendInt(buf, e.ReceivedMs, 10)
		buf = append(buf, ' ')
		buf = append(buf, e.ID...)
		buf = append(buf, ' ')
		buf = append(buf, e.Form...)
		buf = append(buf, '\n')
	}
	return buf
}

// contentID is a Nats-Msg-Id derived from a group's handler and its
// events' ids, after prefix. Writing the same group again (a round or a
// settlement repeated after a crash) stores it once; a group with other
// events gets another id. The fan-out may repeat a round over the same
// ingest messages with other events (instances share the fan-out consumer,
// so a round may lack a message another instance held), and a settlement
// repeated after a lost ack may retry other events: an id derived from
// sequence numbers alone would drop those groups as duplicates.
func (g *group) contentID(prefix string) string {
	h := sha256.New()
	h.Write([]byte(g.Handler))
	for _, e := range g.Entries {
		h.Write([]byte{0})
		h.Write([]byte(e.ID))
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

func decodeGroup(data []byte) (*group, error) {
	rest, ok := bytes.CutPrefix(data, []byte(groupMagic))
	if !ok {
		return nil, errors.New("delivery: decode queue message: not an isobox group")
	}
	head, rest, _ := bytes.Cut(rest, []byte{'\n'})
	var g group
	if err := json.Unmarshal(head, &g); err != nil {
		return nil, fmt.Errorf("delivery: decode queue message: %w", err)
	}
	for len(rest) > 0 {
		line, tail, _ := bytes.Cut(rest, []byte{'\n'})
		rest = tail
		if len(line) == 0 {
			continue
		}
		ms, itemLine, ok1 := strings.Cut(string(line), " ")
		id, form, ok2 := strings.Cut(itemLine, " ")
		n, err := strconv.ParseInt(ms, 10, 64)
		if !ok1 || !ok2 || err != nil || id == "" || strings.ContainsAny(form, " \n") {
			return nil, errors.New("delivery: decode queue message: malformed event line")
		}
		g.Entries = append(g.Entries, entry{ReceivedMs: n, ID: id, Form: form})
	}
	if len(g.Entries) == 0 || g.Handler == "" {
		return nil, errors.New("delivery: queue message without items")
	}
	return &g, nil
}

func (s *Service) publishGroup(ctx context.Context, g *group, msgID string) (*jetstream.PubAck, error) {
	msg := &nats.Msg{Subject: events.SubjectQueue + g.Handler, Data: g.encode(), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.js.PublishMsg(ctx, msg)
}

// fanoutRound bounds one fan-out round.
const fanoutRound = 64

// fanout moves accepted events from StreamIn to the handler queues. Each
// round takes every ingest message waiting (up to fanoutRound), drops
// items already accepted within the dedup window, writes one message per
// handler, waits for all of them to be stored and only then acknowledges
// the ingest messages. A crash in between repeats the round; the handler
// messages carry deterministic ids, so JetStream stores them once.
func (s *Service) fanout(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		first, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				s.log.Error("fan-out: fetch", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range first.Messages() {
			msgs = append(msgs, m)
		}
		cancel()
		if len(msgs) == 0 {
			continue
		}
		if rest, err := cons.FetchNoWait(fanoutRound - 1); err == nil {
			for m := range rest.Messages() {
				msgs = append(msgs, m)
			}
		}
		if err := s.fanoutRound(ctx, msgs); err != nil {
			s.log.Error("fan-out: round", "err", err, "messages", len(msgs))
			for _, m := range msgs {
				m.NakWithDelay(time.Second)
			}
		}
	}
}

// queuePublishWait bounds the wait for a round's queue publishes to be
// acknowledged, as publishGroup bounds a retry's.
const queuePublishWait = 10 * time.Second

// maxGroupBytes bounds a queue message (below NATS's default 1 MiB max
// payload); a handler's events of one round take several if needed.
const maxGroupBytes = 512 << 10

func (s *Service) fanoutRound(ctx context.Context, msgs []jetstream.Msg) error {
	groups := map[string]*group{} // the handler's group being filled
	sizes := map[string]int{}
	var order []*group // every group, in the order they were started
	var keep []jetstream.Msg
	// Whether an item is a duplicate depends on every earlier ingest
	// message, some perhaps fanned out by another instance: wait until
	// this instance has read StreamIn that far (seen.go).
	var maxSeq uint64
	for _, m := range msgs {
		if meta, err := m.Metadata(); err == nil {
			maxSeq = max(maxSeq, meta.Sequence.Stream)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.seen.waitUpto(wctx, maxSeq)
	cancel()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		batches, err := events.DecodeCommitLite(m.Data())
		if err != nil {
			// It will never decode; keep it in the stream for inspection
			// but stop redelivering it.
			s.log.Error("fan-out: undecodable ingest message, terminated", "err", err, "seq", meta.Sequence.Stream)
			m.Term()
			continue
		}
		seq := meta.Sequence.Stream
		keep = append(keep, m)
		local := map[string]bool{}
		for _, b := range batches {
			for _, it := range b.Items {
				if local[it.ID] || s.seen.dup(it.ID, seq) {
					s.m.duplicates.Inc()
					continue
				}
				local[it.ID] = true
				h := handlerKey(b.Portal, it.ClientID, it.ApplicationToken, it.URL)
				if err := s.ensureHandler(ctx, h); err != nil {
					return err
				}
				n := len(it.ID) + len(it.Form) + 24
				g, ok := groups[h.Key]
				if !ok || sizes[h.Key]+n > maxGroupBytes {
					g = &group{Portal: b.Portal, Handler: h.Key}
					groups[h.Key], sizes[h.Key] = g, 256
					order = append(order, g)
				}
				sizes[h.Key] += n
				g.Entries = append(g.Entries, entry{ReceivedMs: b.ReceivedMs, ID: it.ID, Form: it.Form})
				s.records.update(Record{ID: it.ID, Handler: h.Key, URL: h.URL, ClientID: h.ClientID, Portal: b.Portal,
					Event: it.Event, Status: StatusPending, CreatedMs: b.ReceivedMs}, false)
			}
		}
	}
	var futures []jetstream.PubAckFuture
	for _, g := range order {
		msg := &nats.Msg{Subject: events.SubjectQueue + g.Handler, Data: g.encode(), Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, g.contentID("f:"))
		f, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("queue for handler %s: %w", g.Handler, err)
		}
		futures = append(futures, f)
	}
	// A publish whose acknowledgement never comes (its stream leader
	// lost JetStream or died mid-publish: `make faults`, "disk full
	// nats-1") must not hold the round, and with it this instance's
	// fan-out, for ever: after queuePublishWait the round fails, its
	// ingest messages are redelivered and the round is repeated (the
	// groups carry content ids, so one already stored is stored once).
	wait := time.NewTimer(queuePublishWait)
	defer wait.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("queue publish: %w", err)
		case <-wait.C:
			return fmt.Errorf("queue publish: no acknowledgement within %v", queuePublishWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, m := range keep {
		m.Ack()
	}
	return nil
}

// sleepCtx waits d or until ctx is done; it reports whether d passed. It is
// a back-off after a broker error, not a synchronisation.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
