package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
