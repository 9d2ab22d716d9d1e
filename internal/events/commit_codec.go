package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The stored formats are line-based text, cheaper than JSON and still
// readable with `nats stream get`: a JSON header line per batch, then one
// line per item "<id> <form>". Ids are "evt_" + hex and forms are PHP form
// encoding (ASCII, no spaces or newlines), so neither needs escaping.

const commitMagic = "isobox-commit v1\n"

type batchHeader struct {
	Portal     string `json:"portal"`
	ReceivedMs int64  `json:"received_ms"`
}

// appendBatch writes one batch: its header line and its item lines.
func appendBatch(buf []byte, b *Batch) []byte {
	h, _ := json.Marshal(batchHeader{Portal: b.Portal, ReceivedMs: b.ReceivedMs})
	buf = append(buf, h...)
	buf = append(buf, '\n')
	for _, it := range b.Items {
		buf = AppendItem(buf, it)
	}
	return buf
}

// AppendItem writes "<id> <form>\n".
func AppendItem(buf []byte, it Item) []byte {
	buf = append(buf, it.ID...)
	buf = append(buf, ' ')
	buf = append(buf, it.Form()...)
	return append(buf, '\n')
}

// ParseItemLine reads a line written by AppendItem (without its newline).
func ParseItemLine(line string) (Item, error) {
	id, form, ok := strings.Cut(line, " ")
	if !ok || id == "" {
		return Item{}, errors.New("events: malformed item line")
	}
	return ItemFromForm(id, form)
}

// Encode writes c in the stored format.
func (c *Commit) Encode() []byte {
	buf := []byte(commitMagic)
	for _, b := range c.Batches {
		buf = appendBatch(buf, b)
	}
	return buf
}

// DecodeCommit parses a StreamIn message.
func DecodeCommit(data []byte) (*Commit, error) {
	rest, ok := bytes.CutPrefix(data, []byte(commitMagic))
	if !ok {
		return nil, errors.New("events: decode commit: not an isobox commit")
	}
	c := &Commit{}
	var cur *Batch
	for len(rest) > 0 {
		line, tail, _ := bytes.Cut(rest, []byte{'\n'})
		rest = tail
		if len(line) == 0 {
			continue
		}
		if line[0] == '{' {
			var h batchHeader
			if err := json.Unmarshal(line, &h); err != nil {
				return nil, fmt.Errorf("events: decode commit: batch header: %w", err)
			}
			cur = &Batch{Portal: h.Portal, ReceivedMs: h.ReceivedMs}
			c.Batches = append(c.Batches, cur)
			continue
		}
		if cur == nil {
			return nil, errors.New("events: decode commit: item before a batch header")
		}
		it, err := ParseItemLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("events: decode commit: %w", err)
		}
		cur.Items = append(cur.Items, it)
	}
	return c, nil
}

// Lite is an item as the fan-out needs it: its id and stored form, and
// the fields that route it, read from the form without decoding it all.
type Lite struct {
	ID, Form                               string
	ClientID, ApplicationToken, URL, Event string
}

// LiteBatch is a batch of Lite items.
type LiteBatch struct {
	Portal     string
	ReceivedMs int64
	Items      []Lite
}

// canonical keys of the routing fields in phpform.Encode output.
const (
	keyClientID = "client_id"
	keyAppToken = "auth%5Bapplication_token%5D"
	keyURL      = "query%5BQUERY_URL%5D"
	keyEvent    = "query%5BQUERY_DATA%5D%5Bevent%5D"
)

// peek reads the routing fields of a stored form (the last value of a
// key wins, as in parse_str).
func peek(l *Lite) error {
	for pair := range strings.SplitSeq(l.Form, "&") {
		k, v, _ := strings.Cut(pair, "=")
		var dst *string
		switch k {
		case keyClientID:
			dst = &l.ClientID
		case keyAppToken:
			dst = &l.ApplicationToken
		case keyURL:
			dst = &l.URL
		case keyEvent:
			dst = &l.Event
		default:
			continue
		}
		s, err := url.QueryUnescape(v)
		if err != nil {
			return fmt.Errorf("events: stored item %s: %w", l.ID, err)
		}
		*dst = s
	}
	l.Event = strings.ToUpper(l.Event)
	return nil
}

// DecodeCommitLite parses a StreamIn message for the fan-out.
func DecodeCommitLite(data []byte) ([]LiteBatch, error) {
	rest, ok := bytes.CutPrefix(data, []byte(commitMagic))
	if !ok {
		return nil, errors.New("events: decode commit: not an isobox commit")
	}
	var out []LiteBatch
	for len(rest) > 0 {
		line, tail, _ := bytes.Cut(rest, []byte{'\n'})
		rest = tail
		if len(line) == 0 {
			continue
		}
		if line[0] == '{' {
			var h batchHeader
			if err := json.Unmarshal(line, &h); err != nil {
				return nil, fmt.Errorf("events: decode commit: batch header: %w", err)
			}
			out = append(out, LiteBatch{Portal: h.Portal, ReceivedMs: h.ReceivedMs})
			continue
		}
		if len(out) == 0 {
			return nil, errors.New("events: decode commit: item before a batch header")
		}
		id, form, ok := strings.Cut(string(line), " ")
		if !ok || id == "" {
			return nil, errors.New("events: decode commit: malformed item line")
		}
		l := Lite{ID: id, Form: form}
		if err := peek(&l); err != nil {
			return nil, err
		}
		b := &out[len(out)-1]
		b.Items = append(b.Items, l)
	}
	return out, nil
}
