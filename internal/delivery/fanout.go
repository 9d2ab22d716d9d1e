package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// queued is one handler queue message: one event for one handler.
type queued struct {
	Portal     string      `json:"portal"`
	Handler    string      `json:"handler"`
	ReceivedMs int64       `json:"received_ms"`
	Item       events.Item `json:"item"`
}

func decodeQueued(data []byte) (*queued, error) {
	var q queued
	if err := json.Unmarshal(data, &q); err != nil {
		return nil, fmt.Errorf("delivery: decode queue message: %w", err)
	}
	if q.Item.Item == nil || q.Item.ID == "" {
		return nil, fmt.Errorf("delivery: queue message without item")
	}
	return &q, nil
}

// pendingBatch is an ingest batch whose items are being published to the
// handler queues; it is acknowledged once every publish is.
type pendingBatch struct {
	msg     jetstream.Msg
	futures []jetstream.PubAckFuture
}

// fanout copies each ingest batch's items to their handlers' queues, one
// message per item with the item's delivery id as Nats-Msg-Id (so an item
// handed off twice is queued once), and acknowledges the batch after every
// copy is stored. Publishes are asynchronous: the batch's items share the
// wait for the acks.
func (s *Service) fanout(ctx context.Context, cons jetstream.Consumer) {
	acks := make(chan pendingBatch, 1024)
	done := make(chan struct{})
	go func() { defer close(done); s.ackBatches(ctx, acks) }()
	defer func() { close(acks); <-done }()
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(256))
		if err != nil {
			s.log.Error("fan-out: subscribe", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		for {
			m, err := it.Next()
			if err != nil {
				break
			}
			pb, err := s.fanoutOne(ctx, m)
			if err != nil {
				s.log.Error("fan-out: batch", "err", err)
				m.NakWithDelay(time.Second)
				continue
			}
			acks <- pb
		}
		stop()
	}
}

func (s *Service) fanoutOne(ctx context.Context, m jetstream.Msg) (pendingBatch, error) {
	c, err := events.DecodeCommit(m.Data())
	if err != nil {
		// A message that cannot be decoded never will be; keep it in the
		// stream for inspection but stop redelivering it.
		s.log.Error("fan-out: undecodable ingest message, terminated", "err", err)
		m.Term()
		return pendingBatch{}, err
	}
	pb := pendingBatch{msg: m}
	for _, b := range c.Batches {
		if err := s.fanoutBatch(ctx, b, &pb); err != nil {
			return pb, err
		}
	}
	return pb, nil
}

func (s *Service) fanoutBatch(ctx context.Context, b *events.Batch, pb *pendingBatch) error {
	for _, it := range b.Items {
		h := HandlerKey(b.Portal, it)
		if err := s.ensureHandler(ctx, h); err != nil {
			return err
		}
		data, err := json.Marshal(queued{Portal: b.Portal, Handler: h.Key, ReceivedMs: b.ReceivedMs, Item: it})
		if err != nil {
			return fmt.Errorf("encode queue message: %w", err)
		}
		msg := &nats.Msg{Subject: events.SubjectQueue + h.Key, Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, it.ID)
		f, err := s.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("queue item %s: %w", it.ID, err)
		}
		pb.futures = append(pb.futures, f)
		s.records.update(Record{ID: it.ID, Handler: h.Key, URL: h.URL, ClientID: h.ClientID, Portal: b.Portal,
			Event: it.Event(), Status: StatusPending, CreatedMs: b.ReceivedMs}, false)
	}
	return nil
}

// ackBatches waits, in order, for each batch's publishes and acks it; a
// failed publish naks the batch so that it is fanned out again (the
// items already queued are dropped there as duplicates).
func (s *Service) ackBatches(ctx context.Context, in <-chan pendingBatch) {
	for pb := range in {
		ok := true
		for _, f := range pb.futures {
			select {
			case ack := <-f.Ok():
				if ack.Duplicate {
					s.m.duplicates.Inc()
				}
			case err := <-f.Err():
				s.log.Error("fan-out: queue publish", "err", err)
				ok = false
			case <-ctx.Done():
				return
			}
		}
		if ok {
			pb.msg.Ack()
		} else {
			pb.msg.NakWithDelay(time.Second)
		}
	}
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
