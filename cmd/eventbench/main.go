// Command eventbench measures isobox's event relay on loopback: ingest
// hand-off latency under both fsync policies, end-to-end events/s to no-op
// handlers next to a direct-POST ceiling measured in the same run, and
// fast-handler throughput with and without a handler that hangs.
//
// Everything runs in this process on 127.0.0.1: an embedded NATS server
// (a fresh store in a temp dir), the real ingest handler and delivery
// service, a loopback gRPC EventAuth stand-in (authprovider's empty-auth
// shape; token minting is not measured here) and httptest handlers. Runs
// are bounded by -events and -deadline.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/delivery"
	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/phpform"
)

const serviceKey = "benchservicekey0123456789abcdefghijklmnopqrstuvw"

// authCacheTTL is delivery.Config.AuthCacheTTL for the runs (0: default).
var authCacheTTL time.Duration

// storeKey, when set, encrypts the JetStream store at rest with AES-GCM
// under this key, as eventrelay's embedded server does with
// <data-dir>/nats-store.key.
var storeKey string

// appItems gives every item an app client_id (instead of a webhook's
// null), so that ingest checks the app with EventAuth.CheckApps (answered
// from its cache after the first call); noAppCheck turns that check off
// (the ingest of before the check, for comparison).
var appItems, noAppCheck bool

// clusterNodes > 1 runs the relay on a JetStream cluster of that many
// in-process servers (routes on loopback) with streams of that many
// replicas (the production shape) instead of one embedded server.
var clusterNodes int

