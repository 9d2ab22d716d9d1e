package testkit

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS starts a NATS server with JetStream on a random loopback port, storing
// in t.TempDir(), and returns it; it is shut down when the test ends. Use
// srv.ClientURL() to connect.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	return NATSAt(t, t.TempDir())
}

// NATSAt is NATS with an explicit store directory, so that a test can stop
// a server and start another on the same data (a restart).
func NATSAt(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	return NATSWith(t, storeDir, nil)
}

// NATSWith is NATSAt with the options changed by configure before the
// server starts: users, nkeys, TLS (see TLSFiles).
func NATSWith(t testing.TB, storeDir string, configure func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: true,
	}
	if configure != nil {
		configure(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("testkit: nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		t.Fatal("testkit: nats server not ready after 30s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// JetStream connects to the NATS server at url with opts (credentials, say),
// closed when the test ends, and returns its JetStream context.
func JetStream(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
