package delivery

import (
	"context"
	"errors"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/events"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Admin is the Relay gRPC service (api/isobox/relay/v1) over a Service.
type Admin struct {
	relayv1.UnimplementedRelayServer
	s *Service
}

// Admin returns the admin API of s.
func (s *Service) Admin() *Admin { return &Admin{s: s} }

func grpcErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnknownHandler):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		return status.Error(codes.Unavailable, err.Error())
	}
}

func toProto(r Record) *relayv1.Delivery {
	d := &relayv1.Delivery{Id: r.ID, Handler: r.Handler, Url: r.URL, ClientId: r.ClientID, Portal: r.Portal, Event: r.Event,
		Status: r.Status, Attempts: int32(r.Attempts), LastError: r.LastError, LastStatus: int32(r.LastStatus),
		CreatedMs: r.CreatedMs, UpdatedMs: r.UpdatedMs, NextAttemptMs: r.NextAttemptMs, LastLatencyMs: r.LastLatencyMs}
	for _, a := range r.History {
		d.History = append(d.History, &relayv1.Attempt{AtMs: a.AtMs, Status: int32(a.Status), Error: a.Error, LatencyMs: a.LatencyMs})
	}
	return d
}

// ListDeliveries implements relayv1.RelayServer.
func (a *Admin) ListDeliveries(_ context.Context, req *relayv1.ListDeliveriesRequest) (*relayv1.ListDeliveriesResponse, error) {
	limit := int(req.GetLimit())
	if limit > 10000 {
		limit = 10000
	}
	if req.GetStatus() != "" {
		switch req.GetStatus() {
		case StatusPending, StatusRetrying, StatusDelivered, StatusDead:
		default:
			return nil, status.Error(codes.InvalidArgument, "status must be pending, retrying, delivered or dead")
		}
	}
	recs := a.s.records.list(Filter{App: req.GetApp(), Handler: req.GetHandler(), Event: normEvent(req.GetEvent()), Status: req.GetStatus(), Limit: limit})
	out := &relayv1.ListDeliveriesResponse{}
	for _, r := range recs {
		out.Deliveries = append(out.Deliveries, toProto(r))
	}
	return out, nil
}

func normEvent(e string) string {
	b := []byte(e)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// GetDelivery implements relayv1.RelayServer.
func (a *Admin) GetDelivery(ctx context.Context, req *relayv1.GetDeliveryRequest) (*relayv1.Delivery, error) {
	r, ok := a.s.records.get(req.GetId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no delivery %q", req.GetId())
	}
	d := toProto(r)
	// The payload only while its message is kept; the record is shown
	// either way.
	if fields, err := a.s.Payload(ctx, r.ID); err == nil {
		for _, f := range fields {
			d.Payload = append(d.Payload, &relayv1.PayloadField{Key: f[0], Value: f[1]})
		}
	}
	return d, nil
}

// ReplayDelivery implements relayv1.RelayServer.
func (a *Admin) ReplayDelivery(ctx context.Context, req *relayv1.ReplayDeliveryRequest) (*relayv1.ReplayResponse, error) {
	if err := a.s.ReplayDelivery(ctx, req.GetId()); err != nil {
		return nil, grpcErr(err)
	}
	return &relayv1.ReplayResponse{Replayed: 1, Ids: []string{req.GetId()}}, nil
}

// ReplayDeadLetters implements relayv1.RelayServer.
func (a *Admin) ReplayDeadLetters(ctx context.Context, req *relayv1.ReplayDeadLettersRequest) (*relayv1.ReplayResponse, error) {
	var since time.Time
	if req.GetSince() > 0 {
		since = time.Unix(req.GetSince(), 0)
	}
	if req.GetHandler() != "" {
		if _, err := a.s.worker(req.GetHandler()); err != nil {
			return nil, grpcErr(err)
		}
	}
	ids, err := a.s.ReplayDead(ctx, req.GetHandler(), since)
	if err != nil {
		return nil, grpcErr(err)
	}
	return &relayv1.ReplayResponse{Replayed: int32(len(ids)), Ids: ids}, nil
}

// handlerProto describes one handler with its queue and dead-letter counts.
func (a *Admin) handlerProto(ctx context.Context, w *worker, dead map[string]uint64) *relayv1.Handler {
	h := w.info()
	w.mu.Lock()
	delivered, failed := w.delivered, w.failed
	w.mu.Unlock()
	p := &relayv1.Handler{Key: h.Key, Url: h.URL, ClientId: h.ClientID, Portal: h.Portal, Paused: h.Paused,
		Breaker: w.breakerState(), Dead: int64(dead[events.SubjectDead+h.Key]), Delivered: delivered, FailedAttempts: failed}
	if ci, err := w.cons.Info(ctx); err == nil {
		p.Pending = int64(ci.NumPending) + int64(ci.NumAckPending)
	}
	q := a.s.m.quantiles(h.Key, 0.5, 0.99)
	p.P50Ms, p.P99Ms = q[0]*1000, q[1]*1000
	return p
}

func (s *Service) deadCounts(ctx context.Context) (map[string]uint64, uint64) {
	perHandler, total, _ := s.deadCountsOK(ctx)
	return perHandler, total
}

// deadCountsOK is deadCounts that says whether the stream could be read.
func (s *Service) deadCountsOK(ctx context.Context) (map[string]uint64, uint64, bool) {
	st, err := s.js.Stream(ctx, events.StreamDead)
	if err != nil {
		return nil, 0, false
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.SubjectDead+"*"))
	if err != nil {
		return nil, 0, false
	}
	return info.State.Subjects, info.State.Msgs, true
}

