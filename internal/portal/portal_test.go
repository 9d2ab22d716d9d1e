package portal_test

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/phpform"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

// clock is the shared test clock.
type clock = testkit.Clock

// relayStub is eventrelay's ingest as seen from authprovider: a real HTTP
// server on loopback that stores what it accepts, and can be "down" (503).
type relayStub struct {
	srv      *httptest.Server
	mu       sync.Mutex
	down     bool
	status   int // answer when up; 0 = 202
	accepted chan received
}

type received struct {
	body, auth, portal, key string
}

func newRelayStub(t *testing.T) *relayStub {
	r := &relayStub{accepted: make(chan received, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		down, st := r.down, r.status
		r.mu.Unlock()
		if req.URL.Path != "/v1/events" || req.Method != http.MethodPost {
			http.NotFound(w, req)
			return
		}
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if req.Header.Get("X-Isobox-Portal") == "" {
			// As the relay answers authprovider's service-key probe
			// (its readiness check): key checked, nothing stored.
			http.Error(w, "X-Isobox-Portal is required", http.StatusBadRequest)
			return
		}
		if st != 0 {
			http.Error(w, "no", st)
			return
		}
		r.accepted <- received{string(b), req.Header.Get("Authorization"), req.Header.Get("X-Isobox-Portal"), req.Header.Get("Idempotency-Key")}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *relayStub) setDown(d bool) {
	r.mu.Lock()
	r.down = d
	r.mu.Unlock()
}

func (r *relayStub) setStatus(s int) {
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}

func (r *relayStub) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-r.accepted:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("the relay received nothing within 10s")
		return received{}
	}
}

// stack is the portal protocol on real parts: a store, the OAuth service,
// the validator and the handler on a loopback HTTP server.
type stack struct {
	t        *testing.T
	clk      *clock
	o        *oauth.Service
	v        *validator.Validator
	registry *portal.Registry
	relay    *portal.Relay
	stub     *relayStub
	url      string
}

const serviceKey = "test-service-key-0123456789abcdefghijklmnopqrstu"

