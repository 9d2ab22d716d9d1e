package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Lifetimes of what Init creates.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 2 * 365 * 24 * time.Hour
)

// Files names what Init wrote.
type Files struct {
	CACert, CAKey     string // the CA: certificate to distribute, key to keep offline
	Cert, Key         string // the leaf: for --tls-cert-file and --tls-key-file
	CACreated         bool   // false when an existing CA in the directory was reused
	Hosts             []string
	NotAfter, CAUntil time.Time
}

// Init creates, in dir, a local CA (ca.crt, ca.key) unless one is there
// already, and a leaf certificate name.crt/name.key signed by it for
// hosts (DNS names or IP addresses) plus localhost and the loopback
// addresses, usable by a server and as a client certificate. Keys are
// ECDSA P-256 (every TLS client isobox meets speaks it: PHP's curl and
// streams, browsers, Go, BearSSL on the ESP8266) and are written 0600. An
// existing leaf of the same name is replaced.
func Init(dir, name string, hosts []string, now time.Time) (*Files, error) {
	if len(hosts) == 0 {
		return nil, errors.New("at least one host name is needed (--hosts isobox.lan,oauth.bitrix.info)")
	}
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || name == "ca" {
		return nil, fmt.Errorf("leaf name %q: want a plain file name other than ca", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &Files{
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"),
	}
	ca, caKey, err := loadCA(f.CACert, f.CAKey)
	switch {
	case errors.Is(err, os.ErrNotExist):
		ca, caKey, err = newCA(f.CACert, f.CAKey, now)
		if err != nil {
			return nil, err
		}
		f.CACreated = true
	case err != nil:
		return nil, err
	}
	f.CAUntil = ca.NotAfter

	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: []string{"isobox"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(LeafLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	seen := map[string]bool{}
	for _, h := range append(append([]string{}, hosts...), "localhost", "127.0.0.1", "::1") {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		f.Hosts = append(f.Hosts, h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", name, err)
	}
	f.NotAfter = tmpl.NotAfter
	// The leaf file carries the CA after the leaf: servers send the whole
	// chain, so clients that trust only the CA can verify.
	chain := append(pemBlock("CERTIFICATE", der), pemBlock("CERTIFICATE", ca.Raw)...)
	if err := writeKey(f.Key, key); err != nil {
		return nil, err
	}
	if err := writeFile(f.Cert, chain, 0o644); err != nil {
		return nil, err
	}
	return f, nil
}

func newCA(certFile, keyFile string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "isobox local CA " + now.UTC().Format("2006-01-02"), Organization: []string{"isobox"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	if err := writeKey(keyFile, key); err != nil {
		return nil, nil, err
	}
	if err := writeFile(certFile, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func loadCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if _, err := os.Stat(certFile); err != nil {
		return nil, nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("existing CA in %s: %w", filepath.Dir(certFile), err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !ca.IsCA {
		return nil, nil, fmt.Errorf("existing %s is not an ECDSA CA made by tls init", certFile)
	}
	return ca, key, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(path, pemBlock("PRIVATE KEY", der), 0o600)
}

// writeFile replaces path atomically with data in mode perm, so a service
// watching the file never reads half of it.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
