// Package grpcauth authenticates every gRPC call by the service it targets.
// Each service registers how its callers prove who they are (admin key,
// portal key, service key); a call to a service with no registered check is
// refused, so a new service is closed until someone decides who may call it.
package grpcauth

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Check authenticates a call. It returns the (possibly enriched) context, or
// an error, normally status.Error(codes.Unauthenticated, ...).
type Check func(ctx context.Context, fullMethod string) (context.Context, error)

// Checks maps a fully-qualified gRPC service name ("isobox.admin.v1.Admin")
// to the check its calls must pass. Fill it before the server starts.
type Checks map[string]Check

func (c Checks) check(ctx context.Context, fullMethod string) (context.Context, error) {
	svc := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndexByte(svc, '/'); i >= 0 {
		svc = svc[:i]
	}
	fn, ok := c[svc]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no authentication configured for "+svc)
	}
	return fn(ctx, fullMethod)
}

// ServerOptions returns the unary and stream interceptors enforcing c.
func (c Checks) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := c.check(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := c.check(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// BearerToken returns the token of an "authorization: Bearer <token>"
// metadata entry (grpc-gateway forwards the HTTP Authorization header as
// this entry), or "".
func BearerToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// Equal compares two secrets in constant time (for equal lengths).
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
