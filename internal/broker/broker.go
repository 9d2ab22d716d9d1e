// Package broker gives eventrelay its NATS connection: to an external cluster
// when a URL is configured (with the credentials and TLS settings of
// ClientAuth), or to a NATS server with JetStream embedded in the process,
// storing under the data directory.
//
// The embedded server is never open: it listens on loopback only, admits
// one client identity, an nkey whose seed is generated into the data
// directory (nats-client.nk, 0600), and encrypts its JetStream store with a
// key generated beside it (nats-store.key, 0600). See Config.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/isobox/isobox/internal/secret"
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
	// Auth holds the credentials and TLS settings for an external cluster.
	// Setting any of them without URL is an error: the embedded server's
	// credentials are generated, not configured.
	Auth ClientAuth
	// NoStoreEncryption leaves the embedded JetStream store in clear (for
	// measuring the cost of encryption only). Ignored with URL.
	NoStoreEncryption bool
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
	var authOpts []nats.Option
	if url == "" {
		if err := cfg.Auth.embeddedConflict(); err != nil {
			return nil, err
		}
		e, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.Server = e.srv
		url = e.srv.ClientURL()
		authOpts = []nats.Option{e.clientAuth}
		log.Info("embedded NATS server started", "url", url, "store", e.srv.StoreDir(), "sync_always", cfg.SyncAlways,
			"client_nkey", e.seedPath, "store_encrypted", !cfg.NoStoreEncryption)
	} else {
		var err error
		if authOpts, err = cfg.Auth.options(); err != nil {
			return nil, err
		}
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
	opts = append(opts, authOpts...)
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
		if fatal := cfg.Auth.explain(err); fatal != nil {
			b.Close()
			return nil, fmt.Errorf("broker: connect %s: %w", redact(url), fatal)
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

// embedded is a started embedded server and how to connect to it.
type embedded struct {
	srv        *server.Server
	clientAuth nats.Option
	seedPath   string
}

func startEmbedded(cfg Config) (*embedded, error) {
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
		if !isLoopback(host) {
			return nil, fmt.Errorf("broker: --nats-listen %s: the embedded NATS server listens on loopback only (127.0.0.1, ::1 or localhost); "+
				"to share a broker across hosts run a NATS cluster with TLS and authorization (deploy/nats.conf) and use --nats-url", cfg.Listen)
		}
	}
	seedPath := filepath.Join(dir, ClientSeedFile)
	pub, clientAuth, err := loadOrCreateClientKey(seedPath)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "isobox-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		// One identity, with every permission: the relay itself. The
		// server knows only the public key; the seed never crosses a
		// connection (nkey authentication signs a server nonce).
		Nkeys: []*server.NkeyUser{{Nkey: pub}},
	}
	if cfg.SyncAlways {
		opts.SyncAlways = true
	}
	onDisk, encrypted := storedStreams(opts.StoreDir)
	var oldKeyPath string
	if !cfg.NoStoreEncryption {
		keyPath := filepath.Join(dir, StoreKeyFile)
		// Rotation: the operator renamed the key to nats-store.key.old; a
		// new key is generated and the server re-encrypts the store with it
		// while loading.
		if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
			if old, err := secret.Read(keyPath + ".old"); err == nil {
				opts.JetStreamOldKey, oldKeyPath = old, keyPath+".old"
			}
		}
		if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) && encrypted > 0 && oldKeyPath == "" {
			return nil, fmt.Errorf("broker: the JetStream store in %s is encrypted but %s is missing: restore it from the backup of the data directory "+
				"(without it the stored events cannot be read; to start empty instead, move %s away)", opts.StoreDir, keyPath, opts.StoreDir)
		}
		key, err := loadOrCreateStoreKey(keyPath)
		if err != nil {
			return nil, err
		}
		opts.JetStreamKey = key
		// AES-GCM: every amd64 and arm64 server has AES instructions,
		// where it is faster than ChaCha20-Poly1305 (nats-server's default).
		opts.JetStreamCipher = server.AES
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("broker: embedded server not ready after 30s (an encrypted store opened with a different nats-store.key cannot be read; see docs/security.md)")
	}
	// A stream the server cannot decrypt (another key) or read is skipped
	// with a warning; the relay would then create it afresh over the old
	// files. Refuse instead.
	info, err := srv.Jsz(nil)
	if err != nil || info.Streams < onDisk {
		srv.Shutdown()
		loaded := 0
		if info != nil {
			loaded = info.Streams
		}
		return nil, fmt.Errorf("broker: the embedded server loaded %d of the %d streams in %s (%v): is %s the key this store was encrypted with? "+
			"Restore the data directory's backup; see docs/security.md", loaded, onDisk, opts.StoreDir, err, filepath.Join(dir, StoreKeyFile))
	}
	if oldKeyPath != "" {
		// Every stream loaded, so every one was re-encrypted: the old key
		// has no use left.
		if err := os.Remove(oldKeyPath); err != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("broker: remove the rotated-out store key: %w", err)
		}
	}
	return &embedded{srv: srv, clientAuth: clientAuth, seedPath: seedPath}, nil
}

// storedStreams counts the streams stored under a server's store directory
// and how many of them are encrypted.
func storedStreams(storeDir string) (streams, encrypted int) {
	metas, _ := filepath.Glob(filepath.Join(storeDir, server.JetStreamStoreDir, "*", "streams", "*", server.JetStreamMetaFile))
	for _, m := range metas {
		streams++
		if _, err := os.Stat(filepath.Join(filepath.Dir(m), server.JetStreamMetaFileKey)); err == nil {
			encrypted++
		}
	}
	return streams, encrypted
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
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
