package push

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pushv1 "github.com/isobox/isobox/api/isobox/push/v1"
)

// A mid is a message id as clients see it: 26 decimal digits, the stream's
// epoch (its creation time in unix seconds, 10 digits) followed by the
// message's stream sequence (16 digits, zero-padded). Every relay instance
// derives the same mid from the same stored message, mids grow with the
// stream, and a stream created anew (lost data) starts a larger epoch, so a
// client's old mid is recognised as belonging to a history that is gone.
type mid struct {
	epoch uint64
	seq   uint64
}

func (m mid) String() string { return fmt.Sprintf("%010d%016d", m.epoch, m.seq) }

// bytes returns the binary-mode id: the 26 digits read as hex, 13 bytes,
// so that the client's hex of it is the same mid.
func (m mid) bytes() []byte {
	b, _ := hex.DecodeString(m.String())
	return b
}

// parseMid parses a client's mid; ok is false for anything but 26 digits
// (the push server ignores such a mid, and so do we).
func parseMid(s string) (m mid, ok bool) {
	if len(s) != 26 {
		return mid{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return mid{}, false
		}
	}
	e, err1 := strconv.ParseUint(s[:10], 10, 64)
	q, err2 := strconv.ParseUint(s[10:], 10, 64)
	if err1 != nil || err2 != nil {
		return mid{}, false
	}
	return mid{epoch: e, seq: q}, true
}

// message is one stored message as the relay holds it in memory: shared,
// read-only after creation, by every subscriber it goes to.
type message struct {
	mid     mid
	created time.Time
	expiry  uint32 // seconds
	body    []byte // one-line JSON object
	to      []chanKey

	once sync.Once
	pb   []byte // encoded OutgoingMessage, built on first use
}

// expired reports whether m's Message-Expiry has passed at now.
func (m *message) expired(now time.Time) bool {
	return now.After(m.created.Add(time.Duration(m.expiry) * time.Second))
}

// format is how a subscriber wants its messages.
type format uint8

const (
	formatText   format = iota // #!NGINXNMS!#{...}#!NGINXNME!# (versions 2-4)
	formatJSON                 // a JSON array of the same objects (format=json)
	formatBinary               // protobuf ResponseBatch (binaryMode=true, version 4)
)

// item is a message queued for one subscriber, with the channel it matched
// and, when it came live, the frame holding only it (encoded once per
// channel and format by the fan-out, shared by every subscriber).
type item struct {
	m     *message
	ch    chanKey
	frame []byte
}

const (
	frameStart = "#!NGINXNMS!#"
	frameEnd   = "#!NGINXNME!#"
)

// appendObject appends the push server's JSON object for it: id, mid,
// channel, tag, time and the published body spliced in verbatim as text.
func appendObject(b []byte, it item) []byte {
	m := it.m
	ms := m.created.UnixMilli()
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, m.mid.seq, 10)
	b = append(b, `,"mid":"`...)
	b = append(b, m.mid.String()...)
	b = append(b, `","channel":"`...)
	b = hex.AppendEncode(b, it.ch[1:])
	b = append(b, `","tag":"`...)
	b = fmt.Appendf(b, "%03d", ms%1000)
	b = append(b, `","time":"`...)
	b = m.created.UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, `","text":`...)
	b = append(b, m.body...)
	return append(b, '}')
}

// appendFrame appends items in format f: one WebSocket frame or one
// long-poll body.
func appendFrame(b []byte, f format, items []item) []byte {
	switch f {
	case formatJSON:
		b = append(b, '[')
		for i, it := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendObject(b, it)
		}
		return append(b, ']')
	case formatBinary:
		var msgs []byte
		for _, it := range items {
			msgs = protowire.AppendTag(msgs, 1, protowire.BytesType)
			msgs = protowire.AppendBytes(msgs, it.m.outgoing())
		}
		// ResponseBatch.responses[0].outgoingMessages.messages
		var resp []byte
		resp = protowire.AppendTag(resp, 1, protowire.BytesType)
		resp = protowire.AppendBytes(resp, msgs)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		return protowire.AppendBytes(b, resp)
	default:
		for _, it := range items {
			b = append(b, frameStart...)
			b = appendObject(b, it)
			b = append(b, frameEnd...)
		}
		return b
	}
}

// outgoing returns m as an encoded OutgoingMessage. Sender is always
// BACKEND: clients drop a batch whose messages have no sender, and route
// CLIENT messages elsewhere.
func (m *message) outgoing() []byte {
	m.once.Do(func() {
		m.pb, _ = proto.Marshal(&pushv1.OutgoingMessage{
			Id:      m.mid.bytes(),
			Body:    string(m.body),
			Expiry:  m.expiry,
			Created: uint32(m.created.Unix()),
			Sender:  &pushv1.Sender{Type: pushv1.SenderType_BACKEND},
		})
	})
	return m.pb
}

// ErrBody is returned by normalizeBody for a body that is not a JSON
// object. Its text is sent to the publisher with HTTP 400.
var ErrBody = errors.New("Message is not a JSON object.")

// normalizeBody checks that body is one JSON object and returns it on one
// line: clients cut messages out of a frame with a regular expression that
// does not cross line terminators (\n, \r, U+2028, U+2029), so newlines
// between tokens are removed and the two Unicode separators, which JSON
// allows raw inside strings, are escaped.
func normalizeBody(body []byte) ([]byte, error) {
	i := 0
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n') {
		i++
	}
	if i == len(body) {
		return nil, ErrEmpty
	}
	if body[i] != '{' || !jsonValid(body) {
		return nil, ErrBody
	}
	return oneLine(body), nil
}
