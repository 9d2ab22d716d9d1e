package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/delivery"
	"github.com/isobox/isobox/internal/events"
)

var update = os.Getenv("UPDATE_GOLDEN") != ""

// phpParse decodes a form body with the real PHP parse_str, as a Bitrix
// handler does, and returns json_encode of the result.
func phpParse(t *testing.T, body []byte) string {
	t.Helper()
	cmd := exec.Command("php", "-r", `parse_str(file_get_contents("php://stdin"), $a); echo json_encode($a, JSON_UNESCAPED_UNICODE|JSON_UNESCAPED_SLASHES|JSON_PRETTY_PRINT);`)
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	return string(out)
}

func phpVerify(t *testing.T, secret, id, ts, sig string, body []byte) string {
	t.Helper()
	cmd := exec.Command("php", filepath.Join("testdata", "verify.php"), secret, id, ts, sig)
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php verify.php: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run with UPDATE_GOLDEN=1 once)", path, err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\n got: %s\nwant: %s", name, got, want)
	}
}

// The handler receives exactly Bitrix's form: QUERY_DATA in the portal's
// key order, then auth[...] built at delivery time, and PHP decodes it to
// the array Bitrix handlers see. The same item sent as PHP form encoding
// (rest.event.call) is delivered byte for byte the same.
func TestPayloadIsBitrixForm(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t)
	// Keys deliberately not sorted, nested lists, unicode, booleans.
	raw := `[{"client_id":"local.5c8bb1b0891cf2.87252039","auth":{"EVENT_SESSION":7,"LOCAL_USER":5,"application_token":"0f1e2d3c4b5a69788796a5b4c3d2e1f0"},` +
		`"additional":{"sendAuth":true,"sendRefreshToken":false,"category":"crm"},"query":{"DOMAIN":"portal.lan","QUERY_URL":"` + h.URL + `/handler.php",` +
		`"QUERY_DATA":{"event":"ONCRMDEALUPDATE","event_handler_id":"31","data":{"FIELDS":{"ID":"42","TITLE":"Сделка & co","TAGS":["a b","c+d"],"ZERO":false,"NULLED":null}},"ts":"1700000123"}}}]`
	e.postRaw("application/json", []byte(raw))
	got := h.next(t)
	if ct := got.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
	golden(t, "oncrmdealupdate.form", string(got.body))
	golden(t, "oncrmdealupdate.php.json", phpParse(t, got.body))
	// Byte for byte what PHP itself would send for that array.
	rebuilt := exec.Command("php", "-r", `parse_str(file_get_contents("php://stdin"), $a); echo http_build_query($a);`)
	rebuilt.Stdin = strings.NewReader(string(got.body))
	if out, err := rebuilt.Output(); err != nil || string(out) != string(got.body) {
		t.Errorf("http_build_query(parse_str(body)) differs (%v):\n php %s\n got %s", err, out, got.body)
	}

	// Webhook (client_id null): the empty-auth shape, no token.
	raw2 := strings.Replace(raw, `"client_id":"local.5c8bb1b0891cf2.87252039"`, `"client_id":null`, 1)
	e.postRaw("application/json", []byte(raw2))
	got2 := h.next(t)
	golden(t, "webhook.form", string(got2.body))
	if strings.Contains(string(got2.body), "access_token") {
		t.Error("webhook delivery carries a token")
	}

	// The same first item, form-encoded as the portal posts rest.event.call:
	// a different id space (no explicit id, same hash) — so use a new ts to
	// get a fresh delivery, and compare the body but for ts and token.
	form := "QUERY%5B0%5D%5Bclient_id%5D=local.5c8bb1b0891cf2.87252039&QUERY%5B0%5D%5Bauth%5D%5BEVENT_SESSION%5D=7&QUERY%5B0%5D%5Bauth%5D%5BLOCAL_USER%5D=5" +
		"&QUERY%5B0%5D%5Bauth%5D%5Bapplication_token%5D=0f1e2d3c4b5a69788796a5b4c3d2e1f0&QUERY%5B0%5D%5Badditional%5D%5BsendAuth%5D=1" +
		"&QUERY%5B0%5D%5Badditional%5D%5BsendRefreshToken%5D=0&QUERY%5B0%5D%5Badditional%5D%5Bcategory%5D=crm&QUERY%5B0%5D%5Bquery%5D%5BDOMAIN%5D=portal.lan" +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_URL%5D=" + url.QueryEscape(h.URL+"/handler.php") +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bevent%5D=ONCRMDEALUPDATE&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bevent_handler_id%5D=31" +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bdata%5D%5BFIELDS%5D%5BID%5D=42&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bdata%5D%5BFIELDS%5D%5BTITLE%5D=" + url.QueryEscape("Сделка & co") +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bdata%5D%5BFIELDS%5D%5BTAGS%5D%5B0%5D=a+b&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bdata%5D%5BFIELDS%5D%5BTAGS%5D%5B1%5D=c%2Bd" +
		"&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bdata%5D%5BFIELDS%5D%5BZERO%5D=0&QUERY%5B0%5D%5Bquery%5D%5BQUERY_DATA%5D%5Bts%5D=1700000124"
	e.postRaw("application/x-www-form-urlencoded", []byte(form))
	got3 := h.next(t)
	want := strings.Replace(strings.Replace(string(got.body), "ts=1700000123", "ts=1700000124", 1), "isobox.tok0001", "isobox.tok0002", 1)
	if string(got3.body) != want {
		t.Errorf("form-ingested delivery differs from JSON-ingested:\n got %s\nwant %s", got3.body, want)
	}
}

