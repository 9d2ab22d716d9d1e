package certs

import (
	"crypto"
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
	"syscall"
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
	// KeyKept is set when the leaf was renewed with its existing key
	// (InitKeepKey); Pin is then that key's pin, unchanged, or nil for a
	// key a relay board cannot pin.
	KeyKept bool
	Pin     *KeyPin
}

// Init creates, in dir, a local CA (ca.crt, ca.key) unless one is there
// already, and a leaf certificate name.crt/name.key signed by it for
// hosts (DNS names or IP addresses) plus localhost and the loopback
// addresses, usable by a server and as a client certificate. Keys are
// ECDSA P-256 (every TLS client isobox meets speaks it: PHP's curl and
// streams, browsers, Go, BearSSL on the ESP8266) and are written 0600. An
// existing leaf of the same name is replaced.
func Init(dir, name string, hosts []string, now time.Time) (*Files, error) {
	return initLeaf(dir, name, hosts, now, false)
}

// InitKeepKey is Init renewing the leaf with the private key already in
// name.key instead of a new one, so that the public key — what relay
// boards pin (firmware/) — stays the same. The key file is read, never
// written: its mode and owner stay as they are. It fails when the key is
// missing, unreadable, not a private key, readable by others (like
// doctor: 0600, or 0640 with the service group), or not the key of an
// existing name.crt. The new certificate keeps the old one's mode and,
// when run as root, its owner.
func InitKeepKey(dir, name string, hosts []string, now time.Time) (*Files, error) {
	return initLeaf(dir, name, hosts, now, true)
}

func initLeaf(dir, name string, hosts []string, now time.Time, keepKey bool) (*Files, error) {
	if len(hosts) == 0 {
		return nil, errors.New("at least one host name is needed (--hosts isobox.lan,oauth.bitrix.info)")
	}
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || name == "ca" {
		return nil, fmt.Errorf("leaf name %q: want a plain file name other than ca", name)
	}
	f := &Files{
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"),
	}
	var kept crypto.Signer
	if keepKey {
		// Before anything is created: a wrong --dir or --name must not
		// leave a new CA behind.
		var err error
		if kept, f.Pin, err = existingKey(f.Key, f.Cert); err != nil {
			return nil, err
		}
		f.KeyKept = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, caKey, err := loadCA(f.CACert, f.CAKey)
	switch {
	case errors.Is(err, os.ErrNotExist) && keepKey:
		// A new CA would sign a certificate nobody trusts yet.
		return nil, fmt.Errorf("--keep-key: no CA in %s (ca.crt and ca.key of the first tls init): renew where it is, or give that --dir", dir)
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
	var (
		key *ecdsa.PrivateKey
		pub crypto.PublicKey
	)
	if kept != nil {
		pub = kept.Public()
	} else {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		pub = &key.PublicKey
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", name, err)
	}
	f.NotAfter = tmpl.NotAfter
	// The leaf file carries the CA after the leaf: servers send the whole
	// chain, so clients that trust only the CA can verify.
	chain := append(pemBlock("CERTIFICATE", der), pemBlock("CERTIFICATE", ca.Raw)...)
	if kept != nil {
		return f, replaceKeepingOwner(f.Cert, chain, 0o644)
	}
	if err := writeKey(f.Key, key); err != nil {
		return nil, err
	}
	if err := writeFile(f.Cert, chain, 0o644); err != nil {
		return nil, err
	}
	return f, nil
}

// existingKey reads the private key in keyFile for a renewal, and checks
// it against certFile when that exists.
func existingKey(keyFile, certFile string) (crypto.Signer, *KeyPin, error) {
	st, err := os.Stat(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("--keep-key: there is no key %s to keep: check --dir and --name, or run tls init without --keep-key to make a new key (relay boards then need its new pin)", keyFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--keep-key: %w", err)
	}
	if st.Mode().Perm()&0o037 != 0 {
		return nil, nil, fmt.Errorf("--keep-key: %s has mode %04o: others can read or change it; chmod 600 it (640 with the service group) before renewing", keyFile, st.Mode().Perm())
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--keep-key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil, nil, fmt.Errorf("--keep-key: %s holds no PEM private key", keyFile)
	}
	signer, err := parseSigner(block)
	if err != nil {
		return nil, nil, fmt.Errorf("--keep-key: %s: %w", keyFile, err)
	}
	if certPEM, err := os.ReadFile(certFile); err == nil {
		cb, _ := pem.Decode(certPEM)
		if cb == nil || cb.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("--keep-key: %s holds no PEM certificate; move it away to renew from the key alone", certFile)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("--keep-key: %s: %w", certFile, err)
		}
		if eq, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(signer.Public()) {
			return nil, nil, fmt.Errorf("--keep-key: %s is not the key of %s (their public keys differ): put the matching pair back, or run without --keep-key and give relay boards the new pin", keyFile, certFile)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("--keep-key: %w", err)
	}
	pin, err := PinFromPEM(data)
	if err != nil {
		pin = nil // a key no board can pin (e.g. RSA-4096) still renews
	}
	return signer, pin, nil
}

// replaceKeepingOwner replaces path like writeFile, with the mode and,
// when allowed (root), the owner of the file it replaces; perm when there
// was none. Write permission for group and others is never carried over:
// whoever could replace a certificate could make the service present
// another key.
func replaceKeepingOwner(path string, data []byte, perm os.FileMode) error {
	st, err := os.Stat(path)
	if err != nil {
		return writeFile(path, data, perm)
	}
	uid, gid := -1, -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		uid, gid = int(sys.Uid), int(sys.Gid)
	}
	return writeFileOwned(path, data, st.Mode().Perm()&^0o022, uid, gid)
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
	return writeFileOwned(path, data, perm, -1, -1)
}

// writeFileOwned is writeFile giving the file owner uid and group gid
// first (-1 keeps the creator's).
func writeFileOwned(path string, data []byte, perm os.FileMode, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return err
		}
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
