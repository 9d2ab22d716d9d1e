package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/testkit"
)

// TLS record types (RFC 5246 section 6.2.1).
const (
	recordHandshake   = 22
	recordApplication = 23
)

// gcmOverhead is what TLS 1.2 AES-GCM adds to a record's plaintext: the
// 8-byte explicit nonce and the 16-byte tag.
const gcmOverhead = 24

// recordProxy forwards TCP connections to target and notes the type and
// length of every TLS record the server sends, per connection in the
// order they were accepted.
type recordProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  [][]tlsRecord
}

type tlsRecord struct {
	typ byte
	n   int
}

func startRecordProxy(t *testing.T, target string) *recordProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			i := len(p.conns)
			p.conns = append(p.conns, nil)
			p.mu.Unlock()
			go p.serve(c, i)
		}
	}()
	return p
}

func (p *recordProxy) serve(c net.Conn, i int) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(s, c)
		s.(*net.TCPConn).CloseWrite()
	}()
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(s, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		p.mu.Lock()
		p.conns[i] = append(p.conns[i], tlsRecord{typ: hdr[0], n: n})
		p.mu.Unlock()
		if _, err := c.Write(hdr); err != nil {
			return
		}
		if _, err := io.CopyN(c, s, int64(n)); err != nil {
			return
		}
	}
}

// records returns what the server sent on the i-th connection so far.
func (p *recordProxy) records(i int) []tlsRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= len(p.conns) {
		return nil
	}
	return append([]tlsRecord(nil), p.conns[i]...)
}

// tlsRelay is the real eventrelay serving a certificate from the real
// `authprovider tls init`.
type tlsRelay struct {
	proc   *testkit.Proc
	signer *push.Signer
	chain  []byte // PEM of --tls-cert-file
	client *http.Client
	// board is the TLS a relay board speaks: TLS 1.2 only (BearSSL),
	// ECDHE-ECDSA with AES-128-GCM, HTTP/1.1.
	board *tls.Config
}

func startTLSRelay(t *testing.T, extra ...string) *tlsRelay {
	t.Helper()
	s := bareStack(t)
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	tdir := filepath.Join(s.dir, "tls")
	if out, err := exec.Command(apBin, "tls", "init", "--hosts", "relay.lan", "--dir", tdir, "--name", "eventrelay").CombinedOutput(); err != nil {
		t.Fatalf("tls init: %v\n%s", err, out)
	}
	proc := s.startRelay(t, append([]string{"--nats-sync-always=false",
		"--tls-cert-file", filepath.Join(tdir, "eventrelay.crt"), "--tls-key-file", filepath.Join(tdir, "eventrelay.key")}, extra...)...)
	key, err := secret.Read(filepath.Join(s.data, "push-signature.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := push.NewSigner(key, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := os.ReadFile(filepath.Join(tdir, "eventrelay.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := testkit.CAPool(t, filepath.Join(tdir, "ca.crt"))
	board := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, NextProtos: []string{"http/1.1"}}
	return &tlsRelay{proc: proc, signer: signer, chain: chain, board: board,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 30 * time.Second}}
}

// publish stores body on channel ch through the relay's TLS publish
// listener.
func (r *tlsRelay) publish(t *testing.T, ch, body string) {
	t.Helper()
	resp, err := r.client.Post("https://"+r.proc.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish = %d", resp.StatusCode)
	}
}

// subscribe opens wss:// to addr (the proxy) with the board's TLS.
func (r *tlsRelay) subscribe(t *testing.T, ctx context.Context, addr, query string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "wss://"+addr+"/bitrix/subws/?"+query, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: r.board}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(1 << 20)
	return c
}

// readMessages reads frames until want messages have come and returns
// them, each with its NGINX markers.
func readMessages(t *testing.T, ctx context.Context, c *websocket.Conn, want int) [][]byte {
	t.Helper()
	var got [][]byte
	for len(got) < want {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), want, err)
		}
		for _, m := range bytes.SplitAfter(b, []byte("#!NGINXNME!#")) {
			if len(m) > 0 {
				got = append(got, m)
			}
		}
	}
	return got
}

// certificateMessage is the length of the TLS 1.2 Certificate handshake
// message that serves chain: the 4-byte handshake header, the 3-byte list
// length, and each certificate with its 3-byte length.
func certificateMessage(t *testing.T, chain []byte) int {
	t.Helper()
	n := 4 + 3
	for {
		var b *pem.Block
		b, chain = pem.Decode(chain)
		if b == nil {
			return n
		}
		n += 3 + len(b.Bytes)
	}
}

