package push

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// wsConn is a WebSocket subscriber. While idle it has one goroutine (its
// reader, parked in the network poller, needed to answer pings and see
// close frames) and 1 KiB of buffers; a flusher goroutine exists only while
// messages are queued.
type wsConn struct {
	srv  *Server
	sub  *sub
	c    *websocket.Conn
	nc   net.Conn // the hijacked connection, for write deadlines
	id   uint64
	once sync.Once
	done chan struct{} // closed when the reader has ended
	// frameBytes caps a frame (frameCut).
	frameBytes int
	// What the admin API shows of it (state.go): the client's address and
	// User-Agent, the frameBytes= and device= it sent, when it connected,
	// and the sequence of the last message written to it.
	remote     string
	agent      string
	askedFrame int
	device     string
	since      time.Time
	sent       atomic.Uint64
	// tooLarge counts the messages not sent to it for being larger than
	// its frameBytes (the first is logged).
	tooLarge atomic.Uint64
}

// smallHijacker hands coder/websocket the hijacked connection with 512-byte
// buffers instead of net/http's 4 KiB pair, which an idle subscriber would
// otherwise keep for its whole life. Frames larger than the buffer are
// written straight to the socket, so nothing is lost but a copy.
//
// With recordCap set (a TLS subscriber that asked for frameBytes=), the
// buffered writer writes through a recordWriter: crypto/tls makes at most
// one record of each Write's bytes and never joins two Writes in a record,
// so no record carries more than recordCap bytes of plaintext.
type smallHijacker struct {
	http.ResponseWriter
	conn      net.Conn
	recordCap int
}

func (h *smallHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *smallHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = conn
	var r io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	var w io.Writer = conn
	if h.recordCap > 0 {
		w = &recordWriter{w: conn, max: h.recordCap}
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(r, 512), bufio.NewWriterSize(w, 512)), nil
}

// frameHeaderMax is the largest WebSocket frame header the relay writes:
// 2 bytes, 8 more for a 64-bit length (RFC 6455 section 5.2); a server
// does not mask.
const frameHeaderMax = 10

// recordCap is the most plaintext one TLS record to a subscriber with
// frames of at most frameBytes carries: a whole frame and its header.
func recordCap(frameBytes int) int { return frameBytes + frameHeaderMax }

// recordWriter hands w at most max bytes per Write. Below a *tls.Conn's
// writer it bounds every TLS record: crypto/tls cuts each Write into
// records no longer than the Write (dynamic record sizing may cut them
// smaller) and never puts two Writes in one record.
type recordWriter struct {
	w   io.Writer
	max int
}

func (rw *recordWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), rw.max)
		m, err := rw.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// writeBadRequest answers a refused upgrade as the push server does.
func writeBadRequest(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Connection", "close")
	setCORS(h)
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, "Bad Request")
}

// serveWS runs a WebSocket subscriber; release (its connection-cap slot)
// is called once the connection has ended.
func (srv *Server) serveWS(w http.ResponseWriter, r *http.Request, req subRequest, release func()) {
	hj := &smallHijacker{ResponseWriter: w}
	if r.TLS != nil && req.frameBytes > 0 {
		// A small device's TLS receive buffer must hold a whole record,
		// and Go never grants the max_fragment_length extension that
		// would let it say so: bound the records here. The 101 response
		// before this point is one Write of fixed size (no field of it
		// comes from the request but the 28-byte Sec-WebSocket-Accept).
		hj.recordCap = recordCap(req.frameBytes)
	}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		// Browsers open the channel from the portal's pages, another
		// origin; access is decided by the channel signatures.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		release()
		return // Accept has answered
	}
	c.SetReadLimit(4096)
	s := req.newSub(srv.cfg.MaxQueueBytes)
	ws := &wsConn{srv: srv, sub: s, c: c, nc: hj.conn, id: srv.connID.Add(1), done: make(chan struct{}), frameBytes: req.frameBytes,
		remote: clientHost(r.RemoteAddr), agent: truncateAgent(r.UserAgent()), askedFrame: req.frameBytes, device: req.device, since: time.Now()}
	if ws.frameBytes == 0 {
		ws.frameBytes = maxFrameBytes
	}
	s.ws = ws
	go func() { <-ws.done; release() }()
	after, ok := srv.hub.register(s)
	if !ok {
		c.Close(websocket.StatusGoingAway, "server shutdown")
		close(ws.done) // the reader never started
		return
	}
	srv.met.connects.WithLabelValues("websocket").Inc()
	go ws.read()
	if req.hasMid {
		ctx, cancel := context.WithTimeout(srv.base, 30*time.Second)
		items, gap, err := srv.hub.history(ctx, s, req.mid, after)
		cancel()
		if err != nil {
			srv.log.Warn("push: history replay failed", "err", err)
			ws.closeWith(websocket.StatusInternalError, "history unavailable")
			return
		}
		s.goLive(gap, items, after)
		srv.redirect(s, resumeMid(req.mid, items, gap))
		return
	}
	srv.redirect(s, srv.hub.position())
}

