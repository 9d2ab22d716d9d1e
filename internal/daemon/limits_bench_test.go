package daemon_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/daemon"
)

// BenchmarkPostThroughLimits measures a small POST to a no-op handler on
// loopback, served by a Daemon listener (body deadline, connection cap)
// and by a bare http.Server, to show what the limits cost per request.
//
//	go test -run '^$' -bench PostThroughLimits -count 5 ./internal/daemon/
func BenchmarkPostThroughLimits(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("{}"))
	})
	body := strings.Repeat("a", 300)
	post := func(b *testing.B, addr string) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		c := &http.Client{Transport: tr}
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Post("http://"+addr+"/", "application/x-www-form-urlencoded", bytes.NewReader([]byte(body)))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		tr.CloseIdleConnections()
	}
	b.Run("bare", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &http.Server{Handler: noop}
		go s.Serve(ln)
		defer s.Close()
		post(b, ln.Addr().String())
	})
	b.Run("daemon", func(b *testing.B) {
		d := daemon.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
		d.HTTP("app", "127.0.0.1:0", noop)
		if err := d.Listen(); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		post(b, d.Addr("app"))
		cancel()
		<-done
	})
}
