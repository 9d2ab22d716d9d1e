package faults

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// pushLoad drives the Push & Pull channel the way a portal and its
// clients do. Publishers (per scenario) post messages to the relays'
// publish endpoints, signed with the pull signature key as a portal in
// shared mode signs them, to the relays in turn and to the other relay
// when one does not store a message. Subscribers (for the whole run) hold
// one channel each, over a WebSocket (/bitrix/subws/) or long polling
// (/bitrix/sub/), start on either relay, track the mid of the last message
// they got and, after any failure, reconnect to the other relay with it.
//
// The invariant: every publish that was acknowledged (200) reaches every
// subscriber of its channels, or that subscriber was told, by the relay's
// history_gap notice, that the range holding it is gone. A message that
// reached a subscriber twice counts as a duplicate.
type pushLoad struct {
	t      *Topology
	key    []byte // the relays' push signature key
	chans  []string
	subs   []*pushSub
	client *http.Client
	nonce  string
	seq    atomic.Int64

	mu    sync.Mutex
	acked []pushMsg // acknowledged since the last take

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// pushMsg is an acknowledged publish: its id (in the body) and the
// indexes of the channels it went to.
type pushMsg struct {
	id    string
	chans []int
}

// PushStats is what the push publishers and subscribers saw in a
// scenario. Received counts deliveries (one per subscriber and message)
// of the acknowledged publishes; Missing those neither received nor
// covered by a gap notice.
type PushStats struct {
	Published, Received, Gaps, Missing, Duplicated int
	// Examples of missing deliveries: "subscriber: message id".
	MissingIDs []string
}

// pushChannels and the transports give each channel a WebSocket and a
// long-poll subscriber starting on each relay.
const pushChannels = 4

func newPushLoad(ctx context.Context, t *Topology) (*pushLoad, error) {
	if t.PushKey == "" || len(t.PublishURLs) == 0 {
		return nil, fmt.Errorf("faults: the topology has no push signature key or publish endpoints")
	}
	p := &pushLoad{t: t, key: []byte(t.PushKey), client: &http.Client{Timeout: 15 * time.Second}, nonce: rand.Text()}
	for range pushChannels {
		p.chans = append(p.chans, hex.EncodeToString([]byte(rand.Text())[:16]))
	}
	sctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	for ch := range p.chans {
		for home := range t.RelayURLs {
			for _, ws := range []bool{true, false} {
				s := &pushSub{p: p, ch: ch, ws: ws, home: home, got: map[string]int{}, mids: map[string]string{}}
				kind := "poll"
				if ws {
					kind = "ws"
				}
				s.name = fmt.Sprintf("%s@relay-%d/ch%d", kind, home+1, ch)
				p.subs = append(p.subs, s)
				p.wg.Add(1)
				go func() { defer p.wg.Done(); s.run(sctx) }()
			}
		}
	}
	// Every subscriber needs a mid before the load starts: one connected
	// without a mid gets only what comes after it connected, and a
	// reconnect without one would miss what came meanwhile.
	if err := p.warmUp(ctx, 60*time.Second); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// warmUp publishes to every channel until every subscriber has a mid.
func (p *pushLoad) warmUp(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for i := 0; ; i++ {
		waiting := ""
		for _, s := range p.subs {
			if s.position() == "" {
				waiting = s.name
				break
			}
		}
		if waiting == "" {
			return nil
		}
		for ch := range p.chans {
			p.publishOne(ctx, i, fmt.Sprintf("warm-%s-%d-%d", p.nonce, i, ch), []int{ch})
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: push subscriber %s got no message within %v", waiting, within)
		case <-time.After(200 * time.Millisecond): // polling black-box processes, bounded by within
		}
	}
}

func (p *pushLoad) close() {
	p.stop()
	p.wg.Wait()
}

// sign is the publish signature: lowercase hex HMAC-SHA1 (the portal's
// default signature_algo) of the body, keyed with the signature key.
func (p *pushLoad) sign(s string) string {
	m := hmac.New(sha1.New, p.key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

// publish sends until ctx ends with workers goroutines; every fifth
// message goes to two channels.
func (p *pushLoad) publish(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i += workers {
				n := int(p.seq.Add(1))
				chans := []int{n % len(p.chans)}
				if n%5 == 0 {
					chans = append(chans, (n+1)%len(p.chans))
				}
				id := fmt.Sprintf("%s-%d", p.nonce, n)
				if p.publishOne(ctx, i, id, chans) {
					p.mu.Lock()
					p.acked = append(p.acked, pushMsg{id: id, chans: chans})
					p.mu.Unlock()
					pause(ctx, 20*time.Millisecond)
				} else {
					pause(ctx, 100*time.Millisecond) // both refused: back off as a portal would
				}
			}
		}()
	}
	wg.Wait()
}

// publishOne posts message id to chans, trying each relay once, and
// reports whether one stored it.
func (p *pushLoad) publishOne(ctx context.Context, i int, id string, chans []int) bool {
	body := `{"module_id":"faults","command":"tick","params":{"id":"` + id + `"},"extra":{}}`
	var ids []string
	for _, c := range chans {
		ids = append(ids, p.chans[c])
	}
	q := url.Values{"CHANNEL_ID": {strings.Join(ids, "/")}, "signature": {p.sign(body)}}
	for try := range len(p.t.PublishURLs) {
		u := p.t.PublishURLs[(i+try)%len(p.t.PublishURLs)] + "/bitrix/pub/?" + q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true
		}
	}
	return false
}

// take returns the publishes acknowledged since the last take.
func (p *pushLoad) take() []pushMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.acked
	p.acked = nil
	return m
}

