package e2e_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/testkit"
)

// tlsDir holds what `authprovider tls init` made for eventrelay.
type tlsDir struct {
	t             *testing.T
	ap, dir       string
	cert, key, ca string
}

func (d *tlsDir) run(args ...string) string {
	d.t.Helper()
	out, err := exec.Command(d.ap, args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("authprovider %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// issue runs `authprovider tls init` for eventrelay: a new key each time.
func (d *tlsDir) issue() {
	d.run("tls", "init", "--hosts", "relay.lan", "--dir", d.dir, "--name", "eventrelay")
}

// pin is the first line of `authprovider tls pin`: what the setup page takes.
func (d *tlsDir) pin() string {
	return strings.SplitN(d.run("tls", "pin", "--cert", d.cert), "\n", 2)[0]
}

func readPEM(t *testing.T, file string) []*pem.Block {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*pem.Block
	for {
		var p *pem.Block
		if p, b = pem.Decode(b); p == nil {
			return blocks
		}
		blocks = append(blocks, p)
	}
}

// renew signs a new certificate for the key eventrelay already has (a
// renewal with the same key) with the CA, and returns its serial number.
func (d *tlsDir) renew(key crypto.Signer) *big.Int {
	d.t.Helper()
	caBlocks := readPEM(d.t, d.ca)
	ca, err := x509.ParseCertificate(caBlocks[0].Bytes)
	if err != nil {
		d.t.Fatal(err)
	}
	caKeyAny, err := x509.ParsePKCS8PrivateKey(readPEM(d.t, filepath.Join(d.dir, "ca.key"))[0].Bytes)
	if err != nil {
		if caKeyAny, err = x509.ParseECPrivateKey(readPEM(d.t, filepath.Join(d.dir, "ca.key"))[0].Bytes); err != nil {
			d.t.Fatal(err)
		}
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: serial, DNSNames: []string{"relay.lan", "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKeyAny.(crypto.Signer))
	if err != nil {
		d.t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(caBlocks[0])...)
	if err := os.WriteFile(d.cert, chain, 0o644); err != nil {
		d.t.Fatal(err)
	}
	return serial
}

// renewKeepKey renews eventrelay's certificate as an administrator does,
// with `authprovider tls init --keep-key`, and returns its serial number.
func (d *tlsDir) renewKeepKey() *big.Int {
	d.t.Helper()
	out := d.run("tls", "init", "--keep-key", "--hosts", "relay.lan", "--dir", d.dir, "--name", "eventrelay")
	if !strings.Contains(out, "pin is unchanged") {
		d.t.Fatalf("tls init --keep-key does not say the pin is unchanged:\n%s", out)
	}
	c, err := x509.ParseCertificate(readPEM(d.t, d.cert)[0].Bytes)
	if err != nil {
		d.t.Fatal(err)
	}
	return c.SerialNumber
}

// leafKey reads eventrelay's current private key.
func (d *tlsDir) leafKey() (crypto.Signer, []byte) {
	d.t.Helper()
	raw, err := os.ReadFile(d.key)
	if err != nil {
		d.t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	var k any
	if b.Type == "EC PRIVATE KEY" {
		k, err = x509.ParseECPrivateKey(b.Bytes)
	} else {
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	return k.(crypto.Signer), raw
}

// servedLeaf waits until eventrelay's TLS listener serves a certificate
// for which ok is true (it re-reads its files at a handshake at most once
// a second) and returns it.
func servedLeaf(t *testing.T, addr string, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only looking at what is served
		if err == nil {
			leaf := c.ConnectionState().PeerCertificates[0]
			c.Close()
			if ok(leaf) {
				return leaf
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("eventrelay at %s never served the expected certificate", addr)
	return nil
}

func spki(c *x509.Certificate) []byte { return c.RawSubjectPublicKeyInfo }

// startTLSRelay starts eventrelay serving a certificate and key from
// `authprovider tls init` on its HTTP listener, and publishes over https
// with the test CA.
func startTLSRelay(t *testing.T, extra ...string) (*relay, *tlsDir) {
	t.Helper()
	td := &tlsDir{t: t, ap: testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"), dir: t.TempDir()}
	td.cert, td.key, td.ca = filepath.Join(td.dir, "eventrelay.crt"), filepath.Join(td.dir, "eventrelay.key"), filepath.Join(td.dir, "ca.crt")
	td.issue()
	er := startRelay(t, append([]string{"--tls-cert-file", td.cert, "--tls-key-file", td.key}, extra...)...)
	roots := x509.NewCertPool()
	for _, b := range readPEM(t, td.ca) {
		c, _ := x509.ParseCertificate(b.Bytes)
		roots.AddCert(c)
	}
	er.scheme = "https"
	er.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	return er, td
}

var statusField = regexp.MustCompile(`(\w+)=(\S+)`)

func statusOf(d *device) map[string]string {
	d.t.Helper()
	d.send("status")
	_, l := d.until("status")
	m := map[string]string{}
	for _, f := range statusField.FindAllStringSubmatch(l, -1) {
		m[f[1]] = f[2]
	}
	return m
}

// The board over TLS with eventrelay's key pinned, against the real
// eventrelay serving certificates from `authprovider tls init`: subscribe,
// commands, a restart with replay by mid; a certificate renewed with the
// same key keeps working; a re-issued one with a new key is refused and
// reported (state, counter, LED), and the board heals by itself when the
// old key comes back.
func TestRelayFirmwareOverTLSWithAPinnedKey(t *testing.T) {
	bin := hostRelay(t)
	er, td := startTLSRelay(t)
	pin := td.pin()
	signer, err := push.NewSigner(sigKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	ch := "c4ca4238a0b923820dcc509a6f75849b"

	d := startDevice(t, bin, er.httpAddr, signer.SignChannel(ch), "pump:12,fan:13", false, "pin="+pin, "rx=4096")
	d.until("open")
	er.waitSubscribers(ch, 1)
	er.publish(ch, esp("pump", true))
	er.publish(ch, esp("fan", true))
	got, _ := d.until("relay fan on")
	checkLines(t, "commands over TLS", got, "relay pump on")

	// eventrelay restarts while the board is cut off: it comes back over
	// TLS and gets what it missed once, in order (&mid=).
	d.send("down")
	d.until("close")
	er.stop()
	er.start()
	er.publish(ch, esp("pump", false))
	er.publish(ch, esp("fan", false))
	d.send("up")
	d.until("open")
	got, _ = d.until("relay fan off")
	checkLines(t, "replay over TLS after a restart", got, "relay pump off")
	if st := statusOf(d); st["keyrefusals"] != "0" || st["state"] != "3" {
		t.Fatalf("status %v", st)
	}

	// The certificate is renewed with the same key (tls init --keep-key):
	// eventrelay serves the new one (a new serial), and the board connects
	// as before.
	key, keyPEM := td.leafKey()
	d.send("down")
	d.until("close")
	serial := td.renewKeepKey()
	servedLeaf(t, er.httpAddr, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(serial) == 0 })
	if now := td.pin(); now != pin {
		t.Fatalf("a renewal with the same key changed the pin: %s", now)
	}
	d.send("up")
	d.until("open")
	er.waitSubscribers(ch, 1)
	er.publish(ch, esp("pump", true))
	got, _ = d.until("relay pump on")
	checkLines(t, "after a renewal with the same key", got)

	// Re-issued with a new key (tls init again): refused, and reported.
	oldLeaf := servedLeaf(t, er.httpAddr, func(*x509.Certificate) bool { return true })
	d.send("down")
	d.until("close")
	td.issue()
	servedLeaf(t, er.httpAddr, func(c *x509.Certificate) bool { return !bytes.Equal(spki(c), spki(oldLeaf)) })
	er.publish(ch, esp("fan", true)) // must not be applied while the key is wrong
	d.send("up")
	d.until("keyrefused")
	st := statusOf(d)
	if n, _ := strconv.Atoi(st["keyrefusals"]); n < 1 || st["state"] == "3" {
		t.Fatalf("after a new key: status %v, want key refusals and not open", st)
	}
	er.waitSubscribers(ch, 0)

	// The old key comes back (restored from backup, renewed): the board,
	// still retrying on its back-off, subscribes with no human and gets the
	// command it missed.
	if err := os.WriteFile(td.key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	serial = td.renew(key)
	servedLeaf(t, er.httpAddr, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(serial) == 0 })
	d.until("open")
	got, _ = d.until("relay fan on")
	checkLines(t, "after the old key came back", got)
	st = statusOf(d)
	if st["state"] != "3" || st["led"] != "1" {
		t.Fatalf("healed board: status %v, want open with the LED lit", st)
	}
	// The board's 4 KiB receive buffer (websockets_pinned_tls.h): eventrelay
	// caps a frameBytes=2048 subscriber's records, so none may exceed it.
	if n, _ := strconv.Atoi(st["largest_record"]); n <= 0 || n > 4096+325 {
		t.Fatalf("largest TLS record %v", st["largest_record"])
	}
	t.Logf("largest TLS record received: %s bytes", st["largest_record"])
	d.send("quit")
}
