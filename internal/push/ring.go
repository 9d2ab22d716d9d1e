package push

import "sort"

// ring keeps the most recent messages this relay has seen, in mid order, so
// that the common reconnect (a client back after seconds, with its mid) is
// answered from memory instead of a JetStream consumer per client. It is
// bounded by count and by body bytes. Not safe for concurrent use: the hub
// guards it.
type ring struct {
	msgs     []*message
	maxMsgs  int
	maxBytes int
	bytes    int
}

func (r *ring) add(m *message) {
	if r.maxMsgs <= 0 {
		return
	}
	r.msgs = append(r.msgs, m)
	r.bytes += len(m.body)
	drop := 0
	for len(r.msgs)-drop > r.maxMsgs || (r.bytes > r.maxBytes && len(r.msgs)-drop > 1) {
		r.bytes -= len(r.msgs[drop].body)
		r.msgs[drop] = nil
		drop++
	}
	if drop > 0 {
		r.msgs = r.msgs[drop:]
		// Re-slice keeps the backing array; copy once it is mostly dead
		// space so memory stays bounded.
		if cap(r.msgs) > 2*r.maxMsgs+16 {
			r.msgs = append(make([]*message, 0, r.maxMsgs+16), r.msgs...)
		}
	}
}

// covers reports whether the ring holds everything with from <= seq <= to:
// it starts at or before from and has reached to (while the ring is being
// filled at start it may not have).
func (r *ring) covers(from, to uint64) bool {
	return len(r.msgs) > 0 && r.msgs[0].mid.seq <= from && r.msgs[len(r.msgs)-1].mid.seq >= to
}

// since returns the messages with from <= seq <= to.
func (r *ring) since(from, to uint64) []*message {
	i := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].mid.seq >= from })
	j := sort.Search(len(r.msgs), func(i int) bool { return r.msgs[i].mid.seq > to })
	if i >= j {
		return nil
	}
	return append([]*message(nil), r.msgs[i:j]...)
}
