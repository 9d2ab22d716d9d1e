package push

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"

	"github.com/isobox/isobox/internal/testkit"
)

// recordTap passes a connection's reads through and notes the length of
// every TLS record in them.
type recordTap struct {
	net.Conn
	hdr  []byte
	left int // bytes of the current record still to come
	lens []int
}

func (c *recordTap) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) == 5 {
			c.left = int(binary.BigEndian.Uint16(c.hdr[3:]))
			if c.hdr[0] == 23 { // application data
				c.lens = append(c.lens, c.left)
			}
			c.hdr = c.hdr[:0]
		}
	}
	return n, err
}

// sendOverTLS writes frame (header, payload) through a 512-byte bufio
// writer, as coder/websocket writes a hijacked connection, over real
// crypto/tls on loopback — through a recordWriter of max bytes when max is
// set — and returns what the client read and the lengths of the
// application data records it got.
func sendOverTLS(t *testing.T, max int, header, payload []byte) ([]byte, []int) {
	t.Helper()
	files := testkit.TLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		tc := tls.Server(c, files.Config)
		defer tc.Close()
		var w io.Writer = tc
		if max > 0 {
			w = &recordWriter{w: tc, max: max}
		}
		bw := bufio.NewWriterSize(w, 512)
		bw.Write(header)
		bw.Write(payload)
		errc <- bw.Flush()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roots := testkit.CAPool(t, files.CAFile)
	tap := &recordTap{Conn: raw}
	c := tls.Client(tap, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return got, tap.lens
}

// The writer below coder/websocket's bufio bounds every TLS record by the
// size of the writes it hands crypto/tls, whatever the frame: a 12 KiB
// frame to a frameBytes=1024 subscriber (which the relay no longer sends,
// see tooLargeNotice, but the bound must not depend on that) arrives whole
// in records of at most 1034 bytes of plaintext; without the writer,
// crypto/tls's dynamic record sizing grows its records far past that.
func TestRecordWriterBoundsTLSRecords(t *testing.T) {
	header := []byte{0x81, 126, 0x30, 0x00}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 12<<10/16)
	want := append(append([]byte{}, header...), payload...)
	const overhead = 24 // TLS 1.2 AES-GCM: explicit nonce and tag

	got, lens := sendOverTLS(t, recordCap(1024), header, payload)
	if !bytes.Equal(got, want) {
		t.Fatalf("the client read %d bytes, not the %d written", len(got), len(want))
	}
	for _, n := range lens {
		if n-overhead > recordCap(1024) {
			t.Fatalf("a record of %d bytes of plaintext, over %d: %v", n-overhead, recordCap(1024), lens)
		}
	}

	got, lens = sendOverTLS(t, 0, header, payload)
	if !bytes.Equal(got, want) {
		t.Fatalf("without the writer the client read %d bytes", len(got))
	}
	if slices.Max(lens)-overhead <= recordCap(1024) {
		t.Fatalf("without the writer no record exceeded %d (%v): the test cannot tell the writer's effect", recordCap(1024), lens)
	}
}
