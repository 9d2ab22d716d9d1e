package portal_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/phpform"
	"github.com/isobox/isobox/internal/testkit"
)

// TestDropInEventsReachHandlersThroughEventrelay runs the drop-in event
// chain on real binaries: the PHP stand-in submits a hit's queue with
// rest.event.call; authprovider hands it to eventrelay (service key,
// X-Isobox-Portal); eventrelay asks authprovider for each delivery's auth
// block (EventAuth.Build) and POSTs to the handlers. The app's delivery
// carries a fresh token for the event's user that the portal's rest.check
// accepts; the webhook's carries the empty auth.
func TestDropInEventsReachHandlersThroughEventrelay(t *testing.T) {
	apBin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	erBin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	type delivery struct {
		path string
		form string
	}
	got := make(chan delivery, 10)
	handlers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.URL.Path, string(b)}
	}))
	t.Cleanup(handlers.Close)

	// eventrelay's ingest address is chosen first: authprovider must know it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := l.Addr().String()
	l.Close()

	ap := testkit.Start(t, dir, apBin, []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", data, "--portal-registration", "open", "--relay-url", "http://" + relayAddr}, "http", "grpc", "admin")
	testkit.Start(t, dir, erBin, []string{"--http-addr", relayAddr, "--publish-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", data, "--auth-grpc-addr", ap.Addr("grpc")}, "http", "publish", "grpc", "admin")
	base := "http://" + ap.Addr("http")

	var st struct {
		PortalClientID     string `json:"portal_client_id"`
		PortalClientSecret string `json:"portal_client_secret"`
		AppClientID        string `json:"app_client_id"`
	}
	out := php(t, "flow", base, "http://portal.box.local", "TEST-LICENSE-KEY", handlers.URL)
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("stand-in output %q: %v", out, err)
	}

	byPath := map[string]*phpform.Array{}
	for len(byPath) < 2 {
		select {
		case d := <-got:
			f, err := phpform.Decode(d.form)
			if err != nil {
				t.Fatalf("delivery to %s is not a PHP form: %v", d.path, err)
			}
			byPath[d.path] = f
		case <-time.After(30 * time.Second):
			t.Fatalf("deliveries after 30s: %d of 2", len(byPath))
		}
	}
	app, hook := byPath["/handler/"], byPath["/hook/deal"]
	if app == nil || hook == nil {
		t.Fatalf("deliveries went to %v", byPath)
	}
	auth := app.Array("auth")
	if app.String("event") != "ONCRMDEALADD" || app.Array("data").Array("FIELDS").String("ID") != "42" || auth == nil {
		t.Fatalf("app delivery: %s", phpform.Encode(app))
	}
	wantKeys := "access_token,expires,expires_in,scope,domain,server_endpoint,status,client_endpoint,member_id,user_id,application_token"
	if strings.Join(auth.Keys(), ",") != wantKeys {
		t.Errorf("app auth keys = %s\nwant             %s", strings.Join(auth.Keys(), ","), wantKeys)
	}
	if auth.String("member_id") != oauth.MemberID(st.PortalClientID) || auth.String("domain") != "portal.box.local" ||
		auth.String("user_id") != "5" || auth.String("client_endpoint") != "http://portal.box.local/rest/" {
		t.Errorf("app auth: %s", phpform.Encode(auth))
	}
	// The delivered token is real: the portal's rest.check accepts it for
	// the event's user, with the event session as a token parameter.
	resp, err := http.PostForm(base+"/rest/rest.check", url.Values{"TOKEN": {auth.String("access_token")},
		"client_id": {st.PortalClientID}, "client_secret": {st.PortalClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var chk struct {
		Result struct {
			ClientID   string            `json:"client_id"`
			UserID     int64             `json:"user_id"`
			Parameters map[string]string `json:"parameters"`
		} `json:"result"`
	}
	json.NewDecoder(resp.Body).Decode(&chk)
	resp.Body.Close()
	if chk.Result.ClientID != st.AppClientID || chk.Result.UserID != 5 || chk.Result.Parameters["EVENT_SESSION"] != "7" {
		t.Errorf("rest.check of the delivered token: %+v", chk.Result)
	}

	hauth := hook.Array("auth")
	if hook.String("event") != "ONCRMDEALUPDATE" || hauth == nil ||
		strings.Join(hauth.Keys(), ",") != "domain,client_endpoint,server_endpoint,member_id,application_token" ||
		hauth.String("application_token") != "webhooktoken0123456789abcdefghij" {
		t.Errorf("webhook delivery: %s", phpform.Encode(hook))
	}
}