// newStack builds the protocol handler on db. maxBody bounds
// rest.event.call bodies; every other call gets half of it (0 = the
// defaults).
func newStack(t *testing.T, db *store.DB, policy string, maxBody int64) *stack {
	t.Helper()
	clk := &clock{}
	o, err := oauth.New(db, oauth.Config{Now: clk.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := validator.New(o, validator.Config{Now: clk.Now}, nil)
	portals := validator.NewPortals(o, 0, clk.Now)
	svc := validator.NewService(o, v, portals, validator.ServiceConfig{PublicURL: "http://auth.box.local"})
	registry := portal.NewRegistry(db, o, clk.Now)
	stub := newRelayStub(t)
	relay := portal.NewRelay(db, portal.RelayConfig{URL: stub.srv.URL, ServiceKey: serviceKey, RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}, nil)
	h := portal.New(portal.Config{Registration: policy, MaxBody: maxBody, MaxCallBody: maxBody / 2}, svc, o, registry, relay, nil)
	h.OnClientChange = func(id string) { v.ForgetClient(id); portals.Forget(id) }
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &stack{t: t, clk: clk, o: o, v: v, registry: registry, relay: relay, stub: stub, url: srv.URL}
}

// post sends a raw form body and decodes the JSON answer.
func (s *stack) post(path, body string) (int, map[string]any) {
	s.t.Helper()
	resp, err := http.Post(s.url+path, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatalf("POST %s: not JSON (%d): %q", path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

type creds struct{ id, secret, host string }

func (s *stack) register(host string) creds {
	s.t.Helper()
	code, m := s.post("/oauth/register/", url.Values{"redirect_uri": {"http://" + host}, "type": {"B"}}.Encode())
	if code != 200 {
		s.t.Fatalf("register %s: %d %v", host, code, m)
	}
	return creds{m["client_id"].(string), m["client_secret"].(string), host}
}

// call performs a portal call the way \Bitrix\Rest\OAuth\Client does:
// the method's params plus client_id, client_secret, client_redirect_uri, member_id.
func (s *stack) call(c creds, method string, params url.Values) (int, map[string]any) {
	s.t.Helper()
	if params == nil {
		params = url.Values{}
	}
	params.Set("client_id", c.id)
	params.Set("client_secret", c.secret)
	if c.host != "" {
		params.Set("client_redirect_uri", "http://"+c.host)
	}
	params.Set("member_id", oauth.MemberID(c.id))
	return s.post("/rest/"+method, params.Encode())
}

func result(t *testing.T, f func() (int, map[string]any)) map[string]any {
	t.Helper()
	code, m := f()
	if code != 200 {
		t.Fatalf("status %d: %v", code, m)
	}
	r, ok := m["result"].(map[string]any)
	if !ok {
		t.Fatalf("no result object: %v", m)
	}
	return r
}

func wantError(t *testing.T, what string, code int, m map[string]any, status int, errCode string) {
	t.Helper()
	if code != status || m["error"] != errCode || m["error_description"] == "" {
		t.Errorf("%s: %d %v, want %d %s", what, code, m, status, errCode)
	}
}

func TestRegistrationPolicy(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newStack(t, db, portal.PolicyAllowlist, 0)
		reg := url.Values{"redirect_uri": {"https://box.example.local"}, "type": {"B"}, "BX_TYPE": {"CP"}, "BX_LICENCE": {"x"}, "BX_HASH": {"y"}}.Encode()

		code, m := s.post("/oauth/register/", reg)
		wantError(t, "unapproved host", code, m, 403, "ACCESS_DENIED")

		if _, err := s.registry.Allow(ctx, portal.Approval{Host: "BOX.example.local:443", Note: "first setup"}); err != nil {
			t.Fatal(err)
		}
		code, m = s.post("/oauth/register/", reg)
		if code != 200 || !strings.HasPrefix(m["client_id"].(string), "bx.") || len(m["client_secret"].(string)) != 50 || m["host"] != "box.example.local" {
			t.Fatalf("approved registration: %d %v", code, m)
		}
		first := m["client_id"].(string)
		code, m = s.post("/oauth/register/", reg)
		wantError(t, "one-time approval used twice", code, m, 403, "ACCESS_DENIED")

		// A permanent approval outlives a registration, but does not let
		// anyone register a host that has a portal.
		if _, err := s.registry.Allow(ctx, portal.Approval{Host: "box.example.local", TTL: time.Hour, Permanent: true}); err != nil {
			t.Fatal(err)
		}
		code, m = s.post("/oauth/register/", reg)
		wantError(t, "registered host under a permanent approval", code, m, 403, "ACCESS_DENIED")
		for range 2 {
			if err := s.registry.Remove(ctx, first); err != nil {
				t.Fatal(err)
			}
			code, m := s.post("/oauth/register/", reg)
			if code != 200 {
				t.Fatalf("permanent approval: %d %v", code, m)
			}
			first = m["client_id"].(string)
		}
		if err := s.registry.Remove(ctx, first); err != nil {
			t.Fatal(err)
		}
		s.clk.Advance(2 * time.Hour)
		code, m = s.post("/oauth/register/", reg)
		wantError(t, "expired approval", code, m, 403, "ACCESS_DENIED")

		code, m = s.post("/oauth/register/", url.Values{"redirect_uri": {"https://box.example.local"}, "type": {"A"}}.Encode())
		wantError(t, "type A", code, m, 400, "INVALID_REQUEST")

		open := newStack(t, db, portal.PolicyOpen, 0)
		code, m = open.post("/oauth/register/", url.Values{"redirect_uri": {"http://anything.local:8080"}, "type": {"B"}}.Encode())
		if code != 200 || m["host"] != "anything.local:8080" {
			t.Fatalf("open registration: %d %v", code, m)
		}
		code, m = open.post("/oauth/register/", url.Values{"redirect_uri": {"javascript:alert(1)"}, "type": {"B"}}.Encode())
		wantError(t, "bad redirect_uri", code, m, 400, "INVALID_REQUEST")
		code, m = open.post("/oauth/register/", url.Values{"redirect_uri": {"http://anything.local:8080"}, "type": {"B"}}.Encode())
		wantError(t, "registered host under the open policy", code, m, 403, "ACCESS_DENIED")
		ps, err := s.registry.Portals(ctx)
		if err != nil || len(ps) != 1 {
			t.Fatalf("portals = %d, %v; want 1", len(ps), err)
		}
	})
}

func TestRESTCallsAndErrors(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newStack(t, db, portal.PolicyOpen, 4096)
		a := s.register("portal.box.local")
		b := s.register("other.box.local")

		add := result(t, func() (int, map[string]any) {
			return s.call(a, "application.add", url.Values{"TITLE": {"CRM sync"}, "REDIRECT_URI": {"https://app.box.local/"}, "SCOPE": {"crm,user"}})
		})
		app := add["client_id"].(string)
		if !strings.HasPrefix(app, "local.") || len(add["client_secret"].(string)) != 50 || add["scope"] != "crm,user" {
			t.Fatalf("application.add = %v", add)
		}
		// A long Cyrillic title (over 255 bytes) and a title in a
		// windows-1251 portal's bytes (invalid UTF-8) are stored on both
		// engines: MariaDB refuses invalid UTF-8 and half a character.
		for _, title := range []string{strings.Repeat("Сделка", 30), "\xd1\xe4\xe5\xeb\xea\xe0"} {
			got := result(t, func() (int, map[string]any) {
				return s.call(a, "application.add", url.Values{"TITLE": {title}, "SCOPE": {"crm"}})
			})
			c, err := s.o.GetClient(ctx, got["client_id"].(string))
			if err != nil || !utf8.ValidString(c.Name) || len(c.Name) > 255 || c.Name == "" {
				t.Fatalf("title %q stored as %q (%v)", title, c.Name, err)
			}
		}
		auth := result(t, func() (int, map[string]any) {
			return s.call(a, "rest.authorize", url.Values{"CLIENT_ID": {app}, "SCOPE": {"crm"},
				"PARAMS[LOCAL_USER]": {"5"}, "PARAMS[TZ_OFFSET]": {"10800"}, "PARAMS[EVENT_SESSION]": {"7"}})
		})
		tok := auth["access_token"].(string)
		if auth["refresh_token"] == "" || auth["domain"] != "portal.box.local" || auth["client_endpoint"] != "http://portal.box.local/rest/" ||
			auth["server_endpoint"] != "http://auth.box.local/rest/" || auth["member_id"] != oauth.MemberID(a.id) || auth["status"] != "L" {
			t.Fatalf("rest.authorize = %v", auth)
		}
		if _, has := auth["user_id"]; has {
			t.Errorf("rest.authorize must not carry user_id (the cloud unsets it): %v", auth)
		}
		chk := result(t, func() (int, map[string]any) { return s.call(a, "rest.check", url.Values{"TOKEN": {tok}}) })
		params := chk["parameters"].(map[string]any)
		if chk["client_id"] != app || chk["user_id"] != 5.0 || params["LOCAL_USER"] != "5" || params["TZ_OFFSET"] != "10800" || params["EVENT_SESSION"] != "7" || chk["status"] != "L" {
			t.Fatalf("rest.check = %v", chk)
		}

		code, m := s.call(creds{a.id, "wrong", a.host}, "rest.check", url.Values{"TOKEN": {tok}})
		wantError(t, "wrong portal secret", code, m, 401, "invalid_client")
		code, m = s.post("/rest/rest.check", url.Values{"TOKEN": {tok}}.Encode())
		wantError(t, "no credentials", code, m, 401, "NO_AUTH_FOUND")
		code, m = s.call(b, "rest.check", url.Values{"TOKEN": {tok}})
		wantError(t, "another portal's token", code, m, 401, "invalid_token")
		if m["error_description"] != "Unable to get application by token" {
			t.Errorf("description = %v", m["error_description"])
		}
		code, m = s.call(a, "rest.check", url.Values{"TOKEN": {"garbage"}})
		wantError(t, "garbage token", code, m, 401, "invalid_token")
		code, m = s.call(a, "rest.check", nil)
		wantError(t, "no TOKEN", code, m, 400, "ERROR_ARGUMENT")
		code, m = s.call(b, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"5"}})
		wantError(t, "another portal's app", code, m, 401, "ERROR_OAUTH")
		code, m = s.call(a, "rest.authorize", url.Values{"CLIENT_ID": {app}})
		wantError(t, "no user", code, m, 400, "ERROR_ARGUMENT")
		code, m = s.call(b, "application.delete", url.Values{"CLIENT_ID": {app}})
		wantError(t, "delete another portal's app", code, m, 404, "APPLICATION_NOT_FOUND")
		code, m = s.call(a, "no.such.method", nil)
		wantError(t, "unknown method", code, m, 404, "ERROR_METHOD_NOT_FOUND")
		code, m = s.post("/rest/rest.check", "client_id=%zz")
		wantError(t, "malformed body", code, m, 400, "INVALID_REQUEST")
		code, m = s.post("/rest/rest.check", "TOKEN="+strings.Repeat("a", 5000))
		wantError(t, "body over the limit", code, m, 413, "invalid_request")
		// Read before authentication: only rest.event.call may be large.
		code, m = s.post("/rest/rest.check", "TOKEN="+strings.Repeat("a", 3000))
		wantError(t, "call body over the small limit", code, m, 413, "invalid_request")
		code, m = s.post("/rest/rest.event.call", "client_id=x&client_secret=y&pad="+strings.Repeat("a", 3000))
		wantError(t, "event batch under its limit reaches authentication", code, m, 401, "invalid_client")

		// Revoked elsewhere: the feed drops the cached answer.
		if err := s.o.Revoke(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := s.v.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		code, m = s.call(a, "rest.check", url.Values{"TOKEN": {tok}})
		wantError(t, "revoked token", code, m, 401, "invalid_token")

		// Expired.
		auth2 := result(t, func() (int, map[string]any) {
			return s.call(a, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"5"}})
		})
		s.clk.Advance(time.Hour + time.Minute)
		code, m = s.call(a, "rest.check", url.Values{"TOKEN": {auth2["access_token"].(string)}})
		wantError(t, "expired token", code, m, 401, "expired_token")

		// rest.code, application.update/list/usage, then delete revokes.
		cr := result(t, func() (int, map[string]any) {
			return s.call(a, "rest.code", url.Values{"CLIENT_ID": {app}, "STATE": {"st"}, "PARAMS[LOCAL_USER]": {"5"}})
		})
		if cr["code"] == "" || cr["state"] != "st" || cr["domain"] != "auth.box.local" || cr["redirect_uri"] != "https://app.box.local/" {
			t.Fatalf("rest.code = %v", cr)
		}
		if code, m := s.call(a, "application.update", url.Values{"CLIENT_ID": {app}, "TITLE": {"Renamed"}, "SCOPE": {"crm"}}); code != 200 || m["result"] != true {
			t.Fatalf("application.update: %d %v", code, m)
		}
		if c, _ := s.o.GetClient(ctx, app); c.Name != "Renamed" || strings.Join(c.Scope, ",") != "crm" {
			t.Fatalf("after update: %+v", c)
		}
		if code, m := s.call(a, "application.list", nil); code != 200 || len(m["result"].([]any)) != 0 {
			t.Fatalf("application.list (local apps are not listed): %d %v", code, m)
		}
		if code, m := s.call(a, "application.usage.add", url.Values{"USAGE[x]": {"1"}}); code != 200 || m["result"] != true {
			t.Fatalf("application.usage.add: %d %v", code, m)
		}
		live := result(t, func() (int, map[string]any) {
			return s.call(a, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"6"}})
		})
		if code, m := s.call(a, "rest.check", url.Values{"TOKEN": {live["access_token"].(string)}}); code != 200 {
			t.Fatalf("fresh token: %d %v", code, m)
		}
		if code, m := s.call(a, "application.delete", url.Values{"CLIENT_ID": {app}}); code != 200 || m["result"] != true {
			t.Fatalf("application.delete: %d %v", code, m)
		}
		code, m = s.call(a, "rest.check", url.Values{"TOKEN": {live["access_token"].(string)}})
		wantError(t, "token of a deleted app (dropped at once, no feed read)", code, m, 401, "invalid_token")
	})
}

