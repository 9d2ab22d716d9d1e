package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Peers carries the address of a REST gateway call's HTTP client to the
// gRPC server, for audit logs. The gateway reaches gRPC over loopback, so
// the gRPC peer says nothing; and any gRPC caller can send metadata (the
// X-Forwarded-For the gateway forwards, too). So the gateway adds the
// client's address next to a key made for this process, and only metadata
// with that key is believed.
type Peers struct {
	key      string
	clientIP func(*http.Request) string
}

const peerMD = "x-isobox-gateway-peer"

// NewPeers returns Peers that name an HTTP client by clientIP (nil: the
// request's TCP peer).
func NewPeers(clientIP func(*http.Request) string) *Peers {
	if clientIP == nil {
		clientIP = func(r *http.Request) string { return hostOf(r.RemoteAddr) }
	}
	return &Peers{key: rand.Text(), clientIP: clientIP}
}

// Metadata is the gateway's runtime.WithMetadata hook.
func (p *Peers) Metadata(_ context.Context, r *http.Request) metadata.MD {
	return metadata.Pairs(peerMD, p.key+" "+p.clientIP(r))
}

// Remote is where a gRPC call came from: the HTTP client of the REST
// gateway when the call came through it (with " (REST gateway)"), else the
// gRPC peer's address.
func (p *Peers) Remote(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get(peerMD) {
			if k, addr, ok := strings.Cut(v, " "); ok && subtle.ConstantTimeCompare([]byte(k), []byte(p.key)) == 1 {
				return addr + " (REST gateway)"
			}
		}
	}
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	return hostOf(pr.Addr.String())
}

func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
