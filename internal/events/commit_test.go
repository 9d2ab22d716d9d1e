package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/testkit"
)

// A publish that gets no answer (its stream leader died with it) is
// repeated once the attempt times out, and the repeat, carrying the same
// Nats-Msg-Id, is stored once. Before, the commit waited its whole budget
// on the first attempt. Here the first attempt reaches a plain
// subscriber that never answers; the stream is created once it has.
func TestCommitRepeatsAPublishNobodyAnswered(t *testing.T) {
	srv := testkit.NATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	silent, err := nc.SubscribeSync(SubjectIn)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: SubjectIn, Data: []byte("commit"), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "b_repeat")
	done := make(chan error, 1)
	go func() {
		_, err := publishRetrying(ctx, js, msg)
		done <- err
	}()
	if _, err := silent.NextMsg(20 * time.Second); err != nil {
		t.Fatalf("the first attempt never arrived: %v", err)
	}
	silent.Unsubscribe()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamIn, Subjects: []string{SubjectIn}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("publish was not repeated until the stream answered: %v", err)
	}
	// Repeating after a lost acknowledgement stores nothing twice.
	ack, err := publishRetrying(ctx, js, msg)
	if err != nil || !ack.Duplicate {
		t.Fatalf("repeat: ack %+v, err %v; want a duplicate", ack, err)
	}
	s, err := js.Stream(ctx, StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

// With no server holding the event stream (JetStream off on every node,
// which a full disk does), a commit is refused at once with ErrStoreDown,
// the error ingest turns into its "event store is down" answer, instead
// of waiting its whole budget.
func TestCommitWithoutAStreamIsStoreDown(t *testing.T) {
	srv := testkit.NATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newCommitter(js)
	go c.run(ctx)
	items, err := ParseJSON("p", []byte(`[{"query":{"QUERY_URL":"http://127.0.0.1:1/h","QUERY_DATA":{"event":"ONTASKADD"}}}]`))
	if err != nil {
		t.Fatal(err)
	}
	b := &Batch{Portal: "p", Items: items}
	_, err = c.store(ctx, b)
	if !errors.Is(err, ErrStoreDown) {
		t.Fatalf("store without a stream: %v, want ErrStoreDown", err)
	}
}