func TestAppInfo(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	s := newStack(t, db, portal.PolicyOpen, 0)
	a := s.register("portal.box.local")
	app := result(t, func() (int, map[string]any) {
		return s.call(a, "application.add", url.Values{"TITLE": {"x"}, "SCOPE[]": {"crm", "user"}})
	})["client_id"].(string)
	tok := result(t, func() (int, map[string]any) {
		return s.call(a, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"1"}})
	})["access_token"].(string)
	r := result(t, func() (int, map[string]any) { return s.post("/rest/app.info", "auth="+tok) })
	inst := r["install"].(map[string]any)
	if r["client_id"] != app || r["scope"] != "crm,user" || inst["installed"] != true || inst["domain"] != "portal.box.local" ||
		inst["member_id"] != oauth.MemberID(a.id) || inst["client_endpoint"] != "http://portal.box.local/rest/" {
		t.Fatalf("app.info = %v", r)
	}
	if _, err := time.Parse(time.RFC3339, r["expires"].(string)); err != nil {
		t.Errorf("expires %v: %v", r["expires"], err)
	}
	code, m := s.post("/rest/app.info", "")
	wantError(t, "app.info without a token", code, m, 401, "NO_AUTH_FOUND")
	code, m = s.post("/rest/app.info", "auth=nope")
	wantError(t, "app.info with garbage", code, m, 401, "invalid_token")
}

