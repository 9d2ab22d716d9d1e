package events

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/secret"
)

// PortalVerifier checks a portal's OAuth credentials (authprovider's
// EventAuth.VerifyPortal). ok is false for wrong credentials; err is set
// only when the answer could not be obtained.
type PortalVerifier interface {
	VerifyPortal(ctx context.Context, clientID, clientSecret string) (ok bool, err error)
}

// IngestConfig configures the ingest endpoint.
type IngestConfig struct {
	JS jetstream.JetStream
	// Verifier checks portal credentials; required.
	Verifier PortalVerifier
	// Apps checks that the apps of a call's events are installed on the
	// calling portal before the call is stored; nil checks nothing (the
	// delivery-time check still refuses them).
	Apps AppChecker
	// ServiceKey is the key authprovider forwards rest.event.call items
	// with; only its hash is kept.
	ServiceKey string
	// MaxBody bounds a request body. Zero means 8 MiB.
	MaxBody int64
	// CacheTTL is how long a positive portal or app check is reused. Zero means
	// 30s; negative disables the cache.
	CacheTTL time.Duration
	// Log receives causes that clients do not see.
	Log *slog.Logger
	// Registry receives the ingest metrics; nil registers nothing.
	Registry prometheus.Registerer
}

// Ingest is the /v1/events handler: it authenticates the caller, parses the
// items, stores them in one JetStream message (shared with the calls that
// arrived while the previous store was in flight: group commit) and
// answers only after JetStream acknowledged the write (on disk, with sync
// "always").
type Ingest struct {
	cfg         IngestConfig
	serviceHash string
	commit      *committer

	mu    sync.Mutex
	cache map[[32]byte]cachedPortal
	apps  map[appKey]time.Time

	ingested  prometheus.Counter
	calls     *prometheus.CounterVec
	handoff   prometheus.Histogram
	batchSize prometheus.Histogram

	appCheckFailed prometheus.Counter
}

type cachedPortal struct {
	clientID string
	until    time.Time
}

// maxCache bounds the positive-answer cache; a full cache is emptied.
const maxCache = 10000

// NewIngest returns the ingest handler.
func NewIngest(cfg IngestConfig) *Ingest {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 8 << 20
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	in := &Ingest{cfg: cfg, serviceHash: secret.Hash(cfg.ServiceKey), cache: map[[32]byte]cachedPortal{}, apps: map[appKey]time.Time{}, commit: newCommitter(cfg.JS)}
	in.ingested = prometheus.NewCounter(prometheus.CounterOpts{Name: "isobox_relay_events_ingested_total", Help: "Events accepted and stored by /v1/events (duplicates included)."})
	in.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "isobox_relay_ingest_calls_total", Help: "Calls to /v1/events by result."}, []string{"result"})
	in.handoff = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "isobox_relay_ingest_seconds", Help: "Time from request to durable store acknowledgement.", Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .5, 1}})
	in.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "isobox_relay_ingest_batch_items", Help: "Items per /v1/events call.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)})
	in.appCheckFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "isobox_relay_ingest_app_check_failures_total", Help: "Ingest calls stored without the app check because authprovider could not answer (delivery checks again)."})
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(in.ingested, in.calls, in.handoff, in.batchSize, in.appCheckFailed)
	}
	return in
}

// Run runs the writer that stores ingest calls (group commit) until ctx
// ends. ServeHTTP needs it running.
func (in *Ingest) Run(ctx context.Context) { in.commit.run(ctx) }

// Response is the body of a successful ingest call.
type Response struct {
	Result struct {
		// Accepted counts the stored items.
		Accepted int `json:"accepted"`
		// IDs are the delivery ids, in the order of the items.
		IDs []string `json:"ids"`
		// Duplicate is true when the same call was stored before.
		Duplicate bool `json:"duplicate"`
	} `json:"result"`
}