// A handler that fails is retried on the schedule until it answers 2xx.
func TestRetriesThenSuccess(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t, 500, 503)
	r := e.post(item(h.URL, "ONCRMDEALADD", 1))
	id := r.Result.IDs[0]
	for range 3 {
		h.next(t)
	}
	rec := waitStatus(t, e, id, delivery.StatusDelivered)
	if rec.Attempts != 3 {
		t.Errorf("attempts = %d, want 3", rec.Attempts)
	}
}

// waitStatus waits until a delivery's record has status want.
func waitStatus(t *testing.T, e *env, id, want string) delivery.Record {
	t.Helper()
	return waitRecord(t, e, id, func(r delivery.Record) bool { return r.Status == want })
}

// waitRecord waits until a delivery's record satisfies ok, woken by each
// record change (no polling).
func waitRecord(t *testing.T, e *env, id string, ok func(delivery.Record) bool) delivery.Record {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		changed := e.svc.RecordsChanged() // before looking: no change is missed
		recs := e.svc.List(delivery.Filter{})
		for _, r := range recs {
			if r.ID == id && ok(r) {
				return r
			}
		}
		select {
		case <-timeout:
			t.Fatalf("delivery %s never reached the wanted state: %+v", id, recs)
		case <-changed:
		}
	}
}

// waitQueued waits until the handler's queue holds n messages (taken or
// not): evidence that an event reached the worker's queue. It fails at
// once if h was called during its hold.
func waitQueued(t *testing.T, svc *delivery.Service, key string, n int64, h *recorder) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c := h.early.Load(); c != 0 {
			t.Fatalf("handler %s called %d times while it must not be", key, c)
		}
		hs, err := svc.Admin().ListHandlers(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs.Handlers {
			if h.Key == key && h.Pending == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler %s: queue never held %d: %v", key, n, hs)
		}
		<-time.After(5 * time.Millisecond) // broker state: no change notification to wait on
	}
}

// After the last retry the event is dead-lettered; replaying the
// handler's dead letters delivers it.
func TestDeadLetterThenReplay(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t, 500, 500, 500)
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	for range 3 {
		h.next(t)
	}
	rec := waitStatus(t, e, id, delivery.StatusDead)
	if rec.Attempts != 3 || !strings.Contains(rec.LastError, "HTTP 500") {
		t.Errorf("dead record = %+v", rec)
	}
	// Nothing was dead-lettered since an hour from now.
	if ids, err := e.svc.ReplayDead(context.Background(), "", time.Now().Add(time.Hour)); err != nil || len(ids) != 0 {
		t.Fatalf("replay since the future = %v, %v", ids, err)
	}
	ids, err := e.svc.ReplayDead(context.Background(), rec.Handler, time.Now().Add(-time.Hour))
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("replay = %v, %v", ids, err)
	}
	got := h.next(t)
	if got.header.Get("webhook-id") != id {
		t.Errorf("replayed webhook-id = %q, want %q", got.header.Get("webhook-id"), id)
	}
	waitStatus(t, e, id, delivery.StatusDelivered)
	// Nothing is left to replay.
	if ids, _ := e.svc.ReplayDead(context.Background(), rec.Handler, time.Time{}); len(ids) != 0 {
		t.Errorf("second replay replayed %v", ids)
	}
	// A delivered event can be replayed one by one too.
	if err := e.svc.ReplayDelivery(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t); got.header.Get("webhook-id") != id {
		t.Errorf("replayed id = %q", got.header.Get("webhook-id"))
	}
}