func main() {
	var (
		calls       = flag.Int("handoff-calls", 2000, "ingest calls per hand-off latency run (max 20000)")
		events_     = flag.Int("events", 20000, "events per end-to-end run (max 200000)")
		batch       = flag.Int("batch", 50, "items per ingest call in end-to-end runs")
		handlers    = flag.Int("handlers", 4, "fast handlers")
		concurrency = flag.Int("concurrency", 4, "deliveries in flight per handler")
		posters     = flag.Int("posters", 4, "concurrent ingest clients")
		deadline    = flag.Duration("deadline", 3*time.Minute, "give up a run after this long")
		only        = flag.String("only", "", "run only: handoff, e2e, isolation, cipher (hand-off and e2e with a plaintext and an AES-GCM encrypted store, alternating)")
		cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile to this file")
		noAuthCache = flag.Bool("no-auth-cache", false, "ask the EventAuth stand-in on every delivery (as for events with tokens)")
		cluster     = flag.Int("cluster", 1, "NATS servers: 1 = one embedded server (R1); 3 = a 3-node JetStream cluster in this process with R3 streams")
		appItemsF   = flag.Bool("app-items", false, "items carry an app client_id (ingest checks that the app is installed on the portal)")
		noAppCheckF = flag.Bool("no-app-check", false, "ingest does not check apps (as before the check; for comparison with -app-items)")
		runs        = flag.Int("runs", 3, "repetitions of the e2e run and of each isolation pair (medians are printed; max 10)")
	)
	flag.Parse()
	clusterNodes = *cluster
	appItems, noAppCheck = *appItemsF, *noAppCheckF
	if *noAuthCache {
		authCacheTTL = -1
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	*calls = min(*calls, 20000)
	*events_ = min(*events_, 200000)
	fmt.Printf("eventbench: GOMAXPROCS=%d, NATS servers %d, %s\n", runtime.GOMAXPROCS(0), clusterNodes, time.Now().UTC().Format(time.RFC3339))
	if *only == "" || *only == "handoff" {
		for _, syncAlways := range []bool{true, false} {
			for _, items := range []int{1, 10} {
				handoff(syncAlways, *calls, items, 1)
				handoff(syncAlways, *calls, items, *posters)
			}
		}
	}
	*runs = max(1, min(*runs, 10))
	if *only == "cipher" {
		cipher(*calls, *posters, *events_, *batch, *handlers, *concurrency, *runs, *deadline)
		return
	}
	if *only == "" || *only == "e2e" {
		var rates, ratios []float64
		for range *runs {
			r, c := e2e(*events_, *batch, *handlers, *concurrency, *posters, extraNone, *deadline)
			rates, ratios = append(rates, r), append(ratios, r/c)
		}
		fmt.Printf("e2e median of %d: %.0f events/s, ratio to the direct-POST ceiling %.2f\n", *runs, median(rates), median(ratios))
	}
	if *only == "" || *only == "isolation" {
		var base, hang []float64
		for range *runs {
			r, _ := e2e(*events_, *batch, *handlers, *concurrency, *posters, extraFast, *deadline)
			base = append(base, r)
			r, _ = e2e(*events_, *batch, *handlers, *concurrency, *posters, extraHang, *deadline)
			hang = append(hang, r)
		}
		fmt.Printf("isolation median of %d pairs: fast handlers %.0f events/s beside a fast handler, %.0f beside a hanging one (%.0f%%)\n",
			*runs, median(base), median(hang), 100*median(hang)/median(base))
	}
}

// relay is the relay's parts running in this process.
type relay struct {
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	ingest *httptest.Server
	svc    *delivery.Service
	dir    string
	close  []func()
}

func (r *relay) shutdown() {
	for i := len(r.close) - 1; i >= 0; i-- {
		r.close[i]()
	}
	os.RemoveAll(r.dir)
}

// eventAuth answers Build with the empty-auth shape authprovider gives
// webhooks (no database work), on real loopback gRPC.
type eventAuth struct {
	tokenv1.UnimplementedEventAuthServer
}

func (eventAuth) Build(_ context.Context, r *tokenv1.BuildEventAuthRequest) (*tokenv1.BuildEventAuthResponse, error) {
	f := func(k, v string) *tokenv1.Field { return &tokenv1.Field{Key: k, Value: v} }
	return &tokenv1.BuildEventAuthResponse{Auth: []*tokenv1.Field{f("domain", r.Domain), f("client_endpoint", "https://"+r.Domain+"/rest/"),
		f("server_endpoint", "http://auth.lan/rest/"), f("member_id", "0123456789abcdef0123456789abcdef"), f("application_token", r.ApplicationToken)}}, nil
}

// BuildBatch answers each request as Build does.
func (a eventAuth) BuildBatch(ctx context.Context, r *tokenv1.BuildEventAuthBatchRequest) (*tokenv1.BuildEventAuthBatchResponse, error) {
	out := &tokenv1.BuildEventAuthBatchResponse{Results: make([]*tokenv1.BuildEventAuthResult, len(r.GetRequests()))}
	for i, req := range r.GetRequests() {
		b, _ := a.Build(ctx, req)
		out.Results[i] = &tokenv1.BuildEventAuthResult{Auth: b.GetAuth()}
	}
	return out, nil
}

// CheckApps allows every app (the bench's items are webhooks; app items
// would be answered from ingest's cache after the first call).
func (eventAuth) CheckApps(_ context.Context, r *tokenv1.CheckAppsRequest) (*tokenv1.CheckAppsResponse, error) {
	out := &tokenv1.CheckAppsResponse{Allowed: make([]bool, len(r.GetApps()))}
	for i := range out.Allowed {
		out.Allowed[i] = true
	}
	return out, nil
}

func (eventAuth) VerifyPortal(context.Context, *tokenv1.VerifyPortalRequest) (*tokenv1.VerifyPortalResponse, error) {
	return &tokenv1.VerifyPortalResponse{Ok: true}, nil
}

func startRelay(syncAlways, deliver bool, concurrency int, timeout time.Duration) *relay {
	r := &relay{}
	var err error
	r.dir, err = os.MkdirTemp("", "eventbench")
	check(err)
	replicas := 1
	if clusterNodes > 1 {
		replicas = clusterNodes
		url := startCluster(r, clusterNodes, syncAlways)
		r.nc, err = nats.Connect(url)
	} else {
		opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: r.dir, NoSigs: true, NoLog: true, SyncAlways: syncAlways}
		if storeKey != "" {
			opts.JetStreamKey, opts.JetStreamCipher = storeKey, server.AES
		}
		r.srv, err = server.NewServer(opts)
		check(err)
		r.srv.Start()
		if !r.srv.ReadyForConnections(30 * time.Second) {
			log.Fatal("nats not ready")
		}
		r.close = append(r.close, func() { r.srv.Shutdown(); r.srv.WaitForShutdown() })
		r.nc, err = nats.Connect("", nats.InProcessServer(r.srv))
	}
	check(err)
	r.close = append(r.close, r.nc.Close)
	r.js, err = jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(1024))
	check(err)
	ctx := context.Background()
	check(events.Setup(ctx, r.js, events.StreamsConfig{Replicas: replicas}))

	checks := grpcauth.Checks{"isobox.token.v1.EventAuth": func(ctx context.Context, _ string) (context.Context, error) { return ctx, nil }}
	gs := grpc.NewServer(checks.ServerOptions()...)
	tokenv1.RegisterEventAuthServer(gs, eventAuth{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go gs.Serve(ln)
	r.close = append(r.close, gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	check(err)
	r.close = append(r.close, func() { conn.Close() })
	auth := delivery.GRPCAuth{Client: tokenv1.NewEventAuthClient(conn), ServiceKey: serviceKey}
	ic := events.IngestConfig{JS: r.js, Verifier: auth, Apps: auth, ServiceKey: serviceKey}
	if noAppCheck {
		ic.Apps = nil
	}
	in := events.NewIngest(ic)
	ictx, stopIngest := context.WithCancel(ctx)
	go in.Run(ictx)
	r.close = append(r.close, stopIngest)
	r.ingest = httptest.NewServer(in)
	r.close = append(r.close, r.ingest.Close)
	if deliver {
		r.svc, err = delivery.New(ctx, delivery.Config{JS: r.js, Auth: auth, Concurrency: concurrency, Timeout: timeout,
			SecretsKey: bytes.Repeat([]byte{1}, 32), BreakerFailures: 1 << 30, AuthCacheTTL: authCacheTTL})
		check(err)
		check(r.svc.Start(ctx))
		r.close = append(r.close, func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			r.svc.Stop(sctx)
		})
	}
	return r
}

// startCluster starts n JetStream servers routed on loopback, storing under
// r.dir, waits for a meta leader that sees all of them, and returns their
// client URLs.
func startCluster(r *relay, n int, syncAlways bool) string {
	var routeLn []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		check(err)
		routeLn = append(routeLn, l)
	}
	var routes []string
	for _, l := range routeLn {
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	var urls []string
	var srvs []*server.Server
	for i := range n {
		srv, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: fmt.Sprintf("%s/n%d", r.dir, i+1), NoSigs: true, NoLog: true, SyncAlways: syncAlways,
			Cluster: server.ClusterOpts{Name: "eventbench", Host: "127.0.0.1", Port: routeLn[i].Addr().(*net.TCPAddr).Port},
			Routes:  server.RoutesFromStr(strings.Join(routes, ","))})
		check(err)
		srv.Start()
		if !srv.ReadyForConnections(30 * time.Second) {
			log.Fatal("nats not ready")
		}
		r.close = append(r.close, func() { srv.Shutdown(); srv.WaitForShutdown() })
		srvs = append(srvs, srv)
		urls = append(urls, srv.ClientURL())
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		ready := false
		for _, s := range srvs {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) >= n {
				ready = true
			}
		}
		if ready {
			return strings.Join(urls, ",")
		}
		if time.Now().After(deadline) {
			log.Fatal("JetStream cluster not ready after 60s")
		}
		time.Sleep(50 * time.Millisecond) // waiting on the cluster's election
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func item(url string, n int) map[string]any {
	var clientID any
	if appItems {
		clientID = "local.bench0123456789.12345678"
	}
	return map[string]any{
		"client_id":  clientID,
		"auth":       map[string]any{"EVENT_SESSION": 7, "LOCAL_USER": 1, "application_token": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
		"additional": map[string]any{"sendAuth": true, "sendRefreshToken": false, "category": "crm"},
		"query": map[string]any{"DOMAIN": "portal.lan", "QUERY_URL": url, "QUERY_DATA": map[string]any{
			"event": "ONCRMDEALUPDATE", "event_handler_id": 31, "data": map[string]any{"FIELDS": map[string]any{"ID": n}}, "ts": 1700000000 + n,
		}},
	}
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 1024}}

