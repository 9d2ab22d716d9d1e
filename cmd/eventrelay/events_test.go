package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/testkit"
)

// These tests run the real binaries: eventrelay, and authprovider as the
// source of delivery tokens (EventAuth) and portal credentials.

func freeArgs(flags ...string) []string {
	var args []string
	for _, f := range flags {
		args = append(args, "--"+f, "127.0.0.1:0")
	}
	return args
}

type stack struct {
	dir, data, apBin, erBin string
	ap                      *testkit.Proc
	portalID, portalSecret  string
}

// startAuthprovider creates a portal with the CLI and starts authprovider
// on a fresh data dir (sharing service.key with the relay through it).
func startAuthprovider(t *testing.T) *stack {
	t.Helper()
	s := &stack{dir: t.TempDir()}
	s.data = filepath.Join(s.dir, "data")
	s.erBin = testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	return startAuthproviderIn(t, s)
}

// addApp creates an app with authprovider's CLI (client add, over its
// admin API) and returns its client_id.
func (s *stack) addApp(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(s.apBin, "client", "add", "--name", "Deal export", "--redirect-uri", "http://app.lan/install",
		"--scope", "crm", "--json", "--grpc-addr", s.ap.Addr("grpc"), "--data-dir", s.data).CombinedOutput()
	if err != nil {
		t.Fatalf("authprovider client add: %v\n%s", err, out)
	}
	var c struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(out, &c); err != nil || c.ClientID == "" {
		t.Fatalf("client add output %q: %v", out, err)
	}
	return c.ClientID
}

func (s *stack) startRelay(t *testing.T, extra ...string) *testkit.Proc {
	t.Helper()
	args := append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "--data-dir", s.data)
	return testkit.Start(t, s.dir, s.erBin, append(args, extra...), "http", "publish", "grpc", "admin")
}

type hit struct {
	body   []byte
	header http.Header
}

type handler struct {
	*httptest.Server
	hits chan hit
	mu   sync.Mutex
	plan []int
}

func newHandler(t *testing.T, plan ...int) *handler {
	h := &handler{hits: make(chan hit, 10000), plan: plan}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		code := 200
		if len(h.plan) > 0 {
			code, h.plan = h.plan[0], h.plan[1:]
		}
		h.mu.Unlock()
		w.WriteHeader(code)
		h.hits <- hit{b, r.Header.Clone()}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *handler) next(t *testing.T) hit {
	t.Helper()
	select {
	case x := <-h.hits:
		return x
	case <-time.After(30 * time.Second):
		t.Fatal("handler got nothing within 30s")
		return hit{}
	}
}

func eventItem(url, clientID, event string, n int) map[string]any {
	var cid any = clientID
	if clientID == "" {
		cid = nil
	}
	return map[string]any{
		"client_id":  cid,
		"auth":       map[string]any{"EVENT_SESSION": 7, "LOCAL_USER": 1, "application_token": "apptoken-" + event},
		"additional": map[string]any{"sendAuth": true, "sendRefreshToken": false, "category": "default"},
		"query": map[string]any{"DOMAIN": "portal.lan", "QUERY_URL": url, "QUERY_DATA": map[string]any{
			"event": event, "event_handler_id": 3, "data": map[string]any{"FIELDS": map[string]any{"ID": n}}, "ts": 1700000000 + n,
		}},
	}
}

// ingest posts items to the relay; auth is "portal" (its credentials) or
// "service" (the service key with X-Isobox-Portal).
func (s *stack) ingest(t *testing.T, relay *testkit.Proc, auth string, items ...map[string]any) []string {
	t.Helper()
	code, b := s.ingestStatus(t, relay, auth, items...)
	if code != 200 {
		t.Fatalf("ingest: %d %s", code, b)
	}
	var r struct {
		Result struct{ IDs []string } `json:"result"`
	}
	json.Unmarshal(b, &r)
	return r.Result.IDs
}