// The same items handed off twice (a repeated call, and the same item in a
// different call) are delivered once each.
func TestDuplicateIngestDeliveredOnce(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t)
	a, b := item(h.URL, "ONCRMDEALADD", 1), item(h.URL, "ONCRMDEALADD", 2)
	r1 := e.post(a, b)
	r2 := e.post(a, b)
	if !r2.Result.Duplicate || r1.Result.IDs[0] != r2.Result.IDs[0] {
		t.Errorf("repeated call: %+v vs %+v", r1, r2)
	}
	withID := func(m map[string]any) { m["id"] = "module-42" }
	e.post(item(h.URL, "ONCRMDEALADD", 3, withID), a) // a again, in another call
	e.post(item(h.URL, "ONCRMDEALADD", 3, withID))    // same explicit id
	last := e.post(item(h.URL, "ONCRMDEALADD", 99)).Result.IDs[0]
	// Concurrency 1 keeps queue order: everything before the marker has
	// arrived when the marker does.
	seen := map[string]int{}
	for {
		got := h.next(t)
		seen[got.header.Get("webhook-id")]++
		if got.header.Get("webhook-id") == last {
			break
		}
	}
	if len(seen) != 4 {
		t.Errorf("distinct deliveries = %d, want 4: %v", len(seen), seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

func formValue(t *testing.T, body []byte, key string) string {
	t.Helper()
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	return v.Get(key)
}

// The auth block is built when the event is delivered, not when it was
// accepted: a retry carries a new token.
func TestTokenFreshAtDelivery(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t, 500)
	e.auth.down.Store(true) // authprovider is down at ingest: no matter
	e.post(item(h.URL, "ONAPPINSTALL", 1, func(m map[string]any) {
		m["additional"].(map[string]any)["sendRefreshToken"] = true
	}))
	// Positive evidence that the delivery reached the point of calling the
	// handler and waited instead: authprovider refused it twice (a retry
	// after the back-off).
	for range 2 {
		select {
		case <-e.auth.refusals:
		case <-time.After(20 * time.Second):
			t.Fatal("delivery never asked authprovider")
		}
	}
	if len(h.hits) != 0 {
		t.Fatal("delivered without an auth block")
	}
	e.auth.down.Store(false)
	first, second := h.next(t), h.next(t)
	t1, t2 := formValue(t, first.body, "auth[access_token]"), formValue(t, second.body, "auth[access_token]")
	if t1 == "" || t2 == "" || t1 == t2 {
		t.Errorf("tokens %q then %q: want two fresh tokens", t1, t2)
	}
	if formValue(t, second.body, "auth[refresh_token]") == "" {
		t.Error("sendRefreshToken: no refresh_token")
	}
	if formValue(t, second.body, "auth[application_token]") != "apptoken123" {
		t.Error("application_token not kept")
	}
}

// Each delivery is signed with the app's secret (Standard Webhooks); a
// tampered body fails; during a rotation both secrets verify.
func TestSignature(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t)
	e.post(item(h.URL, "ONCRMDEALADD", 1))
	got := h.next(t)
	ctx := context.Background()
	si, err := e.svc.Secrets().Get(ctx, delivery.SecretName(portalID, "local.5c8bb1b0891cf2.87252039", ""))
	if err != nil {
		t.Fatal(err)
	}
	id, ts, sig := got.header.Get("webhook-id"), got.header.Get("webhook-timestamp"), got.header.Get("webhook-signature")
	if err := delivery.Verify(si.Secret, id, ts, got.body, sig, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("verify: %v", err)
	}
	// The PHP check from docs/delivery.md accepts it too, and rejects a
	// tampered body.
	if out := phpVerify(t, si.Secret, id, ts, sig, got.body); out != "ok" {
		t.Errorf("PHP verify: %q", out)
	}
	tampered := append([]byte(nil), got.body...)
	tampered[len(tampered)-1] ^= 1
	if delivery.Verify(si.Secret, id, ts, tampered, sig, time.Now(), 5*time.Minute) == nil {
		t.Error("tampered body verifies")
	}
	if out := phpVerify(t, si.Secret, id, ts, sig, tampered); out != "bad" {
		t.Errorf("PHP verify of a tampered body: %q", out)
	}
	other, _ := e.svc.Secrets().Get(ctx, delivery.SecretName(portalID, "", "webhooktoken"))
	if delivery.Verify(other.Secret, id, ts, got.body, sig, time.Now(), 5*time.Minute) == nil {
		t.Error("another app's secret verifies")
	}

	// The same app on another portal has a secret of its own: a portal
	// never obtains a signature under another portal's secret.
	theirs, _ := e.svc.Secrets().Get(ctx, delivery.SecretName("bx.other.portal", "local.5c8bb1b0891cf2.87252039", ""))
	if theirs.Secret == si.Secret || delivery.Verify(theirs.Secret, id, ts, got.body, sig, time.Now(), 5*time.Minute) == nil {
		t.Error("the app's secret on another portal verifies this portal's delivery")
	}

	rot, err := e.svc.Secrets().Rotate(ctx, delivery.SecretName(portalID, "local.5c8bb1b0891cf2.87252039", ""))
	if err != nil {
		t.Fatal(err)
	}
	if rot.Previous != si.Secret || rot.Secret == si.Secret {
		t.Fatalf("rotation: %+v", rot)
	}
	e.post(item(h.URL, "ONCRMDEALADD", 2))
	got = h.next(t)
	sig = got.header.Get("webhook-signature")
	if n := len(strings.Fields(sig)); n != 2 {
		t.Errorf("signatures during rotation = %d, want 2", n)
	}
	for _, s := range []string{rot.Secret, si.Secret} {
		if err := delivery.Verify(s, got.header.Get("webhook-id"), got.header.Get("webhook-timestamp"), got.body, sig, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("verify with %s…: %v", s[:10], err)
		}
		if out := phpVerify(t, s, got.header.Get("webhook-id"), got.header.Get("webhook-timestamp"), sig, got.body); out != "ok" {
			t.Errorf("PHP verify during rotation: %q", out)
		}
	}
}

