package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/delivery"
	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/testkit"
)

const (
	serviceKey   = "svc0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
	portalID     = "bx.6553c3a1e4b0f1.12345678"
	portalSecret = "portalsecret123"
)

// eventAuth is a small EventAuth server for tests, on real gRPC: it mints
// a new token on every Build, so a test can tell when auth was built.
type eventAuth struct {
	tokenv1.UnimplementedEventAuthServer
	minted   atomic.Int64
	verified atomic.Int64
	builds   atomic.Int64 // Build calls
	batches  atomic.Int64 // BuildBatch calls
	down     atomic.Bool
	// refusals gets one value per Build refused while down.
	refusals chan struct{}
}

func (e *eventAuth) Build(ctx context.Context, r *tokenv1.BuildEventAuthRequest) (*tokenv1.BuildEventAuthResponse, error) {
	e.builds.Add(1)
	return e.build(ctx, r)
}

// BuildBatch answers each request as Build does; refusedEvent is refused
// item by item, as authprovider refuses an app that is not installed.
func (e *eventAuth) BuildBatch(ctx context.Context, r *tokenv1.BuildEventAuthBatchRequest) (*tokenv1.BuildEventAuthBatchResponse, error) {
	e.batches.Add(1)
	if e.down.Load() {
		return nil, status.Error(codes.Unavailable, "down for the test")
	}
	out := &tokenv1.BuildEventAuthBatchResponse{}
	for _, req := range r.GetRequests() {
		b, err := e.build(ctx, req)
		if err != nil {
			st := status.Convert(err)
			out.Results = append(out.Results, &tokenv1.BuildEventAuthResult{Code: int32(st.Code()), Error: "ERROR_OAUTH", ErrorDescription: st.Message()})
			continue
		}
		out.Results = append(out.Results, &tokenv1.BuildEventAuthResult{Auth: b.GetAuth()})
	}
	return out, nil
}

// refusedEvent is an event name the stand-in refuses (FailedPrecondition).
const refusedEvent = "ONREFUSEDFORTEST"

func (e *eventAuth) build(_ context.Context, r *tokenv1.BuildEventAuthRequest) (*tokenv1.BuildEventAuthResponse, error) {
	if r.Event == refusedEvent {
		return nil, status.Error(codes.FailedPrecondition, "Application not installed")
	}
	if e.down.Load() {
		select {
		case e.refusals <- struct{}{}:
		default:
		}
		return nil, status.Error(codes.Unavailable, "down for the test")
	}
	f := func(k, v string) *tokenv1.Field { return &tokenv1.Field{Key: k, Value: v} }
	var out []*tokenv1.Field
	if r.ClientId != "" && r.SendAuth && r.UserId > 0 {
		n := e.minted.Add(1)
		out = append(out, f("access_token", fmt.Sprintf("isobox.tok%04d", n)), f("expires", "1700003600"), f("expires_in", "3600"),
			f("scope", "crm"), f("domain", r.Domain), f("server_endpoint", "http://auth.lan/rest/"), f("status", "L"),
			f("client_endpoint", "https://"+r.Domain+"/rest/"), f("member_id", "0123456789abcdef0123456789abcdef"),
			f("user_id", strconv.FormatInt(r.UserId, 10)))
		if r.SendRefreshToken {
			out = append(out, f("refresh_token", fmt.Sprintf("isobox.ref%04d", n)))
		}
	} else {
		out = append(out, f("domain", r.Domain), f("client_endpoint", "https://"+r.Domain+"/rest/"),
			f("server_endpoint", "http://auth.lan/rest/"), f("member_id", "0123456789abcdef0123456789abcdef"))
	}
	out = append(out, f("application_token", r.ApplicationToken))
	return &tokenv1.BuildEventAuthResponse{Auth: out}, nil
}

func (e *eventAuth) VerifyPortal(_ context.Context, r *tokenv1.VerifyPortalRequest) (*tokenv1.VerifyPortalResponse, error) {
	e.verified.Add(1)
	return &tokenv1.VerifyPortalResponse{Ok: r.ClientId == portalID && r.ClientSecret == portalSecret, Host: "portal.lan"}, nil
}

