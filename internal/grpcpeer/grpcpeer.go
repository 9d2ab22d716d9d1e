// Package grpcpeer holds how one isobox service keeps its gRPC connection
// to the other: the web console to eventrelay, eventrelay to authprovider.
//
// The peer runs on the same host or LAN, and when it restarts the
// connection should come back as soon as the peer does. gRPC's default
// reconnect backoff grows to two minutes, and while a connection waits out
// its backoff every call fails at once with Unavailable, even when the
// peer has been up for a while: after eventrelay had been down for ten
// seconds, the console answered 502 for several seconds more. With
// DialOptions a lost connection is retried at least every MaxBackoff, and
// WaitReady lets a caller that should not fail while the peer is merely
// reconnecting (a person opening a console page) wait a bounded time.
package grpcpeer

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/keepalive"
)

// MaxBackoff is the longest a lost connection to the peer waits before it
// tries again. A connection attempt to a peer that is down costs one
// refused TCP connect (or one attempt timing out after MinConnectTimeout).
const MaxBackoff = time.Second

// MinConnectTimeout bounds one connection attempt (TCP and TLS handshake).
const MinConnectTimeout = 5 * time.Second

// Keepalive is how often a connection with nothing to read pings the
// peer, and PingTimeout how long it waits for the answer before it counts
// the connection lost: a peer whose host died without closing the TCP
// connection (power cut, cable pulled) would otherwise look connected for
// the kernel's retransmission timeout, about 15 minutes, during which
// every call waits for its deadline. The services accept a ping every 10 s
// (internal/daemon).
const (
	Keepalive   = 15 * time.Second
	PingTimeout = 5 * time.Second
)

// DialOptions returns the dial options of a connection to the peer
// service.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time: Keepalive, Timeout: PingTimeout, PermitWithoutStream: true,
	}), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  100 * time.Millisecond,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   MaxBackoff,
		},
		MinConnectTimeout: MinConnectTimeout,
	})}
}

// WaitReady waits at most wait, and no longer than ctx, for conn to be
// ready, starting a connection if it is idle, and reports whether it is.
// A caller goes on either way: if the peer is down, WaitReady has spent
// all of wait (a peer that accepts TCP but never answers: up to
// MinConnectTimeout, bounded by wait) and the call then fails with
// Unavailable. Waiting callers share the one connection attempt.
func WaitReady(ctx context.Context, conn *grpc.ClientConn, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return true
		case connectivity.Shutdown:
			return false
		case connectivity.Idle:
			conn.Connect()
		}
		if !conn.WaitForStateChange(ctx, s) {
			return conn.GetState() == connectivity.Ready
		}
	}
}
