//go:build emulation

// The relay sketch itself (arduino/isobox_relay), built for the ESP8266
// core's host emulation by `make -C firmware emulate`: the core's
// WiFiClient over sockets, its real BearSSL::WiFiClientSecure and BearSSL
// compiled for the PC, the real WebSockets library with the pinned TLS
// client forced in as in the device build, ESP8266WebServer serving the
// status page. Run by `make -C firmware emulate-test` (build tag
// emulation), which passes the binaries in ISOBOX_EMU_BOARD and
// ISOBOX_EMU_SETTINGS; without them the test fails, it never skips.

package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/push"
)

// emulator returns the emulated board and its EEPROM writer.
func emulator(t *testing.T) (boardBin, settingsBin string) {
	t.Helper()
	boardBin, settingsBin = os.Getenv("ISOBOX_EMU_BOARD"), os.Getenv("ISOBOX_EMU_SETTINGS")
	if boardBin == "" || settingsBin == "" {
		t.Fatal("ISOBOX_EMU_BOARD and ISOBOX_EMU_SETTINGS are not set: run make -C firmware emulate-test ESP8266_CORE=… WEBSOCKETS=… BEARSSL=…")
	}
	for _, f := range []string{boardBin, settingsBin} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: build it with make -C firmware emulate", err)
		}
	}
	return boardBin, settingsBin
}

// board is one emulated relay board: its serial output (stdout) and the
// emulator's own messages (stderr) as lines, its web server on web.
type board struct {
	t     *testing.T
	cmd   *exec.Cmd
	web   string
	lines chan string
	seen  []string
}

// startBoard writes the settings as the setup page would save them into
// the emulated EEPROM and boots the board with them.
func startBoard(t *testing.T, boardBin, settingsBin, relayAddr, channel, relays string, extra ...string) *board {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(relayAddr)
	args := append([]string{dir + "/eeprom", host, port, channel, relays}, extra...)
	if out, err := exec.Command(settingsBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("emu_settings: %v\n%s", err, out)
	}
	// The emulator adds a shift to server ports below 1024: port 80 of the
	// board is web.
	web := freePort(t)
	_, wp, _ := net.SplitHostPort(web)
	n, _ := strconv.Atoi(wp)
	b := &board{t: t, web: web, lines: make(chan string, 4096)}
	// -L 0 -S 0: no filesystems; -b: the UART reads stdin (/dev/null) without a tty;
	// -i lo -l: the emulated web server (the setup page) listens on loopback
	// only, not on every interface of the machine running the test.
	b.cmd = exec.Command(boardBin, "-L", "0", "-S", "0", "-b", "-i", "lo", "-l", "-s", strconv.Itoa(n-80))
	b.cmd.Dir = dir
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b.cmd.Stdout, b.cmd.Stderr = pw, pw
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			b.lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(b.lines)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b.drain()
			t.Logf("the emulated board's last lines:\n%s", strings.Join(b.tail(), "\n"))
		}
		// SIGINT ends the emulator's loop (user_exit) and it exits 0.
		_ = b.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- b.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("emulated board exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			t.Errorf("emulated board did not stop on SIGINT")
		}
		pr.Close()
	})
	return b
}

// until reads the board's lines up to one containing s and returns it.
func (b *board) until(s string) string {
	b.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("the emulated board exited; output:\n%s", strings.Join(b.seen, "\n"))
			}
			b.seen = append(b.seen, l)
			if strings.Contains(l, s) {
				return l
			}
		case <-deadline:
			b.t.Fatalf("the emulated board did not print %q in 60 s; output:\n%s", s, strings.Join(b.tail(), "\n"))
		}
	}
}

// drain takes the lines printed so far without waiting.
func (b *board) drain() {
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				return
			}
			b.seen = append(b.seen, l)
		default:
			return
		}
	}
}

func (b *board) tail() []string {
	if len(b.seen) > 60 {
		return b.seen[len(b.seen)-60:]
	}
	return b.seen
}