// eventItems is a hit's queue as \Bitrix\Rest\Event\Sender builds it,
// encoded as http_build_query does.
func eventItems(app, id string) string {
	return "QUERY%5B0%5D%5Bclient_id%5D=" + app +
		"&QUERY%5B0%5D%5Badditional%5D%5Bcategory%5D=default&QUERY%5B0%5D%5Badditional%5D%5BsendAuth%5D=1&QUERY%5B0%5D%5Badditional%5D%5BsendRefreshToken%5D=0" +
		"&QUERY%5B0%5D%5Bauth%5D%5BEVENT_SESSION%5D=7&QUERY%5B0%5D%5Bauth%5D%5BLOCAL_USER%5D=5&QUERY%5B0%5D%5Bauth%5D%5Bapplication_token%5D=apptok" +
		"&QUERY%5B0%5D%5Bquery%5D%5BDOMAIN%5D=portal.box.local&QUERY%5B0%5D%5Bquery%5D%5BQUERY_URL%5D=https%3A%2F%2Fapp.box.local%2Fhandler" +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bevent%5D=ONCRMDEALADD&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bdata%5D%5BFIELDS%5D%5BID%5D=" + id +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bts%5D=1700000000"
}

func TestEventCallReachesRelayAndSurvivesItsOutage(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := newStack(t, db, portal.PolicyOpen, 0)
		a := s.register("portal.box.local")
		app, _, err := s.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "app", RedirectURI: "https://app.box.local/", Portal: a.id})
		if err != nil {
			t.Fatal(err)
		}
		common := url.Values{"client_id": {a.id}, "client_secret": {a.secret}, "client_redirect_uri": {"http://portal.box.local"}, "member_id": {oauth.MemberID(a.id)}}.Encode()
		send := func(id string) {
			t.Helper()
			code, m := s.post("/rest/rest.event.call", eventItems(app.ID, id)+"&"+common)
			if code != 200 || m["result"] != true {
				t.Fatalf("rest.event.call %s: %d %v", id, code, m)
			}
		}

		send("1")
		got := s.stub.next(t)
		if got.body != eventItems(app.ID, "1") {
			t.Fatalf("relay got\n%s\nwant the QUERY items exactly as sent:\n%s", got.body, eventItems(app.ID, "1"))
		}
		if strings.Contains(got.body, "client_secret") {
			t.Fatal("the portal's secret was forwarded to the relay")
		}
		if got.auth != "Bearer "+serviceKey || got.portal != a.id || got.key == "" {
			t.Fatalf("relay headers: %+v", got)
		}

		// Relay down: items are stored and acknowledged.
		s.stub.setDown(true)
		send("2")
		send("3")
		if n, err := s.relay.Pending(ctx); err != nil || n != 2 {
			t.Fatalf("outbox holds %d (%v), want 2", n, err)
		}
		s.stub.setDown(false)
		send("4") // queued behind 2 and 3, not sent around them
		for {
			sent, err := s.relay.DrainOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !sent {
				break
			}
		}
		for _, want := range []string{"2", "3", "4"} {
			got := s.stub.next(t)
			f, err := phpform.Decode(got.body)
			if err != nil {
				t.Fatal(err)
			}
			id := f.Array("QUERY").Array("0").Array("query").Array("QUERY_DATA").Array("data").Array("FIELDS").String("ID")
			if id != want {
				t.Fatalf("relay got item %s, want %s (order must be kept)", id, want)
			}
		}
		if n, _ := s.relay.Pending(ctx); n != 0 {
			t.Fatalf("outbox still holds %d", n)
		}

		// The background sender retries with back-off until the relay is back.
		s.stub.setDown(true)
		send("5")
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.relay.Run(runCtx); close(done) }()
		s.stub.setDown(false)
		if got := s.stub.next(t); !strings.Contains(got.body, "%5BID%5D=5") {
			t.Fatalf("background sender delivered %q", got.body)
		}
		stop()
		<-done
		// Stopped between the relay's answer and the delete, the batch is
		// still queued and goes again (same Idempotency-Key); settle it.
		for {
			if sent, err := s.relay.DrainOnce(ctx); err != nil || !sent {
				break
			}
		}

		// A batch the relay refuses as malformed is an error for the portal.
		s.stub.setStatus(http.StatusBadRequest)
		code, m := s.post("/rest/rest.event.call", eventItems(app.ID, "5")+"&"+common)
		wantError(t, "relay refuses", code, m, 400, "INVALID_REQUEST")
		code, m = s.post("/rest/rest.event.call", common)
		wantError(t, "no QUERY", code, m, 400, "ERROR_ARGUMENT")

		// An event for an app not installed on the portal is refused
		// before the relay (issue 11, finding 4).
		s.stub.setStatus(http.StatusOK)
		code, m = s.post("/rest/rest.event.call", eventItems("local.x", "6")+"&"+common)
		wantError(t, "app not installed", code, m, 422, "NOT_INSTALLED")
		if n, err := s.relay.Pending(ctx); err != nil || n != 0 {
			t.Fatalf("outbox holds %d (%v) after a refused event", n, err)
		}
		for len(s.stub.accepted) > 0 {
			if got := <-s.stub.accepted; strings.Contains(got.body, "local.x") {
				t.Fatalf("the relay got a refused event: %s", got.body)
			}
		}
	})
}

