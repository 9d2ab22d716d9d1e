package push

import (
	"bytes"
	"context"
	"net/http"
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
