package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// Issue 11, finding 6: slow clients held connections forever (400
// slow-body connections still open after 140 s) and nothing capped how
// many one client could open. These tests run both real services with
// short limits and attack every listener.

// service is a started binary and its listeners, HTTP or gRPC.
type service struct {
	name string
	p    *testkit.Proc
	http []string // HTTP listener names
	grpc []string
}

func startBoth(t *testing.T, extra ...string) []service {
	t.Helper()
	dir := t.TempDir()
	ap := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"),
		append(freeArgs("http-addr", "grpc-addr", "admin-addr"), extra...), "http", "grpc", "admin")
	er := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay"),
		append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), extra...), "http", "publish", "grpc", "admin")
	return []service{
		{name: "authprovider", p: ap, http: []string{"http", "admin"}, grpc: []string{"grpc"}},
		{name: "eventrelay", p: er, http: []string{"http", "publish", "admin"}, grpc: []string{"grpc"}},
	}
}

// awaitClosed waits until the server closes c: a read returns EOF or a
// reset after whatever the server answered. The deadline is only a safety
// net for a server that never closes.
func awaitClosed(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(90 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return fmt.Errorf("still open after 90s")
	}
	return nil
}

func TestSlowClientsAreCutOffOnEveryListener(t *testing.T) {
	svcs := startBoth(t, "--read-header-timeout", "1s", "--read-timeout", "1s", "--idle-timeout", "2s")
	const perKind = 10
	var attacks []attack
	dial := func(where, addr, send string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		t.Cleanup(func() { c.Close() })
		if send != "" {
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
		attacks = append(attacks, attack{where, c})
	}
	for _, s := range svcs {
		for _, l := range s.http {
			addr := s.p.Addr(l)
			for i := 0; i < perKind; i++ {
				// Headers complete, body promised and never sent.
				dial(s.name+"/"+l+" slow body", addr, "POST /oauth/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ngrant_type=")
				// Headers never finished.
				dial(s.name+"/"+l+" slow headers", addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ")
			}
			// A finished request, then an idle keep-alive connection.
			dial(s.name+"/"+l+" idle", addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		for _, l := range s.grpc {
			for i := 0; i < perKind; i++ {
				// Connected, no HTTP/2 preface.
				dial(s.name+"/"+l+" silent", s.p.Addr(l), "")
			}
		}
	}
	expectAllClosed(t, attacks)
}

// attack is a connection an attacker holds open, and what it is.
type attack struct {
	where string
	c     net.Conn
}

// expectAllClosed waits until the server has closed every attack's
// connection (awaitClosed), reporting the ones it kept.
func expectAllClosed(t *testing.T, attacks []attack) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, len(attacks))
	for _, a := range attacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := awaitClosed(a.c); err != nil {
				errs <- a.where + ": " + err.Error()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// dialFrom connects to addr from the loopback address src (127.0.0.x),
// so that one test can be several clients.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reads what the server says to a connection over a cap: HTTP
// listeners answer 503 and close, gRPC ones close.
func refused(t *testing.T, c net.Conn, isHTTP bool) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "still open"
	}
	if isHTTP {
		line, _, _ := bufio.NewReader(strings.NewReader(string(b))).ReadLine()
		return string(line)
	}
	return fmt.Sprintf("closed after %d bytes", len(b))
}

func TestConnectionCapsPerClientAndPerListener(t *testing.T) {
	svcs := startBoth(t, "--max-conns", "3", "--max-conns-per-ip", "2")
	for _, s := range svcs {
		for _, l := range append(append([]string{}, s.http...), s.grpc...) {
			isHTTP := !strings.HasPrefix(l, "grpc")
			addr := s.p.Addr(l)
			where := s.name + "/" + l
			var held []net.Conn
			held = append(held, dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr))
			// A third connection from the same client is over its cap.
			if got := refused(t, dialFrom(t, "127.0.0.1", addr), isHTTP); isHTTP && !strings.HasPrefix(got, "HTTP/1.1 503") || !isHTTP && got == "still open" {
				t.Errorf("%s: third connection from one client: %s", where, got)
			}
			// Another client still gets in, up to the listener's cap.
			held = append(held, dialFrom(t, "127.0.0.2", addr))
			if got := refused(t, dialFrom(t, "127.0.0.3", addr), isHTTP); isHTTP && !strings.HasPrefix(got, "HTTP/1.1 503") || !isHTTP && got == "still open" {
				t.Errorf("%s: connection over the listener's cap: %s", where, got)
			}
			// The held connections still work (HTTP: one request each).
			if isHTTP {
				for _, c := range held {
					io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
					c.SetReadDeadline(time.Now().Add(30 * time.Second))
					line, _, err := bufio.NewReader(c).ReadLine()
					if err != nil || strings.HasPrefix(string(line), "HTTP/1.1 503") {
						t.Errorf("%s: a connection within the caps: %q %v", where, line, err)
					}
				}
			}
			for _, c := range held {
				c.Close()
			}
		}
		// Both refusals of every listener are counted. Slots come back
		// when the server sees the held connections close, so poll.
		for _, l := range append(append([]string{}, s.http...), s.grpc...) {
			for reason, want := range map[string]float64{"max_conns_per_ip": 1, "max_conns": 1} {
				sample := fmt.Sprintf(`isobox_listener_connections_refused_total{listener=%q,reason=%q}`, l, reason)
				if got := metricEventually(t, s.p.Addr("admin"), sample); got != want {
					t.Errorf("%s: %s = %v, want %v", s.name, sample, got, want)
				}
			}
		}
	}
}

// metricEventually reads a sample from /metrics, retrying while the admin
// listener is still full.
func metricEventually(t *testing.T, adminAddr, sample string) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := tryMetric(adminAddr, sample)
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s: %v", sample, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tryMetric(adminAddr, sample string) (float64, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d %v", resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no sample %s", sample)
}
