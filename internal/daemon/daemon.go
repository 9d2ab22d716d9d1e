// Package daemon runs a service's listeners (HTTP and gRPC) side by side,
// answers liveness, readiness and metrics on the admin listener, and shuts
// everything down in order when asked: stop accepting, drain in-flight work,
// then release resources, within a deadline.
//
// Every listener gets the same defences: time limits on reading and writing
// and on idle connections, connection caps in all and per client address
// ([Limits]), and TLS when the service has a certificate.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ShutdownTimeout bounds a graceful shutdown: in-flight requests get this
// long to finish before connections are closed.
const ShutdownTimeout = 8 * time.Second

// Check is a readiness probe: nil when the dependency it checks is usable.
type Check func(ctx context.Context) error

type listener struct {
	name    string
	addr    string
	ln      net.Listener
	handler http.Handler
	http    *http.Server
	grpc    *grpc.Server
	// writeTimeout overrides Limits.WriteTimeout when positive.
	writeTimeout time.Duration
}

// Option adjusts one listener.
type Option func(*listener)

// WriteTimeout raises the listener's response time limit to at least d:
// for listeners whose handlers hold a request open on purpose (long polls).
func WriteTimeout(d time.Duration) Option {
	return func(l *listener) { l.writeTimeout = d }
}

// Daemon collects listeners, readiness checks and shutdown hooks, then runs
// them. Configure it before Run; it is not safe to add to while running.
type Daemon struct {
	log      *slog.Logger
	Registry *prometheus.Registry
	// Limits apply to every listener; New sets DefaultLimits. Set them
	// before GRPCOptions and Listen.
	Limits Limits
	// TLS, when set, makes every listener speak TLS only (HTTP listeners
	// offer HTTP/2 too). Set it before GRPCOptions and Listen.
	TLS *tls.Config
	// GRPCTLS, when set, is the gRPC listeners' TLS config instead of TLS
	// (e.g. one that asks for client certificates).
	GRPCTLS *tls.Config

	conns      *connMetrics
	listeners  []*listener
	checks     map[string]Check
	checkOrder []string
	closers    []func(context.Context)
	drainers   []func(context.Context)

	addrMu sync.Mutex        // guards bound, which Addr may read from any goroutine
	bound  map[string]string // listener name → bound address, set by Listen
}

// New returns a Daemon with a fresh Prometheus registry holding the Go
// runtime and process collectors.
func New(log *slog.Logger) *Daemon {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Daemon{log: log, Registry: reg, Limits: DefaultLimits(), conns: newConnMetrics(reg), checks: map[string]Check{}}
}

// HTTP adds an HTTP server named name that will listen on addr.
func (d *Daemon) HTTP(name, addr string, h http.Handler, opts ...Option) {
	l := &listener{name: name, addr: addr, handler: h}
	for _, o := range opts {
		o(l)
	}
	d.listeners = append(d.listeners, l)
}

// GRPC adds a gRPC server named name that will listen on addr. Build s
// with GRPCOptions, so that it has the limits and TLS.
func (d *Daemon) GRPC(name, addr string, s *grpc.Server) {
	d.listeners = append(d.listeners, &listener{name: name, addr: addr, grpc: s})
}

func (d *Daemon) grpcCreds() grpc.ServerOption {
	c := d.GRPCTLS
	if c == nil {
		c = d.TLS
	}
	if c == nil {
		return nil
	}
	c = c.Clone()
	c.NextProtos = []string{"h2"}
	return grpc.Creds(credentials.NewTLS(c))
}

// httpServer builds l's server with the limits and TLS.
func (d *Daemon) httpServer(l *listener) *http.Server {
	lim := d.Limits
	write := max(lim.WriteTimeout, l.writeTimeout)
	s := &http.Server{
		Handler:           bodyDeadline(lim.ReadTimeout, l.handler),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		WriteTimeout:      write,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(serverLog{d.log}, "", 0),
	}
	if d.TLS != nil {
		c := d.TLS.Clone()
		c.NextProtos = []string{"h2", "http/1.1"}
		s.TLSConfig = c
	}
	return s
}

// Ready registers a readiness check; /readyz answers 200 only when all pass.
func (d *Daemon) Ready(name string, c Check) {
	if _, ok := d.checks[name]; !ok {
		d.checkOrder = append(d.checkOrder, name)
	}
	d.checks[name] = c
}