// page returns the board's status page as the LAN sees it.
func (b *board) page() string {
	b.t.Helper()
	resp, err := http.Get("http://" + b.web + "/")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("status page = %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// waitPage polls the status page until it contains every one of want.
func (b *board) waitPage(want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var p string
	for time.Now().Before(deadline) {
		p = b.page()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(p, w)
		}
		if ok {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("status page never showed %q:\n%s", want, p)
	return ""
}

// heap is the emulation's heap accounting (test/emu/emu_board.cpp).
type heap struct{ current, peak, blocks int }

var heapLine = regexp.MustCompile(`emu-heap current=(-?\d+) peak=(-?\d+) blocks=(-?\d+)`)

func (b *board) heap() heap {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		b.t.Fatal(err)
	}
	m := heapLine.FindStringSubmatch(b.until("emu-heap "))
	if m == nil {
		b.t.Fatalf("heap report %q", b.seen[len(b.seen)-1])
	}
	c, _ := strconv.Atoi(m[1])
	p, _ := strconv.Atoi(m[2])
	n, _ := strconv.Atoi(m[3])
	return heap{c, p, n}
}

func (b *board) resetPeak() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		b.t.Fatal(err)
	}
}

var bearsslError = regexp.MustCompile(`BearSSL error (\d+)`)

// The sketch over the core's real BearSSL client against the real
// eventrelay's TLS listener: subscribe with the pinned key and obey; a new
// key on eventrelay is refused (which BearSSL error, the status page, the
// LED state), and the old key back heals the board with the missed
// command replayed by mid. Logs the heap the emulated process holds.
func TestEmulatedBoardOverBearSSL(t *testing.T) {
	boardBin, settingsBin := emulator(t)
	er, td := startTLSRelay(t)
	pin := td.pin()
	signer, err := push.NewSigner(sigKey, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	ch := "c4ca4238a0b923820dcc509a6f75849b"

	b := startBoard(t, boardBin, settingsBin, er.httpAddr, signer.SignChannel(ch), "pump:12,fan:13", "pin="+pin)
	er.waitSubscribers(ch, 1)
	b.waitPage("<td>subscribed", "TLS key refusals<td>0", "TLS receive buffer, bytes<td>4096")
	up := b.heap()

	er.publish(ch, esp("pump", true))
	b.until("relay 'pump' -> on")
	b.waitPage("relay pump<td>on", "relay fan<td>off", "last command<td>pump on")

	// eventrelay gets a new key (tls init again) and restarts, which cuts
	// the live connection: the board's reconnects meet the new key.
	oldLeaf := servedLeaf(t, er.httpAddr, func(*x509.Certificate) bool { return true })
	key, keyPEM := td.leafKey()
	td.issue()
	er.stop()
	er.start()
	servedLeaf(t, er.httpAddr, func(c *x509.Certificate) bool { return !bytes.Equal(spki(c), spki(oldLeaf)) })
	// Missed while refused: a backlog of 40 messages of ~700 bytes for a
	// relay this board does not have, then its own command. The replay comes
	// in frames of at most 2 KiB (frameBytes=2048) in TLS records eventrelay
	// caps to fit the 4 KiB buffer.
	pad := strings.Repeat("x", 640)
	for i := 0; i < 40; i++ {
		er.publish(ch, `{"module_id":"application","command":"esp","params":{"device":"ghost","value":"1","pad":"`+pad+`"}}`)
	}
	er.publish(ch, esp("fan", true))
	// Attempts while eventrelay restarts fail on TCP (error 0); the first
	// handshake with the new key says what BearSSL reports for it.
	for {
		l := b.until("tls: handshake failed, BearSSL error ")
		m := bearsslError.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("no error code in %q", l)
		}
		if m[1] == "0" {
			continue
		}
		if m[1] != "27" { // BR_ERR_BAD_SIGNATURE: another EC P-256 key
			t.Fatalf("a server with another key of the same type: %s, want BearSSL error 27", l)
		}
		t.Logf("a server with another key: %s", l)
		break
	}
	b.waitPage("<td>REFUSED: eventrelay", "<td>refused: eventrelay")
	er.waitSubscribers(ch, 0)
	down := b.heap()
	if p := b.page(); strings.Contains(p, "relay fan<td>on") {
		t.Fatalf("a command was applied while the key was refused:\n%s", p)
	}

	// The old key back: the board, retrying on its back-off, subscribes
	// by itself and gets the command it missed (replay by mid).
	if err := os.WriteFile(td.key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	serial := td.renew(key)
	servedLeaf(t, er.httpAddr, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(serial) == 0 })
	b.until("relay 'fan' -> on")
	er.waitSubscribers(ch, 1)
	p := b.waitPage("<td>subscribed", "relay fan<td>on")
	if strings.Contains(p, "too large") || strings.Contains(p, "TLS receive buffer, bytes<td>16384") {
		t.Fatalf("the replay did not fit the 4 KiB buffer:\n%s", p)
	}
	if strings.Contains(p, "REFUSED") {
		t.Fatalf("healed board still shows the refusal:\n%s", p)
	}
	b.resetPeak()
	er.publish(ch, esp("pump", false))
	b.until("relay 'pump' -> off")
	again := b.heap()
	t.Logf("emulated process heap, bytes (usable size, 32-bit host, blocks >= 64 KiB apart): subscribed %d (peak since boot %d), "+
		"not connected %d, subscribed again %d (peak over a command %d); a live connection holds %d",
		up.current, up.peak, down.current, again.current, again.peak, again.current-down.current)
	if p := b.page(); strings.Contains(p, "too large") || !strings.Contains(p, "TLS receive buffer, bytes<td>4096") {
		t.Fatalf("eventrelay's records did not fit the 4 KiB buffer:\n%s", p)
	}
	if again.current <= down.current {
		t.Fatalf("a live TLS connection holds no heap? subscribed %d, not connected %d", again.current, down.current)
	}
}

