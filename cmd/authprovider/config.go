package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/store"
)

// config is everything the server reads from flags, the environment and
// the configuration file (cmdline.Parse); the CLI subcommands read the few
// fields that find the server (cli.go). Each field's default is safe: the zero-argument start works.
type config struct {
	HTTPAddr  string // Bitrix-facing HTTP: /oauth/token/, /oauth/register/, /rest/...
	GRPCAddr  string // gRPC: admin and validation APIs
	AdminAddr string // REST gateway, console, health, metrics
	DataDir   string // admin key, embedded database
	DB        string // "" = embedded SQLite under DataDir; "mysql://..." = MariaDB/MySQL
	LogLevel  slog.Level

	TokenPrefix  string
	AccessTTL    time.Duration
	RefreshTTL   time.Duration
	CodeTTL      time.Duration
	RefreshGrace time.Duration

	PortalRegistration string        // "allowlist" (default) or "open"
	PublicURL          string        // how portals and apps reach HTTPAddr, for server_endpoint
	RelayURL           string        // eventrelay ingest, where rest.event.call items go
	ServiceKeyFile     string        // shared secret between authprovider and eventrelay
	PeerCheckInterval  time.Duration // how often eventrelay is asked whether it accepts the service key

	// dataDirStated says a CLI subcommand was given --data-dir (by flag,
	// environment or file) rather than left on the default.
	dataDirStated bool

	OAuth   oauthConfig   // further OAuth settings, oauth.go
	Portal  portalConfig  // further portal-protocol settings, portal.go
	Listen  listenConfig  // limits and TLS of every listener, listen.go
	Console consoleConfig // web console settings, console.go
}

// register binds the flags shared by the server and the CLI subcommands.
func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "Bitrix-facing HTTP address (/oauth/token/, /oauth/register/, /rest/...)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "gRPC address of the admin and validation APIs")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:8081", "admin HTTP address: REST gateway (/v1/...), /healthz, /readyz, /metrics")
	fs.StringVar(&c.DataDir, "data-dir", "data", "directory for the admin key and the embedded database")
	fs.StringVar(&c.DB, "db", "", "database: empty for the embedded one (<data-dir>/authprovider.db), sqlite:PATH for another SQLite file, or mysql://user:pass@tcp(host:port)/dbname")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")

	fs.StringVar(&c.TokenPrefix, "token-prefix", "isobox.", "prefix of every issued token (a client's own prefix overrides it)")
	fs.DurationVar(&c.AccessTTL, "access-ttl", time.Hour, "access token lifetime (a client's own lifetime overrides it)")
	fs.DurationVar(&c.RefreshTTL, "refresh-ttl", 180*24*time.Hour, "refresh token lifetime (a client's own lifetime overrides it)")
	fs.DurationVar(&c.CodeTTL, "code-ttl", 30*time.Second, "authorization code lifetime (a client's own lifetime overrides it)")
	fs.DurationVar(&c.RefreshGrace, "refresh-grace", 5*time.Second, "window in which a just-used refresh token may be presented again (lost response) without revoking its chain")

	fs.StringVar(&c.PortalRegistration, "portal-registration", "allowlist", "who may register a portal at /oauth/register/: allowlist (only hosts approved with authprovider portal allow) or open (any portal)")
	fs.StringVar(&c.PublicURL, "public-url", "", "URL portals and apps use to reach --http-addr (for server_endpoint); empty derives it from each request")
	fs.StringVar(&c.RelayURL, "relay-url", "http://127.0.0.1:8090", "eventrelay ingest base URL, where rest.event.call items are handed")
	fs.StringVar(&c.ServiceKeyFile, "service-key-file", "", "file holding the key authprovider and eventrelay authenticate each other with; empty = <data-dir>/service.key, created if absent")
	fs.DurationVar(&c.PeerCheckInterval, "peer-check-interval", 30*time.Second, "how often eventrelay (--relay-url) is asked whether it accepts the service key; a refusal makes /readyz answer 503")
	c.OAuth.register(fs)
	c.Portal.register(fs)
	c.Listen.register(fs)
	c.Console.register(fs)
}

// dsn returns the database DSN, defaulting to the embedded file.
func (c *config) dsn() string {
	if c.DB != "" {
		return c.DB
	}
	return "sqlite:" + c.embeddedDB()
}

// embeddedDB is the path of the embedded database under --data-dir.
func (c *config) embeddedDB() string { return filepath.Join(c.DataDir, "authprovider.db") }

func (c *config) serviceKeyPath() string {
	if c.ServiceKeyFile != "" {
		return c.ServiceKeyFile
	}
	return filepath.Join(c.DataDir, "service.key")
}

func (c *config) validate() error {
	if err := store.CheckDSN(c.DB); err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	switch c.PortalRegistration {
	case "allowlist", "open":
	default:
		return fmt.Errorf("--portal-registration: want allowlist or open, got %q", c.PortalRegistration)
	}
	for name, d := range map[string]time.Duration{"access-ttl": c.AccessTTL, "refresh-ttl": c.RefreshTTL, "code-ttl": c.CodeTTL} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive, got %s", name, d)
		}
	}
	if c.RefreshGrace < 0 {
		return fmt.Errorf("--refresh-grace must not be negative, got %s", c.RefreshGrace)
	}
	return nil
}

// parseConfig parses the server's flags, their environment variables and
// the --config file.
func parseConfig(args []string, stdout, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("authprovider", flag.ContinueOnError)
	c := &config{}
	c.register(fs)
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "authprovider", Server: true, Redact: redact, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	if len(p.Args) > 0 {
		return nil, cmdline.Usagef("unexpected argument %q: the server takes flags only (commands: authprovider help)", p.Args[0])
	}
	if err := c.validate(); err != nil {
		return nil, &cmdline.UsageError{Err: err}
	}
	return c, nil
}

// redact hides the password of a --db DSN in --print-config.
func redact(name, value string) string {
	if name == "db" {
		return store.RedactDSN(value)
	}
	return value
}