func TestReRegistrationKeepsApps(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newStack(t, db, portal.PolicyAllowlist, 0)
		if _, err := s.registry.Allow(ctx, portal.Approval{Host: "portal.box.local"}); err != nil {
			t.Fatal(err)
		}
		old := s.register("portal.box.local")
		app := result(t, func() (int, map[string]any) {
			return s.call(old, "application.add", url.Values{"TITLE": {"x"}, "SCOPE": {"crm"}})
		})["client_id"].(string)

		// member_id is no proof.
		code, m := s.post("/oauth/register/", url.Values{"redirect_uri": {"http://portal.box.local"}, "type": {"B"}, "member_id": {oauth.MemberID(old.id)}}.Encode())
		wantError(t, "re-registration by member_id", code, m, 403, "ACCESS_DENIED")
		// Another host's credentials are no proof either.
		if _, err := s.registry.Allow(ctx, portal.Approval{Host: "evil.box.local"}); err != nil {
			t.Fatal(err)
		}
		evil := s.register("evil.box.local")
		code, m = s.post("/oauth/register/", url.Values{"redirect_uri": {"http://portal.box.local"}, "type": {"B"},
			"client_id": {evil.id}, "client_secret": {evil.secret}}.Encode())
		wantError(t, "another portal's credentials", code, m, 403, "ACCESS_DENIED")

		code, m = s.post("/oauth/register/", url.Values{"redirect_uri": {"http://portal.box.local"}, "type": {"B"},
			"client_id": {old.id}, "client_secret": {old.secret}}.Encode())
		if code != 200 {
			t.Fatalf("re-registration with the current secret: %d %v", code, m)
		}
		next := creds{m["client_id"].(string), m["client_secret"].(string), "portal.box.local"}
		if next.id == old.id {
			t.Fatal("re-registration returned the old identity")
		}
		if code, m := s.call(next, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"1"}}); code != 200 {
			t.Fatalf("the app did not follow the portal to its new identity: %d %v", code, m)
		}
		s.clk.Advance(time.Minute) // past the credential cache
		code, m = s.call(old, "rest.check", url.Values{"TOKEN": {"x"}})
		wantError(t, "old identity", code, m, 401, "invalid_client")
		code, m = s.call(evil, "rest.authorize", url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"1"}})
		wantError(t, "another host's apps", code, m, 401, "ERROR_OAUTH")

		// A rebind approval is used once; it lapses like any other.
		if _, err := s.registry.Allow(ctx, portal.Approval{Host: "portal.box.local", Rebind: true, Permanent: true, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		s.clk.Advance(2 * time.Minute)
		code, m = s.post("/oauth/register/", url.Values{"redirect_uri": {"http://portal.box.local"}, "type": {"B"}}.Encode())
		wantError(t, "expired rebind", code, m, 403, "ACCESS_DENIED")
	})
}

