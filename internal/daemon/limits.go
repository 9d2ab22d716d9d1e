package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"
)

// Limits bound what clients can hold on one listener before, or without,
// authenticating: how long they may take to send a request, how long a
// response may take to drain, how long an idle connection stays, and how
// many connections may be open at once, in all and from one client
// address. Every listener of a Daemon gets them.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (HTTP) and the
	// connection handshake, TLS included (gRPC).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request's body, from the end of its
	// headers. A request without a body is not bounded by it, so that long
	// polls can wait.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, from the end of the request's
	// headers (HTTP; a listener may raise it with [WriteTimeout]).
	// Hijacked connections (WebSockets) are not bounded by it.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that carries no request
	// (HTTP) or no stream (gRPC) for this long.
	IdleTimeout time.Duration
	// MaxConns caps a listener's open connections; 0 = no cap.
	MaxConns int
	// MaxConnsPerIP caps the connections one client address holds on a
	// listener (IPv6 clients are counted per /64); 0 = no cap.
	MaxConnsPerIP int
}

// DefaultLimits are the limits of a listener when the service sets none.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxConns:          10000,
		MaxConnsPerIP:     256,
	}
}

// Validate reports a limit that cannot work.
func (l Limits) Validate() error {
	for name, d := range map[string]time.Duration{
		"read-header-timeout": l.ReadHeaderTimeout, "read-timeout": l.ReadTimeout,
		"write-timeout": l.WriteTimeout, "idle-timeout": l.IdleTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive, got %s", name, d)
		}
	}
	if l.MaxConns < 0 || l.MaxConnsPerIP < 0 {
		return fmt.Errorf("--max-conns and --max-conns-per-ip must not be negative (0 = no cap)")
	}
	return nil
}

// GRPCOptions returns the gRPC server options that apply the limits, and
// TLS when the Daemon has a TLS config. Pass them to grpc.NewServer for a
// server added with GRPC.
func (d *Daemon) GRPCOptions() []grpc.ServerOption {
	l := d.Limits
	opts := []grpc.ServerOption{
		grpc.ConnectionTimeout(l.ReadHeaderTimeout),
		grpc.MaxConcurrentStreams(grpcMaxStreams),
		grpc.MaxRecvMsgSize(GRPCMaxRecvMsgSize),
		grpc.MaxHeaderListSize(grpcMaxHeaderList),
		// A client may ping at most every grpcMinPing (with or without a
		// call in flight: MaxConnectionIdle closes idle connections);
		// more often is answered with GOAWAY "too_many_pings" and a close.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinPing, PermitWithoutStream: true}),
		// Every call is unary: it must have sent its request and been
		// answered within ReadTimeout + WriteTimeout, so a client that opens
		// a stream and never sends its request holds it only that long.
		grpc.InTapHandle(callDeadline(l.ReadTimeout + l.WriteTimeout)),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.IdleTimeout,
			// A connection lives at most this long; then the client is
			// asked to reconnect and in-flight calls get ReadTimeout to
			// finish. It bounds streams that stall before their request.
			MaxConnectionAge:      grpcMaxConnAge,
			MaxConnectionAgeGrace: l.ReadTimeout,
			Time:                  l.IdleTimeout,
			Timeout:               20 * time.Second,
		}),
	}
	if c := d.grpcCreds(); c != nil {
		opts = append(opts, c)
	}
	return opts
}

// callDeadline gives every gRPC call at most d (or the client's shorter
// deadline). The stream's context ends when the call does, which releases
// the timer.
func callDeadline(d time.Duration) tap.ServerInHandle {
	return func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		context.AfterFunc(ctx, cancel)
		return ctx, nil
	}
}

// GRPCMaxRecvMsgSize bounds one gRPC request message: the largest the
// services take (an EventAuth batch of 256 requests, an admin call) are
// far smaller.
const GRPCMaxRecvMsgSize = 1 << 20