func (s *Service) workers() []*worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := make([]*worker, 0, len(s.handlers))
	for _, w := range s.handlers {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].h.Key < ws[j].h.Key })
	return ws
}

// ListHandlers implements relayv1.RelayServer.
func (a *Admin) ListHandlers(ctx context.Context, _ *relayv1.ListHandlersRequest) (*relayv1.ListHandlersResponse, error) {
	dead, _ := a.s.deadCounts(ctx)
	out := &relayv1.ListHandlersResponse{}
	for _, w := range a.s.workers() {
		out.Handlers = append(out.Handlers, a.handlerProto(ctx, w, dead))
	}
	return out, nil
}

func (a *Admin) setPaused(ctx context.Context, key string, p bool) (*relayv1.Handler, error) {
	if _, err := a.s.SetPaused(ctx, key, p); err != nil {
		return nil, grpcErr(err)
	}
	w, err := a.s.worker(key)
	if err != nil {
		return nil, grpcErr(err)
	}
	dead, _ := a.s.deadCounts(ctx)
	return a.handlerProto(ctx, w, dead), nil
}

// PauseHandler implements relayv1.RelayServer.
func (a *Admin) PauseHandler(ctx context.Context, req *relayv1.HandlerRequest) (*relayv1.Handler, error) {
	return a.setPaused(ctx, req.GetKey(), true)
}

// ResumeHandler implements relayv1.RelayServer.
func (a *Admin) ResumeHandler(ctx context.Context, req *relayv1.HandlerRequest) (*relayv1.Handler, error) {
	return a.setPaused(ctx, req.GetKey(), false)
}

func counterValue(c prometheus.Counter) int64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// Stats implements relayv1.RelayServer. Ingested counts this process's
// ingest (from the shared registry's counter when wired by the caller).
func (a *Admin) Stats(ctx context.Context, _ *relayv1.StatsRequest) (*relayv1.StatsResponse, error) {
	s := a.s
	out := &relayv1.StatsResponse{
		Delivered:    counterValue(s.m.delivered),
		Retried:      counterValue(s.m.retried),
		DeadLettered: counterValue(s.m.dead),
		Duplicates:   counterValue(s.m.duplicates),
	}
	if s.cfg.Ingested != nil {
		out.Ingested = s.cfg.Ingested()
	}
	ws := s.workers()
	out.Handlers = int64(len(ws))
	for _, w := range ws {
		if ci, err := w.cons.Info(ctx); err == nil {
			out.Pending += int64(ci.NumPending) + int64(ci.NumAckPending)
		}
	}
	_, dead := s.deadCounts(ctx)
	out.Dead = int64(dead)
	return out, nil
}

func secretName(req *relayv1.SigningSecretRequest) (string, error) {
	switch {
	case req.GetClientId() != "" && req.GetApplicationToken() != "":
		return "", status.Error(codes.InvalidArgument, "give client_id or application_token, not both")
	case req.GetClientId() == "" && req.GetApplicationToken() == "":
		return "", status.Error(codes.InvalidArgument, "client_id or application_token is required")
	case req.GetPortal() == "":
		return "", status.Error(codes.InvalidArgument, "portal (the portal's client_id) is required: secrets are per portal and app")
	}
	return SecretName(req.GetPortal(), req.GetClientId(), req.GetApplicationToken()), nil
}

func secretProto(si SecretInfo) *relayv1.SigningSecret {
	return &relayv1.SigningSecret{Secret: si.Secret, Previous: si.Previous, PreviousUntil: si.PreviousUntil}
}

// GetSigningSecret implements relayv1.RelayServer.
func (a *Admin) GetSigningSecret(ctx context.Context, req *relayv1.SigningSecretRequest) (*relayv1.SigningSecret, error) {
	name, err := secretName(req)
	if err != nil {
		return nil, err
	}
	si, err := a.s.secrets.Get(ctx, name)
	if err != nil {
		return nil, grpcErr(err)
	}
	return secretProto(si), nil
}

// RotateSigningSecret implements relayv1.RelayServer.
func (a *Admin) RotateSigningSecret(ctx context.Context, req *relayv1.SigningSecretRequest) (*relayv1.SigningSecret, error) {
	name, err := secretName(req)
	if err != nil {
		return nil, err
	}
	si, err := a.s.secrets.Rotate(ctx, name)
	if err != nil {
		return nil, grpcErr(err)
	}
	return secretProto(si), nil
}

// List returns delivery records, newest first.
func (s *Service) List(f Filter) []Record { return s.records.list(f) }
