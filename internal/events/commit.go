package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Commit is one StreamIn message: the batches of the ingest calls that
// were waiting together (group commit). With sync_interval "always" every
// stored message costs one fsync, so concurrent calls share one.
type Commit struct {
	Batches []*Batch
}

// maxGroup bounds the calls and bytes stored in one message.
const (
	maxGroupCalls = 256
	maxGroupBytes = 4 << 20
)

type commitReq struct {
	batch *Batch
	data  []byte // the batch's JSON
	done  chan commitRes
}

type commitRes struct {
	duplicate bool
	err       error
}

// committer is the single writer of StreamIn. A call's batch waits only
// for the publish in flight (if any); every batch queued meanwhile goes
// into the next message together. No timer: an idle relay publishes a
// lone call at once.
type committer struct {
	js jetstream.JetStream
	in chan commitReq
}

func newCommitter(js jetstream.JetStream) *committer {
	return &committer{js: js, in: make(chan commitReq, maxGroupCalls)}
}

// store queues b and waits until it is durably stored (or ctx ends: then
// the batch may still be stored; the caller's retry is deduplicated).
// ErrItemTooLarge is returned for an item that alone exceeds what the
// broker takes in one message.
var ErrItemTooLarge = errors.New("events: item too large for the broker")

// limit is the largest commit message: the connection's max payload less
// room for headers, or maxGroupBytes.
func (c *committer) limit() int {
	l := maxGroupBytes
	if nc := c.js.Conn(); nc != nil && nc.MaxPayload() > 0 {
		l = min(l, int(nc.MaxPayload())-4096)
	}
	return l
}

// store queues b and waits until it is durably stored (or ctx ends: then
// the batch may still be stored; the caller's retry is deduplicated). A
// batch larger than one message is stored as several, each a batch of the
// same call; if one fails the caller retries the call and the items
// already stored are dropped as duplicates.
func (c *committer) store(ctx context.Context, b *Batch) (bool, error) {
	parts, err := split(b, c.limit())
	if err != nil {
		return false, err
	}
	reqs := make([]commitReq, len(parts))
	for i, p := range parts {
		reqs[i] = commitReq{batch: p, data: appendBatch(nil, p), done: make(chan commitRes, 1)}
		select {
		case c.in <- reqs[i]:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	dup := true
	for _, r := range reqs {
		select {
		case res := <-r.done:
			if res.err != nil {
				return false, res.err
			}
			dup = dup && res.duplicate
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return dup, nil
}

// split cuts b into batches whose encoding fits in limit bytes.
func split(b *Batch, limit int) ([]*Batch, error) {
	head := len(appendBatch(nil, &Batch{Portal: b.Portal, ReceivedMs: b.ReceivedMs})) + len(commitMagic)
	var parts []*Batch
	cur := &Batch{Portal: b.Portal, ReceivedMs: b.ReceivedMs}
	size := head
	for _, it := range b.Items {
		n := len(it.ID) + len(it.Form()) + 2
		if head+n > limit {
			return nil, fmt.Errorf("%w: %d bytes", ErrItemTooLarge, n)
		}
		if size+n > limit && len(cur.Items) > 0 {
			parts = append(parts, cur)
			cur = &Batch{Portal: b.Portal, ReceivedMs: b.ReceivedMs}
			size = head
		}
		cur.Items = append(cur.Items, it)
		size += n
	}
	return append(parts, cur), nil
}

func (c *committer) run(ctx context.Context) {
	var carry *commitReq // taken, but did not fit the previous message
	for {
		var group []commitReq
		if carry != nil {
			group, carry = append(group, *carry), nil
		} else {
			select {
			case <-ctx.Done():
				return
			case r := <-c.in:
				group = append(group, r)
			}
		}
		size, limit := len(group[0].data), c.limit()
	more:
		for len(group) < maxGroupCalls {
			select {
			case r := <-c.in:
				if size+len(r.data) > limit {
					carry = &r
					break more
				}
				group = append(group, r)
				size += len(r.data)
			default:
				break more
			}
		}
		res := c.publish(ctx, group)
		for _, r := range group {
			r.done <- res
		}
	}
}

func (c *committer) publish(ctx context.Context, group []commitReq) commitRes {
	// The batches are already encoded; a commit is their concatenation.
	buf := make([]byte, 0, len(commitMagic)+len(group)*len(group[0].data))
	buf = append(buf, commitMagic...)
	h := sha256.New()
	for _, r := range group {
		buf = append(buf, r.data...)
		h.Write([]byte(r.batch.ID()))
	}
	// A lone call keeps its own id, so a repeated call is stored once;
	// items are deduplicated one by one in the handler queues anyway.
	id := group[0].batch.ID()
	if len(group) > 1 {
		id = "g_" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	msg := &nats.Msg{Subject: SubjectIn, Data: buf, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	pctx, cancel := context.WithTimeout(ctx, commitBudget)
	defer cancel()
	ack, err := publishRetrying(pctx, c.js, msg)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return commitRes{err: fmt.Errorf("%w: %w", ErrStoreDown, err)}
	}
	if err != nil {
		return commitRes{err: err}
	}
	return commitRes{duplicate: ack.Duplicate}
}

// A commit is given commitBudget in all; one publish attempt waits at most
// commitAttempt for its acknowledgement. A publish whose stream leader
// died never gets an answer: waiting the whole budget on it kept ingest
// down for 10 s after a NATS node was SIGKILLed, while a new leader is
// elected in 4-9 s (nats-server's election timeout). Repeating the publish
// is safe: it carries the same Nats-Msg-Id, so JetStream stores it once.
const (
	commitBudget  = 10 * time.Second
	commitAttempt = 2 * time.Second
	commitBackoff = 100 * time.Millisecond
)

// publishRetrying publishes msg to StreamIn, repeating it while the
// cluster has no leader to answer (timeouts, no responders, a client
// reconnecting) until ctx ends. Other errors are returned at once.
func publishRetrying(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (*jetstream.PubAck, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, commitAttempt)
		ack, err := js.PublishMsg(actx, msg, jetstream.WithExpectStream(StreamIn))
		cancel()
		if err == nil || !leaderless(err) || ctx.Err() != nil {
			return ack, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(commitBackoff):
		}
	}
}

// leaderless reports whether a publish failed for want of a stream leader
// or a connection, not because of what was published. "No responders"
// is not one of them: while a leader is elected the replicas still hold
// the subject (the publish times out); nobody holding it means JetStream
// is off on every node (a full disk switches it off), and waiting would
// only delay a clear refusal.
func leaderless(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// ErrStoreDown is a commit refused because no server holds the event
// stream: JetStream is disabled or stopped on every node, which it does to
// itself when its disk is full.
var ErrStoreDown = errors.New("events: no JetStream server holds the event stream (JetStream disabled or stopped on every node; a full disk disables it)")
