package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
func (c *committer) store(ctx context.Context, b *Batch) (bool, error) {
	req := commitReq{batch: b, data: appendBatch(nil, b), done: make(chan commitRes, 1)}
	select {
	case c.in <- req:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.duplicate, r.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (c *committer) run(ctx context.Context) {
	for {
		var group []commitReq
		select {
		case <-ctx.Done():
			return
		case r := <-c.in:
			group = append(group, r)
		}
		size := len(group[0].data)
	more:
		for len(group) < maxGroupCalls && size < maxGroupBytes {
			select {
			case r := <-c.in:
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
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := c.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(StreamIn))
	if err != nil {
		return commitRes{err: err}
	}
	return commitRes{duplicate: ack.Duplicate}
}
