package portal_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

// FuzzParseForm: any body parses or is refused with a 400, never a panic.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{"", "TOKEN=abc", eventItems("local.x", "1"), "a[b][c][]=1&a[b][c][]=2", "%zz", "QUERY[0]=1&QUERY[0][x]=2", strings.Repeat("[", 100) + "=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, berr := portal.ParseForm(body)
		if berr != nil {
			if berr.Status != 400 {
				t.Fatalf("status %d", berr.Status)
			}
			return
		}
		_ = form.Array("QUERY")
		_ = form.String("TOKEN")
	})
}

// FuzzRESTBody drives the whole /rest/ path (portal authentication, each
// method's argument handling) with arbitrary bodies behind valid portal
// credentials: every answer is JSON with a Bitrix error or a result, and
// nothing is a 500.
func FuzzRESTBody(f *testing.F) {
	db := testkit.OpenStore(f, testkit.SQLite(f))
	o, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	v := validator.New(o, validator.Config{}, nil)
	svc := validator.NewService(o, v, validator.NewPortals(o, 0, nil), validator.ServiceConfig{PublicURL: "http://auth.box.local"})
	registry := portal.NewRegistry(db, o, nil)
	reg, err := registry.Add(f.Context(), "http://portal.box.local", "", "")
	if err != nil {
		f.Fatal(err)
	}
	// The relay accepts everything: the fuzzer exercises parsing, not outages.
	relaySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(202) }))
	f.Cleanup(relaySrv.Close)
	relay := portal.NewRelay(db, portal.RelayConfig{URL: relaySrv.URL, ServiceKey: "k"}, nil)
	h := portal.New(portal.Config{Registration: portal.PolicyOpen, MaxBody: 1 << 20}, svc, o, registry, relay, nil)
	mux := http.NewServeMux()
	h.Register(mux)
	creds := url.Values{"client_id": {reg.Client.ID}, "client_secret": {reg.Secret}}.Encode()

	methods := []string{"rest.check", "rest.authorize", "rest.code", "rest.event.call", "application.add", "application.update",
		"application.delete", "application.list", "application.install", "application.uninstall", "application.usage.add", "app.info", "x"}
	for i, s := range []string{"TOKEN=abc", "CLIENT_ID=local.x&PARAMS[LOCAL_USER]=5", "CLIENT_ID=&STATE[]=1&PARAMS[LOCAL_USER][]=1",
		eventItems("local.x", "1"), "TITLE=t&SCOPE[]=crm&SCOPE[x][]=y&REDIRECT_URI=http://a.b/", "CLIENT_ID[]=1", "auth[]=x", "%"} {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, m uint8, body string) {
		method := methods[int(m)%len(methods)]
		for _, b := range []string{body, body + "&" + creds} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/rest/"+method, strings.NewReader(b)))
			if rec.Code >= 500 {
				t.Fatalf("%s %q: status %d %s", method, b, rec.Code, rec.Body)
			}
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("%s %q: not JSON: %s", method, b, rec.Body)
			}
			if _, ok := out["result"]; !ok && out["error"] == nil {
				t.Fatalf("%s %q: neither result nor error: %s", method, b, rec.Body)
			}
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/oauth/register/", strings.NewReader(body)))
		if rec.Code >= 500 {
			t.Fatalf("register %q: status %d", body, rec.Code)
		}
	})
}
