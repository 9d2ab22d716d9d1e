package push

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Presence and statistics span every relay instance on the NATS cluster:
// a query is published on a core NATS subject, every instance (this one
// included) answers with its own numbers, and the asker adds them up. The
// asker knows how many answers to expect from the instances' heartbeats, so
// a lone relay answers at once instead of waiting out PresenceWait.

const helloEvery = 5 * time.Second

// peers tracks the relay instances heard from recently.
type peers struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (p *peers) saw(id string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]time.Time{}
	}
	p.seen[id] = at
}

// count returns how many instances were heard from in the last three
// heartbeats, forgetting older ones.
func (p *peers) count(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for id, at := range p.seen {
		if now.Sub(at) > 3*helloEvery {
			delete(p.seen, id)
			continue
		}
		n++
	}
	return n
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (srv *Server) startCluster() error {
	srv.peer.saw(srv.id, time.Now())
	hello, err := srv.nc.Subscribe(subjectHello, func(m *nats.Msg) {
		srv.peer.saw(string(m.Data), time.Now())
		if m.Reply != "" {
			m.Respond([]byte(srv.id))
		}
	})
	if err != nil {
		return fmt.Errorf("push: subscribe %s: %w", subjectHello, err)
	}
	presence, err := srv.nc.Subscribe(subjectPresent, func(m *nats.Msg) {
		keys, err := decodeKeys(string(m.Data))
		if err != nil {
			return
		}
		var b strings.Builder
		for k, n := range srv.hub.counts(keys) {
			fmt.Fprintf(&b, "%c%s %d\n", k[0], k.hex(), n)
		}
		m.Respond([]byte(b.String()))
	})
	if err != nil {
		hello.Unsubscribe()
		return fmt.Errorf("push: subscribe %s: %w", subjectPresent, err)
	}
	stat, err := srv.nc.Subscribe(subjectStat, func(m *nats.Msg) {
		b, _ := json.Marshal(srv.localStat())
		m.Respond(b)
	})
	if err != nil {
		hello.Unsubscribe()
		presence.Unsubscribe()
		return fmt.Errorf("push: subscribe %s: %w", subjectStat, err)
	}
	channels, err := srv.nc.Subscribe(subjectChannels, func(m *nats.Msg) {
		m.Respond(encodeChannels(srv.hub.localChannels(maxChannelsAnswer)))
	})
	if err != nil {
		hello.Unsubscribe()
		presence.Unsubscribe()
		stat.Unsubscribe()
		return fmt.Errorf("push: subscribe %s: %w", subjectChannels, err)
	}
	srv.subs = append(srv.subs, hello, presence, stat, channels)
	// Introduce ourselves and learn who is there: every instance answers a
	// hello that has a reply subject.
	if err := srv.gather(context.Background(), subjectHello, []byte(srv.id), func(b []byte) {
		srv.peer.saw(string(b), time.Now())
	}, 1<<30); err != nil {
		return err
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		t := time.NewTicker(helloEvery)
		defer t.Stop()
		for {
			select {
			case <-srv.base.Done():
				return
			case <-t.C:
				srv.nc.Publish(subjectHello, []byte(srv.id))
			}
		}
	}()
	return nil
}

// gather publishes a query and collects one answer per live instance (want;
// -1 = the known instances), or what came within PresenceWait.
func (srv *Server) gather(ctx context.Context, subject string, data []byte, each func([]byte), want int) error {
	if want < 0 {
		want = srv.peer.count(time.Now())
	}
	inbox := srv.nc.NewRespInbox()
	sub, err := srv.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("push: query %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	if err := srv.nc.PublishRequest(subject, inbox, data); err != nil {
		return fmt.Errorf("push: query %s: %w", subject, err)
	}
	ctx, cancel := context.WithTimeout(ctx, srv.cfg.PresenceWait)
	defer cancel()
	for got := 0; got < want; got++ {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if got == 0 && want > 0 {
				return fmt.Errorf("push: query %s: no answer: %w", subject, err)
			}
			return nil // some instances are gone; answer with the rest
		}
		each(m.Data)
	}
	return nil
}

// online returns the number of subscribers of each key, over all instances.
func (srv *Server) online(ctx context.Context, keys []chanKey) (map[chanKey]int, error) {
	out := map[chanKey]int{}
	err := srv.gather(ctx, subjectPresent, []byte(encodeKeys(keys)), func(b []byte) {
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			k, n, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			ks, err := decodeKeys(k)
			cnt, err2 := strconv.Atoi(n)
			if err != nil || err2 != nil || len(ks) != 1 {
				continue
			}
			out[ks[0]] += cnt
		}
	}, -1)
	return out, err
}

// stat is one instance's statistics, with the push server's field names.
type stat struct {
	PID             int    `json:"pid"`
	Date            int64  `json:"date"`
	ProcessUniqueID string `json:"processUniqueId"`
	Websockets      int64  `json:"websockets"`
	Pollings        int64  `json:"pollings"`
	Channels        int    `json:"channels"`
	LastMid         string `json:"lastMid"`
	Uptime          int64  `json:"uptime"`
	// MessagesTooLarge is isobox's own: messages not sent to frameBytes=
	// subscribers for being larger than their frames, since start.
	MessagesTooLarge uint64 `json:"messagesTooLarge"`
}

func (srv *Server) localStat() stat {
	srv.hub.mu.RLock()
	channels := len(srv.hub.chans)
	srv.hub.mu.RUnlock()
	return stat{
		PID:              os.Getpid(),
		Date:             time.Now().UnixMilli(),
		ProcessUniqueID:  srv.id,
		Websockets:       srv.hub.ws.Load(),
		Pollings:         srv.hub.polls.Load(),
		Channels:         channels,
		LastMid:          srv.hub.position().String(),
		Uptime:           int64(time.Since(srv.start) / time.Second),
		MessagesTooLarge: srv.tooLarge.Load(),
	}
}

// stats returns every instance's statistics.
func (srv *Server) stats(ctx context.Context) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := srv.gather(ctx, subjectStat, nil, func(b []byte) {
		if json.Valid(b) {
			out = append(out, json.RawMessage(b))
		}
	}, -1)
	return out, err
}
