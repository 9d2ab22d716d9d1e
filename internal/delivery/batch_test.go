package delivery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"

	"github.com/isobox/isobox/internal/delivery"
)

// A group of app events with tokens costs one EventAuth.BuildBatch call,
// not a Build per delivery; each delivery still carries its own token, and
// an item authprovider refuses is dead-lettered without failing the rest.
func TestGroupAuthInOneBatch(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) { c.Concurrency = 4 })
	h := newRecorder(t)
	const n = 6
	var items []map[string]any
	for i := range n {
		items = append(items, item(h.URL, "ONCRMDEALADD", i))
	}
	items = append(items, item(h.URL, refusedEvent, n))
	ids := e.post(items...).Result.IDs
	tokens := map[string]bool{}
	for range n {
		tok := formValue(t, h.next(t).body, "auth[access_token]")
		if tok == "" || tokens[tok] {
			t.Errorf("token %q: want a fresh token per delivery", tok)
		}
		tokens[tok] = true
	}
	rec := waitStatus(t, e, ids[n], delivery.StatusDead)
	if !strings.Contains(rec.LastError, "Application not installed") || rec.Attempts != 1 {
		t.Errorf("refused item: record = %+v", rec)
	}
	if b, s := e.auth.batches.Load(), e.auth.builds.Load(); b != 1 || s != 0 {
		t.Errorf("%d BuildBatch and %d Build calls for one group of %d, want 1 and 0", b, s, n+1)
	}
	if m := e.auth.minted.Load(); m != n {
		t.Errorf("%d tokens minted, want %d", m, n)
	}
}

// While authprovider is unreachable the batch fails and every item waits
// on its own, as before: no attempt is spent, nothing is dead-lettered.
func TestBatchUnavailableFallsBack(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) { c.Concurrency = 2 })
	h := newRecorder(t)
	e.auth.down.Store(true)
	ids := e.post(item(h.URL, "ONCRMDEALADD", 1), item(h.URL, "ONCRMDEALADD", 2)).Result.IDs
	// Each item asks on its own (Build) once the batch failed.
	for range 2 {
		select {
		case <-e.auth.refusals:
		case <-time.After(20 * time.Second):
			t.Fatal("no item asked authprovider on its own")
		}
	}
	e.auth.down.Store(false)
	t1, t2 := formValue(t, h.next(t).body, "auth[access_token]"), formValue(t, h.next(t).body, "auth[access_token]")
	if t1 == "" || t2 == "" || t1 == t2 {
		t.Errorf("tokens %q and %q: want two fresh tokens", t1, t2)
	}
	for _, id := range ids {
		if rec := waitStatus(t, e, id, delivery.StatusDelivered); rec.Attempts != 1 {
			t.Errorf("record = %+v, want delivered on the first attempt", rec)
		}
	}
	if e.auth.batches.Load() < 1 || e.auth.builds.Load() < 2 {
		t.Errorf("batches %d, builds %d: want the batch tried, then a Build per item", e.auth.batches.Load(), e.auth.builds.Load())
	}
}

// oldAuth is an authprovider from before BuildBatch.
type oldAuth struct{ *eventAuth }

func (a oldAuth) BuildBatch(context.Context, *tokenv1.BuildEventAuthBatchRequest) (*tokenv1.BuildEventAuthBatchResponse, error) {
	a.batches.Add(1)
	return nil, status.Error(codes.Unimplemented, "method BuildBatch not implemented")
}

// Against an authprovider without BuildBatch every item asks with Build,
// and the batch is not tried again.
func TestNoBatchOnOldAuthprovider(t *testing.T) {
	old := &eventAuth{refusals: make(chan struct{}, 100)}
	addr := startEventAuth(t, oldAuth{old})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := newEnv(t, func(c *delivery.Config) {
		c.Concurrency = 2
		c.Auth = delivery.GRPCAuth{Client: tokenv1.NewEventAuthClient(conn), ServiceKey: serviceKey}
	})
	h := newRecorder(t)
	tokens := map[string]bool{}
	for round := range 2 {
		e.post(item(h.URL, "ONCRMDEALADD", 2*round), item(h.URL, "ONCRMDEALADD", 2*round+1))
		for range 2 {
			tok := formValue(t, h.next(t).body, "auth[access_token]")
			if tok == "" || tokens[tok] {
				t.Errorf("token %q: want a fresh token per delivery", tok)
			}
			tokens[tok] = true
		}
	}
	if b, s := old.batches.Load(), old.builds.Load(); b != 1 || s != 4 {
		t.Errorf("%d BuildBatch and %d Build calls, want 1 and 4", b, s)
	}
}
