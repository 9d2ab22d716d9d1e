// Command pushbench measures isobox's push channel next to a minimal Go
// WebSocket server (coder/websocket, one goroutine per connection, default
// net/http buffers) in the same run:
//
//   - memory per idle WebSocket: RSS (and Go heap, stacks, goroutines) of
//     the server process before and after -conns subscribers connect;
//   - publish-to-receive latency: one message fanned out to -fanout
//     subscribers of one channel, -messages times, p50/p99 over every
//     delivery.
//
// It starts both servers itself on 127.0.0.1 (eventrelay with an embedded
// NATS in a temporary data directory, fsync on every message as shipped)
// and connects only to them; counts and the total time are bounded. It
// raises its open-file limit (inherited by the servers) to fit -conns.
//
//	go run ./cmd/pushbench -conns 10000 -fanout 1000 -messages 200
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

const (
	maxConns    = 20000
	maxMessages = 10000
)

type options struct {
	conns, fanout, messages int
	relay                   string
	timeout                 time.Duration
	settle                  time.Duration
	only                    string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo-server" {
		if err := runEchoServer(); err != nil {
			fmt.Fprintln(os.Stderr, "pushbench echo-server:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.conns, "conns", 10000, fmt.Sprintf("idle WebSocket connections for the memory figure (at most %d)", maxConns))
	flag.IntVar(&o.fanout, "fanout", 1000, "subscribers of the one channel for the latency figure")
	flag.IntVar(&o.messages, "messages", 200, fmt.Sprintf("messages published for the latency figure (at most %d)", maxMessages))
	flag.StringVar(&o.relay, "relay", "", "eventrelay binary; empty builds ./cmd/eventrelay (run from the repository root)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after connecting before memory is read")
	flag.StringVar(&o.only, "only", "", `run one part: "memory" or "latency" (default both)`)
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "pushbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.conns < 1 || o.conns > maxConns || o.fanout < 1 || o.fanout > maxConns || o.messages < 1 || o.messages > maxMessages {
		return fmt.Errorf("-conns and -fanout must be 1..%d, -messages 1..%d", maxConns, maxMessages)
	}
	need := uint64(max(o.conns, o.fanout)) + 512
	if err := raiseNoFile(need); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	tmp, err := os.MkdirTemp("", "pushbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.relay == "" {
		o.relay = filepath.Join(tmp, "eventrelay")
		fmt.Println("building ./cmd/eventrelay ...")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.relay, "./cmd/eventrelay")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build eventrelay: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	if o.only != "latency" {
		if err := runMemory(ctx, o, self, tmp); err != nil {
			return err
		}
	}
	if o.only != "memory" {
		return runLatency(ctx, o, self, tmp)
	}
	return nil
}

func runMemory(ctx context.Context, o options, self, tmp string) error {
	fmt.Printf("\n== idle WebSocket memory, %d connections\n", o.conns)
	var mem [2]memResult
	for i, target := range []func(context.Context) (*server, error){
		func(ctx context.Context) (*server, error) { return startEcho(ctx, self) },
		func(ctx context.Context) (*server, error) {
			return startRelay(ctx, o.relay, filepath.Join(tmp, "relay-mem"), true)
		},
	} {
		srv, err := target(ctx)
		if err != nil {
			return err
		}
		mem[i], err = measureIdle(ctx, srv, o.conns, o.settle)
		srv.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", srv.name, err)
		}
	}
	printMem(mem[:], o.conns)
	return nil
}

func runLatency(ctx context.Context, o options, self, tmp string) error {
	fmt.Printf("\n== publish-to-receive, 1 message to %d subscribers, %d messages\n", o.fanout, o.messages)
	for _, target := range []func(context.Context) (*server, error){
		func(ctx context.Context) (*server, error) { return startEcho(ctx, self) },
		func(ctx context.Context) (*server, error) {
			return startRelay(ctx, o.relay, filepath.Join(tmp, "relay-lat"), true)
		},
		func(ctx context.Context) (*server, error) {
			return startRelay(ctx, o.relay, filepath.Join(tmp, "relay-lat-nosync"), false)
		},
	} {
		srv, err := target(ctx)
		if err != nil {
			return err
		}
		lat, err := measureFanout(ctx, srv, o.fanout, o.messages)
		srv.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", srv.name, err)
		}
		fmt.Printf("%-32s deliveries %7d  p50 %8s  p99 %8s  max %8s\n", srv.name, lat.n, lat.p50, lat.p99, lat.max)
	}
	return nil
}

// raiseNoFile lifts the soft open-file limit to the hard one; it fails if
// even that is below need.
func raiseNoFile(need uint64) error {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	if r.Cur < need {
		return fmt.Errorf("open-file limit %d is below the %d needed; lower -conns", r.Cur, need)
	}
	return nil
}
