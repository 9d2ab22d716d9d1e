// Package devices keeps track of the LAN relay boards (firmware/) seen on
// the push channel, for the relay's admin API and web console: where each
// board connects from, what it listens to, when it was last seen, the last
// message it was sent, and whether it is connected now.
//
// A board is recognised by what it sends when it subscribes: its WebSocket
// library's User-Agent (arduino-WebSocket-Client), isobox's frameBytes=
// parameter for small devices, or the name it gives itself with device=
// (the firmware sends isobox-relay-<station MAC>). A board that names
// itself is one record whatever its address and channels, so a new DHCP
// lease or a channel renewal keeps its record, and two boards behind one
// address stay two. A board that sends no name (older firmware) is one
// client address with one channel set, as several boards may share an
// app's channel. When a named board is first written, the unnamed record
// of its address and channels is removed if no board holds it now: it was
// this board before its firmware upgrade. The name is a label the client
// chose, not proof of anything (docs/security.md).
//
// The records live in a JetStream key-value bucket shared by every relay
// instance, not in one instance's memory: a board reconnects to whichever
// instance it reaches, and an operator asks "which boards did not come
// back after the restart?" exactly when an instance's memory was lost. The
// bucket is bounded: 16 MiB, 4 KiB per record, records not written for 30
// days expire. Each instance scans its own WebSocket subscribers every few
// seconds and writes a record when a board connects, is sent a message,
// leaves, or once a minute while it stays (so that a record whose instance
// died stops counting as connected within three minutes).
package devices

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/push"
)

// Bucket is the key-value bucket of device records.
const Bucket = "ISOBOX_PUSH_DEVICES"

// Bounds of the bucket.
const (
	MaxBytes     = 16 << 20
	MaxValueSize = 4 << 10
	Keep         = 30 * 24 * time.Hour
)

// MaxNamesPerAddress bounds how many device= names one client address may
// have recorded by one instance within NamesWindow. A name is a label the
// client chooses: without the bound, one holder of a channel signature
// reconnecting with a new name each time would add a 30-day record per
// connection until the bucket is full (and every list reads them all).
// Beyond it a connection is recorded under its address and channels, as a
// board that sends no name, so all the extra names of one address and
// channel set share one record.
const (
	MaxNamesPerAddress = 16
	NamesWindow        = 24 * time.Hour
)

// boardAgent is the User-Agent of the WebSocket library the firmware uses
// (Links2004/arduinoWebSockets).
const boardAgent = "arduino-WebSocket-Client"

// IsDevice reports whether a subscriber is a relay board.
func IsDevice(s push.Subscriber) bool {
	return strings.HasPrefix(s.UserAgent, boardAgent) || s.FrameBytes > 0 || s.Device != ""
}

// Record is what is kept of one device.
type Record struct {
	Key      string   `json:"key"`
	Name     string   `json:"name"`
	Remote   string   `json:"remote"`
	Channels []string `json:"channels"`
	Instance string   `json:"instance"`
	// Connected as last written; List also requires a recent SeenMs.
	Connected  bool   `json:"connected"`
	SinceMs    int64  `json:"since_ms"`
	SeenMs     int64  `json:"seen_ms"`
	LastMid    string `json:"last_mid,omitempty"`
	FrameBytes int    `json:"frame_bytes,omitempty"`
	// Device is the name the board gave itself (device=); "" for older
	// firmware, whose record is keyed by Remote and Channels.
	Device string `json:"device,omitempty"`
	// TooLarge counts the messages not sent to it on its current (or
	// last) connection for being larger than its FrameBytes.
	TooLarge uint64 `json:"too_large,omitempty"`
	// AlsoFrom is another address that was connected under the same
	// Device while this connection was: two boards with one name, or
	// someone claiming this one's (a name is a label, not proof).
	AlsoFrom string `json:"also_from,omitempty"`
}

