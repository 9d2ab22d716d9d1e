package delivery

import (
	"testing"
	"time"
)

func TestSeenSet(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := newSeenSet(time.Hour)
	s.add("a", 5, now.UnixMilli())
	if s.dup("a", 5) {
		t.Error("the message that first carried an id is not its duplicate (a redelivery)")
	}
	if !s.dup("a", 6) {
		t.Error("a later message with the same id is a duplicate")
	}
	if s.dup("b", 6) {
		t.Error("an unknown id is no duplicate")
	}
	s.add("a", 3, now.UnixMilli()) // rebuilt out of order: the earliest wins
	if !s.dup("a", 5) {
		t.Error("the earliest occurrence decides")
	}
	s.prune(now.Add(2 * time.Hour))
	if s.dup("a", 6) || len(s.first) != 0 {
		t.Errorf("ids older than the window are forgotten: %v", s.first)
	}
}

// Instances log their records independently: a fan-out's first record
// (pending) stored after another instance's "delivered" does not undo it;
// a replay's pending (it has UpdatedMs) does.
func TestLoggedRecordsKeepTheLaterState(t *testing.T) {
	r := newRecords(nil, 10, nil)
	r.applyLogged(Record{ID: "a", Status: StatusDelivered, UpdatedMs: 5})
	r.applyLogged(Record{ID: "a", Status: StatusPending, CreatedMs: 1})
	if got, _ := r.get("a"); got.Status != StatusDelivered {
		t.Errorf("status %q after a late fan-out record; want delivered", got.Status)
	}
	r.applyLogged(Record{ID: "a", Status: StatusPending, UpdatedMs: 9})
	if got, _ := r.get("a"); got.Status != StatusPending {
		t.Errorf("status %q after a replay record; want pending", got.Status)
	}
}
