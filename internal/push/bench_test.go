package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/testkit"
)

// BenchmarkFanout: one publish (text, through JetStream) delivered to n
// WebSocket subscribers of one channel; ns/op is publish-to-last-delivery.
// cmd/pushbench measures the same next to a minimal server.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	r := startRelay(b, testkit.NATS(b).ClientURL(), nil)
	ch := newID()
	q := "CHANNEL_ID=" + r.srv.cfg.Signer.SignChannel(ch)
	var got atomic.Int64
	all := make(chan struct{}, 1)
	var want atomic.Int64
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.subURL, "http")+"/bitrix/subws/?"+q, nil)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		r.waitRegistered(b)
		go func() {
			for {
				_, msg, err := c.Read(context.Background())
				if err != nil {
					return
				}
				k := int64(bytes.Count(msg, []byte(frameStart)))
				if got.Add(k) == want.Load() {
					all <- struct{}{}
				}
			}
		}()
	}
	body := body("bench")
	b.ResetTimer()
	for i := range b.N {
		want.Store(int64(i+1) * int64(n))
		resp, err := http.Post(r.pubURL+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err, resp)
		}
		resp.Body.Close()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			b.Fatalf("message %d: %d of %d deliveries", i, got.Load()-int64(i*n), n)
		}
	}
}

// BenchmarkTLSReplay: a subscriber reconnecting over TLS with a backlog of
// 1,000 messages (bodies of 500 B, or 50 B: the worst case for small
// frames, which then carry 3 messages instead of 256) from the in-memory
// recent history, read to the last one; ns/op, B/op and allocs/op are per
// replay, the in-process client's reading included. Sub-benchmarks compare
// the default 12 KiB frames with what a relay board asks for
// (frameBytes=2048, 1024): what a subscriber asking for small frames costs
// the relay (docs/security.md).
func BenchmarkTLSReplay(b *testing.B) {
	r := startRelay(b, testkit.NATS(b).ClientURL(), nil)
	r.srv.hub.onRegister = nil // the test hook's channel holds 64 registrations; a benchmark makes more
	files := testkit.TLS(b)
	mux := http.NewServeMux()
	mux.Handle("/bitrix/subws/", r.srv.SubscribeHandler())
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = files.Config.Clone()
	ts.StartTLS()
	b.Cleanup(ts.Close)
	roots := testkit.CAPool(b, files.CAFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}}}

	const backlog = 1000
	var last uint64
	for _, size := range []int{500, 50} {
		ch := newID()
		pad := strings.Repeat("x", size-40)
		for i := range backlog {
			resp, err := http.Post(r.pubURL+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json",
				strings.NewReader(`{"module_id":"b","command":"c`+strconv.Itoa(i%10)+`","params":{"p":"`+pad+`"}}`))
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(err, resp)
			}
			resp.Body.Close()
			last++
		}
		r.waitDispatched(b, last)
		q := "CHANNEL_ID=" + r.srv.cfg.Signer.SignChannel(ch) + "&mid=" + r.startMid()
		for _, fb := range []string{"", "2048", "1024"} {
			name := strconv.Itoa(size) + "B/frameBytes=" + fb
			if fb == "" {
				name = strconv.Itoa(size) + "B/default"
			}
			b.Run(name, func(b *testing.B) {
				url := "wss" + strings.TrimPrefix(ts.URL, "https") + "/bitrix/subws/?" + q
				if fb != "" {
					url += "&frameBytes=" + fb
				}
				frames := 0
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
					if err != nil {
						b.Fatal(err)
					}
					c.SetReadLimit(1 << 20)
					for got := 0; got < backlog; {
						_, msg, err := c.Read(ctx)
						if err != nil {
							b.Fatalf("replay %d: after %d of %d messages: %v", i, got, backlog, err)
						}
						got += bytes.Count(msg, []byte(frameStart))
						frames++
					}
					c.CloseNow()
					cancel()
				}
				b.ReportMetric(float64(frames)/float64(b.N), "frames/op")
			})
		}
	}
}