// Config configures a Tracker.
type Config struct {
	JS jetstream.JetStream
	// Replicas of the bucket on a NATS cluster.
	Replicas int
	// Instance names this relay instance (push.Server.InstanceID).
	Instance string
	// Source lists this instance's WebSocket subscribers
	// (push.Server.WebSockets).
	Source func() []push.Subscriber
	// Scan is how often Source is read; zero means 5s. Beat is how often a
	// connected device's record is written when nothing changed; zero
	// means 1m.
	Scan, Beat time.Duration
	Log        *slog.Logger
}

// Tracker writes this instance's devices to the bucket and lists everyone's.
type Tracker struct {
	cfg   Config
	kv    jetstream.KeyValue
	now   func() time.Time
	local map[string]written // devices this instance has connected, by key
	full  bool               // the last scan could not write (bucket full): said once
	// names are the device= names recorded per client address, with
	// when each was last seen (MaxNamesPerAddress); capped says which
	// addresses were logged for going over it.
	names  map[string]map[string]time.Time
	capped map[string]bool
}

type written struct {
	rec Record
	rev uint64
	at  time.Time
	// legacyDone: a named device's unnamed predecessor record has been
	// looked for and removed (or was not there).
	legacyDone bool
	// merged is the AlsoFrom of two connections of one name on this
	// instance, as last written.
	merged string
}

// Open creates the bucket (or updates its limits).
func Open(ctx context.Context, cfg Config) (*Tracker, error) {
	if cfg.JS == nil || cfg.Source == nil {
		return nil, errors.New("devices: JS and Source are required")
	}
	if cfg.Scan <= 0 {
		cfg.Scan = 5 * time.Second
	}
	if cfg.Beat <= 0 {
		cfg.Beat = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	kv, err := cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       Bucket,
		Description:  "isobox: LAN relay boards seen on the push channel",
		History:      1,
		TTL:          Keep,
		MaxBytes:     MaxBytes,
		MaxValueSize: MaxValueSize,
		Storage:      jetstream.FileStorage,
		Replicas:     max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("devices: bucket %s: %w", Bucket, err)
	}
	return &Tracker{cfg: cfg, kv: kv, now: time.Now, local: map[string]written{},
		names: map[string]map[string]time.Time{}, capped: map[string]bool{}}, nil
}

// Run scans until ctx ends, then records this instance's devices as gone.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Scan)
	defer tick.Stop()
	for {
		if err := t.Scan(ctx); err != nil && ctx.Err() == nil {
			t.cfg.Log.Warn("devices: scan", "err", err)
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			t.leaveAll(sctx)
			cancel()
			return
		case <-tick.C:
		}
	}
}

// legacyKey names a device that sent no name: its address and sorted
// channels.
func legacyKey(remote string, channels []string) string {
	cs := slices.Clone(channels)
	slices.Sort(cs)
	sum := sha256.Sum256([]byte(remote + "\n" + strings.Join(cs, ",")))
	return "d" + hex.EncodeToString(sum[:16])
}

// key names a device: by its name when it sent one, else legacyKey. The
// prefixes keep the two kinds apart.
func key(s push.Subscriber) string {
	if s.Device == "" {
		return legacyKey(s.Remote, s.Channels)
	}
	sum := sha256.Sum256([]byte("device\n" + s.Device))
	return "n" + hex.EncodeToString(sum[:16])
}