// ingestStatus posts items to the relay as ingest does and returns the
// answer's status and body.
func (s *stack) ingestStatus(t *testing.T, relay *testkit.Proc, auth string, items ...map[string]any) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(items)
	req, _ := http.NewRequest("POST", "http://"+relay.Addr("http")+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth == "portal" {
		req.Header.Set("Authorization", "Bearer "+s.portalID+":"+s.portalSecret)
	} else {
		key, err := secret.Read(filepath.Join(s.data, "service.key"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Isobox-Portal", s.portalID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func formValue(t *testing.T, body []byte, key string) string {
	t.Helper()
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	return v.Get(key)
}

// Against the real authprovider and an external NATS server (--nats-url):
// each attempt carries a token minted at delivery time that authprovider
// validates, a webhook gets the empty auth, and the CLI and REST admin API
// show the deliveries.
func TestRelayWithAuthproviderOnExternalNATS(t *testing.T) {
	s := startAuthprovider(t)
	app := s.addApp(t)
	nsrv := testkit.NATS(t)
	relay := s.startRelay(t, "--auth-grpc-addr", s.ap.Addr("grpc"), "--nats-url", nsrv.ClientURL(), "--retry-schedule", "10ms,10ms")
	if strings.Contains(relay.Logs(), "embedded NATS server started") {
		t.Errorf("relay started an embedded NATS server despite --nats-url")
	}
	h := newHandler(t, 500)
	ids := s.ingest(t, relay, "portal", eventItem(h.URL+"/app", app, "ONCRMDEALADD", 1))
	first, second := h.next(t), h.next(t)
	t1, t2 := formValue(t, first.body, "auth[access_token]"), formValue(t, second.body, "auth[access_token]")
	if t1 == "" || t2 == "" || t1 == t2 {
		t.Fatalf("tokens %q, %q: want two fresh ones", t1, t2)
	}
	if second.header.Get("webhook-id") != ids[0] {
		t.Errorf("webhook-id %q, want %q", second.header.Get("webhook-id"), ids[0])
	}
	for k, want := range map[string]string{"event": "ONCRMDEALADD", "data[FIELDS][ID]": "1", "auth[application_token]": "apptoken-ONCRMDEALADD",
		"auth[domain]": "portal.lan", "auth[user_id]": "1", "auth[client_endpoint]": "https://portal.lan/rest/"} {
		if got := formValue(t, second.body, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// The token is real: authprovider validates it for the app.
	vreq, _ := http.NewRequest("POST", "http://"+s.ap.Addr("admin")+"/v1/token/validate", strings.NewReader(`{"access_token":"`+t2+`"}`))
	vreq.Header.Set("Authorization", "Bearer "+s.portalID+":"+s.portalSecret)
	vresp, err := http.DefaultClient.Do(vreq)
	if err != nil {
		t.Fatal(err)
	}
	vb, _ := io.ReadAll(vresp.Body)
	vresp.Body.Close()
	var v struct {
		ClientID string `json:"client_id"`
		UserID   string `json:"user_id"`
	}
	json.Unmarshal(vb, &v)
	if vresp.StatusCode != 200 || v.ClientID != app {
		t.Errorf("validate delivered token: %d %s", vresp.StatusCode, vb)
	}

	// An outgoing webhook (client_id null): empty auth, no token.
	s.ingest(t, relay, "service", eventItem(h.URL+"/hook", "", "ONTASKADD", 2))
	wh := h.next(t)
	if formValue(t, wh.body, "auth[access_token]") != "" || formValue(t, wh.body, "auth[member_id]") == "" {
		t.Errorf("webhook body: %s", wh.body)
	}

	// The events were stored on the external server.
	nc, err := nats.Connect(nsrv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if st, err := js.Stream(context.Background(), events.StreamIn); err != nil || st.CachedInfo().State.Msgs != 2 {
		t.Errorf("external NATS stream %s: %v", events.StreamIn, err)
	}

	// The CLI lists both as delivered.
	out := runCLI(t, s, relay, "deliveries", "list", "--json")
	for _, id := range ids {
		if !strings.Contains(out, id) {
			t.Errorf("deliveries list lacks %s: %s", id, out)
		}
	}
	if !strings.Contains(out, `"delivered"`) {
		t.Errorf("deliveries list: %s", out)
	}
	if out := runCLI(t, s, relay, "handlers", "list"); strings.Count(out, "http://") != 2 {
		t.Errorf("handlers list: %s", out)
	}
	var one struct {
		Handler  string `json:"handler"`
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	}
	if err := json.Unmarshal([]byte(runCLI(t, s, relay, "deliveries", "show", ids[0], "--json")), &one); err != nil || one.Status != "delivered" || one.Attempts != 2 {
		t.Errorf("deliveries show: %+v %v", one, err)
	}
	var paused struct {
		Paused bool `json:"paused"`
	}
	if err := json.Unmarshal([]byte(runCLI(t, s, relay, "handlers", "pause", one.Handler, "--json")), &paused); err != nil || !paused.Paused {
		t.Errorf("handlers pause: %+v %v", paused, err)
	}
	if out := runCLI(t, s, relay, "handlers", "resume", one.Handler); !strings.Contains(out, "false") {
		t.Errorf("handlers resume: %s", out)
	}
	if out := runCLI(t, s, relay, "dlq", "replay", "--json"); !strings.Contains(out, `"replayed": 0`) {
		t.Errorf("dlq replay: %q", out)
	}
	if out := runCLI(t, s, relay, "stats"); !strings.Contains(out, "delivered:") {
		t.Errorf("stats: %s", out)
	}
	// Metrics on the admin address.
	if code, body := getBody(t, "http://"+relay.Addr("admin")+"/metrics"); code != 200 || !strings.Contains(body, "isobox_relay_delivered_total 2") ||
		!strings.Contains(body, "isobox_relay_events_ingested_total 2") {
		t.Errorf("metrics: %d, no relay counters", code)
	}
	// REST face on the admin address needs the relay admin key.
	admin := "http://" + relay.Addr("admin") + "/v1/relay/stats"
	if resp, err := http.Get(admin); err != nil || resp.StatusCode != 401 {
		t.Errorf("stats without key: %v %v", resp.StatusCode, err)
	}
	key, err := secret.Read(filepath.Join(s.data, "relay-admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"relay-admin.key", "relay-secrets.key", "service.key"} {
		if st, err := os.Stat(filepath.Join(s.data, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", f, err)
		}
	}
	sreq, _ := http.NewRequest("GET", admin, nil)
	sreq.Header.Set("Authorization", "Bearer "+key)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	var st struct {
		Ingested, Delivered, Retried string
	}
	json.Unmarshal(sb, &st)
	if sresp.StatusCode != 200 || st.Delivered != "2" || st.Retried != "1" || st.Ingested != "2" {
		t.Errorf("stats: %d %s", sresp.StatusCode, sb)
	}
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func runCLI(t *testing.T, s *stack, relay *testkit.Proc, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.erBin, append(args, "--grpc-addr", relay.Addr("grpc"), "--data-dir", s.data)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("eventrelay %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// Every event the relay acknowledged is delivered after a SIGKILL, even
// when nothing had been delivered yet (authprovider was unreachable).
func TestAckedEventsSurviveSIGKILL(t *testing.T) {
	s := startAuthprovider(t)
	h := newHandler(t)
	// No authprovider at first: events are accepted (service key) but
	// cannot be delivered.
	relay := s.startRelay(t, "--auth-grpc-addr", "127.0.0.1:1", "--delivery-timeout", "1s")
	want := map[string]bool{}
	for c := range 20 {
		var items []map[string]any
		for i := range 10 {
			items = append(items, eventItem(h.URL+"/hook", "", "ONCRMDEALADD", c*10+i))
		}
		for _, id := range s.ingest(t, relay, "service", items...) {
			want[id] = true
		}
	}
	relay.Kill()
	select {
	case x := <-h.hits:
		t.Fatalf("delivered without authprovider: %s", x.body)
	default:
	}
	relay = s.startRelay(t, "--auth-grpc-addr", s.ap.Addr("grpc"), "--delivery-timeout", "1s")
	for len(want) > 0 {
		delete(want, h.next(t).header.Get("webhook-id"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := relay.Stop(ctx); err != nil {
		t.Errorf("stop: %v\n%s", err, relay.Logs())
	}
}

// The drop-in path: the portal posts rest.event.call to authprovider
// (form-encoded QUERY[...], its own credentials); authprovider forwards the
// items to the relay's ingest with the service key; the relay delivers with
// a token authprovider mints.
func TestRestEventCallThroughAuthprovider(t *testing.T) {
	// authprovider's gRPC port must be known before it starts (the relay
	// points at it); the relay waits while nothing answers there yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := ln.Addr().String()
	ln.Close()
	s := &stack{dir: t.TempDir()}
	s.data = filepath.Join(s.dir, "data")
	s.erBin = testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	relay := s.startRelay(t, "--auth-grpc-addr", grpcAddr)
	sp := startAuthproviderIn(t, s, "--grpc-addr", grpcAddr, "--relay-url", "http://"+relay.Addr("http"))
	app := sp.addApp(t)
	h := newHandler(t)
	form := url.Values{"client_id": {sp.portalID}, "client_secret": {sp.portalSecret}}
	for k, v := range map[string]string{
		"QUERY[0][client_id]": app, "QUERY[0][auth][EVENT_SESSION]": "7", "QUERY[0][auth][LOCAL_USER]": "1",
		"QUERY[0][auth][application_token]": "apptok", "QUERY[0][additional][sendAuth]": "1", "QUERY[0][additional][category]": "crm",
		"QUERY[0][query][DOMAIN]": "portal.lan", "QUERY[0][query][QUERY_URL]": h.URL + "/deal",
		"QUERY[0][query][QUERY_DATA][event]": "ONCRMDEALUPDATE", "QUERY[0][query][QUERY_DATA][data][FIELDS][ID]": "77",
		"QUERY[0][query][QUERY_DATA][ts]": "1700000077",
	} {
		form.Set(k, v)
	}
	resp, err := http.PostForm("http://"+sp.ap.Addr("http")+"/rest/rest.event.call", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("rest.event.call: %d %s", resp.StatusCode, b)
	}
	got := h.next(t)
	if formValue(t, got.body, "data[FIELDS][ID]") != "77" || formValue(t, got.body, "auth[access_token]") == "" ||
		formValue(t, got.body, "auth[application_token]") != "apptok" || got.header.Get("webhook-signature") == "" {
		t.Errorf("delivered: %s", got.body)
	}

	// Issue 11, finding 4, at ingest: a hit whose batch holds an event for
	// an app that is not installed on the portal. That item is dropped
	// before the relay (answer NOT_INSTALLED, which the portal only logs);
	// the hit's other event still goes.
	mixed := url.Values{"client_id": {sp.portalID}, "client_secret": {sp.portalSecret}}
	for i, a := range []string{"app.not.installed.here", app} {
		p := fmt.Sprintf("QUERY[%d]", i)
		for k, v := range map[string]string{
			"[client_id]": a, "[auth][LOCAL_USER]": "1", "[additional][sendAuth]": "1", "[query][DOMAIN]": "portal.lan",
			"[query][QUERY_URL]": h.URL + "/deal", "[query][QUERY_DATA][event]": "ONCRMDEALUPDATE",
			"[query][QUERY_DATA][data][FIELDS][ID]": strconv.Itoa(90 + i), "[query][QUERY_DATA][ts]": "1700000090",
		} {
			mixed.Set(p+k, v)
		}
	}
	resp, err = http.PostForm("http://"+sp.ap.Addr("http")+"/rest/rest.event.call", mixed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"NOT_INSTALLED"`) {
		t.Errorf("rest.event.call with an event for an app not installed: %d %s, want 422 NOT_INSTALLED", resp.StatusCode, b)
	}
	if got := h.next(t); formValue(t, got.body, "data[FIELDS][ID]") != "91" {
		t.Errorf("delivered %s, want only the installed app's event 91", got.body)
	}

	// An app's handler at the relay's own unsigned publish address (or any
	// other of its listeners) is refused: it could otherwise publish into
	// users' push channels. The loopback handler above was delivered to.
	id := s.ingest(t, relay, "portal", eventItem("http://"+relay.Addr("publish")+"/bitrix/pub/?CHANNEL_ID=victim", app, "ONCRMDEALADD", 5))[0]
	deadline := time.Now().Add(20 * time.Second)
	for {
		var d struct {
			Status    string `json:"status"`
			LastError string `json:"last_error"`
		}
		// Until the first attempt there is no record: show fails then.
		out, _ := exec.Command(s.erBin, "deliveries", "show", id, "--json", "--grpc-addr", relay.Addr("grpc"), "--data-dir", s.data).Output()
		json.Unmarshal(out, &d)
		if d.Status == "dead" {
			if !strings.Contains(d.LastError, "relay's own listener") {
				t.Errorf("dead-lettered with %q", d.LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery to the relay's publish address: %+v, want dead", d)
		}
		time.Sleep(50 * time.Millisecond) // polls the CLI; the record is written right after the refusal
	}
}

// startAuthproviderIn is startAuthprovider on an existing stack's data dir.
func startAuthproviderIn(t *testing.T, s *stack, extra ...string) *stack {
	t.Helper()
	s.apBin = testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	out, err := exec.Command(s.apBin, "portal", "add", "--host", "portal.lan", "--json", "--data-dir", s.data).Output()
	if err != nil {
		t.Fatalf("authprovider portal add: %v", err)
	}
	var p struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &p); err != nil || p.ClientSecret == "" {
		t.Fatalf("portal add output %q: %v", out, err)
	}
	s.portalID, s.portalSecret = p.ClientID, p.ClientSecret
	args := append(freeArgs("http-addr", "grpc-addr", "admin-addr"), "--data-dir", s.data)
	s.ap = testkit.Start(t, s.dir, s.apBin, append(args, extra...), "http", "grpc", "admin")
	return s
}
