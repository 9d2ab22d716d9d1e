package faults

import "testing"

// The push invariant's bookkeeping: a subscriber that got a message is
// fine, one that did not is missing unless a gap notice it received names
// the message's mid (learnt from a subscriber that got it), and a second
// delivery is a duplicate. Frames are parsed as the relay sends them.
func TestPushCheckCountsMissingGapsAndDuplicates(t *testing.T) {
	p := &pushLoad{chans: []string{"a", "b"}}
	newSub := func(name string, ch int) *pushSub {
		s := &pushSub{p: p, name: name, ch: ch, got: map[string]int{}, mids: map[string]string{}}
		p.subs = append(p.subs, s)
		return s
	}
	got, gapped, missed, other := newSub("got", 0), newSub("gapped", 0), newSub("missed", 0), newSub("other", 1)
	msg := func(mid, id string) string {
		return `#!NGINXNMS!#{"id":1,"mid":"` + mid + `","channel":"a","tag":"1","time":"x","text":{"module_id":"faults","command":"tick","params":{"id":"` + id + `"},"extra":{}}}#!NGINXNME!#`
	}
	const m1, m2 = "17000000000000000000000001", "17000000000000000000000002"
	if err := got.receive([]byte(msg(m1, "x1") + msg(m2, "x2") + msg(m2, "x2"))); err != nil {
		t.Fatal(err)
	}
	gap := `#!NGINXNMS!#{"id":2,"mid":"` + m2 + `","channel":"a","tag":"1","time":"x","text":{"module_id":"isobox","command":"history_gap","params":{"reason":"history_lost","mid":"` + m1 + `","next_mid":"` + m2 + `"},"extra":{}}}#!NGINXNME!#`
	if err := gapped.receive([]byte(msg(m1, "x1") + gap)); err != nil {
		t.Fatal(err)
	}
	if err := missed.receive([]byte(msg(m1, "x1"))); err != nil {
		t.Fatal(err)
	}
	if got.position() != m2 || gapped.position() != m2 || missed.position() != m1 || other.position() != "" {
		t.Errorf("positions %q %q %q %q", got.position(), gapped.position(), missed.position(), other.position())
	}
	st := p.check([]pushMsg{{id: "x1", chans: []int{0}}, {id: "x2", chans: []int{0}}})
	if st.Published != 2 || st.Received != 4 || st.Missing != 1 || st.Duplicated != 1 {
		t.Errorf("check = %+v; want 2 published, 4 received (x1 ×3, x2 once), 1 missing (x2 at missed), 1 duplicated", st)
	}
	if len(st.MissingIDs) != 1 || st.MissingIDs[0] != "missed: x2" {
		t.Errorf("missing ids %v", st.MissingIDs)
	}
	if n := p.takeGaps(); n != 1 {
		t.Errorf("gap notices %d, want 1", n)
	}
	// A message nobody received cannot be placed in a gap: missing for all.
	if st := p.check([]pushMsg{{id: "x3", chans: []int{0, 1}}}); st.Missing != 4 {
		t.Errorf("unreceived message: %+v, want 4 missing", st)
	}
	if err := got.receive([]byte("#!NGINXNMS!#{\"mid\":")); err == nil {
		t.Error("a frame without its end marker was accepted")
	}
}