func post(url string, items []map[string]any) {
	body, _ := json.Marshal(items)
	req, _ := http.NewRequest("POST", url+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+serviceKey)
	req.Header.Set("X-Isobox-Portal", "bx.bench")
	resp, err := client.Do(req)
	check(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		log.Fatalf("ingest: %d %s", resp.StatusCode, b)
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// cipher runs the durable hand-off rows and the e2e run with a plaintext
// store and with an encrypted one, alternating runs so that both see the
// same load, and prints the medians side by side.
func cipher(calls, posters, n, batch, handlers, conc, runs int, deadline time.Duration) {
	type row struct{ items, clients int }
	rows := []row{{1, 1}, {1, posters}, {10, 1}, {10, posters}}
	modes := []string{"plaintext", "encrypted"}
	keys := []string{"", "eventbench-store-key-0123456789abcdef0123456789abcdef"}
	type res struct{ p50, p99, eps []float64 }
	got := map[string]map[row]*res{}
	e2eRates := map[string][]float64{}
	for _, m := range modes {
		got[m] = map[row]*res{}
		for _, rw := range rows {
			got[m][rw] = &res{}
		}
	}
	for i := range runs {
		for mi, m := range modes {
			// Alternate which mode goes first, so neither always runs on a warmer machine.
			if i%2 == 1 {
				mi = 1 - mi
				m = modes[mi]
			}
			storeKey = keys[mi]
			for _, rw := range rows {
				fmt.Printf("[%s run %d] ", m, i+1)
				p50, p99, eps := handoff(true, calls, rw.items, rw.clients)
				r := got[m][rw]
				r.p50, r.p99, r.eps = append(r.p50, p50.Seconds()), append(r.p99, p99.Seconds()), append(r.eps, eps)
			}
			fmt.Printf("[%s run %d] ", m, i+1)
			rate, _ := e2e(n, batch, handlers, conc, posters, extraNone, deadline)
			e2eRates[m] = append(e2eRates[m], rate)
		}
	}
	storeKey = ""
	us := func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
	}
	fmt.Printf("\ncipher: medians of %d alternating runs, sync always\n", runs)
	for _, rw := range rows {
		a, b := got["plaintext"][rw], got["encrypted"][rw]
		fmt.Printf("hand-off %2d items/call %d clients: plaintext p50 %s p99 %s %.0f events/s | encrypted p50 %s p99 %s %.0f events/s (%.0f%%)\n",
			rw.items, rw.clients, us(median(a.p50)), us(median(a.p99)), median(a.eps), us(median(b.p50)), us(median(b.p99)), median(b.eps), 100*median(b.eps)/median(a.eps))
	}
	fmt.Printf("e2e: plaintext %.0f events/s | encrypted %.0f events/s (%.0f%%)\n",
		median(e2eRates["plaintext"]), median(e2eRates["encrypted"]), 100*median(e2eRates["encrypted"])/median(e2eRates["plaintext"]))
}

// handoff measures the time from sending /v1/events to its answer (the
// batch durably stored), without delivery running.
func handoff(syncAlways bool, calls, items, conc int) (p50, p99 time.Duration, eventsPerSec float64) {
	r := startRelay(syncAlways, false, 1, time.Second)
	defer r.shutdown()
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > calls {
					return
				}
				var its []map[string]any
				for i := range items {
					its = append(its, item("http://127.0.0.1:9/h", n*100+i))
				}
				t := time.Now()
				post(r.ingest.URL, its)
				d := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	policy := "always"
	if !syncAlways {
		policy = "default(2m)"
	}
	p50, p99, eventsPerSec = pct(lat, .5), pct(lat, .99), float64(calls*items)/el.Seconds()
	fmt.Printf("handoff sync=%-11s items/call=%-3d clients=%d: %d calls, p50 %v, p99 %v, %.0f calls/s, %.0f events/s\n",
		policy, items, conc, calls, p50.Round(time.Microsecond), p99.Round(time.Microsecond),
		float64(calls)/el.Seconds(), eventsPerSec)
	return p50, p99, eventsPerSec
}

// counter is a no-op handler that counts requests.
type counter struct {
	*httptest.Server
	n    atomic.Int64
	done chan struct{}
	want int64
}

func newCounter(want int64) *counter {
	c := &counter{done: make(chan struct{}), want: want}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if c.n.Add(1) == c.want {
			close(c.done)
		}
	}))
	return c
}