// Scan reads this instance's subscribers once and writes what changed.
func (t *Tracker) Scan(ctx context.Context) error {
	now := t.now()
	t.forgetNames(now)
	current := map[string]Record{}
	for _, s := range t.cfg.Source() {
		if !IsDevice(s) {
			continue
		}
		if s.Device != "" && !t.allowName(s.Remote, s.Device, now) {
			s.Device = ""
		}
		k := key(s)
		r := Record{Key: k, Name: s.UserAgent, Remote: s.Remote, Channels: s.Channels, Instance: t.cfg.Instance, Connected: true,
			SinceMs: s.Since.UnixMilli(), SeenMs: now.UnixMilli(), LastMid: s.LastMid, FrameBytes: s.FrameBytes, Device: s.Device,
			TooLarge: s.TooLarge}
		if o, ok := current[k]; ok { // two connections of one device (a reconnect the old one has not noticed): the newer one, the latest mid
			mid := max(r.LastMid, o.LastMid)
			other := o.Remote
			if o.SinceMs > r.SinceMs {
				r, other = o, r.Remote
			}
			r.LastMid = mid
			if r.Device != "" && other != r.Remote {
				r.AlsoFrom = other
			}
		}
		current[k] = r
	}
	var errs []error
	for k, r := range current {
		w, ok := t.local[k]
		merged := r.AlsoFrom // two connections on this instance
		if ok && w.rec.LastMid == r.LastMid && w.rec.SinceMs == r.SinceMs && w.rec.TooLarge == r.TooLarge && w.merged == merged && now.Sub(w.at) < t.cfg.Beat {
			continue
		}
		rev, err := t.write(ctx, r, w, ok, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.local[k] = written{rec: r, rev: rev, at: now, legacyDone: ok && w.legacyDone, merged: merged}
	}
	for k, w := range t.local {
		if _, ok := current[k]; ok {
			continue
		}
		if err := t.leave(ctx, w, now); err != nil {
			errs = append(errs, err)
		}
		delete(t.local, k)
	}
	// After the leaves: a board that upgraded on this instance has its
	// old connection's record marked gone by now.
	for k, w := range t.local {
		if w.rec.Device == "" || w.legacyDone {
			continue
		}
		done, err := t.dropLegacy(ctx, w.rec, now)
		if err != nil {
			errs = append(errs, err)
		}
		w.legacyDone = done
		t.local[k] = w
	}
	if len(errs) > 0 {
		if !t.full {
			t.full = true
			t.cfg.Log.Warn("devices: records not written (is the bucket full? it keeps 16 MiB, records expire after 30 days)", "errors", len(errs), "first", errs[0])
		}
		return nil
	}
	t.full = false
	return nil
}

// write stores r. A named record this instance wrote before is written
// only if nobody wrote it since (one Update, no read, while the name is
// this board's alone); if someone did, or the name is new here, the record
// held is read first to see whether another address is connected under
// the name (AlsoFrom). While two connections of one name on two instances
// write in turn, each write sees the other's.
func (t *Tracker) write(ctx context.Context, r Record, w written, mine bool, now time.Time) (uint64, error) {
	if r.Device == "" || r.AlsoFrom != "" {
		return t.put(ctx, r, 0)
	}
	if mine {
		rev, err := t.put(ctx, r, w.rev)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return rev, err
		}
	}
	r.AlsoFrom = t.claimedElsewhere(ctx, r, mine, now)
	return t.put(ctx, r, 0)
}

// claimedElsewhere returns the address of another connection under r's
// name that the bucket holds as connected, or "". mine: this instance
// wrote the record before (and someone else wrote it since).
func (t *Tracker) claimedElsewhere(ctx context.Context, r Record, mine bool, now time.Time) string {
	e, err := t.kv.Get(ctx, r.Key)
	if err != nil {
		return ""
	}
	var o Record
	if json.Unmarshal(e.Value(), &o) != nil || !t.connected(o, now) || o.Remote == r.Remote || o.SinceMs == r.SinceMs {
		return ""
	}
	if o.Instance == t.cfg.Instance && !mine {
		return "" // this instance's own earlier connection, now gone
	}
	return o.Remote
}

// allowName reports whether remote may have name recorded: it was recorded
// within NamesWindow, or remote has fewer than MaxNamesPerAddress names.
func (t *Tracker) allowName(remote, name string, now time.Time) bool {
	ns := t.names[remote]
	if _, ok := ns[name]; !ok && len(ns) >= MaxNamesPerAddress {
		if !t.capped[remote] {
			t.capped[remote] = true
			t.cfg.Log.Warn("devices: more device names from one address than a LAN relay board would send; further names from it are recorded by address and channels",
				"remote", remote, "names", len(ns), "max", MaxNamesPerAddress, "device", name)
		}
		return false
	}
	if ns == nil {
		ns = map[string]time.Time{}
		t.names[remote] = ns
	}
	ns[name] = now
	return true
}