// ServeHTTP handles POST /v1/events.
func (in *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		in.fail(w, bitrix.NewError(http.StatusMethodNotAllowed, "invalid_request", "Use POST"), "method")
		return
	}
	portal, berr := in.authenticate(r)
	if berr != nil {
		in.fail(w, berr, "unauthorized")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.cfg.MaxBody))
	if err != nil {
		in.fail(w, bitrix.BodyError(err), "bad_body")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIDLen {
		in.fail(w, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Idempotency-Key is longer than 200 bytes"), "bad_request")
		return
	}
	items, err := Parse(portal, r.Header.Get("Content-Type"), body)
	if err != nil {
		in.fail(w, bitrix.NewError(http.StatusBadRequest, "invalid_request", publicParseError(err)), "bad_request")
		return
	}
	if berr := in.checkApps(r.Context(), portal, items); berr != nil {
		in.fail(w, berr, "not_installed")
		return
	}
	KeyIDs(portal, key, items)
	b := &Batch{Portal: portal, ReceivedMs: start.UnixMilli(), Items: items}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	dup, err := in.commit.store(ctx, b)
	if errors.Is(err, ErrItemTooLarge) {
		in.fail(w, bitrix.NewError(http.StatusRequestEntityTooLarge, "invalid_request", "An event item is too large"), "too_large")
		return
	}
	if errors.Is(err, ErrStoreDown) {
		in.cfg.Log.Error("ingest: event store down, refusing events; check the NATS nodes' logs and disks (\"JetStream out of resources\")", "err", err, "items", len(items))
		in.fail(w, bitrix.NewError(http.StatusServiceUnavailable, "unavailable", "Event store is down (no NATS node holds the event stream; a full disk does this), nothing was accepted; retry later"), "store_down")
		return
	}
	if err != nil {
		in.cfg.Log.Error("ingest: store batch", "err", err, "items", len(items))
		in.fail(w, bitrix.NewError(http.StatusServiceUnavailable, "unavailable", "Event store unavailable, retry later"), "unavailable")
		return
	}
	var resp Response
	resp.Result.Accepted = len(items)
	resp.Result.Duplicate = dup
	for _, it := range items {
		resp.Result.IDs = append(resp.Result.IDs, it.ID)
	}
	in.ingested.Add(float64(len(items)))
	in.batchSize.Observe(float64(len(items)))
	in.calls.WithLabelValues("ok").Inc()
	in.handoff.Observe(time.Since(start).Seconds())
	bitrix.WriteJSON(w, http.StatusOK, resp)
}

// Ingested returns how many items this process accepted.
func (in *Ingest) Ingested() int64 {
	var m dto.Metric
	if in.ingested.Write(&m) != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

func (in *Ingest) fail(w http.ResponseWriter, e *bitrix.Error, result string) {
	in.calls.WithLabelValues(result).Inc()
	bitrix.WriteError(w, e)
}

// Parse picks the parser by content type: JSON for application/json (or a
// body that starts like JSON), PHP form encoding otherwise.
func Parse(portal, contentType string, body []byte) ([]Item, error) {
	ct := strings.ToLower(contentType)
	trimmed := strings.TrimLeft(string(body[:min(len(body), 16)]), " \t\r\n")
	if strings.HasPrefix(ct, "application/json") || (!strings.HasPrefix(ct, "application/x-www-form-urlencoded") && (strings.HasPrefix(trimmed, "[") || strings.HasPrefix(trimmed, "{"))) {
		return ParseJSON(portal, body)
	}
	return ParseForm(portal, string(body))
}

func publicParseError(err error) string {
	switch {
	case errors.Is(err, ErrNoItems):
		return "No event items (send a JSON list of items or QUERY[n][...] form fields)"
	case errors.Is(err, ErrTooMany):
		return "Too many items in one call"
	case errors.Is(err, ErrBadItem):
		return strings.TrimPrefix(err.Error(), "events: ")
	default:
		return "Malformed body: send a JSON list of items or PHP form encoding"
	}
}

// authenticate returns the portal's client_id, from the portal's own
// credentials or from the service key plus X-Isobox-Portal.
func (in *Ingest) authenticate(r *http.Request) (string, *bitrix.Error) {
	h := r.Header.Get("Authorization")
	if len(h) < 8 || !strings.EqualFold(h[:7], "bearer ") {
		return "", bitrix.NewError(http.StatusUnauthorized, "invalid_credentials", "Authorization: Bearer <portal client_id>:<client_secret> is required")
	}
	tok := strings.TrimSpace(h[7:])
	id, sec, isPortal := strings.Cut(tok, ":")
	if !isPortal {
		if !secret.Matches(tok, in.serviceHash) {
			return "", bitrix.NewError(http.StatusUnauthorized, "invalid_credentials", "Wrong credentials")
		}
		portal := r.Header.Get("X-Isobox-Portal")
		if portal == "" || len(portal) > 200 {
			return "", bitrix.NewError(http.StatusBadRequest, "invalid_request", "X-Isobox-Portal is required with the service key")
		}
		return portal, nil
	}
	if id == "" || sec == "" {
		return "", bitrix.NewError(http.StatusUnauthorized, "invalid_credentials", "Wrong credentials")
	}
	key := sha256.Sum256([]byte(tok))
	now := time.Now()
	in.mu.Lock()
	c, ok := in.cache[key]
	in.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.clientID, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	good, err := in.cfg.Verifier.VerifyPortal(ctx, id, sec)
	if err != nil {
		in.cfg.Log.Warn("ingest: verify portal", "err", err)
		return "", bitrix.NewError(http.StatusServiceUnavailable, "unavailable", "Cannot verify credentials now, retry later")
	}
	if !good {
		return "", bitrix.NewError(http.StatusUnauthorized, "invalid_credentials", "Wrong credentials")
	}
	if in.cfg.CacheTTL > 0 {
		in.mu.Lock()
		if len(in.cache) >= maxCache {
			clear(in.cache)
		}
		in.cache[key] = cachedPortal{clientID: id, until: now.Add(in.cfg.CacheTTL)}
		in.mu.Unlock()
	}
	return id, nil
}
