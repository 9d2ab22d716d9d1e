package grpcpeer_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/isobox/isobox/internal/grpcpeer"
)

// A peer that accepts TCP but does not speak gRPC yet (a service still
// starting) is not ready; once it serves, WaitReady sees it and a call
// made right after succeeds.
func TestWaitReady(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(l.Addr().String(), append(grpcpeer.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if grpcpeer.WaitReady(ctx, conn, 200*time.Millisecond) {
		t.Fatal("ready before the peer serves gRPC")
	}

	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	defer srv.Stop()
	if !grpcpeer.WaitReady(ctx, conn, 30*time.Second) {
		t.Fatalf("not ready after the peer started serving: %v", conn.GetState())
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("call after WaitReady: %v", err)
	}
}

// A cancelled context ends the wait at once, not ready.
func TestWaitReadyHonoursTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := grpc.NewClient(l.Addr().String(), append(grpcpeer.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if grpcpeer.WaitReady(ctx, conn, time.Hour) {
		t.Fatal("ready with a cancelled context and no gRPC peer")
	}
}

// The finding (session 6 review): a peer whose host dies without closing
// the TCP connection looked connected for the kernel's retransmission
// timeout (about 15 minutes), and every call waited for its deadline. A
// proxy that goes silent without closing anything stands in for the dead
// host: the connection's keepalive pings go unanswered and it stops being
// ready.
func TestASilentPeerIsNoticed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	defer srv.Stop()
	p := newSilencer(t, l.Addr().String())

	conn, err := grpc.NewClient(p.addr, append(grpcpeer.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	close(p.silence)
	deadline := time.Now().Add(grpcpeer.Keepalive + grpcpeer.PingTimeout + time.Minute)
	for conn.GetState() == connectivity.Ready {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		changed := conn.WaitForStateChange(wctx, connectivity.Ready)
		cancel()
		if !changed {
			t.Fatalf("still ready %v after the peer went silent", time.Until(deadline))
		}
	}
}

// silencer forwards TCP to a backend until silence is closed; then it
// stops forwarding in both directions and closes nothing, as a host that
// lost power would.
type silencer struct {
	addr    string
	silence chan struct{}
}

func newSilencer(t *testing.T, backend string) *silencer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silencer{addr: l.Addr().String(), silence: make(chan struct{})}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			select {
			case <-s.silence:
				<-done // swallow it; never answer, never close
				return
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(b, c)
			go pipe(c, b)
			go func() { <-done; c.Close(); b.Close() }()
		}
	}()
	return s
}
