package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/daemon"
)

// listenConfig holds what every listener shares: limits and TLS.
type listenConfig struct {
	// ValidationAddr is the module's validation API (/v1/token/...); ""
	// serves it on --admin-addr.
	ValidationAddr string

	Limits daemon.Limits

	TLSCertFile       string // certificate (chain) of every listener
	TLSKeyFile        string
	TLSCAFile         string // verifies client certificates on gRPC and eventrelay's ingest certificate
	RequireClientCert bool   // gRPC callers must present a certificate signed by TLSCAFile
}

func (c *listenConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.ValidationAddr, "validation-addr", "", "HTTP address of the PHP module's validation API (/v1/token/validate, /mint, /code), apart from the admin API and metrics so each can be firewalled; empty = on --admin-addr")
	def := daemon.DefaultLimits()
	fs.DurationVar(&c.Limits.ReadHeaderTimeout, "read-header-timeout", def.ReadHeaderTimeout, "every listener: longest time to receive a request's headers (gRPC: the connection handshake)")
	fs.DurationVar(&c.Limits.ReadTimeout, "read-timeout", def.ReadTimeout, "every listener: longest time to receive a request's body after its headers")
	fs.DurationVar(&c.Limits.WriteTimeout, "write-timeout", def.WriteTimeout, "every listener: longest time to send a response")
	fs.DurationVar(&c.Limits.IdleTimeout, "idle-timeout", def.IdleTimeout, "every listener: an idle keep-alive connection is closed after this long")
	fs.IntVar(&c.Limits.MaxConns, "max-conns", def.MaxConns, "every listener: most open connections (0 = no cap); more are refused (503) and counted in isobox_listener_connections_refused_total")
	fs.IntVar(&c.Limits.MaxConnsPerIP, "max-conns-per-ip", def.MaxConnsPerIP, "every listener: most open connections from one client address, IPv6 per /64 (0 = no cap)")

	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (chain) served by every listener; re-read when the file changes. Empty = plain HTTP/gRPC (see `authprovider tls init`)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&c.TLSCAFile, "tls-ca-file", "", "PEM CA certificates that verify gRPC client certificates (eventrelay) and eventrelay's https --relay-url")
	fs.BoolVar(&c.RequireClientCert, "tls-require-client-cert", false, "gRPC listener: refuse callers without a client certificate signed by --tls-ca-file (mutual TLS)")
}

// tlsSetup is the loaded TLS material: nil fields when TLS is off.
type tlsSetup struct {
	pair *certs.Pair
	cas  *x509.CertPool
}

func (c *listenConfig) load(log *slog.Logger) (*tlsSetup, error) {
	pair, cas, err := certs.Load(c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, log)
	if err != nil {
		return nil, err
	}
	t := &tlsSetup{pair: pair, cas: cas}
	return t, c.validate(t)
}

func (c *listenConfig) validate(t *tlsSetup) error {
	if c.RequireClientCert && (t.pair == nil || t.cas == nil) {
		return errors.New("--tls-require-client-cert needs --tls-cert-file, --tls-key-file and --tls-ca-file")
	}
	return c.Limits.Validate()
}

// apply gives d the limits and TLS.
func (t *tlsSetup) apply(d *daemon.Daemon, c *listenConfig) {
	d.Limits = c.Limits
	if t.pair == nil {
		return
	}
	d.TLS = certs.ServerConfig(t.pair, nil, certs.NoClientCert)
	auth := certs.VerifyClientCertIfGiven
	if c.RequireClientCert {
		auth = certs.RequireClientCert
	}
	d.GRPCTLS = certs.ServerConfig(t.pair, t.cas, auth)
}

// selfDial is how the service reaches its own gRPC listener.
func (t *tlsSetup) selfDial() grpc.DialOption {
	if t.pair == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(certs.SelfConfig(t.pair)))
}

// relayClient is the HTTP client for eventrelay's ingest: it trusts
// --tls-ca-file (or the system's roots) and presents the service's
// certificate.
func (t *tlsSetup) relayClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = certs.ClientConfig(t.cas, t.pair)
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr}
}

// cliDial is how a CLI command reaches the server configured by c: TLS
// when the server has a certificate, verified against --tls-ca-file or,
// without one, against the server's certificate file itself.
func (c *listenConfig) cliDial() (grpc.DialOption, error) {
	if c.TLSCertFile == "" {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	pair, err := certs.LoadPair(c.TLSCertFile, c.TLSKeyFile, quiet)
	if err != nil {
		return nil, err
	}
	caFile := c.TLSCAFile
	if caFile == "" {
		caFile = c.TLSCertFile
	}
	roots, err := certs.LoadCAs(caFile)
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(certs.ClientConfig(roots, pair))), nil
}

// scheme is the URL scheme of the HTTP listeners.
func (a *app) scheme() string {
	if a.d.TLS != nil {
		return "https"
	}
	return "http"
}

// loopbackAddr reports whether a bound host:port is a loopback address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}
