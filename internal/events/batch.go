package events

import (
	"crypto/sha256"
	"encoding/hex"
)

// Batch is what one ingest call stores in StreamIn: the calling portal and
// its items, in the order they were sent.
type Batch struct {
	// Portal is the portal's OAuth client_id ("bx.…").
	Portal string `json:"portal"`
	// ReceivedMs is when the relay accepted the call, unix milliseconds.
	ReceivedMs int64  `json:"received_ms"`
	Items      []Item `json:"items"`
}

// ID is the batch's Nats-Msg-Id: a hash of the portal and its item ids, so
// a call repeated with the same items is stored once.
func (b *Batch) ID() string {
	h := sha256.New()
	h.Write([]byte(b.Portal))
	for _, it := range b.Items {
		h.Write([]byte{0})
		h.Write([]byte(it.ID))
	}
	return "b_" + hex.EncodeToString(h.Sum(nil)[:16])
}
