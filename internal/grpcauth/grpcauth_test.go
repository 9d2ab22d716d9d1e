package grpcauth_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/isobox/isobox/internal/grpcauth"
)

// serve runs a real gRPC server on loopback with the health service behind
// checks, and returns a client for it.
func serve(t *testing.T, checks grpcauth.Checks) healthpb.HealthClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(checks.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func TestServiceWithoutCheckIsClosed(t *testing.T) {
	c := serve(t, grpcauth.Checks{})
	_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("err = %v, want Unauthenticated", err)
	}
}

func TestBearerCheck(t *testing.T) {
	checks := grpcauth.Checks{"grpc.health.v1.Health": func(ctx context.Context, _ string) (context.Context, error) {
		if !grpcauth.Equal(grpcauth.BearerToken(ctx), "s3cret") {
			return nil, status.Error(codes.Unauthenticated, "bad key")
		}
		return ctx, nil
	}}
	c := serve(t, checks)
	for _, tc := range []struct {
		header string
		want   codes.Code
	}{
		{"", codes.Unauthenticated},
		{"Bearer wrong", codes.Unauthenticated},
		{"Basic s3cret", codes.Unauthenticated},
		{"Bearer s3cret", codes.OK},
		{"bearer s3cret", codes.OK},
	} {
		ctx := context.Background()
		if tc.header != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tc.header)
		}
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		if status.Code(err) != tc.want {
			t.Errorf("%q: %v, want %v", tc.header, err, tc.want)
		}
	}
}
