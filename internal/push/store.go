package push

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names in NATS. One stream holds every message; its sequence is the mid.
const (
	streamName     = "ISOBOX_PUSH"
	subjectMsg     = "isobox.push.msg"      // stored messages (JetStream)
	subjectPresent = "isobox.push.presence" // online query, request/reply (core NATS)
	subjectStat    = "isobox.push.stat"     // server statistics, request/reply
	subjectHello   = "isobox.push.hello"    // relay heartbeat

	hdrTo     = "Push-To"     // receivers: "p<hex>,u<hex>"
	hdrExpiry = "Push-Expiry" // seconds
)

// store is the JetStream side: the stream, publishing, and reading history.
type store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	sc     jetstream.StreamConfig
	epoch  atomic.Uint64 // the stream's creation time, unix seconds
}

func openStore(ctx context.Context, nc *nats.Conn, cfg *Config) (*store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("push: jetstream: %w", err)
	}
	sc := jetstream.StreamConfig{
		Name:        streamName,
		Description: "isobox Push & Pull history: every published message, in mid order",
		Subjects:    []string{subjectMsg},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		// Messages leave the stream only by age (the longest allowed
		// Message-Expiry) or by the size cap; shorter expiries are applied
		// when reading. So a hole between a client's mid and the first
		// stored message is either all expired or a loss to report.
		MaxAge:      cfg.MaxExpiry,
		MaxBytes:    cfg.HistoryBytes,
		MaxMsgSize:  int32(cfg.MaxPayload + 8192),
		Replicas:    cfg.Replicas,
		AllowDirect: true,
		Duplicates:  time.Second,
	}
	s := &store{js: js, sc: sc}
	st, err := js.Stream(ctx, streamName)
	switch {
	case err == nil:
		// Keep the stream's epoch; apply this instance's limits.
		e := epochOf(st.CachedInfo())
		sc.Metadata = map[string]string{metaEpoch: strconv.FormatUint(e, 10)}
		if st, err = js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("push: update stream %s: %w", streamName, err)
		}
		s.stream = st
		s.epoch.Store(e)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if s.stream, err = s.create(ctx, 0); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("push: stream %s: %w", streamName, err)
	}
	return s, nil
}

// metaEpoch is the stream metadata key holding the epoch. It is chosen
// when the stream is created, larger than any epoch before it, and read
// by every instance, so all agree on it and mids only ever grow.
const metaEpoch = "isobox_epoch"

func epochOf(info *jetstream.StreamInfo) uint64 {
	if e, err := strconv.ParseUint(info.Config.Metadata[metaEpoch], 10, 64); err == nil && e > 0 {
		return e
	}
	return uint64(info.Created.Unix())
}

// create creates the stream with an epoch after prev; if another instance
// created it first, its epoch is taken. The handle it returns is only
// needed at start: handles address the stream by name.
func (s *store) create(ctx context.Context, prev uint64) (jetstream.Stream, error) {
	sc := s.sc
	e := max(uint64(time.Now().Unix()), prev+1)
	sc.Metadata = map[string]string{metaEpoch: strconv.FormatUint(e, 10)}
	st, err := s.js.CreateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = s.js.Stream(ctx, streamName)
	}
	if err != nil {
		return nil, fmt.Errorf("push: create stream %s: %w", streamName, err)
	}
	s.epoch.Store(epochOf(st.CachedInfo()))
	return st, nil
}

// check re-creates the stream if it is gone and reports whether it is a
// different stream than before (lost data, or deleted by an operator): a
// new epoch, and sequences starting again at 1.
func (s *store) check(ctx context.Context) (bool, error) {
	prev := s.epoch.Load()
	info, err := s.stream.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := s.create(ctx, prev); err != nil {
			return false, err
		}
		return s.epoch.Load() != prev, nil
	}
	if err != nil {
		return false, fmt.Errorf("push: check stream: %w", err)
	}
	e := epochOf(info)
	return s.epoch.Swap(e) != e, nil
}

// pending is a message to store.
type pending struct {
	to     []chanKey
	body   []byte
	expiry uint32
}

// publish stores msgs in order and returns when all are stored (acknowledged
// by JetStream, which with sync-always means on disk).
func (s *store) publish(ctx context.Context, msgs []pending) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, p := range msgs {
		m := nats.NewMsg(subjectMsg)
		m.Data = p.body
		m.Header.Set(hdrTo, encodeKeys(p.to))
		m.Header.Set(hdrExpiry, strconv.FormatUint(uint64(p.expiry), 10))
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("push: store message: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("push: store message: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("push: store message: %w", ctx.Err())
		}
	}
	return nil
}

func encodeKeys(keys []chanKey) string {
	var b strings.Builder
	b.Grow(len(keys) * 34)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(k[0])
		b.WriteString(k.hex())
	}
	return b.String()
}

func decodeKeys(s string) ([]chanKey, error) {
	var keys []chanKey
	for e := range strings.SplitSeq(s, ",") {
		if len(e) != 1+2*idLen || (e[0] != kindPrivate && e[0] != kindPublic) {
			return nil, fmt.Errorf("push: bad receiver %q", e)
		}
		id, ok := decodeID(e[1:])
		if !ok {
			return nil, fmt.Errorf("push: bad receiver %q", e)
		}
		keys = append(keys, makeKey(e[0], id))
	}
	return keys, nil
}

// toMessage turns a stored JetStream message into a message.
func (s *store) toMessage(epoch, seq uint64, created time.Time, h nats.Header, data []byte) (*message, error) {
	to, err := decodeKeys(h.Get(hdrTo))
	if err != nil {
		return nil, err
	}
	exp, err := strconv.ParseUint(h.Get(hdrExpiry), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("push: bad expiry in message %d: %w", seq, err)
	}
	return &message{mid: mid{epoch: epoch, seq: seq}, created: created, expiry: uint32(exp), body: data, to: to}, nil
}

// bounds returns the first and last sequence in the stream.
func (s *store) bounds(ctx context.Context) (first, last uint64, err error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("push: stream info: %w", err)
	}
	return info.State.FirstSeq, info.State.LastSeq, nil
}

// read calls fn for every stored message with from <= seq <= to, in order,
// numbering them in epoch.
// It stops early when the stream has nothing more.
func (s *store) read(ctx context.Context, epoch, from, to uint64, fn func(*message)) error {
	if from > to {
		return nil
	}
	c, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjectMsg},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		// A reconnect storm makes many of these; let the server drop them
		// soon after use instead of after the default 5 minutes.
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("push: history consumer: %w", err)
	}
	for {
		// Small batches: messages may be up to MaxPayload each, and a batch
		// is held in memory while it is read.
		batch, err := c.Fetch(int(min(64, to-from+1)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("push: read history: %w", err)
		}
		n := 0
		for jm := range batch.Messages() {
			n++
			md, err := jm.Metadata()
			if err != nil {
				return fmt.Errorf("push: read history: %w", err)
			}
			seq := md.Sequence.Stream
			if seq > to {
				return nil
			}
			m, err := s.toMessage(epoch, seq, md.Timestamp, jm.Headers(), jm.Data())
			if err == nil {
				fn(m)
			}
			if seq == to || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("push: read history: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}