// OnDrain registers fn to run after the listeners stopped accepting and
// finished their requests, before OnClose hooks: the place to finish
// background work (workers, hijacked connections such as websockets, which
// http.Server.Shutdown does not wait for).
func (d *Daemon) OnDrain(fn func(context.Context)) { d.drainers = append(d.drainers, fn) }

// OnClose registers fn to release a resource (database, broker) at the very
// end of shutdown. Hooks run in reverse order of registration.
func (d *Daemon) OnClose(fn func(context.Context)) { d.closers = append(d.closers, fn) }

// AdminHandler returns the admin mux: GET /healthz, GET /readyz and
// GET /metrics. Callers mount their own admin routes on it.
func (d *Daemon) AdminHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{Registry: d.Registry}))
	return mux
}

func (d *Daemon) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	failed := false
	var body []byte
	for _, name := range d.checkOrder {
		if err := d.checks[name](ctx); err != nil {
			failed = true
			body = fmt.Appendf(body, "%s: %v\n", name, err)
		} else {
			body = fmt.Appendf(body, "%s: ok\n", name)
		}
	}
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write(body)
}

// Listen binds every listener. It fails, releasing what it bound, if any
// address is taken. After Listen, Addr reports the bound addresses.
func (d *Daemon) Listen() error {
	if err := d.Limits.Validate(); err != nil {
		return err
	}
	for _, l := range d.listeners {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range d.listeners {
				if o.ln != nil {
					o.ln.Close()
				}
			}
			return fmt.Errorf("listen %s on %s: %w", l.name, l.addr, err)
		}
		if !d.secure(l) && !loopback(ln.Addr()) {
			d.log.Warn("listener reachable beyond this host without TLS: anyone on the network can read its traffic; set --tls-cert-file and --tls-key-file",
				"listener", l.name, "addr", ln.Addr().String())
		}
		lim := newLimitListener(ln, l.name, d.Limits, l.grpc == nil, d.conns)
		if l.grpc == nil {
			l.http = d.httpServer(l)
			lim.tls = l.http.TLSConfig
		}
		l.ln = lim
	}
	d.addrMu.Lock()
	d.bound = make(map[string]string, len(d.listeners))
	for _, l := range d.listeners {
		d.bound[l.name] = l.ln.Addr().String()
	}
	d.addrMu.Unlock()
	return nil
}

// serverLog takes net/http's error log lines: failed TLS handshakes are
// what any client that hangs up early (or a scanner) causes, so they go to
// debug where they cannot flood the log; the rest are warnings.
type serverLog struct{ log *slog.Logger }

func (s serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		s.log.Debug(msg)
	} else {
		s.log.Warn(msg)
	}
	return len(p), nil
}

// secure reports whether l speaks TLS.
func (d *Daemon) secure(l *listener) bool {
	if l.grpc != nil {
		return d.GRPCTLS != nil || d.TLS != nil
	}
	return d.TLS != nil
}

// loopback reports whether addr is on a loopback interface only.
func loopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Addr returns where the listener named name is bound, or "" before Listen.
// It is safe to call from any goroutine, e.g. from workers started before
// the listeners are bound.
func (d *Daemon) Addr(name string) string {
	d.addrMu.Lock()
	defer d.addrMu.Unlock()
	return d.bound[name]
}

// Run serves every listener until ctx is done or one fails, then shuts down
// gracefully. Listen must have been called. It returns nil after a clean
// shutdown caused by ctx.
func (d *Daemon) Run(ctx context.Context) error {
	errc := make(chan error, len(d.listeners))
	var wg sync.WaitGroup
	for _, l := range d.listeners {
		d.log.Info("listening", "listener", l.name, "addr", l.ln.Addr().String(), "tls", d.secure(l))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if l.http != nil {
				err = l.http.Serve(l.ln)
			} else {
				err = l.grpc.Serve(l.ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve %s: %w", l.name, err)
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-errc:
		d.log.Error("listener failed, shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	d.shutdown(sctx)
	wg.Wait()
	return runErr
}

func (d *Daemon) shutdown(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range d.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.http != nil {
				if err := l.http.Shutdown(ctx); err != nil {
					l.http.Close()
				}
				return
			}
			stopped := make(chan struct{})
			go func() { l.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				l.grpc.Stop()
			}
		}()
	}
	wg.Wait()
	for _, fn := range d.drainers {
		fn(ctx)
	}
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i](ctx)
	}
	d.log.Info("stopped")
}