// check counts, for msgs, the deliveries made and missing, and the
// duplicates; gaps is the number of gap notices since the last check.
func (p *pushLoad) check(msgs []pushMsg) PushStats {
	st := PushStats{Published: len(msgs)}
	// The mid of a message is learnt from any subscriber that got it; a
	// gap notice excuses a subscriber only for the mids it names.
	midOf := map[string]string{}
	for _, s := range p.subs {
		s.mu.Lock()
		for _, m := range msgs {
			if mid, ok := s.mids[m.id]; ok {
				midOf[m.id] = mid
			}
		}
		s.mu.Unlock()
	}
	for _, s := range p.subs {
		s.mu.Lock()
		for _, m := range msgs {
			if !m.to(s.ch) {
				continue
			}
			switch n := s.got[m.id]; {
			case n > 0:
				st.Received++
				st.Duplicated += n - 1
			case s.gapCovers(midOf[m.id]):
			default:
				st.Missing++
				if len(st.MissingIDs) < 5 {
					st.MissingIDs = append(st.MissingIDs, s.name+": "+m.id)
				}
			}
		}
		s.mu.Unlock()
	}
	return st
}

// takeGaps returns the gap notices received since the last call.
func (p *pushLoad) takeGaps() int {
	n := 0
	for _, s := range p.subs {
		s.mu.Lock()
		n += s.newGaps
		s.newGaps = 0
		s.mu.Unlock()
	}
	return n
}

func (m pushMsg) to(ch int) bool {
	for _, c := range m.chans {
		if c == ch {
			return true
		}
	}
	return false
}

// pushSub is one subscriber of one channel.
type pushSub struct {
	p    *pushLoad
	name string
	ch   int
	ws   bool
	home int // the relay it starts on

	mu      sync.Mutex
	mid     string            // of the last message received: where a reconnect resumes
	got     map[string]int    // deliveries by message id
	mids    map[string]string // message id -> mid
	gaps    [][2]string       // gap notices: mids in (from, to] are gone
	newGaps int
}

// run keeps the subscriber connected until ctx ends: after any failure it
// goes to the next relay with its last mid.
func (s *pushSub) run(ctx context.Context) {
	relays := s.p.t.RelayURLs
	signed := s.p.chans[s.ch] + "." + s.p.sign(s.p.chans[s.ch])
	for r := s.home; ctx.Err() == nil; {
		q := url.Values{"CHANNEL_ID": {signed}}
		if mid := s.position(); mid != "" {
			q.Set("mid", mid)
		}
		var err error
		if s.ws {
			err = s.websocket(ctx, "ws"+strings.TrimPrefix(relays[r], "http")+"/bitrix/subws/?"+q.Encode())
		} else {
			err = s.poll(ctx, relays[r]+"/bitrix/sub/?"+q.Encode())
		}
		if err != nil {
			r = (r + 1) % len(relays)
			pause(ctx, 100*time.Millisecond) // a client's reconnect back-off
		}
	}
}

// websocket reads frames until the connection ends; that is always a
// failure to recover from.
func (s *pushSub) websocket(ctx context.Context, u string) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, _, err := websocket.Dial(dctx, u, nil)
	cancel()
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return err
		}
		if err := s.receive(b); err != nil {
			return err
		}
	}
}

// poll makes one long-poll request: 200 carries messages, 304 the mid to
// resume from.
func (s *pushSub) poll(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case err != nil:
		return err
	case resp.StatusCode == http.StatusNotModified:
		if m := resp.Header.Get("Last-Message-Id"); m != "" {
			s.advance(m)
		}
		return nil
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, b)
	}
	return s.receive(b)
}

// receive takes one frame or long-poll body in the push server's text
// framing.
func (s *pushSub) receive(b []byte) error {
	const start, end = "#!NGINXNMS!#", "#!NGINXNME!#"
	for {
		i := bytes.Index(b, []byte(start))
		if i < 0 {
			return nil
		}
		b = b[i+len(start):]
		j := bytes.Index(b, []byte(end))
		if j < 0 {
			return fmt.Errorf("faults: push frame without its end marker")
		}
		var m struct {
			Mid  string `json:"mid"`
			Text struct {
				Module  string `json:"module_id"`
				Command string `json:"command"`
				Params  struct {
					ID      string `json:"id"`
					Mid     string `json:"mid"`
					NextMid string `json:"next_mid"`
				} `json:"params"`
			} `json:"text"`
		}
		if err := json.Unmarshal(b[:j], &m); err != nil {
			return fmt.Errorf("faults: push message %q: %w", b[:j], err)
		}
		b = b[j+len(end):]
		s.mu.Lock()
		switch {
		case m.Text.Module == "isobox" && m.Text.Command == "history_gap":
			s.gaps = append(s.gaps, [2]string{m.Text.Params.Mid, m.Text.Params.NextMid})
			s.newGaps++
		case m.Text.Module == "faults":
			s.got[m.Text.Params.ID]++
			if _, ok := s.mids[m.Text.Params.ID]; !ok {
				s.mids[m.Text.Params.ID] = m.Mid
			}
		}
		s.mu.Unlock()
		s.advance(m.Mid)
	}
}

// advance moves the resume position forward to mid (26 digits, so that
// string order is numeric order).
func (s *pushSub) advance(mid string) {
	if len(mid) != 26 {
		return
	}
	s.mu.Lock()
	if mid > s.mid {
		s.mid = mid
	}
	s.mu.Unlock()
}

func (s *pushSub) position() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mid
}

// gapCovers reports whether a gap notice named mid as gone; s.mu held.
func (s *pushSub) gapCovers(mid string) bool {
	if mid == "" {
		return false
	}
	for _, g := range s.gaps {
		if mid > g[0] && mid <= g[1] {
			return true
		}
	}
	return false
}
