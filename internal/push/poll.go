package push

import (
	"context"
	"net/http"
	"time"
)

// expiresMarker is the Expires value of a long-poll timeout answer; clients
// compare it literally before they read Last-Message-Id.
const expiresMarker = "Thu, 01 Jan 1973 11:11:01 GMT"

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Last-Message-Id")
}

// servePoll holds a long-poll request until a message for its channels
// arrives (200 with the messages) or the poll timeout passes (304 with
// Last-Message-Id and the Expires marker), as the push server does.
func (srv *Server) servePoll(w http.ResponseWriter, r *http.Request, req subRequest) {
	s := req.newSub(0)
	s.wake = make(chan bool, 1)
	after, ok := srv.hub.register(s)
	if !ok {
		srv.writeNotModified(w, req)
		return
	}
	defer srv.hub.unregister(s)
	srv.met.connects.WithLabelValues("polling").Inc()
	if req.hasMid {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		items, gap, err := srv.hub.history(ctx, s, req.mid, after)
		cancel()
		if err != nil {
			srv.log.Warn("push: history replay failed", "err", err)
			http.Error(w, "history unavailable", http.StatusServiceUnavailable)
			return
		}
		s.goLive(gap, items, after)
	}
	t := time.NewTimer(srv.cfg.PollTimeout)
	defer t.Stop()
	select {
	case <-s.wake:
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	// Read the fan-out position before taking the queue: every message at
	// or below it has been offered to s by then, so a 304 naming it
	// promises nothing that is still in flight.
	pos := srv.hub.position()
	items := s.take()
	if len(items) == 0 {
		srv.writeNotModifiedAt(w, req, pos)
		return
	}
	h := w.Header()
	setCORS(h)
	if req.format == formatBinary {
		h.Set("Content-Type", "application/octet-stream")
	} else {
		h.Set("Content-Type", "text/plain")
	}
	w.WriteHeader(http.StatusOK)
	w.Write(appendFrame(nil, req.format, items))
	srv.met.delivered.Add(float64(len(items)))
}

func (srv *Server) writeNotModified(w http.ResponseWriter, req subRequest) {
	srv.writeNotModifiedAt(w, req, srv.hub.position())
}

// writeNotModifiedAt answers "nothing new up to last": the client resumes
// from Last-Message-Id next time.
func (srv *Server) writeNotModifiedAt(w http.ResponseWriter, req subRequest, pos mid) {
	m := pos
	if req.hasMid && (req.mid.epoch != pos.epoch || req.mid.seq > pos.seq) {
		// Ahead of this instance, or from a history that was just reset:
		// the client keeps its position and is answered by history next.
		m = req.mid
	}
	h := w.Header()
	setCORS(h)
	h.Set("Content-Type", "text/plain")
	h.Set("Last-Message-Id", m.String())
	h.Set("Expires", expiresMarker)
	w.WriteHeader(http.StatusNotModified)
}

func serveOptions(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, GET, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "If-Modified-Since, If-None-Match")
	w.WriteHeader(http.StatusOK)
}