// bigRecordServer is a TLS server with its own P-256 key (pinned by the
// board) that answers the WebSocket handshake and two text frames in one
// TLS record of 16,384 plaintext bytes, the largest a server may write, as
// a TLS server that is not isobox's eventrelay may (Go's TLS grants no
// smaller maximum fragment length). It returns its address and pin, and
// counts the connections whose handshake completed.
func bigRecordServer(t *testing.T) (addr, pin string, conns *atomic.Int32) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	spkiDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		DynamicRecordSizingDisabled: true, // full-size records from the first byte
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveBigRecord(c.(*tls.Conn), conns)
		}
	}()
	return ln.Addr().String(), base64.StdEncoding.EncodeToString(spkiDER), conns
}

func serveBigRecord(c *tls.Conn, conns *atomic.Int32) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if c.Handshake() != nil {
		return
	}
	conns.Add(1)
	br := bufio.NewReader(c)
	var wsKey string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
			wsKey = strings.TrimSpace(v)
		}
		if l == "\r\n" {
			break
		}
	}
	h := sha1.Sum([]byte(wsKey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	out := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n")
	// Two text frames (each under the library's 15 KiB frame limit) fill the record.
	rest := 16384 - len(out)
	for _, n := range []int{rest/2 - 4, rest - rest/2 - 4} {
		out = append(out, 0x81, 126, byte(n>>8), byte(n))
		out = append(out, bytes.Repeat([]byte("x"), n)...)
	}
	if _, err := c.Write(out); err != nil { // one record: len(out) == 16384
		return
	}
	_, _ = io.Copy(io.Discard, c)
}

// A record larger than the board's 4 KiB receive buffer (a server that is
// not isobox's relay): the real BearSSL client fails the connection, the
// board falls back to 16 KiB for the next ones until it restarts, says so
// on the status page, and the next connection holds the record.
func TestEmulatedBoardFallsBackToAFullSizeBufferOnARecordTooLarge(t *testing.T) {
	boardBin, settingsBin := emulator(t)
	addr, pin, conns := bigRecordServer(t)
	b := startBoard(t, boardBin, settingsBin, addr, "c4ca4238a0b923820dcc509a6f75849b.0123456789abcdef0123456789abcdef01234567",
		"pump:12", "pin="+pin)
	l := b.until("tls: connection closed, BearSSL error ")
	t.Logf("a 16,384-byte record into the 4 KiB buffer: %s", l)
	if m := bearsslError.FindStringSubmatch(l); m == nil || m[1] != "6" { // BR_ERR_TOO_LARGE
		t.Fatalf("want BearSSL error 6 (BR_ERR_TOO_LARGE): %s", l)
	}
	b.until("tls: a record did not fit the 4096 B receive buffer; 16384 B from the next connection until restart")
	p := b.waitPage("<td>subscribed", "TLS receive buffer, bytes<td>16384", "TLS records too large for 4 KiB<td>1")
	if n := conns.Load(); n < 2 {
		t.Fatalf("%d TLS connections, want the failed one and the one with the larger buffer", n)
	}
	if strings.Contains(p, "REFUSED") {
		t.Fatalf("a record too large is not a refused key:\n%s", p)
	}
	h := b.heap()
	t.Logf("emulated process heap with the 16 KiB fallback buffer, subscribed: %d bytes (peak %d)", h.current, h.peak)
}
