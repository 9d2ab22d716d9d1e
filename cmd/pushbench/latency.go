package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type latResult struct {
	n             int
	p50, p99, max time.Duration
}

// measureFanout connects fanout subscribers to one channel, then publishes
// messages one at a time, each carrying its send time, and waits for every
// subscriber to get it; the latency of a delivery is receive time minus
// send time (same host, same clock).
func measureFanout(ctx context.Context, s *server, fanout, messages int) (latResult, error) {
	var (
		mu      sync.Mutex
		samples = make([]time.Duration, 0, fanout*messages)
		warmed  = make([]atomic.Bool, fanout)
		nWarm   atomic.Int64
		got     atomic.Int64
		all     = make(chan struct{}, 1)
	)
	onMsg := func(i int, b []byte) {
		now := time.Now()
		for _, part := range bytes.Split(b, []byte(`"sent":`))[1:] {
			end := bytes.IndexAny(part, ",}")
			if end < 0 {
				continue
			}
			sent, err := strconv.ParseInt(string(part[:end]), 10, 64)
			if err != nil {
				continue
			}
			if sent == 0 { // warm-up message
				if !warmed[i].Swap(true) {
					nWarm.Add(1)
				}
				continue
			}
			mu.Lock()
			samples = append(samples, now.Sub(time.Unix(0, sent)))
			mu.Unlock()
			if got.Add(1) == int64(fanout) {
				all <- struct{}{}
			}
		}
	}
	conns, err := dialAll(ctx, fanout, func(int) string { return s.fanURL }, onMsg)
	if err != nil {
		return latResult{}, err
	}
	defer closeAll(conns)
	// Publish warm-up messages until every subscriber is live.
	for nWarm.Load() < int64(fanout) {
		if err := publish(ctx, s.pubURL, 0, 0); err != nil {
			return latResult{}, err
		}
		select {
		case <-ctx.Done():
			return latResult{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(500 * time.Millisecond) // let the last warm-ups drain
	for n := 1; n <= messages; n++ {
		got.Store(0)
		if err := publish(ctx, s.pubURL, time.Now().UnixNano(), n); err != nil {
			return latResult{}, err
		}
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			return latResult{}, fmt.Errorf("message %d: %d of %d deliveries after 10s", n, got.Load(), fanout)
		case <-ctx.Done():
			return latResult{}, ctx.Err()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	return latResult{n: len(samples), p50: q(0.50).Round(10 * time.Microsecond), p99: q(0.99).Round(10 * time.Microsecond), max: samples[len(samples)-1].Round(10 * time.Microsecond)}, nil
}

func publish(ctx context.Context, url string, sent int64, n int) error {
	body := `{"module_id":"bench","command":"tick","params":{"n":` + strconv.Itoa(n) + `,"sent":` + strconv.FormatInt(sent, 10) + `},"extra":{}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Message-Expiry", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: HTTP %d", resp.StatusCode)
	}
	return nil
}
