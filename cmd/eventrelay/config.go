package main

import (
	"flag"
	"log/slog"
	"path/filepath"

	"github.com/isobox/isobox/internal/flagenv"
)

// envPrefix prefixes every flag's environment variable: --nats-url is
// EVENTRELAY_NATS_URL.
const envPrefix = "eventrelay"

// config is everything eventrelay reads from flags and the environment.
// Every default is safe: the zero-argument start works.
type config struct {
	HTTPAddr    string // event ingest and the push channel's subscriber endpoints
	PublishAddr string // the portal's push publish endpoint (loopback by default)
	AdminAddr   string // REST gateway, health, metrics
	GRPCAddr    string // admin API over gRPC
	DataDir     string // embedded NATS store, keys
	NATSURL     string // "" = embedded NATS server with JetStream
	NATSListen  string // embedded server's client address; "" = random loopback port
	SyncAlways  bool   // fsync every message in the embedded server (power-loss safe)
	// AllowSingleReplica permits --stream-replicas/--push-replicas 1 on a
	// NATS cluster (refused by default: one node's loss loses its streams).
	AllowSingleReplica bool
	LogLevel           slog.Level

	AuthGRPCAddr   string // authprovider's gRPC address, for minting delivery tokens
	ServiceKeyFile string // shared secret with authprovider

	Events eventsConfig // delivery settings, events.go
	Push   pushConfig   // push channel settings, push.go
	Listen listenConfig // limits and TLS of every listener, listen.go
}

func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8090", "HTTP address for event ingest (/v1/events) and push subscribers (/bitrix/sub/, /bitrix/subws/)")
	fs.StringVar(&c.PublishAddr, "publish-addr", "127.0.0.1:8895", "HTTP address of the push publish endpoint the portal posts to (/bitrix/pub/)")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:8091", "admin HTTP address: REST gateway (/v1/...), /healthz, /readyz, /metrics")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9091", "gRPC address of the admin API")
	fs.StringVar(&c.DataDir, "data-dir", "data", "directory for the embedded NATS store and keys")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS cluster URL(s), comma-separated; empty starts an embedded NATS server with JetStream")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "client address of the embedded NATS server; empty = a random loopback port")
	fs.BoolVar(&c.SyncAlways, "nats-sync-always", true, "embedded NATS: fsync every stored message before acknowledging it (survives power loss); false syncs every 2 minutes")
	fs.BoolVar(&c.AllowSingleReplica, "allow-single-replica", false, "permit --stream-replicas 1 / --push-replicas 1 on a NATS cluster (refused by default: losing the one node holding a stream loses or stalls its events)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&c.AuthGRPCAddr, "auth-grpc-addr", "127.0.0.1:9090", "authprovider gRPC address, where delivery tokens are minted")
	fs.StringVar(&c.ServiceKeyFile, "service-key-file", "", "file holding the key authprovider and eventrelay authenticate each other with; empty = <data-dir>/service.key, created if absent")
	c.Events.register(fs)
	c.Push.register(fs)
	c.Listen.register(fs)
}

func (c *config) serviceKeyPath() string {
	if c.ServiceKeyFile != "" {
		return c.ServiceKeyFile
	}
	return filepath.Join(c.DataDir, "service.key")
}

func parseConfig(name string, args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := &config{}
	c.register(fs)
	if err := flagenv.Parse(fs, envPrefix, args, getenv); err != nil {
		return nil, err
	}
	return c, nil
}