// startEventAuth serves e on loopback gRPC, requiring the service key.
func startEventAuth(t *testing.T, e tokenv1.EventAuthServer) string {
	t.Helper()
	checks := grpcauth.Checks{"isobox.token.v1.EventAuth": func(ctx context.Context, _ string) (context.Context, error) {
		if !grpcauth.Equal(grpcauth.BearerToken(ctx), serviceKey) {
			return nil, status.Error(codes.Unauthenticated, "service key")
		}
		return ctx, nil
	}}
	srv := grpc.NewServer(checks.ServerOptions()...)
	tokenv1.RegisterEventAuthServer(srv, e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

type env struct {
	t          *testing.T
	js         jetstream.JetStream
	svc        *delivery.Service
	auth       *eventAuth
	authClient delivery.GRPCAuth
	ingest     *httptest.Server
}

type envOpt func(*delivery.Config)

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	srv := testkit.NATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := events.Setup(ctx, js, events.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	ea := &eventAuth{refusals: make(chan struct{}, 100)}
	conn, err := grpc.NewClient(startEventAuth(t, ea), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	auth := delivery.GRPCAuth{Client: tokenv1.NewEventAuthClient(conn), ServiceKey: serviceKey}
	cfg := delivery.Config{
		JS: js, Auth: auth, Schedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
		Timeout: 2 * time.Second, Concurrency: 1, SecretsKey: bytes.Repeat([]byte{7}, 32),
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := delivery.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Every goroutine of the service ends: no leaked workers.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(sctx); err != nil {
			t.Errorf("delivery service did not stop: %v", err)
		}
	})
	in := events.NewIngest(events.IngestConfig{JS: js, Verifier: auth, ServiceKey: serviceKey})
	ictx, stopIngest := context.WithCancel(context.Background())
	go in.Run(ictx)
	t.Cleanup(stopIngest)
	hs := httptest.NewServer(in)
	t.Cleanup(hs.Close)
	return &env{t: t, js: js, svc: svc, auth: ea, authClient: auth, ingest: hs}
}

// post hands items to ingest as JSON with the portal's credentials.
func (e *env) post(items ...map[string]any) events.Response {
	e.t.Helper()
	body, _ := json.Marshal(items)
	return e.postRaw("application/json", body)
}

func (e *env) postRaw(ct string, body []byte) events.Response {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.ingest.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+portalID+":"+portalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("ingest: %d %s", resp.StatusCode, b)
	}
	var r events.Response
	if err := json.Unmarshal(b, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// item is a queue item as the portal's Sender builds it.
func item(url, event string, id int, extra ...func(map[string]any)) map[string]any {
	it := map[string]any{
		"client_id":  "local.5c8bb1b0891cf2.87252039",
		"auth":       map[string]any{"EVENT_SESSION": 7, "LOCAL_USER": 1, "application_token": "apptoken123"},
		"additional": map[string]any{"sendAuth": true, "sendRefreshToken": false, "category": "default"},
		"query": map[string]any{"DOMAIN": "portal.lan", "QUERY_URL": url, "QUERY_DATA": map[string]any{
			"event": event, "event_handler_id": 12, "data": map[string]any{"FIELDS": map[string]any{"ID": id}}, "ts": 1700000000,
		}},
	}
	for _, f := range extra {
		f(it)
	}
	return it
}

// hit is one request a handler received.
type hit struct {
	body   []byte
	header http.Header
}

// recorder is a loopback handler answering with the statuses in plan
// (then 200), sending every request on a channel.
type recorder struct {
	*httptest.Server
	hits chan hit
	mu   sync.Mutex
	plan []int
	// hold marks a stretch in which no request may arrive; early counts
	// the requests that arrived during one.
	hold  atomic.Bool
	early atomic.Int64
}

func newRecorder(t *testing.T, plan ...int) *recorder {
	r := &recorder{hits: make(chan hit, 1000), plan: plan}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.hold.Load() {
			r.early.Add(1)
		}
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		code := 200
		if len(r.plan) > 0 {
			code, r.plan = r.plan[0], r.plan[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		r.hits <- hit{body: b, header: req.Header.Clone()}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-r.hits:
		return h
	case <-time.After(20 * time.Second):
		t.Fatal("handler got no request within 20s")
		return hit{}
	}
}

// newRecorderFunc is a handler that runs fn for every request (to block).
func newRecorderFunc(t *testing.T, fn func()) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fn()
	}))
	t.Cleanup(s.Close)
	return s
}

func newReq(base string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest("POST", base+"/v1/events", bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, err
}

func httpDo(req *http.Request) (*http.Response, error) { return http.DefaultClient.Do(req) }

// newStatusServer answers with fn (which may set a status; 200 otherwise).
func newStatusServer(t *testing.T, fn func(w http.ResponseWriter)) *httptest.Server {
	var mu sync.Mutex
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		fn(w)
	}))
	t.Cleanup(s.Close)
	return s
}