// A handler that never answers does not delay another handler's events.
func TestSlowHandlerDoesNotDelayFast(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) { c.Timeout = time.Minute; c.Concurrency = 2 })
	release := make(chan struct{})
	slowGot := make(chan struct{}, 100)
	slow := newRecorderFunc(t, func() { slowGot <- struct{}{}; <-release })
	t.Cleanup(func() { close(release) })
	fast := newRecorder(t)
	for i := range 10 {
		e.post(item(slow.URL, "ONCRMDEALADD", i))
	}
	<-slowGot
	<-slowGot // both slow slots are now held
	const n = 50
	for i := range n {
		e.post(item(fast.URL, "ONCRMDEALADD", i))
	}
	for range n {
		fast.next(t)
	}
	select {
	case <-slowGot:
		t.Error("slow handler got a third request while two hang (concurrency 2)")
	default:
	}
}

// A handler at a denied address (cloud metadata) is never called: the
// event is dead-lettered at once.
func TestDeniedAddressDeadLetters(t *testing.T) {
	e := newEnv(t)
	// Cloud metadata, ECS task metadata (all of link-local), 0.0.0.0 (the
	// host itself on Linux), IPv6 link-local and the IPv4-mapped form.
	for i, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/v2/credentials",
		"http://0.0.0.0:8895/bitrix/pub/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/", "http://[::]:80/"} {
		id := e.post(item(u, "ONCRMDEALADD", i)).Result.IDs[0]
		rec := waitStatus(t, e, id, delivery.StatusDead)
		if !strings.Contains(rec.LastError, "denied by policy") || rec.Attempts != 1 {
			t.Errorf("%s: record = %+v, want refused by the deny list", u, rec)
		}
	}
}

func TestPausedHandlerWaits(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t)
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	h.next(t)
	rec := waitStatus(t, e, id, delivery.StatusDelivered)
	if _, err := e.svc.SetPaused(context.Background(), rec.Handler, true); err != nil {
		t.Fatal(err)
	}
	h.hold.Store(true)
	e.post(item(h.URL, "ONCRMDEALADD", 2))
	waitQueued(t, e.svc, rec.Handler, 1, h) // the event is there for the worker to take
	if _, err := e.svc.SetPaused(context.Background(), rec.Handler, false); err != nil {
		t.Fatal(err)
	}
	h.hold.Store(false)
	h.next(t)
	if n := h.early.Load(); n != 0 {
		t.Fatalf("paused handler called %d times", n)
	}
}

func TestIngestAuthentication(t *testing.T) {
	e := newEnv(t)
	body, _ := json.Marshal([]any{item("http://h.lan/", "ONCRMDEALADD", 1)})
	cases := []struct {
		name, auth, portal string
		want               int
	}{
		{"none", "", "", 401},
		{"wrong portal secret", "Bearer " + portalID + ":nope", "", 401},
		{"service key without portal", "Bearer " + serviceKey, "", 400},
		{"wrong service key", "Bearer x" + serviceKey, "bx.1", 401},
		{"service key", "Bearer " + serviceKey, "bx.1", 200},
		{"portal", "Bearer " + portalID + ":" + portalSecret, "", 200},
	}
	for _, c := range cases {
		req, _ := newReq(e.ingest.URL, body)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.portal != "" {
			req.Header.Set("X-Isobox-Portal", c.portal)
		}
		resp, err := httpDo(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	// The portal's credentials were checked with authprovider once (the
	// "portal" case above): the positive answer is cached.
	before := e.auth.verified.Load()
	for range 3 {
		req, _ := newReq(e.ingest.URL, body)
		req.Header.Set("Authorization", "Bearer "+portalID+":"+portalSecret)
		if resp, err := httpDo(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("portal call: %v %v", resp, err)
		}
	}
	if n := e.auth.verified.Load() - before; n != 0 {
		t.Errorf("cached portal credentials asked authprovider %d more times", n)
	}
	for _, bad := range []string{`{`, `[]`, `[{"query":{}}]`, `[1]`} {
		req, _ := newReq(e.ingest.URL, []byte(bad))
		req.Header.Set("Authorization", "Bearer "+serviceKey)
		req.Header.Set("X-Isobox-Portal", "bx.1")
		resp, _ := httpDo(req)
		var eb struct{ Error, ErrorDescription string }
		json.NewDecoder(resp.Body).Decode(&eb)
		if resp.StatusCode != 400 || eb.Error != "invalid_request" {
			t.Errorf("%s: %d %+v", bad, resp.StatusCode, eb)
		}
	}
	_ = strconv.Itoa
	_ = events.MaxItems
}

// After BreakerFailures consecutive failures the handler's circuit opens:
// no more calls (even though retries are due) until it is resumed.
func TestCircuitBreakerPausesFailingHandler(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) {
		c.BreakerFailures = 2
		c.BreakerCooldown = time.Hour
		c.Schedule = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	})
	h := newRecorder(t, 500, 500)
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	h.next(t)
	h.next(t)
	// The first attempt's record is "retrying" too: wait for the second's
	// (the breaker counts the failure before the record is written).
	h.hold.Store(true)
	rec := waitRecord(t, e, id, func(r delivery.Record) bool { return r.Status == delivery.StatusRetrying && r.Attempts == 2 })
	hs, err := e.svc.Admin().ListHandlers(context.Background(), nil)
	if err != nil || len(hs.Handlers) != 1 || hs.Handlers[0].Breaker != delivery.BreakerOpen {
		t.Fatalf("handlers = %v, %v", hs, err)
	}
	waitQueued(t, e.svc, rec.Handler, 1, h) // the retry (due after 10ms) is queued
	if _, err := e.svc.SetPaused(context.Background(), rec.Handler, false); err != nil {
		t.Fatal(err)
	}
	h.hold.Store(false)
	h.next(t)
	if n := h.early.Load(); n != 0 {
		t.Fatalf("called %d times while the circuit was open", n)
	}
	waitStatus(t, e, id, delivery.StatusDelivered)
}