func TestOnlyTheAdministratorMovesAPortal(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	ctx := context.Background()
	s := newStack(t, db, portal.PolicyOpen, 0)
	a := s.register("portal.box.local")
	app := result(t, func() (int, map[string]any) { return s.call(a, "application.add", url.Values{"TITLE": {"x"}}) })["client_id"].(string)
	p := url.Values{"CLIENT_ID": {app}, "PARAMS[LOCAL_USER]": {"1"}, "client_id": {a.id}, "client_secret": {a.secret}, "client_redirect_uri": {"https://new.box.local:443"}}
	r := result(t, func() (int, map[string]any) { return s.post("/rest/rest.authorize", p.Encode()) })
	if r["domain"] != "portal.box.local" || r["client_endpoint"] != "http://portal.box.local/rest/" {
		t.Fatalf("moved by client_redirect_uri: %v", r)
	}
	if _, err := s.registry.Move(ctx, a.id, "", "New.Box.Local:443"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.o.GetClient(ctx, a.id); c.Host != "new.box.local" || c.RedirectURI != "http://new.box.local" {
		t.Fatalf("stored portal: %+v", c)
	}
	s.clk.Advance(time.Minute) // past the credential cache
	r = result(t, func() (int, map[string]any) { return s.post("/rest/rest.authorize", p.Encode()) })
	if r["client_endpoint"] != "http://new.box.local/rest/" {
		t.Fatalf("after portal update: %v", r)
	}
	for _, bad := range [][2]string{{"ftp", "x.local"}, {"https", "x.local/evil"}, {"https", ""}} {
		if _, err := s.registry.Move(ctx, a.id, bad[0], bad[1]); !errors.Is(err, oauth.ErrInvalidArgument) {
			t.Errorf("Move(%q, %q) = %v", bad[0], bad[1], err)
		}
	}
}

// signLicence is CRestUtil::signLicenseRequest for a box: BX_TYPE,
// BX_LICENCE, then BX_HASH over the imploded values.
func signLicence(fields [][2]string, key string) string {
	md5hex := func(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }
	fields = append(fields, [2]string{"BX_TYPE", "CP"}, [2]string{"BX_LICENCE", md5hex("BITRIX" + key + "LICENCE")})
	var vals, enc []string
	for _, f := range fields {
		vals = append(vals, f[1])
		enc = append(enc, url.QueryEscape(f[0])+"="+url.QueryEscape(f[1]))
	}
	enc = append(enc, "BX_HASH="+md5hex(md5hex(strings.Join(vals, "|"))+md5hex(key)))
	return strings.Join(enc, "&")
}

func TestRegistrationWithLicenceKey(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	ctx := context.Background()
	s := newStack(t, db, portal.PolicyAllowlist, 0)
	if _, err := s.registry.Allow(ctx, portal.Approval{Host: "box.example.local", LicenceKey: "NFR-123-456"}); err != nil {
		t.Fatal(err)
	}
	base := [][2]string{{"redirect_uri", "https://box.example.local"}, {"type", "B"}}
	code, m := s.post("/oauth/register/", signLicence(base, "OTHER-KEY"))
	wantError(t, "another licence key", code, m, 403, "ACCESS_DENIED")
	code, m = s.post("/oauth/register/", url.Values{"redirect_uri": {"https://box.example.local"}, "type": {"B"}}.Encode())
	wantError(t, "no licence fields", code, m, 403, "ACCESS_DENIED")
	tampered := strings.Replace(signLicence(base, "NFR-123-456"), "box.example.local", "box.example.local%3A443", 1)
	code, m = s.post("/oauth/register/", tampered)
	wantError(t, "fields changed after signing", code, m, 403, "ACCESS_DENIED")
	if _, err := s.registry.Allow(ctx, portal.Approval{Host: "box.example.local", LicenceKey: "NFR-123-456", Permanent: true}); err != nil {
		t.Fatal(err)
	}
	list, err := s.registry.Allowlist(ctx)
	if err != nil || len(list) != 1 || !list[0].Licence || list[0].Once {
		t.Fatalf("allowlist = %+v, %v", list, err)
	}
	if code, m := s.post("/oauth/register/", signLicence(base, "NFR-123-456")); code != 200 {
		t.Fatalf("signed with the approved key: %d %v", code, m)
	}

	// A challenge expires.
	code, m = s.post("/oauth/register/challenge/", url.Values{"redirect_uri": {"https://box.example.local"}}.Encode())
	if code != 200 {
		t.Fatalf("challenge: %d %v", code, m)
	}
	c := m["challenge"].(string)
	s.clk.Advance(portal.ChallengeTTL)
	code, m = s.post("/oauth/register/", signLicence(append(base, [2]string{"challenge", c}), "NFR-123-456"))
	wantError(t, "expired challenge", code, m, 403, "ACCESS_DENIED")
	// Challenges are bounded per host.
	for i := range 20 {
		code, m = s.post("/oauth/register/challenge/", url.Values{"redirect_uri": {"https://box.example.local"}}.Encode())
		if i < 16 && code != 200 || i >= 16 && code != 429 {
			t.Fatalf("challenge %d: %d %v", i, code, m)
		}
	}
}

// TestLargeEventCallCredentials: a rest.event.call body longer than
// MaxCallBody is authenticated by the credentials at its start or end; a
// later pair cannot replace the ones checked.
func TestLargeEventCallCredentials(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	s := newStack(t, db, portal.PolicyOpen, 64<<10)
	a := s.register("portal.box.local")
	b := s.register("other.box.local")
	items := "QUERY%5B0%5D%5Bx%5D=" + strings.Repeat("v", 40<<10)
	auth := func(c creds) string {
		return url.Values{"client_id": {c.id}, "client_secret": {c.secret}}.Encode()
	}
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"credentials first", auth(a) + "&" + items, 200},
		{"credentials last", items + "&" + auth(a), 200},
		{"replaced after the checked ones", auth(a) + "&" + items + "&" + auth(b), 401},
		{"none", items, 401},
		{"wrong secret last", items + "&client_id=" + a.id + "&client_secret=x", 401},
	} {
		code, m := s.post("/rest/rest.event.call", tc.body)
		if code != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, code, m, tc.status)
		}
	}
	// In the query string, for callers that can put them there.
	resp, err := http.Post(s.url+"/rest/rest.event.call?"+auth(a), "application/x-www-form-urlencoded", strings.NewReader(items))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("credentials in the query: %d", resp.StatusCode)
	}
	code, m := s.post("/rest/rest.event.call", items+strings.Repeat("&x=1", 8<<10))
	wantError(t, "over MaxBody", code, m, 413, "invalid_request")
}
