package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/cmdline"
)

func tlsCLI(args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"tls"}, args...), &out, &errb)
	return out.String() + errb.String(), err
}

// `tls pin` prints, first, the line a relay board's setup page takes: the
// same for the certificate and its key, another after a re-issue with a
// new key.
func TestTLSPinPrintsTheBoardsPin(t *testing.T) {
	dir := t.TempDir()
	out, err := tlsCLI("init", "--hosts", "relay.lan", "--dir", dir, "--name", "eventrelay")
	if err != nil {
		t.Fatalf("tls init: %v\n%s", err, out)
	}
	if !strings.Contains(out, "authprovider tls pin --cert") {
		t.Errorf("tls init does not point at tls pin:\n%s", out)
	}
	pin := func(file string) (string, string) {
		t.Helper()
		out, err := tlsCLI("pin", "--cert", file)
		if err != nil {
			t.Fatalf("tls pin %s: %v\n%s", file, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "fingerprint sha256//") || !strings.Contains(lines[1], "EC P-256") {
			t.Fatalf("tls pin output:\n%s", out)
		}
		return lines[0], lines[1]
	}
	crt, crtFP := pin(filepath.Join(dir, "eventrelay.crt"))
	key, _ := pin(filepath.Join(dir, "eventrelay.key"))
	if crt != key || !strings.HasPrefix(crt, "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE") || len(crt) != 124 {
		t.Errorf("pins: certificate %q key %q", crt, key)
	}
	if !strings.Contains(crtFP, "CN=relay.lan") || !strings.Contains(crtFP, "same key keeps this pin") {
		t.Errorf("fingerprint line: %s", crtFP)
	}
	if _, err := tlsCLI("init", "--hosts", "relay.lan", "--dir", dir, "--name", "eventrelay"); err != nil {
		t.Fatal(err)
	}
	if again, _ := pin(filepath.Join(dir, "eventrelay.crt")); again == crt {
		t.Error("a re-issued certificate kept the pin")
	}

	// Misuse: usage errors (exit 2) and clear errors.
	for _, args := range [][]string{{"pin"}, {"pin", "--cert", "a", "b"}, {"pin", "--nope"}} {
		if _, err := tlsCLI(args...); cmdline.ExitCode(err) != 2 {
			t.Errorf("tls %v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := tlsCLI("pin", "--cert", filepath.Join(dir, "missing.crt")); err == nil {
		t.Error("a missing file did not fail")
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("hello"), 0o600)
	if _, err := tlsCLI("pin", "--cert", junk); err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Errorf("junk: %v", err)
	}
}

// `tls init --keep-key` renews eventrelay's certificate with its key: a new
// certificate, the same `tls pin` output's first line, and it says so;
// without the flag the pin changes; with a missing key it fails and says
// what to do.
func TestTLSInitKeepKeyKeepsThePin(t *testing.T) {
	dir := t.TempDir()
	initArgs := []string{"init", "--hosts", "relay.lan", "--dir", dir, "--name", "eventrelay"}
	if out, err := tlsCLI(initArgs...); err != nil {
		t.Fatalf("tls init: %v\n%s", err, out)
	}
	cert := filepath.Join(dir, "eventrelay.crt")
	pin := func() string {
		t.Helper()
		out, err := tlsCLI("pin", "--cert", cert)
		if err != nil {
			t.Fatalf("tls pin: %v\n%s", err, out)
		}
		return strings.SplitN(out, "\n", 2)[0]
	}
	serial := func() string {
		t.Helper()
		b, err := os.ReadFile(cert)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber.String()
	}
	before, serialBefore := pin(), serial()
	out, err := tlsCLI(append(initArgs, "--keep-key")...)
	if err != nil {
		t.Fatalf("tls init --keep-key: %v\n%s", err, out)
	}
	if after := pin(); after != before {
		t.Errorf("--keep-key changed the pin: %s → %s", before, after)
	}
	if serial() == serialBefore {
		t.Error("--keep-key did not issue a new certificate")
	}
	if !strings.Contains(out, "relay boards' pin is unchanged") || !strings.Contains(out, before) || !strings.Contains(out, "(kept:") {
		t.Errorf("tls init --keep-key does not say the pin is unchanged:\n%s", out)
	}
	if _, err := tlsCLI(initArgs...); err != nil {
		t.Fatal(err)
	}
	if pin() == before {
		t.Error("tls init without --keep-key kept the key")
	}
	_, err = tlsCLI("init", "--hosts", "relay.lan", "--dir", dir, "--name", "nosuch", "--keep-key")
	if err == nil || !strings.Contains(err.Error(), "no key") || !strings.Contains(err.Error(), "without --keep-key") {
		t.Errorf("--keep-key without a key: %v", err)
	}
}