// A Retry-After answer sets the next attempt instead of the schedule.
func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) { c.Schedule = []time.Duration{time.Hour} })
	calls := make(chan struct{}, 10)
	var n int
	hs := newStatusServer(t, func(w http.ResponseWriter) {
		n++
		calls <- struct{}{}
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
		}
	})
	id := e.post(item(hs.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	<-calls
	rec := waitStatus(t, e, id, delivery.StatusRetrying)
	if d := time.Duration(rec.NextAttemptMs-rec.UpdatedMs) * time.Millisecond; d > 2*time.Second {
		t.Errorf("next attempt in %v, want ~1s (Retry-After), not the 1h schedule", d)
	}
	select {
	case <-calls:
	case <-time.After(20 * time.Second):
		t.Fatal("no retry after Retry-After: 1")
	}
	waitStatus(t, e, id, delivery.StatusDelivered)
}

// A redirect is not followed: it is a failed attempt, retried.
func TestRedirectIsAFailure(t *testing.T) {
	e := newEnv(t)
	target := newRecorder(t)
	h := newStatusServer(t, func(w http.ResponseWriter) {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusFound)
	})
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	rec := waitStatus(t, e, id, delivery.StatusDead)
	if rec.LastStatus != http.StatusFound || rec.Attempts != 3 {
		t.Errorf("record = %+v", rec)
	}
	select {
	case <-target.hits:
		t.Error("the redirect was followed")
	default:
	}
}

// A pause is stored: a restarted service keeps the handler paused.
func TestPauseSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t)
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	h.next(t)
	rec := waitStatus(t, e, id, delivery.StatusDelivered)
	ctx := context.Background()
	if _, err := e.svc.SetPaused(ctx, rec.Handler, true); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	svc2, err := delivery.New(ctx, delivery.Config{JS: e.js, Auth: e.authClient, Schedule: []time.Duration{10 * time.Millisecond},
		Concurrency: 1, SecretsKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc2.Close(context.Background()) })
	hs, err := svc2.Admin().ListHandlers(ctx, nil)
	if err != nil || len(hs.Handlers) != 1 || !hs.Handlers[0].Paused {
		t.Fatalf("handlers after restart: %v %v", hs, err)
	}
	// The history survived too.
	if r, err := svc2.Admin().GetDelivery(ctx, &relayv1.GetDeliveryRequest{Id: id}); err != nil || r.Status != delivery.StatusDelivered {
		t.Errorf("record after restart: %v %v", r, err)
	}
	h.hold.Store(true)
	e.post(item(h.URL, "ONCRMDEALADD", 2))
	waitQueued(t, svc2, rec.Handler, 1, h) // the event is there for the worker to take
	if _, err := svc2.SetPaused(ctx, rec.Handler, false); err != nil {
		t.Fatal(err)
	}
	h.hold.Store(false)
	h.next(t)
	if n := h.early.Load(); n != 0 {
		t.Fatalf("paused handler called %d times after a restart", n)
	}
}

// A call larger than one broker message (NATS's 1 MiB default) is stored
// in parts and every event is delivered; one event larger than a message
// is refused with 413.
func TestLargeCallsAreSplit(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) { c.Concurrency = 4 })
	h := newRecorder(t)
	big := strings.Repeat("Сделка ", 100) // ~1.3 KB stored per item
	var items []map[string]any
	for i := range 2000 {
		items = append(items, item(h.URL, "ONCRMDEALADD", i, func(m map[string]any) {
			m["query"].(map[string]any)["QUERY_DATA"].(map[string]any)["data"] = map[string]any{"FIELDS": map[string]any{"ID": i, "TITLE": big}}
		}))
	}
	ids := e.post(items...).Result.IDs
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	if len(want) != 2000 {
		t.Fatalf("%d distinct ids", len(want))
	}
	for len(want) > 0 {
		delete(want, h.next(t).header.Get("webhook-id"))
	}

	huge := item(h.URL, "ONCRMDEALADD", 1, func(m map[string]any) {
		m["query"].(map[string]any)["QUERY_DATA"].(map[string]any)["data"] = strings.Repeat("x", 2<<20)
	})
	body, _ := json.Marshal([]any{huge})
	req, _ := newReq(e.ingest.URL, body)
	req.Header.Set("Authorization", "Bearer "+serviceKey)
	req.Header.Set("X-Isobox-Portal", "bx.1")
	resp, err := httpDo(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB event: %d, want 413", resp.StatusCode)
	}
}

