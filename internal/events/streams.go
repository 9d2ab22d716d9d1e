package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream names. Every stream and bucket isobox's relay uses is defined
// here, so the layout of the broker can be read in one place.
const (
	// StreamIn holds one message per ingest call: the call's items (a
	// batch). One stored message per call means one fsync per call with
	// sync_interval "always".
	StreamIn  = "ISOBOX_EVENTS"
	SubjectIn = "isobox.events.in"

	// StreamQueue holds one message per (item, handler): the handlers'
	// queues, subject isobox.q.<handler key>, one durable consumer each.
	StreamQueue   = "ISOBOX_QUEUE"
	SubjectQueue  = "isobox.q."
	ConsumerQueue = "h_" // + handler key

	// StreamDead holds dead letters, subject isobox.dlq.<handler key>.
	StreamDead  = "ISOBOX_DLQ"
	SubjectDead = "isobox.dlq."

	// StreamLog holds delivery records in batches (status, attempts, last
	// error), read back at start for the admin API.
	StreamLog  = "ISOBOX_LOG"
	SubjectLog = "isobox.log"

	// ConsumerFanout reads StreamIn and writes StreamQueue.
	ConsumerFanout = "fanout"

	// BucketHandlers maps handler key to the handler (URL, app, paused).
	BucketHandlers = "isobox_handlers"
	// BucketSecrets holds signing secrets, encrypted.
	BucketSecrets = "isobox_signing"
	// BucketMeta holds the relay's own settings (admin key hash).
	BucketMeta = "isobox_relay_meta"
)

// StreamsConfig sizes the streams.
type StreamsConfig struct {
	// DedupWindow is how long an item id is remembered, so that the same
	// item handed off again is stored once. Zero means 2h.
	DedupWindow time.Duration
	// Retention bounds how long an undelivered event waits in a handler's
	// queue (paused or failing handler) and how long delivered events stay
	// replayable. Zero means 7 days.
	Retention time.Duration
	// DeadRetention bounds how long dead letters are kept. Zero = 30 days.
	DeadRetention time.Duration
	// LogRetention bounds delivery history. Zero means 72h.
	LogRetention time.Duration
	// Replicas of each stream and bucket (1 for the embedded server; 3 on
	// a cluster, see Replication.Replicas). Zero means 1. Existing streams
	// and buckets are updated to it, so raising it raises theirs at start.
	Replicas int
	// Log receives a line per stream whose replica count changes. Nil
	// means slog.Default().
	Log *slog.Logger
}

func (c *StreamsConfig) defaults() {
	if c.DedupWindow <= 0 {
		c.DedupWindow = 2 * time.Hour
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.DeadRetention <= 0 {
		c.DeadRetention = 30 * 24 * time.Hour
	}
	if c.LogRetention <= 0 {
		c.LogRetention = 72 * time.Hour
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Setup creates or updates the streams and buckets. It is idempotent.
func Setup(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg.defaults()
	retention := max(cfg.Retention, cfg.DedupWindow)
	streams := []jetstream.StreamConfig{
		{
			Name: StreamIn, Subjects: []string{SubjectIn}, Storage: jetstream.FileStorage,
			// Kept as long as the queues: an accepted call must outlive
			// any outage between its store and its fan-out.
			Retention: jetstream.LimitsPolicy, MaxAge: retention,
			Duplicates: cfg.DedupWindow, Replicas: cfg.Replicas,
			Description: "isobox: ingest batches, one message per /v1/events call",
		},
		{
			Name: StreamQueue, Subjects: []string{SubjectQueue + "*"}, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, MaxAge: retention,
			Duplicates: cfg.DedupWindow, Replicas: cfg.Replicas,
			Description: "isobox: per-handler delivery queues, one message per event and handler",
		},
		{
			Name: StreamDead, Subjects: []string{SubjectDead + "*"}, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, MaxAge: cfg.DeadRetention,
			Duplicates: time.Hour, Replicas: cfg.Replicas,
			Description: "isobox: dead letters, replayable",
		},
		{
			Name: StreamLog, Subjects: []string{SubjectLog}, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, MaxAge: cfg.LogRetention, Replicas: cfg.Replicas,
			Description: "isobox: delivery records, batched",
		},
	}
	for _, sc := range streams {
		logReplicas(ctx, js, cfg, sc.Name)
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("events: stream %s: %w", sc.Name, replicasHint(err, cfg.Replicas))
		}
	}
	for _, b := range []string{BucketHandlers, BucketSecrets, BucketMeta} {
		logReplicas(ctx, js, cfg, "KV_"+b)
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1})
		if err != nil {
			return fmt.Errorf("events: bucket %s: %w", b, replicasHint(err, cfg.Replicas))
		}
	}
	return nil
}

// logReplicas says when an existing stream's replica count is about to
// change (raised after the relay moved to a cluster, or set by hand).
func logReplicas(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig, name string) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return // new, or the update below reports the error
	}
	if was := st.CachedInfo().Config.Replicas; was != cfg.Replicas {
		cfg.Log.Warn("events: changing the replicas of an existing stream", "stream", name, "from", was, "to", cfg.Replicas)
	}
}

// replicasHint explains JetStream's refusal to place the replicas.
func replicasHint(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if replicas > 1 && errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeInsufficientResources {
		return fmt.Errorf("%w (R%d needs %d JetStream servers up in the cluster: start the missing ones, or set the replica flags to the number of servers)", err, replicas, replicas)
	}
	return err
}

// errCodeInsufficientResources is JetStream's "insufficient resources"
// (nats-server JSInsufficientResourcesErr): too few servers for the
// replicas, or no room left in the store.
const errCodeInsufficientResources jetstream.ErrorCode = 10023
