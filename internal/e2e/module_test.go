package e2e_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// The isobox.connector PHP module (bitrix-module/) on a stand-in portal,
// run by the real PHP interpreter against the real services: the PHPUnit
// suite bitrix-module/tests/e2e does the portal's side one phase at a time,
// this test starts and stops the services between phases and checks what
// arrived on the Go side.

// moduleCreds is what `authprovider portal add --json` and the portal
// protocol's application.add answer.
type moduleCreds struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// moduleRoot is the repository root (tests run in internal/e2e).
func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bitrix-module", "tests", "phpunit.xml")); err != nil {
		t.Fatalf("bitrix-module tests not found from %s: %v", root, err)
	}
	return root
}

// moduleTools fails the test if the PHP tools are missing (scripts/deps.sh
// installs them); it never skips.
func moduleTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"php", "phpunit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (scripts/deps.sh installs it): %v", tool, err)
		}
	}
}

// moduleCLI runs an authprovider CLI command in the server's working
// directory (same data dir) and decodes its --json output.
func moduleCLI(t testing.TB, dir, bin string, out any, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("authprovider %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("authprovider %s: output %q: %v", strings.Join(args, " "), b, err)
	}
}

// moduleAppAdd creates a local app the way the portal does when its
// administrator adds one: application.add over the portal protocol.
func moduleAppAdd(t testing.TB, httpAddr string, portal moduleCreds, scope string) moduleCreds {
	t.Helper()
	resp, err := http.PostForm("http://"+httpAddr+"/rest/application.add", url.Values{
		"client_id": {portal.ClientID}, "client_secret": {portal.ClientSecret},
		"TITLE": {"e2e app"}, "REDIRECT_URI": {"https://app.test/install"}, "SCOPE": {scope},
	})
	if err != nil {
		t.Fatalf("application.add: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Result moduleCreds `json:"result"`
		Error  string      `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Result.ClientID == "" {
		t.Fatalf("application.add: status %d, error %q, decode %v", resp.StatusCode, body.Error, err)
	}
	return body.Result
}

// modulePHP runs one phase (a test method) of the module's e2e suite.
func modulePHP(t *testing.T, root, phase string, env map[string]string) {
	t.Helper()
	cmd := exec.Command("phpunit", "-c", filepath.Join(root, "bitrix-module", "tests", "phpunit.xml"),
		"--testsuite", "e2e", "--filter", "/::"+phase+"$/")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("OK (1 test")) {
		t.Fatalf("phpunit %s: %v\n%s", phase, err, out)
	}
}

// moduleValidate asks authprovider's validation API about a token, with
// the portal's credentials, as the module does.
func moduleValidate(t *testing.T, adminAddr string, portal moduleCreds, token string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"access_token": token, "scope": ""})
	req, _ := http.NewRequest("POST", "http://"+adminAddr+"/v1/token/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+portal.ClientID+":"+portal.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("validate: status %d: %v", resp.StatusCode, err)
	}
	return out
}

// How moduleEnv creates the app.
const (
	moduleAppByCLI    = "cli"    // `authprovider client add`, as an administrator does
	moduleAppByPortal = "portal" // application.add, as the portal does for a local app
)

// moduleEnv starts authprovider, creates a portal (CLI) and an app (by the
// CLI or by the portal protocol), and returns the environment of the PHP
// suite.
func moduleEnv(t testing.TB, appBy string) (dir string, ap *testkit.Proc, portal, app moduleCreds, env map[string]string) {
	t.Helper()
	moduleTools(t)
	dir = t.TempDir()
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	ap = testkit.Start(t, dir, bin, freeArgs("http-addr", "grpc-addr", "admin-addr"), "http", "grpc", "admin")
	moduleCLI(t, dir, bin, &portal, "portal", "add", "--host", "portal.test", "--json")
	if appBy == moduleAppByCLI {
		moduleCLI(t, dir, bin, &app, "client", "add", "--grpc-addr", ap.Addr("grpc"),
			"--name", "e2e app", "--redirect-uri", "https://app.test/install", "--scope", "crm,user", "--json")
	} else {
		app = moduleAppAdd(t, ap.Addr("http"), portal, "crm,user")
	}
	tmp := filepath.Join(dir, "php")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{
		"TMPDIR":                   tmp,
		"ISOBOX_E2E_PORTAL_DB":     filepath.Join(dir, "portal.sqlite"),
		"ISOBOX_E2E_OUT":           filepath.Join(dir, "phpout.json"),
		"ISOBOX_E2E_AUTH_URL":      "http://" + ap.Addr("admin"),
		"ISOBOX_E2E_OAUTH_URL":     "http://" + ap.Addr("http"),
		"ISOBOX_E2E_RELAY_URL":     "http://127.0.0.1:1", // replaced once a relay runs
		"ISOBOX_E2E_HANDLER":       "http://127.0.0.1:1",
		"ISOBOX_E2E_PORTAL_ID":     portal.ClientID,
		"ISOBOX_E2E_PORTAL_SECRET": portal.ClientSecret,
		"ISOBOX_E2E_APP":           app.ClientID,
		"ISOBOX_E2E_APP_SECRET":    app.ClientSecret,
	}
	return dir, ap, portal, app, env
}

func TestModuleTokensEndToEnd(t *testing.T) {
	root := moduleRoot(t)
	_, ap, portal, app, env := moduleEnv(t, moduleAppByCLI)

	// AuthProvider::get() and authorizeClient() mint through isobox; a REST
	// call with the token passes CRestUtil::checkAuth with the right $res.
	modulePHP(t, root, "testPhaseAuth", env)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	b, err := os.ReadFile(env["ISOBOX_E2E_OUT"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil || out.AccessToken == "" {
		t.Fatalf("phase output %s: %v", b, err)
	}
	// The token the module minted is isobox's: the validation API knows it,
	// for this app and user.
	v := moduleValidate(t, ap.Addr("admin"), portal, out.AccessToken)
	if v["error"] != nil && v["error"] != "" {
		t.Fatalf("minted token invalid: %v", v)
	}
	if v["client_id"] != app.ClientID || v["user_id"] != "5" {
		t.Errorf("validate = %v, want client_id %s user_id \"5\"", v, app.ClientID)
	}

	// A token revoked at isobox (the app refreshed its pair) is refused once
	// the module's cache time has passed (the phase drives the clock).
	modulePHP(t, root, "testPhaseRevocation", env)
}

// moduleDelivery is one POST the relay made to the loopback handler.
type moduleDelivery struct {
	path string
	form url.Values
}

// moduleHandler is the app's and the webhook's event handler on loopback.
func moduleHandler(t *testing.T) (string, <-chan moduleDelivery) {
	t.Helper()
	ch := make(chan moduleDelivery, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ch <- moduleDelivery{r.URL.Path, r.PostForm}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// moduleAwait collects deliveries until every marker (an event's
// data[FIELDS][ID]) has arrived at both handlers, "/app" and "/hook"; it
// returns them by marker and path. A delivery repeated by a retry is kept
// once.
func moduleAwait(t *testing.T, ch <-chan moduleDelivery, markers ...string) map[string]map[string]url.Values {
	t.Helper()
	got := map[string]map[string]url.Values{}
	for _, m := range markers {
		got[m] = map[string]url.Values{}
	}
	complete := func() bool {
		for _, m := range markers {
			if len(got[m]) < 2 {
				return false
			}
		}
		return true
	}
	timeout := time.After(30 * time.Second)
	for !complete() {
		select {
		case d := <-ch:
			if byPath, ok := got[d.form.Get("data[FIELDS][ID]")]; ok {
				byPath[d.path] = d.form
			}
		case <-timeout:
			t.Fatalf("not every delivery arrived: %v", got)
		}
	}
	return got
}

func moduleStartRelay(t testing.TB, dir, bin string, ap *testkit.Proc) *testkit.Proc {
	t.Helper()
	args := append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"),
		"--auth-grpc-addr", ap.Addr("grpc"), "--retry-schedule", "100ms,200ms,500ms")
	return testkit.Start(t, dir, bin, args, "http", "publish", "grpc", "admin")
}

// moduleCheckDelivery checks what a handler received for one app event and
// one webhook event, as Bitrix sends them.
func moduleCheckDelivery(t *testing.T, got map[string]url.Values, ap *testkit.Proc, portal, app moduleCreds) {
	t.Helper()
	a, h := got["/app"], got["/hook"]
	member := fmt.Sprintf("%x", md5.Sum([]byte(portal.ClientID)))
	for name, f := range map[string]url.Values{"app": a, "webhook": h} {
		if f.Get("event") != "ONCRMDEALADD" || f.Get("ts") == "" {
			t.Errorf("%s delivery lacks event or ts: %v", name, f)
		}
		// query.DOMAIN as the portal hit saw it, and the portal's member_id.
		if f.Get("auth[domain]") != "portal.test" || f.Get("auth[member_id]") != member {
			t.Errorf("%s delivery auth[domain] = %q, auth[member_id] = %q; want portal.test, %s", name, f.Get("auth[domain]"), f.Get("auth[member_id]"), member)
		}
	}
	if h.Get("auth[application_token]") != "hooktoken0123456789abcdef0123456" || h.Get("auth[access_token]") != "" {
		t.Errorf("webhook auth = %v, want its application_token and no access token", h)
	}
	if a.Get("auth[application_token]") != "apptoken-1" {
		t.Errorf("app auth[application_token] = %q", a.Get("auth[application_token]"))
	}
	// A fresh token for the app and the user who caused the event.
	tok := a.Get("auth[access_token]")
	if !strings.HasPrefix(tok, "isobox.") {
		t.Fatalf("app delivery has no isobox access token: %v", a)
	}
	v := moduleValidate(t, ap.Addr("admin"), portal, tok)
	if (v["error"] != nil && v["error"] != "") || v["client_id"] != app.ClientID || v["user_id"] != "5" {
		t.Errorf("delivered token: validate = %v, want client %s user 5", v, app.ClientID)
	}
	// The event-loop guard survives the trip: the handler's token carries the
	// portal's EVENT_SESSION, which the portal decrements on the next call.
	if p, _ := v["parameters"].(map[string]any); p["EVENT_SESSION"] != "7" {
		t.Errorf("delivered token parameters = %v, want EVENT_SESSION 7", v["parameters"])
	}
}

// moduleMetric reads one sample of a service's /metrics (0 if absent).
func moduleMetric(t *testing.T, adminAddr, sample string) float64 {
	t.Helper()
	code, body := get(t, "http://"+adminAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", sample, line)
			}
			return f
		}
	}
	return 0
}

func TestModuleEventsEndToEnd(t *testing.T) {
	root := moduleRoot(t)
	dir, ap, portal, app, env := moduleEnv(t, moduleAppByPortal)
	relayBin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	handlerURL, deliveries := moduleHandler(t)
	env["ISOBOX_E2E_HANDLER"] = handlerURL

	// Events sent by Sender reach the handler through the relay, with a
	// fresh auth built at delivery.
	er := moduleStartRelay(t, dir, relayBin, ap)
	env["ISOBOX_E2E_RELAY_URL"] = "http://" + er.Addr("http")
	modulePHP(t, root, "testPhaseEvents", env)
	live := moduleAwait(t, deliveries, "live-1")["live-1"]
	moduleCheckDelivery(t, live, ap, portal, app)
	// The handler calls the portal back with the token it got.
	env["ISOBOX_E2E_DELIVERED_TOKEN"] = live["/app"].Get("auth[access_token]")
	modulePHP(t, root, "testPhaseCallback", env)
	// One ingest call for the hit's two events, never a POST per handler.
	if n := moduleMetric(t, er.Addr("admin"), `isobox_relay_ingest_calls_total{result="ok"}`); n != 1 {
		t.Errorf("ingest calls for one hit = %v, want 1", n)
	}

	// With the relay stopped the module spools; nothing blocks, nothing is lost.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := er.Stop(ctx); err != nil {
		t.Fatalf("stop relay: %v\n%s", err, er.Logs())
	}
	modulePHP(t, root, "testPhaseSpool", env)

	// The relay comes back (same data, new port); the agent flushes the
	// spool and every spooled event is delivered.
	er = moduleStartRelay(t, dir, relayBin, ap)
	env["ISOBOX_E2E_RELAY_URL"] = "http://" + er.Addr("http")
	modulePHP(t, root, "testPhaseFlush", env)
	got := moduleAwait(t, deliveries, "spooled-1", "spooled-2")
	// The agent sent the four spooled events in one batch.
	if n := moduleMetric(t, er.Addr("admin"), `isobox_relay_ingest_calls_total{result="ok"}`); n != 1 {
		t.Errorf("ingest calls for the flush = %v, want 1", n)
	}
	if n := moduleMetric(t, er.Addr("admin"), "isobox_relay_events_ingested_total"); n != 4 {
		t.Errorf("events ingested by the flush = %v, want 4", n)
	}
	moduleCheckDelivery(t, got["spooled-1"], ap, portal, app)
	moduleCheckDelivery(t, got["spooled-2"], ap, portal, app)
}
