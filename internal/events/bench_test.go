package events_test

import (
	"encoding/json"
	"testing"

	"github.com/isobox/isobox/internal/events"
)

// BenchmarkParseJSON10 parses a 10-item call and encodes its batch: the
// CPU part of a hand-off.
func BenchmarkParseJSON10(b *testing.B) {
	var list []json.RawMessage
	for range 10 {
		list = append(list, json.RawMessage(sampleJSON[1:len(sampleJSON)-1]))
	}
	body, _ := json.Marshal(list)
	b.ReportAllocs()
	for b.Loop() {
		items, err := events.ParseJSON("bx.1", body)
		if err != nil {
			b.Fatal(err)
		}
		c := events.Commit{Batches: []*events.Batch{{Portal: "bx.1", Items: items}}}
		if len(c.Encode()) == 0 {
			b.Fatal("empty commit")
		}
	}
}
