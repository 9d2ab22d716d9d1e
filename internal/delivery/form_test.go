package delivery

import (
	"maps"
	"strings"
	"testing"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/phpform"
)

// The reference: what delivery would do with the decoded item. The fast
// path (viewOf, payloadBody) must give exactly the same.

// authRequest is the reference Build request for an item: the queue item's client,
// user, flags, application token and the rest of its auth block.
func authRequest(portal string, it events.Item) *tokenv1.BuildEventAuthRequest {
	req := &tokenv1.BuildEventAuthRequest{
		ClientId:         it.ClientID(),
		UserId:           it.UserID(),
		SendAuth:         it.Flag("sendAuth"),
		SendRefreshToken: it.Flag("sendRefreshToken"),
		ApplicationToken: it.ApplicationToken(),
		Domain:           it.Domain(),
		PortalClientId:   portal,
		Event:            it.Event(),
		Parameters:       map[string]string{},
	}
	if a := it.Auth(); a != nil {
		for _, k := range a.Keys() {
			if k == "application_token" || k == "LOCAL_USER" {
				continue
			}
			if v, ok := a.Get(k).(string); ok {
				req.Parameters[k] = v
			}
		}
	}
	return req
}

// Payload is the reference form a handler receives: query.QUERY_DATA as the portal
// sent it (event, event_handler_id, data, ts) followed by auth[...] in the
// order authprovider returned the fields (bitrix-wire.md §2.5).
func Payload(it events.Item, auth []*tokenv1.Field) *phpform.Array {
	out := phpform.NewArray()
	if qd := it.QueryData(); qd != nil {
		for _, k := range qd.Keys() {
			if k == "auth" {
				continue // replaced by a fresh block below
			}
			out.Set(k, qd.Get(k))
		}
	}
	a := phpform.NewArray()
	for _, f := range auth {
		a.Set(f.GetKey(), f.GetValue())
	}
	out.Set("auth", a)
	return out
}

var fuzzAuth = []*tokenv1.Field{{Key: "access_token", Value: "t&k n"}, {Key: "domain", Value: "p.lan"}, {Key: "application_token", Value: "x"}}

func checkFast(t *testing.T, items []events.Item) {
	for _, it := range items {
		want := phpform.Encode(Payload(it, fuzzAuth))
		if got := string(payloadBody(it.Form(), fuzzAuth)); got != want {
			t.Fatalf("payload differs:\n fast %s\n ref  %s", got, want)
		}
		ref := authRequest("bx.1", it)
		got := authRequestOf("bx.1", viewOf(it.Form()))
		if ref.ClientId != got.ClientId || ref.UserId != got.UserId || ref.SendAuth != got.SendAuth || ref.SendRefreshToken != got.SendRefreshToken ||
			ref.ApplicationToken != got.ApplicationToken || ref.Domain != got.Domain || ref.Event != got.Event || !maps.Equal(ref.Parameters, got.Parameters) {
			t.Fatalf("auth request differs:\n fast %v\n ref  %v", got, ref)
		}
		if v := viewOf(it.Form()); v.url != it.URL() {
			t.Fatalf("url %q vs %q", v.url, it.URL())
		}
	}
}

const fuzzSeed = `[{"client_id":"local.1","auth":{"EVENT_SESSION":7,"LOCAL_USER":5,"application_token":"t","TZ_OFFSET":"-3600","X":{"y":1}},` +
	`"additional":{"sendAuth":true,"sendRefreshToken":"0","category":"crm"},"query":{"DOMAIN":"p.lan","QUERY_URL":"http://h.lan/x?a=1&b=2",` +
	`"QUERY_DATA":{"event":"onCrmDealAdd","event_handler_id":"3","data":{"FIELDS":{"ID":"9","T":"a b&c=d%"}},"auth":{"old":"1"},"ts":"1700000000"}}}]`

func FuzzPayloadFromForm(f *testing.F) {
	f.Add([]byte(fuzzSeed))
	f.Add([]byte(`[{"query":{"QUERY_URL":"u","QUERY_DATA":{"event":"e","auth":"s","data":[]}}}]`))
	f.Add([]byte(`[{"client_id":null,"auth":{"LOCAL_USER":[1]},"query":{"QUERY_URL":"u","QUERY_DATA":{"event":"e","a]b":"1","c[d":"2"}}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if items, err := events.ParseJSON("bx.1", body); err == nil {
			checkFast(t, items)
		}
		if items, err := events.ParseForm("bx.1", string(body)); err == nil {
			checkFast(t, items)
		}
	})
}

func TestPayloadFromFormSeed(t *testing.T) {
	items, err := events.ParseJSON("bx.1", []byte(fuzzSeed))
	if err != nil {
		t.Fatal(err)
	}
	checkFast(t, items)
	if !strings.Contains(string(payloadBody(items[0].Form(), fuzzAuth)), "data%5BFIELDS%5D%5BT%5D=a+b%26c%3Dd%25") {
		t.Error("data not carried")
	}
}
