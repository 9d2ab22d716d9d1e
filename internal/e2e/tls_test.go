package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	adminv1 "github.com/isobox/isobox/api/isobox/admin/v1"
	"github.com/isobox/isobox/internal/testkit"
)

// Issue 11, finding 7: nothing spoke TLS. These tests run the whole
// drop-in chain with TLS on every listener and link: the portal (the PHP
// stand-in, real curl) calls authprovider over https, authprovider hands
// events to eventrelay over https, eventrelay mints delivery tokens over
// gRPC with mutual TLS; certificates come from `authprovider tls init`.

// tlsInit runs `authprovider tls init` and returns the directory.
func tlsInit(t *testing.T, bin, dir, name, hosts string) string {
	t.Helper()
	tdir := filepath.Join(dir, "tls")
	out, err := exec.Command(bin, "tls", "init", "--hosts", hosts, "--dir", tdir, "--name", name).CombinedOutput()
	if err != nil {
		t.Fatalf("tls init: %v\n%s", err, out)
	}
	for _, want := range []string{"--tls-cert-file " + filepath.Join(tdir, name+".crt"), "trust " + filepath.Join(tdir, "ca.crt")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tls init does not say %q:\n%s", want, out)
		}
	}
	return tdir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestTLSOnEveryListenerAndLink(t *testing.T) {
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	erBin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tdir := tlsInit(t, apBin, dir, "authprovider", "isobox.lan")
	tlsInit(t, apBin, dir, "eventrelay", "relay.isobox.lan")
	ca := filepath.Join(tdir, "ca.crt")
	apTLS := []string{"--tls-cert-file", filepath.Join(tdir, "authprovider.crt"), "--tls-key-file", filepath.Join(tdir, "authprovider.key"), "--tls-ca-file", ca}
	erTLS := []string{"--tls-cert-file", filepath.Join(tdir, "eventrelay.crt"), "--tls-key-file", filepath.Join(tdir, "eventrelay.key"), "--tls-ca-file", ca}

	handlers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	got := make(chan string, 10)
	handlers.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.URL.Path })
	t.Cleanup(handlers.Close)

	relayAddr := freeAddr(t)
	apArgs := append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", data, "--portal-registration", "open", "--relay-url", "https://" + relayAddr, "--tls-require-client-cert"}, apTLS...)
	ap := testkit.Start(t, dir, apBin, apArgs, "http", "grpc", "admin")
	er := testkit.Start(t, dir, erBin, append([]string{"--http-addr", relayAddr, "--publish-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", data, "--auth-grpc-addr", ap.Addr("grpc")}, erTLS...), "http", "publish", "grpc", "admin")

	roots := testkit.CAPool(t, ca)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	// Every HTTP listener answers over verified https, and refuses plain HTTP.
	for _, l := range []struct {
		p    *testkit.Proc
		name string
	}{{ap, "http"}, {ap, "admin"}, {er, "http"}, {er, "publish"}, {er, "admin"}} {
		resp, err := client.Get("https://" + l.p.Addr(l.name) + "/healthz")
		if err != nil {
			t.Errorf("%s over https: %v", l.name, err)
			continue
		}
		resp.Body.Close()
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("%s: no TLS 1.2+ (%v)", l.name, resp.TLS)
		}
		plain, err := http.Get("http://" + l.p.Addr(l.name) + "/healthz")
		if err == nil {
			if plain.StatusCode == http.StatusOK {
				t.Errorf("%s answers plain HTTP", l.name)
			}
			plain.Body.Close()
		}
	}
	for name, p := range map[string]*testkit.Proc{"authprovider": ap, "eventrelay": er} {
		if !strings.Contains(p.Stdout.String(), "https://") {
			t.Errorf("%s does not print https addresses: %q", name, p.Stdout.String())
		}
	}

	// The drop-in chain: register, tokens, rest.event.call over https
	// (PHP curl trusting only the CA), hand-off to eventrelay over https,
	// delivery tokens minted over mutual TLS.
	standin, err := filepath.Abs(filepath.Join("..", "portal", "testdata", "portal.php"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("php", "-d", "curl.cainfo="+ca, "-d", "openssl.cafile="+ca, standin,
		"flow", "https://"+ap.Addr("http"), "http://portal.box.local", "TEST-LICENSE-KEY", handlers.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("portal stand-in over https: %v\n%s\n%s", err, stderr.String(), ap.Logs())
	}
	var st struct {
		PortalClientID string `json:"portal_client_id"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.PortalClientID == "" {
		t.Fatalf("stand-in output %q: %v", out, err)
	}
	paths := map[string]bool{}
	for len(paths) < 2 {
		select {
		case p := <-got:
			paths[p] = true
		case <-time.After(60 * time.Second):
			t.Fatalf("deliveries after 60s: %v\nauthprovider:\n%s\neventrelay:\n%s", paths, ap.Logs(), er.Logs())
		}
	}

	// The REST gateway reaches its own gRPC listener through TLS with a
	// client certificate (the listener requires one).
	key, err := os.ReadFile(filepath.Join(data, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://"+ap.Addr("admin")+"/v1/clients", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), st.PortalClientID) {
		t.Errorf("admin REST over TLS: %d %s", resp.StatusCode, body)
	}

	// The CLI uses the server's own TLS flags.
	cli := exec.Command(apBin, append([]string{"client", "list", "--data-dir", data, "--grpc-addr", ap.Addr("grpc")}, apTLS...)...)
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), st.PortalClientID) {
		t.Errorf("authprovider client list over TLS: %v\n%s", err, out)
	}

	// eventrelay's CLI reaches its TLS gRPC listener with --tls-ca-file.
	ercli := exec.Command(erBin, "stats", "--json", "--data-dir", data, "--grpc-addr", er.Addr("grpc"), "--tls-ca-file", ca)
	if out, err := ercli.CombinedOutput(); err != nil || !strings.Contains(string(out), "{") {
		t.Errorf("eventrelay stats over TLS: %v\n%s", err, out)
	}

	// gRPC without a client certificate is refused, even with the admin key.
	conn, err := grpc.NewClient(ap.Addr("grpc"), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+strings.TrimSpace(string(key))), 10*time.Second)
	defer cancel()
	if _, err := adminv1.NewAdminClient(conn).ListClients(ctx, &adminv1.ListClientsRequest{}); err == nil {
		t.Error("gRPC call without a client certificate succeeded")
	}
}

// TestTLSCertificateReloadKeepsConnections replaces the certificate files
// of a running authprovider: new handshakes get the new certificate, a
// connection opened before keeps serving requests.
func TestTLSCertificateReloadKeepsConnections(t *testing.T) {
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	dir := t.TempDir()
	tdir := tlsInit(t, apBin, dir, "authprovider", "isobox.lan")
	ap := testkit.Start(t, dir, apBin, append(freeArgs("http-addr", "grpc-addr", "admin-addr"),
		"--tls-cert-file", filepath.Join(tdir, "authprovider.crt"), "--tls-key-file", filepath.Join(tdir, "authprovider.key")), "http", "grpc", "admin")
	cfg := &tls.Config{RootCAs: testkit.CAPool(t, filepath.Join(tdir, "ca.crt")), ServerName: "isobox.lan"}
	handshake := func() (*tls.Conn, []byte) {
		c, err := tls.Dial("tcp", ap.Addr("admin"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c, c.ConnectionState().PeerCertificates[0].Raw
	}
	request := func(c *tls.Conn) string {
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: isobox.lan\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Status
	}
	old, oldCert := handshake()
	defer old.Close()
	if s := request(old); s != "200 OK" {
		t.Fatalf("before reload: %s", s)
	}
	tlsInit(t, apBin, dir, "authprovider", "isobox.lan") // same CA, new leaf and key
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, cert := handshake()
		c.Close()
		if !bytes.Equal(cert, oldCert) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still the old certificate 30s after the files changed\n%s", ap.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := request(old); s != "200 OK" {
		t.Fatalf("connection opened before the reload: %s", s)
	}
	if !strings.Contains(ap.Logs(), "TLS certificate reloaded") {
		t.Error("the reload was not logged")
	}
}

func TestPlainListenerBeyondLoopbackIsWarnedAbout(t *testing.T) {
	dir := t.TempDir()
	ap := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider"),
		[]string{"--http-addr", "0.0.0.0:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, "http", "grpc", "admin")
	var warned []string
	for _, line := range strings.Split(ap.Logs(), "\n") {
		if strings.Contains(line, "without TLS") {
			var rec struct{ Listener string }
			json.Unmarshal([]byte(line), &rec)
			warned = append(warned, rec.Listener)
		}
	}
	if strings.Join(warned, ",") != "http" {
		t.Errorf("warned about listeners %v, want only http (0.0.0.0)", warned)
	}
}

// TestTLSMisconfigurationFailsAtStart: half a pair, a missing file, or
// mutual TLS without a CA stop the service with a message that says what
// to set, before it listens anywhere.
func TestTLSMisconfigurationFailsAtStart(t *testing.T) {
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	dir := t.TempDir()
	tdir := tlsInit(t, bin, dir, "authprovider", "isobox.lan")
	crt, key := filepath.Join(tdir, "authprovider.crt"), filepath.Join(tdir, "authprovider.key")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert-file", crt}, "--tls-cert-file and --tls-key-file go together"},
		{[]string{"--tls-cert-file", crt, "--tls-key-file", filepath.Join(tdir, "missing.key")}, "missing.key"},
		{[]string{"--tls-cert-file", crt, "--tls-key-file", key, "--tls-require-client-cert"}, "--tls-require-client-cert needs"},
		{[]string{"--tls-ca-file", crt + ".nope"}, "TLS CA file"},
	} {
		cmd := exec.Command(bin, append(freeArgs("http-addr", "grpc-addr", "admin-addr"), append([]string{"--data-dir", filepath.Join(dir, "data")}, c.args...)...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) || strings.Contains(string(out), `"msg":"listening"`) {
			t.Errorf("authprovider %v: %v, want a failure saying %q:\n%s", c.args, err, c.want, out)
		}
	}
}
