package grpcpeer_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
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