// read consumes the client's frames (control frames are handled inside
// Read) until the connection ends, then unregisters the subscriber.
func (ws *wsConn) read() {
	defer close(ws.done)
	for {
		if _, _, err := ws.c.Read(context.Background()); err != nil {
			break
		}
	}
	ws.srv.hub.unregister(ws.sub)
	ws.sub.mu.Lock()
	ws.sub.gone = true
	ws.sub.out, ws.sub.pending = nil, nil
	ws.sub.mu.Unlock()
	ws.c.CloseNow()
}

// kick starts a flusher unless one is running.
func (ws *wsConn) kick() {
	s := ws.sub
	s.mu.Lock()
	if s.flushing || s.gone {
		s.mu.Unlock()
		return
	}
	s.flushing = true
	s.mu.Unlock()
	go ws.flush()
}

// A frame carries at most maxFrameItems messages and, unless one message
// alone is larger, maxFrameBytes, so that a backlog goes out as several
// frames a client can take one by one. Each message counts its body plus
// msgOverhead for its envelope (markers, id, mid, channel, time, tag), so
// 12 KiB stays under the 15 KiB frame limit of the ESP8266 WebSocket
// library the LAN relays (firmware/) use: a relay reconnecting after a long
// outage must be able to take its replay.
// A subscriber may ask for smaller frames with frameBytes= (at least
// minFrameBytes): an ESP8266 relay speaking TLS has no room for 12 KiB
// frames next to its TLS buffers.
const (
	maxFrameItems = 256
	maxFrameBytes = 12 << 10
	minFrameBytes = 1 << 10
	msgOverhead   = 256
)

// ErrFrameBytes refuses a subscribe whose frameBytes= is not a number of
// at least 1024.
var ErrFrameBytes = errors.New("frameBytes must be a number of bytes, at least 1024")

// frameCut returns how many of items go into the next frame of at most
// limit bytes (a single larger message goes alone).
func frameCut(items []item, limit int) int {
	n := 0
	for i, it := range items {
		n += len(it.m.body) + msgOverhead
		if i > 0 && (i == maxFrameItems || n > limit) {
			return i
		}
	}
	return len(items)
}

