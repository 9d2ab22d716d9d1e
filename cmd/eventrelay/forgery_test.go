package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/delivery"
	"github.com/isobox/isobox/internal/secret"
)

// Issue 11, finding 4: portal B sending ONAPPUNINSTALL (or any event) for
// portal A's app got an auth block and a signature that verified under app
// A's secret. Against the real authprovider and relay, with two portals.
func TestEventForAnotherPortalsAppIsRefused(t *testing.T) {
	s := startAuthprovider(t) // portal A: portal.lan
	appA := s.addApp(t)       // owned by... the administrator: every portal
	relay := s.startRelay(t, "--auth-grpc-addr", s.ap.Addr("grpc"), "--retry-schedule", "10ms")

	// Portal A's own app, and portal B.
	adminKey, err := secret.Read(filepath.Join(s.data, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+s.ap.Addr("admin")+"/v1/clients",
		strings.NewReader(`{"name":"A only","redirect_uri":"http://app.lan/install","scope":"crm","portal":"`+s.portalID+`"}`))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var own struct {
		ClientID string `json:"client_id"`
		Client   struct {
			ClientID string `json:"client_id"`
		} `json:"client"`
	}
	json.Unmarshal(body, &own)
	if own.ClientID == "" {
		own.ClientID = own.Client.ClientID
	}
	if resp.StatusCode != 200 || own.ClientID == "" {
		t.Fatalf("create portal A's app: %d %s", resp.StatusCode, body)
	}
	out, err := exec.Command(s.apBin, "portal", "add", "--host", "b.lan", "--json", "--data-dir", s.data).Output()
	if err != nil {
		t.Fatalf("portal add b.lan: %v", err)
	}
	var b struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	json.Unmarshal(out, &b)
	portalB := &stack{dir: s.dir, data: s.data, erBin: s.erBin, portalID: b.ClientID, portalSecret: b.ClientSecret}

	h := newHandler(t)
	// Refused at ingest (they used to be stored, answered 200 and only
	// dead-lettered at delivery), whichever way portal B authenticates, and
	// a call that mixes them with B's own webhook is refused as a whole
	// (422: the module sets the refused items aside instead of retrying).
	for _, auth := range []string{"portal", "service"} {
		for _, ev := range []string{"ONAPPUNINSTALL", "ONCRMDEALADD"} {
			code, body := portalB.ingestStatus(t, relay, auth, eventItem(h.URL+"/webhook", "", "ONCRMDEALADD", 3), eventItem(h.URL+"/forged", own.ClientID, ev, 1))
			if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"error":"NOT_INSTALLED"`) || !strings.Contains(string(body), own.ClientID) {
				t.Errorf("portal B (%s auth) ingesting %s for portal A's app: %d %s, want 422 NOT_INSTALLED", auth, ev, code, body)
			}
		}
	}
	// Twice, to see that a refusal is not cached as an acceptance.
	if code, body := portalB.ingestStatus(t, relay, "portal", eventItem(h.URL+"/forged", own.ClientID, "ONCRMDEALADD", 1)); code != http.StatusUnprocessableEntity {
		t.Errorf("second forged ingest: %d %s", code, body)
	}
	// Portal A's own event for its app arrives, signed with A's secret.
	s.ingest(t, relay, "portal", eventItem(h.URL+"/real", own.ClientID, "ONAPPUNINSTALL", 2))
	got := h.next(t)
	if formValue(t, got.body, "data[FIELDS][ID]") != "2" {
		t.Fatalf("the handler got a forged event: %s", got.body)
	}
	secretOf := func(portal, app string) string {
		return strings.TrimSpace(runCLI(t, s, relay, "secrets", "get", "--portal", portal, "--client-id", app))
	}
	id, ts, sig := got.header.Get("webhook-id"), got.header.Get("webhook-timestamp"), got.header.Get("webhook-signature")
	if err := delivery.Verify(secretOf(s.portalID, own.ClientID), id, ts, got.body, sig, time.Now(), time.Minute); err != nil {
		t.Errorf("portal A's delivery under A's secret: %v", err)
	}
	if delivery.Verify(secretOf(b.ClientID, own.ClientID), id, ts, got.body, sig, time.Now(), time.Minute) == nil {
		t.Error("portal A's delivery verifies under the secret of the same app on portal B")
	}
	// The app every portal may use gets a secret per portal.
	if secretOf(s.portalID, appA) == secretOf(b.ClientID, appA) {
		t.Error("a shared app has one secret for two portals")
	}

	// Portal A's shared app and its own app are accepted on the second call
	// too (from ingest's cache).
	s.ingest(t, relay, "portal", eventItem(h.URL+"/real", own.ClientID, "ONCRMDEALADD", 4), eventItem(h.URL+"/real", appA, "ONCRMDEALADD", 5))
	for range 2 {
		if got := h.next(t); strings.Contains(string(got.body), "forged") || formValue(t, got.body, "data[FIELDS][ID]") == "1" {
			t.Fatalf("the handler got a forged event: %s", got.body)
		}
	}
	select {
	case x := <-h.hits:
		t.Errorf("the handler got a forged event: %s", x.body)
	default:
	}
}
