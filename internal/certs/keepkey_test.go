package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func leafOf(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pinOf(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PinFromPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return p.SPKI
}

// A renewal with --keep-key: a new certificate (serial, dates) for the
// same key, so the pin relay boards hold stays; the key file is not
// touched (content, mode); the certificate keeps its mode; the pair loads
// and verifies against the same CA.
func TestInitKeepKeyRenewsWithTheSameKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	f, err := Init(dir, "eventrelay", []string{"relay.lan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	// An administrator's modes (group-readable for the service), kept.
	os.Chmod(f.Key, 0o640)
	os.Chmod(f.Cert, 0o640)
	keyBefore, _ := os.ReadFile(f.Key)
	old := leafOf(t, f.Cert)
	pin := pinOf(t, f.Cert)

	later := now.Add(400 * 24 * time.Hour)
	g, err := InitKeepKey(dir, "eventrelay", []string{"relay.lan", "10.0.0.5"}, later)
	if err != nil {
		t.Fatal(err)
	}
	if !g.KeyKept || g.Pin == nil || g.Pin.SPKI != pin || g.CACreated {
		t.Fatalf("renewal: kept %v, pin %+v (want %s), CA created %v", g.KeyKept, g.Pin, pin, g.CACreated)
	}
	if got := pinOf(t, g.Cert); got != pin {
		t.Errorf("the renewed certificate's pin %s, want %s", got, pin)
	}
	renewed := leafOf(t, g.Cert)
	if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || !renewed.NotAfter.After(old.NotAfter) {
		t.Errorf("serial %v → %v, not after %v → %v: not a new certificate", old.SerialNumber, renewed.SerialNumber, old.NotAfter, renewed.NotAfter)
	}
	if len(renewed.IPAddresses) == 0 || !renewed.IPAddresses[0].Equal([]byte{10, 0, 0, 5}) {
		t.Errorf("renewed for %v, want the new --hosts", renewed.IPAddresses)
	}
	if keyAfter, _ := os.ReadFile(f.Key); !bytes.Equal(keyAfter, keyBefore) {
		t.Error("the key file was rewritten")
	}
	for path, want := range map[string]os.FileMode{f.Key: 0o640, f.Cert: 0o640} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %v", path, err, st.Mode().Perm(), want)
		}
	}
	pair, err := tls.LoadX509KeyPair(g.Cert, g.Key)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := LoadCAs(g.CACert)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "relay.lan", CurrentTime: later}); err != nil {
		t.Errorf("renewed leaf: %v", err)
	}

	// A key made by openssl (SEC1 "EC PRIVATE KEY"), without a
	// certificate yet, is renewed from as well.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(filepath.Join(dir, "other.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600)
	h, err := InitKeepKey(dir, "other", []string{"other.lan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !leafOf(t, h.Cert).PublicKey.(*ecdsa.PublicKey).Equal(&k.PublicKey) {
		t.Error("the certificate is not for the openssl key")
	}
}

func TestInitKeepKeyFailsClearly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	if _, err := InitKeepKey(dir, "eventrelay", []string{"relay.lan"}, now); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("no key: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("a failed --keep-key created the directory (and a CA)")
	}
	f, err := Init(dir, "eventrelay", []string{"relay.lan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Init(dir, "authprovider", []string{"isobox.lan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	certBefore, _ := os.ReadFile(f.Cert)
	keyBefore, _ := os.ReadFile(f.Key)
	restore := func() {
		os.WriteFile(f.Key, keyBefore, 0o600)
		os.Chmod(f.Key, 0o600)
	}
	cases := []struct {
		name, want string
		setup      func()
	}{
		{"another service's key", "is not the key of", func() {
			b, _ := os.ReadFile(g.Key)
			os.WriteFile(f.Key, b, 0o600)
		}},
		{"readable by others", "mode 0644", func() { os.Chmod(f.Key, 0o644) }},
		{"not a key", "no PEM private key", func() { os.WriteFile(f.Key, []byte("junk"), 0o600) }},
		{"a certificate in the key file", "no PEM private key", func() { os.WriteFile(f.Key, certBefore, 0o600) }},
	}
	for _, c := range cases {
		c.setup()
		_, err := InitKeepKey(dir, "eventrelay", []string{"relay.lan"}, now)
		restore()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--keep-key") {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		if b, _ := os.ReadFile(f.Cert); !bytes.Equal(b, certBefore) {
			t.Fatalf("%s: the certificate was replaced", c.name)
		}
	}
	// A key without the CA next to it: no new CA is made.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "eventrelay.key"), keyBefore, 0o600)
	if _, err := InitKeepKey(other, "eventrelay", []string{"relay.lan"}, now); err == nil || !strings.Contains(err.Error(), "no CA") {
		t.Errorf("no CA: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "ca.key")); err == nil {
		t.Error("--keep-key without a CA made one")
	}
}

// The finding (session 6 review): a renewal kept a world-writable
// certificate's mode. Group and other write bits are dropped; the rest of
// the mode is kept.
func TestInitKeepKeyDropsWritePermissionsOfOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := Init(dir, "eventrelay", []string{"relay.lan"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.Cert, 0o666); err != nil {
		t.Fatal(err)
	}
	g, err := InitKeepKey(dir, "eventrelay", []string{"relay.lan"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(g.Cert); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("renewed certificate: %v, mode %v; want 0644", err, st.Mode().Perm())
	}
}
