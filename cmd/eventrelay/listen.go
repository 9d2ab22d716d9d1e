package main

import (
	"crypto/x509"
	"flag"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/daemon"
)

// listenConfig holds what every listener shares: limits and TLS.
type listenConfig struct {
	Limits daemon.Limits

	TLSCertFile string // certificate (chain) of every listener, and the client certificate towards authprovider
	TLSKeyFile  string
	TLSCAFile   string // verifies authprovider's gRPC certificate; set = the link to authprovider uses TLS
}

func (c *listenConfig) register(fs *flag.FlagSet) {
	def := daemon.DefaultLimits()
	fs.DurationVar(&c.Limits.ReadHeaderTimeout, "read-header-timeout", def.ReadHeaderTimeout, "every listener: longest time to receive a request's headers (gRPC: the connection handshake)")
	fs.DurationVar(&c.Limits.ReadTimeout, "read-timeout", def.ReadTimeout, "every listener: longest time to receive a request's body after its headers")
	fs.DurationVar(&c.Limits.WriteTimeout, "write-timeout", def.WriteTimeout, "every listener: longest time to send a response (long polls get at least --push-poll-timeout plus 15s)")
	fs.DurationVar(&c.Limits.IdleTimeout, "idle-timeout", def.IdleTimeout, "every listener: an idle keep-alive connection is closed after this long")
	fs.IntVar(&c.Limits.MaxConns, "max-conns", def.MaxConns, "every listener: most open connections (0 = no cap); more are refused (503) and counted in isobox_listener_connections_refused_total")
	fs.IntVar(&c.Limits.MaxConnsPerIP, "max-conns-per-ip", def.MaxConnsPerIP, "every listener: most open connections from one client address, IPv6 per /64 (0 = no cap)")

	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (chain) served by every listener and presented to authprovider; re-read when the file changes. Empty = plain HTTP/gRPC")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&c.TLSCAFile, "tls-ca-file", "", "PEM CA certificates that verify authprovider's gRPC certificate; set, the link to --auth-grpc-addr uses TLS")
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
	return t, c.Limits.Validate()
}

// apply gives d the limits and TLS.
func (t *tlsSetup) apply(d *daemon.Daemon, c *listenConfig) {
	d.Limits = c.Limits
	if t.pair != nil {
		d.TLS = certs.ServerConfig(t.pair, nil, certs.NoClientCert)
	}
}

// selfDial is how the relay reaches its own gRPC listener.
func (t *tlsSetup) selfDial() grpc.DialOption {
	if t.pair == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(certs.SelfConfig(t.pair)))
}

// authDial is how the relay reaches authprovider's gRPC: TLS verified
// against --tls-ca-file when it is set (presenting the relay's certificate
// for mutual TLS), else plain.
func (t *tlsSetup) authDial() grpc.DialOption {
	if t.cas == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(certs.ClientConfig(t.cas, t.pair)))
}

// scheme is the URL scheme of the HTTP listeners.
func (a *app) scheme() string {
	if a.d.TLS != nil {
		return "https"
	}
	return "http"
}

// longPollWrite is the write limit of the listener holding long polls.
func longPollWrite(poll time.Duration) time.Duration { return poll + 15*time.Second }
