package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// handler is the events' destination: a loopback HTTP server that answers
// 200 and counts the deliveries of each webhook-id.
type handler struct {
	srv *http.Server
	URL string

	mu   sync.Mutex
	byID map[string]int
}

func startHandler() (*handler, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &handler{URL: "http://" + l.Addr().String() + "/hook", byID: map[string]int{}}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		id := r.Header.Get("webhook-id")
		h.mu.Lock()
		h.byID[id]++
		h.mu.Unlock()
	}), ReadHeaderTimeout: 5 * time.Second}
	go h.srv.Serve(l)
	return h, nil
}

func (h *handler) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[id]
}

func (h *handler) close() { h.srv.Close() }

// load sends events to the relays from several workers: each call carries
// a few new items and goes to the relays in turn, to the other relay when
// one fails. An item is acknowledged when a relay answered 200 with its id.
type load struct {
	// nonce makes this load's items unlike every other load's: the same
	// content would be the same delivery id, deduplicated by the relay.
	nonce   string
	t       *Topology
	hookURL string
	client  *http.Client
	seq     atomic.Int64

	mu       sync.Mutex
	acked    []string
	lastOK   time.Time
	longest  time.Duration // longest time without any successful call
	failures int64
}

func newLoad(t *Topology, hookURL string) *load {
	return &load{t: t, hookURL: hookURL, client: &http.Client{Timeout: 5 * time.Second}, nonce: rand.Text()}
}

// run sends until ctx ends with workers goroutines.
func (l *load) run(ctx context.Context, workers int) {
	l.mu.Lock()
	l.lastOK = time.Now()
	l.mu.Unlock()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				l.call(ctx, i)
			}
		}()
	}
	wg.Wait()
}

func (l *load) item() map[string]any {
	n := l.seq.Add(1)
	return map[string]any{
		"client_id":  nil,
		"auth":       map[string]any{"EVENT_SESSION": 7, "LOCAL_USER": 1, "application_token": "apptoken-faults"},
		"additional": map[string]any{"sendAuth": true, "sendRefreshToken": false, "category": "default"},
		"query": map[string]any{"DOMAIN": "portal.lan", "QUERY_URL": l.hookURL, "QUERY_DATA": map[string]any{
			"event": "ONTASKADD", "event_handler_id": 3, "data": map[string]any{"FIELDS": map[string]any{"ID": n, "RUN": l.nonce}}, "ts": 1700000000 + n,
		}},
	}
}

// call hands off one call of 1-3 new items, trying each relay once.
func (l *load) call(ctx context.Context, i int) {
	items := []map[string]any{l.item()}
	for range i % 3 {
		items = append(items, l.item())
	}
	body, _ := json.Marshal(items)
	for try := range len(l.t.RelayURLs) {
		url := l.t.RelayURLs[(i+try)%len(l.t.RelayURLs)] + "/v1/events"
		ids, err := l.post(ctx, url, body)
		if err == nil {
			l.mu.Lock()
			l.acked = append(l.acked, ids...)
			now := time.Now()
			l.longest = max(l.longest, now.Sub(l.lastOK))
			l.lastOK = now
			l.mu.Unlock()
			return
		}
		atomic.AddInt64(&l.failures, 1)
	}
	// Both refused: back off a little, as a portal's client would.
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
}

func (l *load) post(ctx context.Context, url string, body []byte) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.t.PortalID+":"+l.t.PortalSecret)
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, &refusal{url: url, status: resp.StatusCode, body: string(b)}
	}
	var r struct {
		Result struct {
			IDs []string `json:"ids"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Result.IDs) == 0 {
		return nil, fmt.Errorf("%s: answer %s: %v", url, b, err)
	}
	return r.Result.IDs, nil
}

// refusal is an answer other than 200 from a relay.
type refusal struct {
	url    string
	status int
	body   string
}

func (r *refusal) Error() string { return fmt.Sprintf("%s: %d %s", r.url, r.status, r.body) }

// take returns the items acknowledged since the last take and the longest
// time without a successful call, and starts a new period.
func (l *load) take() ([]string, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids, longest := l.acked, l.longest
	l.acked, l.longest = nil, 0
	return ids, longest
}