// Issue 14: a board's BearSSL receive buffer must hold a whole TLS record
// and Go never grants max_fragment_length, so eventrelay bounds the records
// itself: a TLS subscriber that asked for frameBytes=N gets no record with
// more than N+10 bytes of plaintext (a frame and its largest header) — the
// 101 response, a replay backlog, the largest message it is sent (at the
// cap) and a live one included; one byte over the cap is not sent to it
// (TestPushMessageLargerThanFrameBytes). A subscriber without frameBytes=
// is unchanged: crypto/tls's records of up to 16 KiB, every message.
func TestPushTLSRecordsFitFrameBytes(t *testing.T) {
	r := startTLSRelay(t)
	proxy := startRecordProxy(t, r.proc.Addr("http"))
	ch := "5d41402abc4b2a76b9719d911017c592"
	pad := func(n int) string { return strings.Repeat("x", n) }
	const backlog = 40
	for range backlog {
		r.publish(t, ch, `{"module_id":"t","command":"c","params":{"pad":"`+pad(600)+`"}}`)
	}
	// The largest message a frameBytes=2048 subscriber is sent: its body
	// and the 256 bytes allowed for its envelope make 2048. One byte more
	// and it gets a message_too_large notice instead.
	sized := func(command string, n int) string {
		b := `{"module_id":"t","command":"` + command + `","params":{"pad":"`
		return b + pad(n-len(b)-3) + `"}}`
	}
	near := sized("near", 2048-256)
	r.publish(t, ch, near)
	r.publish(t, ch, sized("over", 2048-256+1))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const frameBytes = 2048
	// mid 0 of another epoch: a history_reset notice, then every message.
	q := "CHANNEL_ID=" + r.signer.SignChannel(ch) + "&mid=00000000000000000000000000"
	small := r.subscribe(t, ctx, proxy.ln.Addr().String(), q+"&frameBytes=2048")
	got := readMessages(t, ctx, small, 1+backlog+2)
	if !bytes.Contains(got[backlog+1], []byte(`"command":"near"`)) {
		t.Fatalf("message %d is not the near-cap one: %.200s", backlog+1, got[backlog+1])
	}
	if !bytes.Contains(got[backlog+2], []byte(`"reason":"message_too_large"`)) {
		t.Fatalf("message %d is not a message_too_large notice: %.300s", backlog+2, got[backlog+2])
	}
	// And a live one near the cap.
	r.publish(t, ch, near)
	if live := readMessages(t, ctx, small, 1); !bytes.Contains(live[0], []byte(`"command":"near"`)) {
		t.Fatalf("live message: %.200s", live[0])
	}

	full := r.subscribe(t, ctx, proxy.ln.Addr().String(), q)
	got = readMessages(t, ctx, full, 1+backlog+3)
	if !bytes.Contains(got[backlog+2], []byte(`"command":"over"`)) || len(got[backlog+2]) < 2048-256+1 {
		t.Fatalf("the subscriber without frameBytes did not get the large message whole: %.200s", got[backlog+2])
	}

	limit := frameBytes + 10 + gcmOverhead
	certMsg := certificateMessage(t, r.chain)
	for i, name := range []string{"frameBytes=2048", "no frameBytes"} {
		recs := proxy.records(i)
		maxApp, maxHS, firstApp := 0, 0, 0
		for _, rec := range recs {
			switch rec.typ {
			case recordApplication:
				if firstApp == 0 {
					firstApp = rec.n
				}
				maxApp = max(maxApp, rec.n)
			case recordHandshake:
				maxHS = max(maxHS, rec.n)
			}
		}
		t.Logf("%s: %d records, largest application record %d B (the 101 response: %d B), largest handshake record %d B (Certificate message %d B)",
			name, len(recs), maxApp, firstApp-gcmOverhead, maxHS, certMsg)
		if maxHS > certMsg {
			t.Errorf("%s: a handshake record of %d B, larger than the Certificate message (%d B)", name, maxHS, certMsg)
		}
		if firstApp-gcmOverhead > 256 {
			t.Errorf("%s: the 101 response took %d B", name, firstApp-gcmOverhead)
		}
		if i == 0 && maxApp > limit {
			t.Errorf("%s: an application data record of %d B, over %d (frameBytes + 10 + %d of AES-GCM)", name, maxApp, limit, gcmOverhead)
		}
		if i == 1 && maxApp <= limit {
			t.Errorf("%s: no record over %d B; the proxy does not see what a capped subscriber is spared", name, limit)
		}
	}
}
