package push

import (
	"sync"

	"github.com/coder/websocket"
)

// sub is one subscriber connection: a WebSocket or a held long poll. It is
// registered in the hub for its channels; the hub's consumer offers it
// messages, which it queues until its transport sends them. An idle sub
// holds no buffers and, for a WebSocket, no goroutine besides its reader.
type sub struct {
	keys   []chanKey
	format format
	ws     *wsConn   // nil for a long poll
	wake   chan bool // long poll: signalled when out gets items; buffered 1

	mu       sync.Mutex
	live     bool   // false while history is being replayed
	lastSeq  uint64 // highest sequence queued (drops duplicates)
	pending  []item // live messages that came during the replay
	out      []item // queued to send
	outBytes int    // body bytes in out
	gone     bool   // ended: nothing more is queued
	flushing bool   // a WebSocket flusher goroutine is running
	maxQueue int    // bytes; a sub that falls further behind is dropped
}

// matches returns the first of s's channels that m is for.
func (s *sub) matches(m *message) (chanKey, bool) {
	for _, k := range m.to {
		for _, o := range s.keys {
			if k == o {
				return k, true
			}
		}
	}
	return chanKey{}, false
}

// offer queues it unless s already has its message.
func (s *sub) offer(it item) {
	m := it.m
	s.mu.Lock()
	if s.gone || m.mid.seq <= s.lastSeq {
		s.mu.Unlock()
		return
	}
	s.lastSeq = m.mid.seq
	if !s.live {
		s.pending = append(s.pending, it)
		s.mu.Unlock()
		return
	}
	s.out = append(s.out, it)
	s.outBytes += len(m.body)
	over := s.maxQueue > 0 && s.outBytes > s.maxQueue
	s.mu.Unlock()
	if over {
		s.slow()
		return
	}
	s.kick()
}

// goLive queues the replayed history (gap notice first), then the live
// messages that arrived meanwhile, and switches s to live delivery.
func (s *sub) goLive(gap *message, history []item, after uint64) {
	s.mu.Lock()
	var q []item
	if gap != nil {
		q = append(q, item{m: gap})
	}
	q = append(q, history...)
	for _, it := range s.pending {
		if it.m.mid.seq > after {
			q = append(q, it)
		}
	}
	s.pending = nil
	s.out = append(s.out, q...)
	for _, it := range q {
		s.outBytes += len(it.m.body)
	}
	s.live = true
	n := len(s.out)
	s.mu.Unlock()
	if n > 0 {
		s.kick()
	}
}

// take removes and returns the queued items.
func (s *sub) take() []item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.out
	s.out, s.outBytes = nil, 0
	return out
}

// kick tells the transport there is something to send.
func (s *sub) kick() {
	if s.ws != nil {
		s.ws.kick()
		return
	}
	select {
	case s.wake <- true:
	default:
	}
}

// slow ends a subscriber that fell behind by more than its queue allows;
// it reconnects with its mid and catches up from history, losing nothing.
func (s *sub) slow() {
	if s.ws != nil {
		s.ws.closeSlow()
		return
	}
	s.kick()
}

// restart ends s because the history stream was re-created: a WebSocket is
// closed with 1012 (service restart) and reconnects; a long poll answers
// 304 with the client's own mid. Either way the client comes back with its
// old mid and is told history_reset.
func (s *sub) restart() {
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	if s.ws != nil {
		s.ws.closeWith(websocket.StatusServiceRestart, "history reset")
		return
	}
	s.shutdown()
}

// shutdown ends s because the relay is stopping.
func (s *sub) shutdown() {
	if s.ws != nil {
		s.ws.closeShutdown()
		return
	}
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	select {
	case s.wake <- false:
	default:
	}
}