// postKeyed hands items to ingest as JSON with an Idempotency-Key (as
// authprovider forwards rest.event.call batches).
func (e *env) postKeyed(key string, items ...map[string]any) events.Response {
	e.t.Helper()
	body, _ := json.Marshal(items)
	req, _ := http.NewRequest("POST", e.ingest.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+portalID+":"+portalSecret)
	req.Header.Set("Idempotency-Key", key)
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

// Items without an id in calls with different Idempotency-Keys are
// distinct events even when their content is identical (two hits firing
// the same event in the same second); the same key again is a retry of
// the same call and is delivered once.
func TestIdempotencyKeySeparatesIdenticalItems(t *testing.T) {
	e := newEnv(t)
	h := newRecorder(t)
	same := item(h.URL, "ONCRMDEALUPDATE", 7)
	r1 := e.postKeyed("batch-1", same)
	r2 := e.postKeyed("batch-2", same)
	r3 := e.postKeyed("batch-1", same) // authprovider's retry of batch-1
	if r1.Result.IDs[0] == r2.Result.IDs[0] {
		t.Fatalf("identical items under different keys share id %s", r1.Result.IDs[0])
	}
	if r3.Result.IDs[0] != r1.Result.IDs[0] || !r3.Result.Duplicate {
		t.Errorf("retry with the same key: %+v, first %+v", r3.Result, r1.Result)
	}
	last := e.post(item(h.URL, "ONCRMDEALADD", 99)).Result.IDs[0]
	// Concurrency 1 keeps queue order: everything before the marker has
	// arrived when the marker does.
	seen := map[string]int{}
	for {
		got := h.next(t)
		id := got.header.Get("webhook-id")
		seen[id]++
		if id == last {
			break
		}
	}
	if seen[r1.Result.IDs[0]] != 1 || seen[r2.Result.IDs[0]] != 1 || len(seen) != 3 {
		t.Errorf("deliveries = %v, want %s and %s once each", seen, r1.Result.IDs[0], r2.Result.IDs[0])
	}
}

// A shutdown between an attempt and its settlement still settles the
// group: the item that succeeded is not delivered again after a restart,
// the one that failed is retried.
func TestShutdownDuringAttemptSettles(t *testing.T) {
	e := newEnv(t, func(c *delivery.Config) { c.Concurrency = 2 })
	arrived, release := make(chan struct{}), make(chan struct{})
	ids := make(chan string, 100)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ids <- r.Header.Get("webhook-id")
		if strings.Contains(string(b), "%5BID%5D=2&") {
			select {
			case arrived <- struct{}{}:
				<-release
				w.WriteHeader(500)
				return
			default: // after the restart
			}
		}
	}))
	t.Cleanup(hs.Close)
	res := e.post(item(hs.URL, "ONCRMDEALADD", 1), item(hs.URL, "ONCRMDEALADD", 2))
	okID, failID := res.Result.IDs[0], res.Result.IDs[1]
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking item was never attempted")
	}
	ctx := context.Background()
	closed := make(chan error, 1)
	go func() { closed <- e.svc.Close(ctx) }()
	<-e.svc.Stopping()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	svc2, err := delivery.New(ctx, delivery.Config{JS: e.js, Auth: e.authClient, Schedule: []time.Duration{10 * time.Millisecond},
		Concurrency: 1, SecretsKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc2.Close(context.Background()) })
	// Before the restart both items were tried once, in some order.
	got := map[string]bool{<-ids: true, <-ids: true}
	if !got[okID] || !got[failID] {
		t.Fatalf("first attempts = %v", got)
	}
	// After it, the first (and, with concurrency 1 in queue order, only)
	// request is the failed item's retry; a re-delivered group would
	// start with the item that already succeeded.
	select {
	case id := <-ids:
		if id != failID {
			t.Fatalf("after restart got %s first, want the retry of %s (the delivered %s came again)", id, failID, okID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("failed item never retried after the restart")
	}
}

// A handler URL that resolves to one of the relay's own listeners (here
// its unsigned push publishing address, listed exactly, and its admin
// address, bound to 0.0.0.0) is refused and dead-lettered without being
// called; another loopback handler is delivered to as usual.
func TestOwnListenersRefused(t *testing.T) {
	publish := newRecorder(t)
	admin := newRecorder(t)
	pubAP := netip.MustParseAddrPort(publish.Listener.Addr().String())
	adminPort := netip.MustParseAddrPort(admin.Listener.Addr().String()).Port()
	e := newEnv(t, func(c *delivery.Config) {
		c.Self = func() []netip.AddrPort {
			return []netip.AddrPort{pubAP, netip.AddrPortFrom(netip.IPv4Unspecified(), adminPort)}
		}
	})
	h := newRecorder(t)
	res := e.post(item(publish.URL+"/bitrix/pub/?CHANNEL_ID=abc", "ONCRMDEALADD", 1),
		item(strings.Replace(admin.URL, "127.0.0.1", "localhost", 1)+"/v1/relay/stats", "ONCRMDEALADD", 2),
		item(h.URL, "ONCRMDEALADD", 3))
	for _, id := range res.Result.IDs[:2] {
		rec := waitStatus(t, e, id, delivery.StatusDead)
		if !strings.Contains(rec.LastError, "denied") || !strings.Contains(rec.LastError, "relay's own listener") || rec.Attempts != 1 {
			t.Errorf("record for a handler at the relay's own address = %+v", rec)
		}
	}
	if got := h.next(t); got.header.Get("webhook-id") != res.Result.IDs[2] {
		t.Errorf("loopback handler got %q", got.header.Get("webhook-id"))
	}
	waitStatus(t, e, res.Result.IDs[2], delivery.StatusDelivered)
	select {
	case <-publish.hits:
		t.Error("the relay posted to its own publish address")
	case <-admin.hits:
		t.Error("the relay posted to its own admin address")
	default:
	}
}

// settableClock is a Clock a test moves by hand.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A rotation made by one relay instance reaches another instance's
// signatures once its cache entry expires (30 s).
func TestRotationReachesOtherInstance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clock := &settableClock{now: time.Unix(1700000000, 0)}
	key := bytes.Repeat([]byte{7}, 32)
	a, err := delivery.NewSecrets(ctx, e.js, key, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	b, err := delivery.NewSecrets(ctx, e.js, key, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	name := delivery.SecretName(portalID, "local.app.1", "")
	first, err := a.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, name); err != nil || got.Secret != first.Secret {
		t.Fatalf("instance b sees %v, %v; want %s", got, err, first.Secret)
	}
	rotated, err := a.Rotate(ctx, name)
	if err != nil || rotated.Secret == first.Secret {
		t.Fatalf("rotate: %v, %v", rotated, err)
	}
	clock.add(31 * time.Second)
	got, err := b.Get(ctx, name)
	if err != nil || got.Secret != rotated.Secret || got.Previous != first.Secret {
		t.Errorf("instance b after 31s: %+v, %v; want current %s, previous %s", got, err, rotated.Secret, first.Secret)
	}
	keys, err := b.Keys(ctx, name)
	if err != nil || len(keys) != 2 {
		t.Errorf("instance b signs with %d keys, %v; want the new and the old", len(keys), err)
	}
}

// A handler another instance stored as paused stays paused when this
// instance sees its first event: the stored state is not overwritten.
func TestUnknownHandlerKeepsStoredPause(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := newRecorder(t)
	it := item(h.URL, "ONCRMDEALADD", 1)
	body, _ := json.Marshal([]any{it})
	parsed, err := events.ParseJSON(portalID, body)
	if err != nil {
		t.Fatal(err)
	}
	info := delivery.HandlerKey(portalID, parsed[0])
	info.Paused = true
	kv, err := e.js.KeyValue(ctx, events.BucketHandlers)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := json.Marshal(info)
	if _, err := kv.Put(ctx, info.Key, stored); err != nil {
		t.Fatal(err)
	}
	id := e.post(it).Result.IDs[0]
	// Wait until the fan-out has started the handler's worker.
	var hs *relayv1.ListHandlersResponse
	deadline := time.Now().Add(20 * time.Second)
	for hs == nil || len(hs.Handlers) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("handler never started")
		}
		if hs, err = e.svc.Admin().ListHandlers(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if len(hs.Handlers) == 0 {
			<-time.After(5 * time.Millisecond) // poll, as waitStatus does
		}
	}
	if !hs.Handlers[0].Paused {
		t.Errorf("handler un-paused by its first event on this instance: %v", hs.Handlers[0])
	}
	if en, err := kv.Get(ctx, info.Key); err != nil || !strings.Contains(string(en.Value()), `"paused":true`) {
		t.Errorf("stored handler = %s, %v", en.Value(), err)
	}
	if _, err := e.svc.SetPaused(ctx, info.Key, false); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t); got.header.Get("webhook-id") != id {
		t.Errorf("after resume got %q", got.header.Get("webhook-id"))
	}
}

