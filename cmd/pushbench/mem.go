package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

type runtimeMem struct{}

func (runtimeMem) read() goMem {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return goMem{HeapInuse: float64(ms.HeapInuse), StackInuse: float64(ms.StackInuse), Goroutines: float64(runtime.NumGoroutine())}
}

type memResult struct {
	name          string
	rssBefore     int64 // kB
	rssAfter      int64
	before, after goMem
}

// dialAll opens n WebSockets (urlOf(i)) with bounded parallelism; each has
// a reader so that the server's pings are answered.
func dialAll(ctx context.Context, n int, urlOf func(i int) string, onMsg func(i int, b []byte)) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				c, _, err := websocket.Dial(dctx, urlOf(i), nil)
				cancel()
				if err != nil {
					select {
					case errc <- fmt.Errorf("dial %d: %w", i, err):
					default:
					}
					return
				}
				c.SetReadLimit(1 << 20)
				conns[i] = c
				go func() {
					for {
						_, b, err := c.Read(context.Background())
						if err != nil {
							return
						}
						if onMsg != nil {
							onMsg(i, b)
						}
					}
				}()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		closeAll(conns)
		return nil, err
	default:
	}
	return conns, nil
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.CloseNow()
		}
	}
}

func measureIdle(ctx context.Context, s *server, n int, settle time.Duration) (memResult, error) {
	r := memResult{name: s.name}
	// Warm up the server's code paths and pools before the baseline.
	warm, err := dialAll(ctx, 50, func(i int) string { return s.wsURL(n + i) }, nil)
	if err != nil {
		return r, err
	}
	defer closeAll(warm)
	time.Sleep(settle)
	if r.rssBefore, err = s.rssKB(); err != nil {
		return r, err
	}
	if r.before, err = s.goMem(ctx); err != nil {
		return r, err
	}
	t0 := time.Now()
	conns, err := dialAll(ctx, n, s.wsURL, nil)
	if err != nil {
		return r, err
	}
	defer closeAll(conns)
	fmt.Printf("%-32s %d connections in %s\n", s.name, n, time.Since(t0).Round(time.Millisecond))
	time.Sleep(settle)
	if r.rssAfter, err = s.rssKB(); err != nil {
		return r, err
	}
	if r.after, err = s.goMem(ctx); err != nil {
		return r, err
	}
	return r, nil
}

func printMem(rs []memResult, n int) {
	fmt.Printf("%-32s %12s %14s %14s %12s\n", "server", "RSS KB/conn", "heap KB/conn", "stack KB/conn", "goroutines/conn")
	for _, r := range rs {
		fn := float64(n)
		fmt.Printf("%-32s %12.1f %14.1f %14.1f %12.2f   (RSS %d -> %d kB)\n", r.name,
			float64(r.rssAfter-r.rssBefore)/fn,
			(r.after.HeapInuse-r.before.HeapInuse)/1024/fn,
			(r.after.StackInuse-r.before.StackInuse)/1024/fn,
			(r.after.Goroutines-r.before.Goroutines)/fn,
			r.rssBefore, r.rssAfter)
	}
}
