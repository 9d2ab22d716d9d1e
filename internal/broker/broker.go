// Package broker gives eventrelay its NATS connection: to an external cluster
// when a URL is configured, or to a NATS server with JetStream embedded in the
// process, storing under the data directory.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config says where the broker is. The zero value starts an embedded server
// storing in "./data/nats" and listening on a random loopback port.
type Config struct {
	// URL of an external NATS cluster (comma-separated seed URLs). Empty
	// starts an embedded server.
	URL string
	// DataDir is where the embedded server keeps JetStream files. Empty
	// means "./data". Ignored with URL.
	DataDir string
	// Listen is the embedded server's client address, "host:port". Empty
	// means 127.0.0.1 on a random port: the embedded server is private to
	// this process unless an operator chooses to expose it.
	Listen string
	// SyncAlways makes the embedded server fsync every stored message before
	// acknowledging it (JetStream's sync_interval "always"). Without it the
	// server syncs every 2 minutes and a power loss can lose acknowledged
	// messages. Ignored with URL (the cluster's own setting applies).
	SyncAlways bool
	// Name identifies the connection in the server's monitoring.
	Name string
}

// Broker is a live NATS connection, and the embedded server behind it if any.
type Broker struct {
	// Conn is the client connection; use it for core NATS and JetStream.
	Conn *nats.Conn
	// Server is the embedded server, or nil when connected to an external one.
	Server *server.Server
	log    *slog.Logger
	closed chan struct{} // closed by nats when Conn is closed
}

// Open starts or connects to the broker and waits until the connection is up.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Broker, error) {
	b := &Broker{log: log, closed: make(chan struct{})}
	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.Server = srv
		url = srv.ClientURL()
		log.Info("embedded NATS server started", "url", url, "store", srv.StoreDir(), "sync_always", cfg.SyncAlways)
	}
	name := cfg.Name
	if name == "" {
		name = "isobox"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	if b.Server != nil {
		opts = append(opts, nats.InProcessServer(b.Server))
	}
	var conn *nats.Conn
	var err error
	for {
		conn, err = nats.Connect(url, opts...)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			b.Close()
			return nil, fmt.Errorf("broker: connect %s: %w", url, errors.Join(err, ctx.Err()))
		case <-time.After(time.Second):
			log.Warn("nats not reachable yet, retrying", "err", err)
		}
	}
	b.Conn = conn
	return b, nil
}

func startEmbedded(cfg Config) (*server.Server, error) {
	dir := cfg.DataDir
	if dir == "" {
		dir = "data"
	}
	host, port := "127.0.0.1", server.RANDOM_PORT
	if cfg.Listen != "" {
		var err error
		host, port, err = splitHostPort(cfg.Listen)
		if err != nil {
			return nil, err
		}
	}
	opts := &server.Options{
		ServerName: "isobox-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "nats"),
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.SyncAlways {
		opts.SyncAlways = true
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("broker: embedded server not ready after 30s")
	}
	return srv, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("broker: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("broker: listen port %q: %w", p, err)
	}
	return host, port, nil
}

// Ready reports whether the connection to NATS is up and JetStream answers.
func (b *Broker) Ready(ctx context.Context) error {
	if b.Conn == nil || !b.Conn.IsConnected() {
		return errors.New("broker: not connected")
	}
	if err := b.Conn.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("broker: flush: %w", err)
	}
	return nil
}

// Close drains the connection (delivering what was published) and stops
// the embedded server, if any.
func (b *Broker) Close() {
	if b.Conn != nil {
		if err := b.Conn.Drain(); err != nil {
			b.Conn.Close()
		}
		// Drain returns at once; the connection closes when the drain is
		// done (bounded by the connection's drain timeout, 30s by default).
		<-b.closed
	}
	if b.Server != nil {
		b.Server.Shutdown()
		b.Server.WaitForShutdown()
	}
}
