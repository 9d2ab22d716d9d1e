package main_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/testkit"
)

// countingHandler answers 200 and counts the deliveries per webhook-id.
type countingHandler struct {
	*handler
	mu   sync.Mutex
	byID map[string]int
}

func newCountingHandler(t *testing.T) *countingHandler {
	c := &countingHandler{handler: newHandler(t), byID: map[string]int{}}
	go func() {
		for h := range c.hits {
			c.mu.Lock()
			c.byID[h.header.Get("webhook-id")]++
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *countingHandler) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.byID))
	for k, v := range c.byID {
		out[k] = v
	}
	return out
}

// relaysIdle reports whether the fan-out and every handler queue consumer
// (the durable ones)
// have nothing pending or unacknowledged: every delivery was made.
func relaysIdle(ctx context.Context, js jetstream.JetStream) bool {
	for _, stream := range []string{events.StreamIn, events.StreamQueue} {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		names := st.ConsumerNames(ctx)
		n := 0
		for name := range names.Name() {
			c, err := st.Consumer(ctx, name)
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			if err != nil {
				return false
			}
			if info.Config.Durable == "" {
				continue // an instance's reader of the stream (ordered consumer), not a queue
			}
			if info.NumPending != 0 || info.NumAckPending != 0 {
				return false
			}
			n++
		}
		if names.Err() != nil || n == 0 {
			return false
		}
	}
	return true
}

// Two relay instances on one cluster, no special one: the same item in two
// different calls, the calls landing on different instances, is delivered
// once; and either instance's admin API shows every delivery.
func TestTwoRelaysDeliverAnItemOnce(t *testing.T) {
	s := startAuthprovider(t)
	cl := testkit.NATSCluster(t, 3)
	relays := []*testkit.Proc{
		s.startRelay(t, "--nats-url", cl.URL(), "--auth-grpc-addr", s.ap.Addr("grpc")),
		s.startRelay(t, "--nats-url", cl.URL(), "--auth-grpc-addr", s.ap.Addr("grpc")),
	}
	h := newCountingHandler(t)
	// Call i carries items i and i+1, so every item but the first and the
	// last is in two calls, and those go to different instances.
	const calls = 60
	want := map[string]bool{}
	for i := range calls {
		ids := s.ingest(t, relays[i%2], "portal",
			eventItem(h.URL+"/hook", "", "ONTASKADD", i), eventItem(h.URL+"/hook", "", "ONTASKADD", i+1))
		for _, id := range ids {
			want[id] = true
		}
	}
	if len(want) != calls+1 {
		t.Fatalf("%d distinct ids from %d calls; want %d", len(want), calls, calls+1)
	}
	js := jsTo(t, cl.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitFor(t, ctx, "every item delivered and the queues idle", func() bool {
		if len(h.counts()) != len(want) {
			return false
		}
		return relaysIdle(ctx, js)
	})
	for id, n := range h.counts() {
		if !want[id] {
			t.Errorf("delivered an id no call returned: %s", id)
		}
		if n != 1 {
			t.Errorf("item %s delivered %d times; want once", id, n)
		}
	}
	// Delivery history is shared: each instance lists every delivery as
	// delivered, whichever instance made it.
	for i, r := range relays {
		waitFor(t, ctx, "the deliveries in each instance's history", func() bool {
			var list struct {
				Deliveries []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				} `json:"deliveries"`
			}
			if err := json.Unmarshal([]byte(runCLI(t, s, r, "deliveries", "list", "--limit", "1000", "--json")), &list); err != nil {
				t.Fatalf("relay %d deliveries list: %v", i, err)
			}
			n := 0
			for _, d := range list.Deliveries {
				if want[d.ID] && d.Status == "delivered" {
					n++
				}
			}
			return n == len(want)
		})
	}
}
