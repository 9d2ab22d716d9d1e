package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/isobox/isobox/internal/broker"
	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/secret"
)

// config is everything eventrelay reads from flags, the environment and the
// configuration file (cmdline.Parse).
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
	NATSAuth           broker.ClientAuth
	NATSPasswordFile   string // file holding NATSAuth.Password
	LogLevel           slog.Level

	AuthGRPCAddr   string // authprovider's gRPC address, for minting delivery tokens
	ServiceKeyFile string // shared secret with authprovider
	AdminKeyFile   string // the relay admin API's key; "" = <data-dir>/relay-admin.key
	// PeerCheckInterval is how often authprovider is asked whether it
	// accepts the service key.
	PeerCheckInterval time.Duration

	Events eventsConfig // delivery settings, events.go
	Push   pushConfig   // push channel settings, push.go
	Listen listenConfig // limits and TLS of every listener, listen.go

	// flags and parsed are the server's flag set, bound to this config, and
	// where each value came from: the admin API's effective settings.
	flags  *flag.FlagSet
	parsed *cmdline.Parsed
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
	fs.StringVar(&c.NATSAuth.CredsFile, "nats-creds", "", "external NATS: credentials file (user JWT and nkey seed, as nsc writes it)")
	fs.StringVar(&c.NATSAuth.User, "nats-user", "", "external NATS: user name (with --nats-password or --nats-password-file)")
	fs.StringVar(&c.NATSAuth.Password, "nats-password", "", "external NATS: password; prefer --nats-password-file or the environment, a flag is visible in the process list")
	fs.StringVar(&c.NATSPasswordFile, "nats-password-file", "", "external NATS: file holding the password")
	fs.StringVar(&c.NATSAuth.NkeySeedFile, "nats-nkey-seed", "", "external NATS: file holding a user nkey seed (SU...)")
	fs.StringVar(&c.NATSAuth.TLSCAFile, "nats-tls-ca-file", "", "external NATS: CA certificate(s) that verify the servers' TLS certificates (enables TLS; verification is never skipped)")
	fs.StringVar(&c.NATSAuth.TLSCertFile, "nats-tls-cert-file", "", "external NATS: client certificate, for servers that verify clients")
	fs.StringVar(&c.NATSAuth.TLSKeyFile, "nats-tls-key-file", "", "external NATS: key of --nats-tls-cert-file")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&c.AuthGRPCAddr, "auth-grpc-addr", "127.0.0.1:9090", "authprovider gRPC address, where delivery tokens are minted")
	fs.StringVar(&c.ServiceKeyFile, "service-key-file", "", "file holding the key authprovider and eventrelay authenticate each other with; empty = <data-dir>/service.key, created if absent")
	fs.StringVar(&c.AdminKeyFile, "admin-key-file", "", "file holding the relay admin API's key, created if absent; empty = <data-dir>/relay-admin.key (packages: /etc/isobox/relay-admin.key, which authprovider's console reads too)")
	fs.DurationVar(&c.PeerCheckInterval, "peer-check-interval", 30*time.Second, "how often authprovider (--auth-grpc-addr) is asked whether it accepts the service key; a refusal makes /readyz answer 503")
	c.Events.register(fs)
	c.Push.register(fs)
	c.Listen.register(fs)
}

// adminKeyPath is where the relay admin key lives.
func (c *config) adminKeyPath() string {
	if c.AdminKeyFile != "" {
		return c.AdminKeyFile
	}
	return relayAdminKeyPath(c.DataDir)
}

func (c *config) serviceKeyPath() string {
	if c.ServiceKeyFile != "" {
		return c.ServiceKeyFile
	}
	return filepath.Join(c.DataDir, "service.key")
}

// parseConfig parses the server's flags, their environment variables and
// the --config file.
func parseConfig(args []string, stdout, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("eventrelay", flag.ContinueOnError)
	c := &config{}
	c.register(fs)
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "eventrelay", Server: true, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	if len(p.Args) > 0 {
		return nil, cmdline.Usagef("unexpected argument %q: the server takes flags only (commands: eventrelay help)", p.Args[0])
	}
	c.flags, c.parsed = fs, p
	if c.NATSPasswordFile != "" {
		if c.NATSAuth.Password != "" {
			return nil, errors.New("--nats-password and --nats-password-file: give one")
		}
		pw, err := secret.Read(c.NATSPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--nats-password-file: %w", err)
		}
		c.NATSAuth.Password = pw
	}
	return c, nil
}
