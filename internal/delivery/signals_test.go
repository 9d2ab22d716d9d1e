package delivery_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/delivery"
)

// lockedBuffer is a log sink written by the service's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gauge reads one series of reg: name with the label handler=key (or no
// label when key is ""). ok is false when the series is absent.
func gauge(t *testing.T, reg *prometheus.Registry, name, key string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := key == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "handler" && l.GetValue() == key {
					match = true
				}
			}
			if match {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// A handler that is down shows on /metrics without anything delivered: its
// circuit is open, its dead letters are counted, and the log says when an
// event was dead-lettered and when the circuit opened and closed.
func TestSignalsOfAHandlerThatIsDown(t *testing.T) {
	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	e := newEnv(t, func(c *delivery.Config) {
		c.Registry = reg
		c.Log = slog.New(slog.NewJSONHandler(logs, nil))
		c.BreakerFailures = 3
		c.BreakerCooldown = time.Hour
	})
	h := newRecorder(t, 500, 500, 500)
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	for range 3 {
		h.next(t)
	}
	rec := waitStatus(t, e, id, delivery.StatusDead)
	key := rec.Handler

	// The admin API shows each attempt and the payload as the handler
	// got it, without the auth block.
	d, err := e.svc.Admin().GetDelivery(context.Background(), &relayv1.GetDeliveryRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.History) != 3 || d.History[2].Status != 500 || !strings.Contains(d.History[2].Error, "HTTP 500") || d.History[0].AtMs == 0 {
		t.Errorf("history = %v", d.History)
	}
	hs, err := e.svc.Admin().ListHandlers(context.Background(), &relayv1.ListHandlersRequest{})
	if err != nil || len(hs.Handlers) != 1 || hs.Handlers[0].P50Ms <= 0 || hs.Handlers[0].P99Ms < hs.Handlers[0].P50Ms || hs.Handlers[0].P99Ms > 10000 {
		t.Errorf("handler quantiles = %v, %v", hs, err)
	}
	payload := map[string]string{}
	for _, f := range d.Payload {
		payload[f.Key] = f.Value
		if strings.HasPrefix(f.Key, "auth[") {
			t.Errorf("payload shows %s", f.Key)
		}
	}
	if payload["event"] != "ONCRMDEALADD" || payload["data[FIELDS][ID]"] != "1" {
		t.Errorf("payload = %v", d.Payload)
	}

	for name, want := range map[string]float64{
		"isobox_relay_handler_circuit_open": 1,
		"isobox_relay_handler_dead_letters": 1,
		"isobox_relay_handler_paused":       0,
		"isobox_relay_queue_depth":          0,
		"isobox_relay_handler_info":         1,
	} {
		if v, ok := gauge(t, reg, name, key); !ok || v != want {
			t.Errorf("%s{handler=%s} = %v (present %v), want %v", name, key, v, ok, want)
		}
	}
	if v, ok := gauge(t, reg, "isobox_relay_dead_letters", ""); !ok || v != 1 {
		t.Errorf("isobox_relay_dead_letters = %v (present %v), want 1", v, ok)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"delivery: dead-lettered"`, `"id":"` + id + `"`, `"attempts":3`, `"last_status":500`,
		`"msg":"delivery: circuit opened; the handler gets no deliveries until a probe succeeds"`, `"consecutive_failures":3`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}

	ctx := context.Background()
	if _, err := e.svc.SetPaused(ctx, key, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := gauge(t, reg, "isobox_relay_handler_paused", key); v != 1 {
		t.Errorf("paused gauge = %v after a pause", v)
	}
	if _, err := e.svc.SetPaused(ctx, key, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := gauge(t, reg, "isobox_relay_handler_circuit_open", key); v != 0 {
		t.Errorf("circuit gauge = %v after a resume", v)
	}
	if !strings.Contains(logs.String(), `"msg":"delivery: circuit closed (handler resumed)"`) {
		t.Errorf("no log line for the circuit closed by a resume:\n%s", logs.String())
	}
	if _, err := e.svc.ReplayDead(ctx, key, time.Time{}); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	waitStatus(t, e, id, delivery.StatusDelivered)
	if v, _ := gauge(t, reg, "isobox_relay_dead_letters", ""); v != 0 {
		t.Errorf("dead letters = %v after the replay", v)
	}
}