const (
	// grpcMaxHeaderList bounds a gRPC call's header block (grpc-go accepts
	// 16 MiB by default); metadata here is a bearer key and a few names.
	grpcMaxHeaderList = 64 << 10
	// grpcMinPing is the shortest interval between a client's keepalive
	// pings that the server tolerates.
	grpcMinPing = 10 * time.Second
	// grpcMaxStreams caps concurrent calls on one gRPC connection.
	grpcMaxStreams = 256
	// grpcMaxConnAge bounds a gRPC connection's life.
	grpcMaxConnAge = 10 * time.Minute
	// refuseWorkers bounds the goroutines answering refused connections; a
	// flood beyond it is closed without an answer.
	refuseWorkers = 64
	// refuseDeadline bounds writing a refusal.
	refuseDeadline = 2 * time.Second
)

// connMetrics are the listeners' connection counters.
type connMetrics struct {
	open    *prometheus.GaugeVec
	refused *prometheus.CounterVec
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	m := &connMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "isobox_listener_connections",
			Help: "Open connections per listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isobox_listener_connections_refused_total",
			Help: "Connections refused because a cap was reached, per listener and cap (max_conns, max_conns_per_ip).",
		}, []string{"listener", "reason"}),
	}
	reg.MustRegister(m.open, m.refused)
	return m
}

// limitListener caps the connections it hands out, in all and per client
// address. A refused connection is closed, after a "503" for HTTP
// listeners (through TLS on a TLS listener) so that a client sees why.
type limitListener struct {
	net.Listener
	name      string
	max       int
	perIP     int
	http      bool
	tls       *tls.Config // set: hand out TLS server connections
	metrics   *connMetrics
	refusers  chan struct{}
	mu        sync.Mutex
	total     int
	byAddress map[netip.Prefix]int
}

func newLimitListener(ln net.Listener, name string, l Limits, isHTTP bool, m *connMetrics) *limitListener {
	m.open.WithLabelValues(name)
	m.refused.WithLabelValues(name, "max_conns")
	m.refused.WithLabelValues(name, "max_conns_per_ip")
	return &limitListener{
		Listener: ln, name: name, max: l.MaxConns, perIP: l.MaxConnsPerIP, http: isHTTP,
		metrics: m, refusers: make(chan struct{}, refuseWorkers), byAddress: map[netip.Prefix]int{},
	}
}

// clientKey is the address a connection counts against: the IP, or its
// /64 for IPv6 (one host usually owns a whole /64).
func clientKey(addr net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := ip.BitLen()
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		reason := ""
		l.mu.Lock()
		switch {
		case l.max > 0 && l.total >= l.max:
			reason = "max_conns"
		case l.perIP > 0 && l.byAddress[key] >= l.perIP:
			reason = "max_conns_per_ip"
		default:
			l.total++
			l.byAddress[key]++
		}
		l.mu.Unlock()
		if reason != "" {
			l.metrics.refused.WithLabelValues(l.name, reason).Inc()
			l.refuse(c, reason)
			continue
		}
		l.metrics.open.WithLabelValues(l.name).Inc()
		var out net.Conn = &limitConn{Conn: c, release: func() { l.release(key) }}
		if l.tls != nil {
			// net/http needs the *tls.Conn itself to offer HTTP/2.
			out = tls.Server(out, l.tls)
		}
		return out, nil
	}
}

func (l *limitListener) release(key netip.Prefix) {
	l.mu.Lock()
	l.total--
	if l.byAddress[key]--; l.byAddress[key] <= 0 {
		delete(l.byAddress, key)
	}
	l.mu.Unlock()
	l.metrics.open.WithLabelValues(l.name).Dec()
}

// refuse closes c, telling an HTTP client why when a worker is free.
func (l *limitListener) refuse(c net.Conn, reason string) {
	if !l.http {
		c.Close()
		return
	}
	select {
	case l.refusers <- struct{}{}:
	default:
		c.Close()
		return
	}
	if l.tls != nil {
		c = tls.Server(c, l.tls)
	}
	go func() {
		defer func() { <-l.refusers }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseDeadline))
		body := "too many connections (" + reason + "); try again later\n"
		fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nRetry-After: 5\r\nConnection: close\r\n\r\n%s", len(body), body)
	}()
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// bodyDeadline bounds reading a request's body to d from the end of its
// headers; the deadline is lifted once the body is read, so a handler
// that then waits (a long poll) is not cut off.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	lifted bool
	lift   func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.lifted {
		b.lifted = true
		b.lift()
	}
	return n, err
}