func (ws *wsConn) flush() {
	s := ws.sub
	typ := websocket.MessageText
	if s.format == formatBinary {
		typ = websocket.MessageBinary
	}
	for {
		s.mu.Lock()
		items := s.out
		if k := frameCut(items, ws.frameBytes); k < len(items) {
			items = items[:k:k]
			s.out = s.out[k:]
		} else {
			s.out = nil
		}
		for _, it := range items {
			s.outBytes -= len(it.m.body)
		}
		if len(items) == 0 || s.gone {
			s.flushing = false
			s.out, s.outBytes = nil, 0
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if len(items) == 1 && ws.askedFrame > 0 && len(items[0].m.body)+msgOverhead > ws.frameBytes {
			// frameCut sends a message over the cap alone, so this
			// catches every one.
			items[0] = ws.tooLargeNotice(items[0])
		}
		var frame []byte
		if len(items) == 1 && items[0].frame != nil {
			frame = items[0].frame
		} else {
			frame = appendFrame(nil, s.format, items)
		}
		// A deadline on the socket rather than a context per write: the
		// fan-out writes to every subscriber at once, and a context with a
		// timeout costs a timer and several allocations each time. It is
		// cleared after the write so that pongs and close frames, which
		// the library writes on its own, are not cut by a stale one.
		ws.nc.SetWriteDeadline(time.Now().Add(ws.srv.cfg.WriteTimeout))
		err := ws.c.Write(context.Background(), typ, frame)
		ws.nc.SetWriteDeadline(time.Time{})
		if err != nil {
			s.mu.Lock()
			s.flushing, s.gone = false, true
			s.mu.Unlock()
			ws.c.CloseNow()
			return
		}
		ws.sent.Store(items[len(items)-1].m.mid.seq)
		ws.srv.met.delivered.Add(float64(len(items)))
	}
}

// tooLargeNotice stands in for a message larger than what the subscriber
// asked for with frameBytes=: sent, it would break the device's connection
// (its WebSocket library drops a frame over its buffer), the device would
// reconnect with its mid, get the same message in its replay, and so on.
// The device gets instead a history_gap notice (reason message_too_large)
// with the message's mid, which it adopts like any mid: its position moves
// past the message, and it knows it missed something. Other subscribers of
// the channel get the message itself. Counted, logged once per connection.
func (ws *wsConn) tooLargeNotice(it item) item {
	m := it.m
	ws.srv.met.tooLarge.Inc()
	ws.srv.tooLarge.Add(1)
	if ws.tooLarge.Add(1) == 1 {
		ws.srv.log.Warn("push: a message larger than the subscriber's frameBytes was not sent to it; it got a history_gap notice (message_too_large) instead; further ones on this connection are only counted",
			"remote", ws.remote, "user_agent", ws.agent, "device", ws.device, "frame_bytes", ws.askedFrame,
			"body_bytes", len(m.body), "mid", m.mid.String())
	}
	body := `{"module_id":"isobox","command":"history_gap","params":{"reason":"message_too_large","mid":"` + m.mid.String() +
		`","next_mid":"` + m.mid.String() + `","bytes":` + strconv.Itoa(len(m.body)) + `,"frame_bytes":` + strconv.Itoa(ws.askedFrame) + `},"extra":{}}`
	return item{m: &message{mid: m.mid, created: m.created, expiry: m.expiry, body: []byte(body), to: m.to}, ch: it.ch}
}

// clientHost is the host part of a remote address.
func clientHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// truncateAgent cuts a User-Agent to 256 bytes, dropping what is not
// UTF-8 (a rune cut in two included).
func truncateAgent(ua string) string {
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return strings.ToValidUTF8(ua, "")
}

// ping sends a ping control frame and waits for the pong; a client that
// does not answer within the ping interval is disconnected. Keep-alive
// never uses data frames: clients treat an empty data frame as "no
// messages" and forget their mid.
func (ws *wsConn) ping() {
	ctx, cancel := context.WithTimeout(ws.srv.base, ws.srv.cfg.PingInterval)
	defer cancel()
	if err := ws.c.Ping(ctx); err != nil {
		select {
		case <-ws.done:
		default:
			ws.c.CloseNow()
		}
	}
}

func (ws *wsConn) closeWith(code websocket.StatusCode, reason string) {
	ws.once.Do(func() {
		ws.sub.mu.Lock()
		ws.sub.gone = true
		ws.sub.mu.Unlock()
		go ws.c.Close(code, reason)
	})
}

// closeSlow drops a client that fell behind; 1013 "try again later" makes
// clients reconnect, with their mid, and catch up from history.
func (ws *wsConn) closeSlow() {
	ws.srv.met.slow.Inc()
	ws.closeWith(websocket.StatusTryAgainLater, "slow consumer")
}

// closeShutdown ends the connection with 1001 (going away), which clients
// answer by reconnecting, to another relay if there is one.
func (ws *wsConn) closeShutdown() { ws.closeWith(websocket.StatusGoingAway, "server shutdown") }
