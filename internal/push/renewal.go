package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Channel renewals outlive the history. The portal replaces a channel
// older than 12 h the next time it looks it up and announces the new id
// once, with pull/channel_expire on the old channel; from then on it
// publishes only to the new one. A subscriber that missed that one message
// — a LAN relay powered off across the renewal for longer than the history
// keeps messages — would stay subscribed to a dead channel for good. So the
// relay remembers, per old channel, the portal's last channel_expire in a
// KV bucket kept far longer than the history, and sends it again to
// whoever subscribes to that channel, after the replay: the very message
// the portal sent, so every client that understands channel_expire
// follows it. A chain of renewals is followed one step per reconnect.
const (
	renewalBucket = "ISOBOX_PUSH_RENEWALS"
	// DefaultRenewalKeep is how long a renewal is remembered by default.
	DefaultRenewalKeep = 90 * 24 * time.Hour
)

// renewals is the bucket of channel renewals: key = the old channel
// (kind byte + hex id), value = the channel_expire body published to it.
type renewals struct {
	kv jetstream.KeyValue
}

func openRenewals(ctx context.Context, js jetstream.JetStream, cfg *Config) (*renewals, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      renewalBucket,
		Description: "isobox Push & Pull: the last pull/channel_expire of each renewed channel",
		History:     1,
		TTL:         cfg.RenewalKeep,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("push: renewal bucket: %w", err)
	}
	return &renewals{kv: kv}, nil
}

func renewalKey(k chanKey) string { return string(k[0]) + k.hex() }

// isRenewal reports whether body is the portal's pull/channel_expire
// naming a new channel.
func isRenewal(body []byte) bool {
	if !bytes.Contains(body, []byte(`channel_expire`)) {
		return false // the common case, without parsing
	}
	var m struct {
		ModuleID string `json:"module_id"`
		Command  string `json:"command"`
		Params   struct {
			NewChannel struct {
				ID string `json:"id"`
			} `json:"new_channel"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	return m.ModuleID == "pull" && m.Command == "channel_expire" && m.Params.NewChannel.ID != ""
}

// record remembers every renewal among msgs (already stored).
func (r *renewals) record(ctx context.Context, msgs []pending) error {
	for _, p := range msgs {
		if !isRenewal(p.body) {
			continue
		}
		for _, k := range p.to {
			if _, err := r.kv.Put(ctx, renewalKey(k), p.body); err != nil {
				return fmt.Errorf("push: record channel renewal: %w", err)
			}
		}
	}
	return nil
}

// lookup returns the renewal of the first of keys that has one.
func (r *renewals) lookup(ctx context.Context, keys []chanKey) (chanKey, []byte, error) {
	for _, k := range keys {
		e, err := r.kv.Get(ctx, renewalKey(k))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return chanKey{}, nil, fmt.Errorf("push: look up channel renewal: %w", err)
		}
		return k, e.Value(), nil
	}
	return chanKey{}, nil, nil
}

// redirect queues, after whatever s has been given so far, the renewal of
// one of its channels, if there is one. Its mid, at, is the position
// the subscriber resumes from (not above it, so that a client adopting it
// misses nothing on the new channel); clients must not drop it as a
// duplicate (firmware/ does not; a renewal is idempotent).
func (srv *Server) redirect(s *sub, at mid) {
	ctx, cancel := context.WithTimeout(srv.base, 5*time.Second)
	defer cancel()
	k, body, err := srv.renew.lookup(ctx, s.keys)
	if err != nil {
		srv.log.Warn("push: channel renewal lookup failed", "err", err)
		return
	}
	if body == nil {
		return
	}
	srv.met.renewalRedirects.Inc()
	it := item{m: &message{mid: at, created: srv.hub.clock(), body: body}, ch: k}
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	s.out = append(s.out, it)
	s.outBytes += len(body)
	s.mu.Unlock()
	s.kick()
}

// resumeMid is where a subscriber that was given client (hasMid) stands
// after its replay of items and gap notice.
func resumeMid(client mid, items []item, gap *message) mid {
	if len(items) > 0 {
		return items[len(items)-1].m.mid
	}
	if gap != nil {
		return gap.mid
	}
	return client
}
