// Package certs gives isobox's listeners and links their TLS settings: a
// certificate pair read from files and re-read when the files change (so a
// renewed certificate is used from the next handshake, without a restart
// and without touching open connections), client settings that verify the
// peer against a CA file, and a local CA with leaf certificates for a LAN
// with no public CA (init.go).
package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery is how often a handshake may look at the files again.
const checkEvery = time.Second

// Pair is a certificate and key read from two PEM files. It re-reads them
// when their size or modification time changes; a pair that fails to load
// (half-written, mismatched) keeps the previous one in use and is logged.
type Pair struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // size and mtime of both files when cert was read
	checked time.Time
	failed  string // stamp of the last version that failed, logged once
}

// LoadPair reads the pair; it fails when either file is missing or they
// do not match, so a misconfigured service does not start.
func LoadPair(certFile, keyFile string, log *slog.Logger) (*Pair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert-file and --tls-key-file go together: set both or neither")
	}
	p := &Pair{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := p.stampNow()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("TLS key file is readable by other users; chmod 600 it", "path", keyFile, "mode", st.Mode().Perm().String())
	}
	p.cert, p.stamp, p.checked = &cert, stamp, p.now()
	return p, nil
}

func (p *Pair) stampNow() (string, error) {
	var b bytes.Buffer
	for _, f := range []string{p.certFile, p.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS: %w", err)
		}
		fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

// Current returns the certificate in use, re-reading the files first if
// they changed since the last look (at most once a second).
func (p *Pair) Current() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Sub(p.checked) < checkEvery {
		return p.cert
	}
	p.checked = now
	stamp, err := p.stampNow()
	if err != nil || stamp == p.stamp || stamp == p.failed {
		return p.cert
	}
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		p.failed = stamp
		p.log.Warn("TLS certificate changed but does not load; still using the previous one", "cert", p.certFile, "key", p.keyFile, "err", err)
		return p.cert
	}
	p.cert, p.stamp, p.failed = &cert, stamp, ""
	p.log.Info("TLS certificate reloaded", "cert", p.certFile)
	return p.cert
}

// GetCertificate is for tls.Config.GetCertificate.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.Current(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate: the pair
// is also the service's identity when it calls another isobox service.
func (p *Pair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return p.Current(), nil
}

// ClientAuth says whether a server asks its clients for certificates.
type ClientAuth int

const (
	// NoClientCert does not ask.
	NoClientCert ClientAuth = iota
	// VerifyClientCertIfGiven checks a certificate a client offers.
	VerifyClientCertIfGiven
	// RequireClientCert refuses clients without a valid certificate.
	RequireClientCert
)

// ServerConfig is the TLS config of a listener serving p. With a non-nil
// clientCAs and auth other than NoClientCert, client certificates are
// verified against clientCAs.
func ServerConfig(p *Pair, clientCAs *x509.CertPool, auth ClientAuth) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: p.GetCertificate,
		// TLS 1.2 with AEAD suites only (TLS 1.3's are all AEAD): Go's
		// defaults still accept the CBC suites, which a client talked
		// down to them would use. Every client isobox meets (Go, PHP's
		// curl, browsers, BearSSL on the ESP8266) offers these.
		CipherSuites: aeadSuites(),
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		switch auth {
		case VerifyClientCertIfGiven:
			c.ClientAuth = tls.VerifyClientCertIfGiven
		case RequireClientCert:
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return c
}

// LoadCAs reads a PEM file of CA certificates.
func LoadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("TLS CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// ClientConfig is the TLS config of a link to another service: the peer is
// verified against roots (nil = the system's roots) and, when identity is
// set, this service presents it as its client certificate.
func ClientConfig(roots *x509.CertPool, identity *Pair) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if identity != nil {
		c.GetClientCertificate = identity.GetClientCertificate
	}
	return c
}

// SelfConfig is the TLS config for a service calling its own listener
// (the REST gateway's hop to the gRPC server): the peer must present
// exactly the certificate p holds, whatever name or address it is reached
// by; p is also presented as the client certificate.
func SelfConfig(p *Pair) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below, against our own certificate.
		InsecureSkipVerify:   true,
		GetClientCertificate: p.GetClientCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("certs: peer sent no certificate")
			}
			cur := p.Current()
			if len(cur.Certificate) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, cur.Certificate[0]) {
				return errors.New("certs: peer is not this service")
			}
			return nil
		},
	}
}

// Load reads a service's TLS material: the served pair when either file is
// named (both are then required) and the CA pool when caFile is named. A nil
// result means that part of TLS is off.
func Load(certFile, keyFile, caFile string, log *slog.Logger) (*Pair, *x509.CertPool, error) {
	var (
		pair *Pair
		cas  *x509.CertPool
		err  error
	)
	if certFile != "" || keyFile != "" {
		if pair, err = LoadPair(certFile, keyFile, log); err != nil {
			return nil, nil, err
		}
	}
	if caFile != "" {
		if cas, err = LoadCAs(caFile); err != nil {
			return nil, nil, err
		}
	}
	return pair, cas, nil
}

// aeadSuites returns the TLS 1.2 suites a server accepts: ECDHE key
// exchange with AES-GCM or ChaCha20-Poly1305.
func aeadSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}
