package delivery

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/testkit"
)

// Two relay instances share the fan-out consumer, so one round may hold
// ingest messages 1 and 3 (the other instance holds 2) and, after a failed
// round and redelivery, a later round 1, 2 and 3. The handler messages of
// both rounds cover the same sequence range but not the same events: they
// must not share a Nats-Msg-Id, or JetStream drops the second as a
// duplicate and the events of message 2 are acknowledged but never
// queued. Found by `make faults` (sigkill nats-1: 9 acknowledged events
// lost); fixed by deriving the id from the group's content.
func TestFanoutRoundsOfTheSameRangeKeepEveryEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, js := newBareService(ctx, t)

	const portal, url = "bx.fanout", "http://handler.lan/hook"
	var want []string
	for n := 1; n <= 3; n++ {
		items, err := events.ParseForm(portal, fmt.Sprintf(
			"QUERY[0][client_id]=&QUERY[0][auth][application_token]=tok&QUERY[0][query][QUERY_URL]=%s"+
				"&QUERY[0][query][QUERY_DATA][event]=ONTASKADD&QUERY[0][query][QUERY_DATA][data][ID]=%d", url, n))
		if err != nil {
			t.Fatal(err)
		}
		events.KeyIDs(portal, "", items)
		want = append(want, items[0].ID)
		c := events.Commit{Batches: []*events.Batch{{Portal: portal, ReceivedMs: time.Now().UnixMilli(), Items: items}}}
		if _, err := js.Publish(ctx, events.SubjectIn, c.Encode()); err != nil {
			t.Fatal(err)
		}
	}
	h := handlerKey(portal, "", "tok", url)
	s.handlers[h.Key] = &worker{} // the handler is known: no worker is started

	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamIn, jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		meta, _ := m.Metadata()
		s.seen.readMsg(meta.Sequence.Stream, m.Data())
		msgs = append(msgs, m)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d ingest messages, want 3", len(msgs))
	}

	if err := s.fanoutRound(ctx, []jetstream.Msg{msgs[0], msgs[2]}); err != nil {
		t.Fatal(err)
	}
	if err := s.fanoutRound(ctx, msgs); err != nil {
		t.Fatal(err)
	}

	queuedIDs := map[string]bool{}
	for _, g := range queued(ctx, t, js) {
		for _, e := range g.Entries {
			queuedIDs[e.ID] = true
		}
	}
	for i, id := range want {
		if !queuedIDs[id] {
			t.Errorf("event of ingest message %d (%s) acknowledged by the fan-out but never queued", i+1, id)
		}
	}
}

// A queue message settled, its ack lost, delivered again and settled with
// other events failing: the second retry holds other events than the first
// and must be stored too (it had the first one's id, r:<seq>, before).
func TestRepeatedSettlementQueuesEachRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, js := newBareService(ctx, t)
	h := handlerKey("bx.settle", "", "tok", "http://handler.lan/hook")
	g := &group{Portal: "bx.settle", Handler: h.Key, Entries: []entry{{ID: "evt_a", Form: "a=1"}, {ID: "evt_b", Form: "b=1"}}}
	if _, err := s.publishGroup(ctx, g, g.contentID("f:")); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamQueue, jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := m.Metadata()
	w := newWorker(s, h, cons)
	failed := result{status: 503, err: "HTTP 503"}
	w.settle(ctx, m, meta.Sequence.Stream, g, 1, []outcome{{e: g.Entries[0], res: failed}, {e: g.Entries[1], res: result{ok: true, status: 200}}})
	w.settle(ctx, m, meta.Sequence.Stream, g, 1, []outcome{{e: g.Entries[0], res: result{ok: true, status: 200}}, {e: g.Entries[1], res: failed}})

	retried := map[string]bool{}
	for _, q := range queued(ctx, t, js) {
		if q.Attempt == 1 {
			for _, e := range q.Entries {
				retried[e.ID] = true
			}
		}
	}
	if !retried["evt_a"] || !retried["evt_b"] {
		t.Errorf("retries queued for %v; want both evt_a (first settlement) and evt_b (second)", retried)
	}
}

// newBareService is a delivery service on a real NATS server with the
// streams set up, not started: the test drives its steps.
func newBareService(ctx context.Context, t *testing.T) (*Service, jetstream.JetStream) {
	t.Helper()
	srv := testkit.NATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Setup(ctx, js, events.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{JS: js, Auth: GRPCAuth{}, SecretsKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

// queued returns every group in the queue stream.
func queued(ctx context.Context, t *testing.T, js jetstream.JetStream) []*group {
	t.Helper()
	q, err := js.Stream(ctx, events.StreamQueue)
	if err != nil {
		t.Fatal(err)
	}
	info, err := q.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gs []*group
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		raw, err := q.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		g, err := decodeGroup(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// A queue publish that is never acknowledged (its stream leader lost
// JetStream mid-publish) fails the round instead of holding it, and with
// it the instance's whole fan-out, for ever. Found by `make faults`,
// "disk full nats-1": both relays' fan-outs waited on such publishes, the
// fan-out consumer had no pull waiting, and 10,735 acknowledged events sat
// undelivered until a relay restarted.
func TestFanoutRoundGivesUpOnAnUnacknowledgedQueuePublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	s, js := newBareService(ctx, t)
	const portal, url = "bx.stall", "http://handler.lan/hook"
	items, err := events.ParseForm(portal, "QUERY[0][client_id]=&QUERY[0][auth][application_token]=tok&QUERY[0][query][QUERY_URL]="+url+
		"&QUERY[0][query][QUERY_DATA][event]=ONTASKADD&QUERY[0][query][QUERY_DATA][data][ID]=1")
	if err != nil {
		t.Fatal(err)
	}
	events.KeyIDs(portal, "", items)
	c := events.Commit{Batches: []*events.Batch{{Portal: portal, ReceivedMs: time.Now().UnixMilli(), Items: items}}}
	if _, err := js.Publish(ctx, events.SubjectIn, c.Encode()); err != nil {
		t.Fatal(err)
	}
	s.handlers[handlerKey(portal, "", "tok", url).Key] = &worker{}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamIn, jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := m.Metadata()
	s.seen.readMsg(meta.Sequence.Stream, m.Data())

	// The queue's subjects have a listener that never answers, as a
	// stream leader that lost JetStream: the publish is sent, no
	// acknowledgement comes back.
	if err := js.DeleteStream(ctx, events.StreamQueue); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(events.SubjectQueue + ">")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	err = s.fanoutRound(ctx, []jetstream.Msg{m})
	if ctx.Err() != nil {
		t.Fatalf("the round waited for the queue publish until the caller gave up (%v)", err)
	}
	if err == nil {
		t.Fatal("the round succeeded without its queue publish being acknowledged")
	}
	if _, rerr := sub.NextMsg(time.Second); rerr != nil {
		t.Errorf("the queue publish never reached the listener (%v): the round failed for another reason: %v", rerr, err)
	}
}
