package push

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Read-only views of the push server's state, for the relay's admin API
// and web console: which channels have subscribers (over every relay
// instance), each instance's numbers, and this instance's WebSocket
// subscribers (from which the relay recognises its LAN boards).

// subjectChannels is the channel listing query, request/reply (core NATS).
const subjectChannels = "isobox.push.channels"

// maxChannelsAnswer bounds the channels one instance lists in its answer
// (the most subscribed first), so that an answer stays well inside a NATS
// message.
const maxChannelsAnswer = 10000

// ChannelState is one channel with subscribers.
type ChannelState struct {
	// ID is the channel id, 32 lowercase hex digits.
	ID string
	// Public tells a public channel from a private one.
	Public bool
	// WebSockets and Polls count its subscribers by transport.
	WebSockets, Polls int
}

// Instance is one relay instance's push statistics.
type Instance struct {
	ID         string
	WebSockets int64
	Polls      int64
	Channels   int
	// LastMid is the mid of the last message it fanned out.
	LastMid string
	Uptime  time.Duration
	// MessagesTooLarge counts, since the instance started, the messages
	// not sent to frameBytes= subscribers for being larger than their
	// frames (each got a history_gap notice, reason message_too_large).
	MessagesTooLarge uint64
}

// Subscriber is one WebSocket subscriber of this instance.
type Subscriber struct {
	// Remote is the client's address (host, no port).
	Remote string
	// UserAgent is what the client called itself in its handshake,
	// cut to 256 bytes.
	UserAgent string
	// FrameBytes is the frame cap it asked for with frameBytes= (0: none).
	FrameBytes int
	// Device is the name it gave itself with device= ("" none): a label
	// the client chose (see ParseDeviceID), not proof of anything.
	Device string
	// Channels are its channels, "p<hex>" (private) or "u<hex>" (public).
	Channels []string
	// Since is when it connected.
	Since time.Time
	// LastMid is the mid of the last message written to it; "" if none.
	LastMid string
	// TooLarge counts the messages not sent to it on this connection for
	// being larger than its FrameBytes (it got history_gap notices,
	// reason message_too_large, instead).
	TooLarge uint64
}

// InstanceID names this relay instance on the NATS cluster.
func (srv *Server) InstanceID() string { return srv.id }

// localChannels returns this instance's channels with their subscribers by
// transport, the most subscribed first, at most limit.
func (h *hub) localChannels(limit int) []ChannelState {
	h.mu.RLock()
	out := make([]ChannelState, 0, len(h.chans))
	for k, set := range h.chans {
		c := ChannelState{ID: k.hex(), Public: k[0] == kindPublic}
		for s := range set {
			if s.ws != nil {
				c.WebSockets++
			} else {
				c.Polls++
			}
		}
		out = append(out, c)
	}
	h.mu.RUnlock()
	sortChannels(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func sortChannels(cs []ChannelState) {
	slices.SortFunc(cs, func(a, b ChannelState) int {
		if c := cmp.Compare(b.WebSockets+b.Polls, a.WebSockets+a.Polls); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// encodeChannels writes cs as lines "<kind><hex> <websockets> <polls>".
func encodeChannels(cs []ChannelState) []byte {
	var b strings.Builder
	for _, c := range cs {
		kind := kindPrivate
		if c.Public {
			kind = kindPublic
		}
		fmt.Fprintf(&b, "%c%s %d %d\n", kind, c.ID, c.WebSockets, c.Polls)
	}
	return []byte(b.String())
}

// Channels returns every channel with subscribers on any relay instance,
// with the subscribers added up per transport, the most subscribed first,
// at most limit (each instance lists at most 10,000 of its own). A
// composite channel's subscriber counts under both its private and its
// public id.
func (srv *Server) Channels(ctx context.Context, limit int) ([]ChannelState, error) {
	sum := map[chanKey]*ChannelState{}
	err := srv.gather(ctx, subjectChannels, nil, func(b []byte) {
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			ks, err := decodeKeys(f[0])
			ws, err2 := strconv.Atoi(f[1])
			polls, err3 := strconv.Atoi(f[2])
			if err != nil || err2 != nil || err3 != nil || len(ks) != 1 {
				continue
			}
			c := sum[ks[0]]
			if c == nil {
				c = &ChannelState{ID: ks[0].hex(), Public: ks[0][0] == kindPublic}
				sum[ks[0]] = c
			}
			c.WebSockets += ws
			c.Polls += polls
		}
	}, -1)
	out := make([]ChannelState, 0, len(sum))
	for _, c := range sum {
		out = append(out, *c)
	}
	sortChannels(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// Instances returns every relay instance's statistics (those that answered
// within the presence wait).
func (srv *Server) Instances(ctx context.Context) ([]Instance, error) {
	raw, err := srv.stats(ctx)
	out := make([]Instance, 0, len(raw))
	for _, b := range raw {
		var s stat
		if json.Unmarshal(b, &s) != nil {
			continue
		}
		out = append(out, Instance{ID: s.ProcessUniqueID, WebSockets: s.Websockets, Polls: s.Pollings, Channels: s.Channels,
			LastMid: s.LastMid, Uptime: time.Duration(s.Uptime) * time.Second, MessagesTooLarge: s.MessagesTooLarge})
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// WebSockets returns this instance's WebSocket subscribers.
func (srv *Server) WebSockets() []Subscriber {
	epoch := srv.hub.epoch.Load()
	var out []Subscriber
	for _, s := range srv.hub.snapshot() {
		ws := s.ws
		if ws == nil {
			continue
		}
		sub := Subscriber{Remote: ws.remote, UserAgent: ws.agent, FrameBytes: ws.askedFrame, Device: ws.device, Since: ws.since,
			TooLarge: ws.tooLarge.Load()}
		for _, k := range s.keys {
			sub.Channels = append(sub.Channels, string(k[0])+k.hex())
		}
		if seq := ws.sent.Load(); seq > 0 {
			sub.LastMid = mid{epoch: epoch, seq: seq}.String()
		}
		out = append(out, sub)
	}
	return out
}
