package console

import (
	"testing"
	"time"
)

// Two newest-first lists merge into one newest-first list, bounded.
func TestMergeAudit(t *testing.T) {
	at := func(m int) Entry { return Entry{ID: string(rune('a' + m)), At: time.Unix(int64(m)*60, 0)} }
	a := []Entry{at(9), at(5), at(1)}
	b := []Entry{at(8), at(5), at(2), at(0)}
	got := mergeAudit(a, b, 10)
	if len(got) != 7 {
		t.Fatalf("%d entries", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].At.After(got[i-1].At) {
			t.Fatalf("not newest first at %d: %v", i, got)
		}
	}
	if got := mergeAudit(a, b, 3); len(got) != 3 || got[0].At != at(9).At || got[1].At != at(8).At {
		t.Errorf("limit 3: %v", got)
	}
	if got := mergeAudit(nil, b, 10); len(got) != 4 {
		t.Errorf("one side empty: %v", got)
	}
}
