package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestInitWritesCAAndLeafThatVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	f, err := Init(dir, "authprovider", []string{"isobox.lan", "oauth.bitrix.info", "10.0.0.5"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !f.CACreated {
		t.Error("first Init did not create a CA")
	}
	for path, want := range map[string]os.FileMode{f.CAKey: 0o600, f.Key: 0o600, f.CACert: 0o644, f.Cert: 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	roots, err := LoadCAs(f.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pair.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("leaf key is %T, want ECDSA", pair.PrivateKey)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	for _, name := range []string{"oauth.bitrix.info", "isobox.lan", "10.0.0.5", "127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("leaf for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.lan"}); err == nil {
		t.Error("leaf verifies for a host it was not made for")
	}

	// A second leaf reuses the CA.
	g, err := Init(dir, "eventrelay", []string{"relay.lan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if g.CACreated {
		t.Error("second Init replaced the CA")
	}
	p2, _ := tls.LoadX509KeyPair(g.Cert, g.Key)
	l2, _ := x509.ParseCertificate(p2.Certificate[0])
	if _, err := l2.Verify(x509.VerifyOptions{Roots: roots, DNSName: "relay.lan"}); err != nil {
		t.Errorf("second leaf: %v", err)
	}
	if _, err := Init(dir, "../x", []string{"a"}, now); err == nil {
		t.Error("a leaf name with a path was accepted")
	}
	if _, err := Init(dir, "x", nil, now); err == nil {
		t.Error("Init without hosts was accepted")
	}
}

// TestPairReloadsWithoutDroppingConnections serves TLS from a Pair, swaps
// the files for a new certificate and checks that a new handshake gets the
// new one while a connection opened before keeps working.
func TestPairReloadsWithoutDroppingConnections(t *testing.T) {
	dir := t.TempDir()
	first, err := Init(dir, "svc", []string{"svc.lan"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPair(first.Cert, first.Key, quiet())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	p.now = func() time.Time { return clock }
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(p, nil, NoClientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c) // echo
		}
	}()
	roots, _ := LoadCAs(first.CACert)
	dial := func() (*tls.Conn, []byte) {
		cfg := ClientConfig(roots, nil)
		cfg.ServerName = "svc.lan"
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c, c.ConnectionState().PeerCertificates[0].Raw
	}
	old, oldCert := dial()
	defer old.Close()

	if _, err := Init(dir, "svc", []string{"svc.lan"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * checkEvery)
	fresh, freshCert := dial()
	fresh.Close()
	if bytes.Equal(oldCert, freshCert) {
		t.Fatal("a handshake after the files changed still got the old certificate")
	}
	if _, err := old.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("connection opened before the reload: %q %v", buf, err)
	}

	// A broken replacement keeps the working certificate.
	os.WriteFile(first.Cert, []byte("garbage"), 0o644)
	clock = clock.Add(2 * checkEvery)
	_, after := dial()
	if !bytes.Equal(after, freshCert) {
		t.Fatal("a broken certificate file replaced the working one")
	}
}

func TestSelfConfigAcceptsOnlyOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	a, _ := Init(dir, "a", []string{"a.lan"}, time.Now())
	b, _ := Init(dir, "b", []string{"b.lan"}, time.Now())
	pa, err := LoadPair(a.Cert, a.Key, quiet())
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := LoadPair(b.Cert, b.Key, quiet())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(pa, nil, NoClientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	if c, err := tls.Dial("tcp", ln.Addr().String(), SelfConfig(pa)); err != nil {
		t.Fatalf("own certificate refused: %v", err)
	} else {
		c.Close()
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), SelfConfig(pb)); err == nil {
		c.Close()
		t.Fatal("another service's certificate accepted as self")
	}
	var _ net.Listener = ln
}

func TestLoadPairFailsClearly(t *testing.T) {
	if _, err := LoadPair("x.crt", "", quiet()); err == nil {
		t.Error("cert without key accepted")
	}
	if _, err := LoadPair(filepath.Join(t.TempDir(), "none.crt"), "none.key", quiet()); err == nil {
		t.Error("missing files accepted")
	}
}