// Two relay instances on one broker: a handler seen by either runs on
// both, and a pause or resume made on one reaches the other's workers.
func TestHandlerChangesReachOtherInstance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc2, err := delivery.New(ctx, delivery.Config{JS: e.js, Auth: e.authClient, Schedule: []time.Duration{10 * time.Millisecond},
		Concurrency: 1, SecretsKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc2.Close(context.Background()) })
	h := newRecorder(t)
	e.post(item(h.URL, "ONCRMDEALADD", 1))
	h.next(t)
	// handlerOn waits until svc lists one handler in the wanted pause state.
	handlerOn := func(svc *delivery.Service, paused bool) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			hs, err := svc.Admin().ListHandlers(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs.Handlers) == 1 && hs.Handlers[0].Paused == paused {
				return hs.Handlers[0].Key
			}
			if time.Now().After(deadline) {
				t.Fatalf("handlers = %v, want one with paused=%v", hs, paused)
			}
			<-time.After(5 * time.Millisecond) // poll, as waitStatus does
		}
	}
	// Whichever instance fanned the event out, both run the handler.
	key := handlerOn(e.svc, false)
	handlerOn(svc2, false)
	if _, err := e.svc.SetPaused(ctx, key, true); err != nil {
		t.Fatal(err)
	}
	handlerOn(svc2, true)
	if _, err := svc2.SetPaused(ctx, key, false); err != nil {
		t.Fatal(err)
	}
	handlerOn(e.svc, false)
	id := e.post(item(h.URL, "ONCRMDEALADD", 2)).Result.IDs[0]
	if got := h.next(t); got.header.Get("webhook-id") != id {
		t.Errorf("after resume got %q, want %s", got.header.Get("webhook-id"), id)
	}
}

