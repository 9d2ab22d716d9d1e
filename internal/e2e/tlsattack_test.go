package e2e_test

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// startBothTLS starts both real services with TLS on every listener
// (certificates from `authprovider tls init`) and the given flags.
func startBothTLS(t *testing.T, extra ...string) ([]service, *tls.Config) {
	t.Helper()
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	erBin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tdir := tlsInit(t, apBin, dir, "authprovider", "isobox.lan")
	tlsInit(t, apBin, dir, "eventrelay", "relay.isobox.lan")
	ca := filepath.Join(tdir, "ca.crt")
	pair := func(name string) []string {
		return []string{"--tls-cert-file", filepath.Join(tdir, name+".crt"), "--tls-key-file", filepath.Join(tdir, name+".key"), "--tls-ca-file", ca}
	}
	ap := testkit.Start(t, dir, apBin, append(append(append(freeArgs("http-addr", "grpc-addr", "admin-addr"), "--data-dir", data), pair("authprovider")...), extra...),
		"http", "grpc", "admin")
	er := testkit.Start(t, dir, erBin, append(append(append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "--data-dir", data,
		"--auth-grpc-addr", ap.Addr("grpc")), pair("eventrelay")...), extra...), "http", "publish", "grpc", "admin")
	return []service{
		{name: "authprovider", p: ap, http: []string{"http", "admin"}, grpc: []string{"grpc"}},
		{name: "eventrelay", p: er, http: []string{"http", "publish", "admin"}, grpc: []string{"grpc"}},
	}, &tls.Config{RootCAs: testkit.CAPool(t, ca), ServerName: "localhost"}
}

// An attacker on the LAN tries to talk a client or the server down to a
// weak protocol: TLS 1.0/1.1, or TLS 1.2 with only non-AEAD (CBC) suites.
// Every TLS listener of both real services refuses the handshake, accepts
// a modern client, and answers plain HTTP sent to it with nothing that
// carries a secret.
func TestTLSDowngradeIsRefusedOnEveryListener(t *testing.T) {
	svcs, good := startBothTLS(t)
	cbcOnly := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA}
	weak := map[string]*tls.Config{
		"TLS 1.0":               {MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10},
		"TLS 1.1":               {MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11},
		"TLS 1.2, CBC only":     {MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: cbcOnly},
		"TLS 1.0-1.2, CBC only": {MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12, CipherSuites: cbcOnly},
	}
	for _, s := range svcs {
		for _, l := range append(append([]string{}, s.http...), s.grpc...) {
			where, addr := s.name+"/"+l, s.p.Addr(l)
			for what, cfg := range weak {
				c := cfg.Clone()
				c.RootCAs, c.ServerName = good.RootCAs, good.ServerName
				c.NextProtos = []string{"h2", "http/1.1"}
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c)
				if err == nil {
					t.Errorf("%s: handshake with %s succeeded (%s, suite %s)", where, what,
						tls.VersionName(conn.ConnectionState().Version), tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
					conn.Close()
				}
			}
			// The control: a modern client gets in, with an AEAD suite.
			c := good.Clone()
			c.NextProtos = []string{"h2", "http/1.1"}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c)
			if err != nil {
				t.Errorf("%s: a TLS 1.2+ client is refused: %v", where, err)
				continue
			}
			conn.Close()
			// TLS 1.2 with AEAD suites only (what BearSSL and PHP's curl offer) gets in too.
			c12 := good.Clone()
			c12.MaxVersion = tls.VersionTLS12
			c12.NextProtos = []string{"h2", "http/1.1"}
			if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, c12); err != nil {
				t.Errorf("%s: a TLS 1.2 client with the default (AEAD) suites is refused: %v", where, err)
			} else {
				conn.Close()
			}

			// Plain HTTP to the TLS port: a token request with a client's
			// credentials gets no answer that carries anything.
			raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			body := "grant_type=client_credentials&client_id=x&client_secret=y"
			io.WriteString(raw, "POST /oauth/token/ HTTP/1.1\r\nHost: isobox.lan\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "+
				itoa(len(body))+"\r\n\r\n"+body)
			raw.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, _ := io.ReadAll(raw)
			raw.Close()
			if strings.Contains(string(got), "HTTP/1.1 200") || strings.Contains(string(got), "token") || strings.Contains(string(got), "secret") {
				t.Errorf("%s: plain HTTP to the TLS port answered %q", where, got)
			}
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Slowloris on TLS: connections that never start the TLS handshake, or
// stop in the middle of the ClientHello, are closed after
// --read-header-timeout on every TLS listener of both real services, and
// hold their client address's --max-conns-per-ip slots meanwhile.
func TestSlowTLSHandshakesAreCutOffOnEveryListener(t *testing.T) {
	const perListener = 10
	svcs, good := startBothTLS(t, "--read-header-timeout", "3s", "--max-conns-per-ip", "10")
	// A real ClientHello, cut short: the record header promises more than
	// is sent.
	hello := clientHello(t, good)
	var attacks []attack
	for _, s := range svcs {
		for _, l := range append(append([]string{}, s.http...), s.grpc...) {
			for i := range perListener {
				c, err := net.Dial("tcp", s.p.Addr(l))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				what := " silent"
				if i%2 == 1 {
					what = " half a ClientHello"
					if _, err := c.Write(hello[:len(hello)/2]); err != nil {
						t.Fatal(err)
					}
				}
				attacks = append(attacks, attack{s.name + "/" + l + what, c})
			}
		}
	}
	// While they are open they hold the address's slots: a real client on
	// an HTTP listener is told so (503 through TLS).
	for _, s := range svcs {
		for _, l := range s.http {
			if !refusedOverTLS(s.p.Addr(l), good) {
				t.Errorf("%s/%s: a client beyond --max-conns-per-ip while the stalled handshakes were open was not refused", s.name, l)
			}
		}
	}
	expectAllClosed(t, attacks)
}

// refusedOverTLS reports whether a TLS client on addr is answered "503 too
// many connections", trying until that or 10 s (the listener may not have
// accepted every stalled connection yet).
func refusedOverTLS(addr string, cfg *tls.Config) bool {
	c := cfg.Clone()
	c.NextProtos = []string{"http/1.1"}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) { // poll interval
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
		if err != nil {
			continue
		}
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(conn)
		conn.Close()
		if strings.HasPrefix(string(b), "HTTP/1.1 503") && strings.Contains(string(b), "too many connections") {
			return true
		}
	}
	return false
}

// clientHello returns the first flight a Go TLS client sends.
func clientHello(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go tls.Client(client, cfg.Clone()).Handshake()
	buf := make([]byte, 4096)
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := server.Read(buf)
	server.Close()
	if err != nil || n < 100 {
		t.Fatalf("no ClientHello: %d bytes, %v", n, err)
	}
	return buf[:n]
}
