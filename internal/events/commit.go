package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Commit is one StreamIn message: the batches of the ingest calls that
// were waiting together (group commit). With sync_interval "always" every
// stored message costs one fsync, so concurrent calls share one.
type Commit struct {
	Batches []*Batch `json:"batches"`
}

// DecodeCommit parses a StreamIn message.
func DecodeCommit(data []byte) (*Commit, error) {
	var c Commit
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("events: decode commit: %w", err)
	}
	for i, b := range c.Batches {
		if b == nil {
			return nil, fmt.Errorf("events: decode commit: batch %d missing", i)
		}
		for j, it := range b.Items {
			if it.Item == nil || it.ID == "" {
				return nil, fmt.Errorf("events: decode commit: batch %d item %d incomplete", i, j)
			}
		}
	}
	return &c, nil
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
	data, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("events: encode batch: %w", err)
	}
	req := commitReq{batch: b, data: data, done: make(chan commitRes, 1)}
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
	// Hand-assembled {"batches":[...]}: the batches are already encoded.
	buf := make([]byte, 0, 16+len(group)*len(group[0].data))
	buf = append(buf, `{"batches":[`...)
	h := sha256.New()
	for i, r := range group {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, r.data...)
		h.Write([]byte(r.batch.ID()))
	}
	buf = append(buf, "]}"...)
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