// The defaults are fresh slices, and the service keeps its own copy of
// the configured ones: changing them afterwards changes nothing.
func TestConfigSlicesNotShared(t *testing.T) {
	d := delivery.DefaultDeny()
	d[0] = netip.MustParsePrefix("192.0.2.0/24")
	if delivery.DefaultDeny()[0] == d[0] {
		t.Error("DefaultDeny shares its slice")
	}
	sch := delivery.DefaultSchedule()
	sch[0] = time.Hour
	if delivery.DefaultSchedule()[0] == time.Hour {
		t.Error("DefaultSchedule shares its slice")
	}
	deny := delivery.DefaultDeny()
	e := newEnv(t, func(c *delivery.Config) { c.Deny = deny })
	for i := range deny { // the caller reuses its slice after New
		deny[i] = netip.MustParsePrefix("192.0.2.0/24")
	}
	id := e.post(item("http://169.254.170.2/v2/credentials", "ONCRMDEALADD", 1)).Result.IDs[0]
	if rec := waitStatus(t, e, id, delivery.StatusDead); !strings.Contains(rec.LastError, "denied by policy") || rec.Attempts != 1 {
		t.Errorf("record = %+v, want refused by the deny list", rec)
	}
}

// The circuit breaker's cooldown runs on the injected clock: moving the
// clock past it half-opens the circuit and lets the probe through.
func TestBreakerUsesInjectedClock(t *testing.T) {
	clock := &settableClock{now: time.Now()}
	e := newEnv(t, func(c *delivery.Config) {
		c.Clock = clock
		c.BreakerFailures = 2
		c.BreakerCooldown = time.Hour
		c.Schedule = []time.Duration{0, 0, 0} // due at once on any clock
	})
	h := newRecorder(t, 500, 500)
	id := e.post(item(h.URL, "ONCRMDEALADD", 1)).Result.IDs[0]
	h.next(t)
	h.next(t)
	waitRecord(t, e, id, func(r delivery.Record) bool { return r.Status == delivery.StatusRetrying && r.Attempts == 2 })
	breaker := func() string {
		hs, err := e.svc.Admin().ListHandlers(context.Background(), nil)
		if err != nil || len(hs.Handlers) != 1 {
			t.Fatalf("handlers = %v, %v", hs, err)
		}
		return hs.Handlers[0].Breaker
	}
	if b := breaker(); b != delivery.BreakerOpen {
		t.Fatalf("breaker after 2 failures = %s", b)
	}
	clock.add(time.Hour + time.Second)
	if b := breaker(); b != delivery.BreakerHalfOpen {
		t.Errorf("breaker after the cooldown on the injected clock = %s, want %s", b, delivery.BreakerHalfOpen)
	}
	if got := h.next(t); got.header.Get("webhook-id") != id {
		t.Errorf("probe = %q", got.header.Get("webhook-id"))
	}
	waitStatus(t, e, id, delivery.StatusDelivered)
	if b := breaker(); b != delivery.BreakerClosed {
		t.Errorf("breaker after a successful probe = %s", b)
	}
}

// A secret stored under its pre-issue-11 name (client_id alone) is
// adopted by the first portal that signs with it, then retired: every
// other portal gets a secret of its own.
func TestLegacySecretAdoptedOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, err := delivery.NewSecrets(ctx, e.js, bytes.Repeat([]byte{9}, 32), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := s.Get(ctx, "app:local.legacy.1") // as an older relay named it
	if err != nil {
		t.Fatal(err)
	}
	mine, err := s.Get(ctx, delivery.SecretName(portalID, "local.legacy.1", ""))
	if err != nil || mine.Secret != legacy.Secret {
		t.Fatalf("first portal after the upgrade: %+v, %v; want the old secret", mine, err)
	}
	s2, _ := delivery.NewSecrets(ctx, e.js, bytes.Repeat([]byte{9}, 32), time.Hour, nil) // no cache
	theirs, err := s2.Get(ctx, delivery.SecretName("bx.other.portal", "local.legacy.1", ""))
	if err != nil || theirs.Secret == legacy.Secret {
		t.Fatalf("second portal got the old secret too: %+v, %v", theirs, err)
	}
	if again, _ := s2.Get(ctx, delivery.SecretName(portalID, "local.legacy.1", "")); again.Secret != legacy.Secret {
		t.Errorf("first portal's secret changed: %+v", again)
	}
}