// forgetNames drops names not seen within NamesWindow.
func (t *Tracker) forgetNames(now time.Time) {
	for remote, ns := range t.names {
		for n, at := range ns {
			if now.Sub(at) > NamesWindow {
				delete(ns, n)
			}
		}
		if len(ns) == 0 {
			delete(t.names, remote)
			delete(t.capped, remote)
		}
	}
}

// put writes r; with rev > 0 only if the record is still at revision rev
// (an error wrapping jetstream.ErrKeyExists otherwise).
func (t *Tracker) put(ctx context.Context, r Record, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	if len(b) > MaxValueSize-256 { // a board with very many channels: keep what fits
		r.Channels = r.Channels[:min(len(r.Channels), 8)]
		r.Name = r.Name[:min(len(r.Name), 64)]
		if b, err = json.Marshal(r); err != nil {
			return 0, err
		}
	}
	if rev > 0 {
		rev, err = t.kv.Update(ctx, r.Key, b, rev)
	} else {
		rev, err = t.kv.Put(ctx, r.Key, b)
	}
	if err != nil {
		return 0, fmt.Errorf("devices: write %s: %w", r.Key, err)
	}
	return rev, nil
}

// leave records that a device left this instance, unless the record was
// written since by another instance (the board reconnected there).
func (t *Tracker) leave(ctx context.Context, w written, now time.Time) error {
	r := w.rec
	r.Connected, r.SeenMs = false, now.UnixMilli()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := t.kv.Update(ctx, r.Key, b, w.rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // another instance has it now
		}
		return fmt.Errorf("devices: write %s: %w", r.Key, err)
	}
	return nil
}

// dropLegacy removes the unnamed record of a named device's address and
// channels when no board holds it now (it is marked gone, or its instance
// stopped confirming it): the same board before its firmware sent a name.
// A record still held is another board (older firmware behind the same
// address) and stays; done is false then, and it is looked at again on the
// next scans until it is gone or removed.
func (t *Tracker) dropLegacy(ctx context.Context, named Record, now time.Time) (done bool, err error) {
	k := legacyKey(named.Remote, named.Channels)
	e, err := t.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("devices: read %s: %w", k, err)
	}
	var old Record
	if json.Unmarshal(e.Value(), &old) == nil && t.connected(old, now) {
		return false, nil
	}
	if err := t.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil // written meanwhile: look again next scan
		}
		return false, fmt.Errorf("devices: remove %s: %w", k, err)
	}
	t.cfg.Log.Info("devices: a board now sends its name; its unnamed record is removed", "device", named.Device, "remote", named.Remote, "old_key", k)
	return true, nil
}

// connected reports whether a record's instance still confirms it.
func (t *Tracker) connected(r Record, now time.Time) bool {
	return r.Connected && now.Sub(time.UnixMilli(r.SeenMs)) < 3*t.cfg.Beat
}

func (t *Tracker) leaveAll(ctx context.Context) {
	now := t.now()
	for k, w := range t.local {
		if err := t.leave(ctx, w, now); err != nil {
			t.cfg.Log.Warn("devices: record a board as gone at shutdown", "err", err)
		}
		delete(t.local, k)
	}
}

// List returns every instance's devices, most recently seen first, at most
// limit. A record says connected only while its instance keeps confirming
// it (within three beats).
func (t *Tracker) List(ctx context.Context, limit int) ([]Record, error) {
	// One watcher delivers every current value in a stream (then a nil
	// entry), instead of a round trip per key.
	w, err := t.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("devices: list: %w", err)
	}
	defer w.Stop()
	now := t.now()
	var out []Record
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("devices: list: %w", ctx.Err())
		}
		if e == nil {
			break
		}
		var r Record
		if json.Unmarshal(e.Value(), &r) != nil {
			continue
		}
		r.Connected = t.connected(r, now)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := cmp.Compare(b.SeenMs, a.SeenMs); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