// What the extra handler of an isolation run does.
const (
	extraNone = iota // no extra handler
	extraFast        // answers at once (the baseline of the isolation run)
	extraHang        // never answers within the delivery timeout
)

// e2e ingests n events spread over the fast handlers (and, with an extra
// handler, a fifth as many more to it), and measures how fast the fast
// handlers receive theirs.
// Before it, the same bodies are POSTed straight to the handlers with the
// same concurrency: the ceiling.
func e2e(n, batch, handlers, conc, posters int, extra int, deadline time.Duration) (rate, ceiling float64) {
	perHandler := n / handlers
	fast := make([]*counter, handlers)
	for i := range fast {
		fast[i] = newCounter(int64(perHandler))
		defer fast[i].Close()
	}
	// The ceiling: the same number of form POSTs, same total concurrency,
	// to a no-op handler of its own.
	sink := newCounter(-1)
	ceiling = directPOST(sink.URL, perHandler*handlers, handlers*conc)
	sink.Close()
	timeout := 3 * time.Second
	r := startRelay(true, true, conc, timeout)
	defer r.shutdown()
	var extraURL string
	release := make(chan struct{})
	switch extra {
	case extraHang:
		hangSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			io.Copy(io.Discard, req.Body)
			select {
			case <-release:
			case <-req.Context().Done():
			}
		}))
		extraURL = hangSrv.URL
		defer func() { close(release); hangSrv.Close() }()
	case extraFast:
		fastSrv := newCounter(-1)
		extraURL = fastSrv.URL
		defer fastSrv.Close()
	}
	// Build the calls: round-robin over handlers, hanging one every 5th.
	var calls [][]map[string]any
	var cur []map[string]any
	k := 0
	for i := 0; i < perHandler*handlers; i++ {
		cur = append(cur, item(fast[i%handlers].URL, i))
		if extra != extraNone && i%5 == 0 {
			cur = append(cur, item(extraURL, 1_000_000+i))
			k++
		}
		if len(cur) >= batch {
			calls = append(calls, cur)
			cur = nil
		}
	}
	if cur != nil {
		calls = append(calls, cur)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(calls) {
					return
				}
				post(r.ingest.URL, calls[i])
			}
		}()
	}
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for _, c := range fast {
		select {
		case <-c.done:
		case <-timer.C:
			log.Fatalf("e2e: deadline passed; delivered %d of %d to one handler", c.n.Load(), c.want)
		}
	}
	el := time.Since(start)
	wg.Wait()
	rate = float64(perHandler*handlers) / el.Seconds()
	label := "e2e (durable, sync always)"
	switch extra {
	case extraFast:
		label = fmt.Sprintf("isolation baseline: +1 fast handler (+%d events to it)", k)
	case extraHang:
		label = fmt.Sprintf("isolation: +1 HANGING handler (+%d events to it)", k)
	}
	fmt.Printf("%s: %d events to %d no-op handlers (concurrency %d each), batch %d, %d posters: %.0f events/s in %v; direct-POST ceiling %.0f req/s; ratio %.2f\n",
		label, perHandler*handlers, handlers, conc, batch, posters, rate, el.Round(time.Millisecond), ceiling, rate/ceiling)
	return rate, ceiling
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// directPOST sends n Bitrix-shaped form bodies straight to url with conc
// clients and returns requests/s.
func directPOST(url string, n, conc int) float64 {
	it, _ := json.Marshal(item(url, 1)["query"].(map[string]any)["QUERY_DATA"])
	var a phpform.Array
	check(json.Unmarshal(it, &a))
	body := phpform.Encode(&a) + "&auth%5Bdomain%5D=portal.lan&auth%5Bmember_id%5D=0123456789abcdef0123456789abcdef"
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(url, "application/x-www-form-urlencoded", bytes.NewReader([]byte(body)))
				check(err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
