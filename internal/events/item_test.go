package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/phpform"
)

const sampleJSON = `[{"client_id":"local.1","auth":{"EVENT_SESSION":7,"LOCAL_USER":5,"application_token":"t"},` +
	`"additional":{"sendAuth":true,"sendRefreshToken":false,"category":"crm"},"query":{"DOMAIN":"p.lan","QUERY_URL":"http://h.lan/x",` +
	`"QUERY_DATA":{"event":"ONCRMDEALADD","event_handler_id":"3","data":{"FIELDS":{"ID":"9"}},"ts":"1700000000"}}}]`

func TestParseJSONAndFormAgree(t *testing.T) {
	fromJSON, err := events.ParseJSON("bx.1", []byte(sampleJSON))
	if err != nil {
		t.Fatal(err)
	}
	var list phpform.Array
	if err := json.Unmarshal([]byte(sampleJSON), &list); err != nil {
		t.Fatal(err)
	}
	root := phpform.NewArray()
	root.Set("QUERY", &list)
	root.Set("client_id", "bx.1") // the portal's common parameters are ignored
	fromForm, err := events.ParseForm("bx.1", phpform.Encode(root))
	if err != nil {
		t.Fatal(err)
	}
	if fromJSON[0].ID != fromForm[0].ID {
		t.Errorf("ids differ: %s vs %s", fromJSON[0].ID, fromForm[0].ID)
	}
	it := fromJSON[0]
	if it.ClientID() != "local.1" || it.UserID() != 5 || !it.Flag("sendAuth") || it.Flag("sendRefreshToken") ||
		it.Event() != "ONCRMDEALADD" || it.URL() != "http://h.lan/x" || it.Category() != "crm" {
		t.Errorf("accessors: %+v", it.Item.Map())
	}
	other, _ := events.ParseJSON("bx.2", []byte(sampleJSON))
	if other[0].ID == it.ID {
		t.Error("two portals' identical items share an id")
	}
}

func TestExplicitIDs(t *testing.T) {
	withID := strings.Replace(sampleJSON, `[{"client_id"`, `[{"id":"m-1","client_id"`, 1)
	a, err := events.ParseJSON("bx.1", []byte(withID))
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(withID, `"ID":"9"`, `"ID":"10"`, 1)
	b, _ := events.ParseJSON("bx.1", []byte(changed))
	if a[0].ID != b[0].ID {
		t.Error("an explicit id does not decide the delivery id")
	}
	if a[0].Item.Get("id") != nil {
		t.Error("the id field stays in the item (it would be delivered)")
	}
}

func TestParseErrors(t *testing.T) {
	for body, want := range map[string]error{
		`[]`:             events.ErrNoItems,
		`{`:              events.ErrBadEncoding,
		`[1]`:            events.ErrBadItem,
		`[{"query":{}}]`: events.ErrBadItem,
		`[{"id":["x"],"query":{"QUERY_URL":"u","QUERY_DATA":{"event":"E"}}}]`: events.ErrBadItem,
	} {
		if _, err := events.ParseJSON("bx.1", []byte(body)); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", body, err, want)
		}
	}
	if _, err := events.ParseForm("bx.1", "a=1"); !errors.Is(err, events.ErrNoItems) {
		t.Errorf("form without QUERY: %v", err)
	}
	if _, err := events.ParseForm("bx.1", "QUERY[0]=%zz"); !errors.Is(err, events.ErrBadEncoding) {
		t.Errorf("bad escape: %v", err)
	}
}

// The parsers take untrusted bodies: they must never panic, and whatever
// they accept must be deliverable and round-trip through a stored batch.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(`{"0":{"query":{"QUERY_URL":"u","QUERY_DATA":{"event":"e"}}}}`))
	f.Add([]byte(`[{"id":"x","client_id":null,"query":{"QUERY_URL":"u","QUERY_DATA":{"event":"e","data":[]}}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := events.ParseJSON("bx.1", body)
		if err != nil {
			return
		}
		checkItems(t, items)
	})
}

func FuzzParseForm(f *testing.F) {
	var list phpform.Array
	json.Unmarshal([]byte(sampleJSON), &list)
	root := phpform.NewArray()
	root.Set("QUERY", &list)
	f.Add(phpform.Encode(root))
	f.Add("QUERY[0][query][QUERY_URL]=u&QUERY[0][query][QUERY_DATA][event]=e&QUERY[0][id]=1")
	f.Add("QUERY[][query][QUERY_URL]=u&QUERY[][query][QUERY_DATA][event]=e")
	f.Fuzz(func(t *testing.T, body string) {
		items, err := events.ParseForm("bx.1", body)
		if err != nil {
			return
		}
		checkItems(t, items)
	})
}

func checkItems(t *testing.T, items []events.Item) {
	if len(items) == 0 || len(items) > events.MaxItems {
		t.Fatalf("accepted %d items", len(items))
	}
	c := events.Commit{Batches: []*events.Batch{{Portal: "bx.1", Items: items}}}
	data := c.Encode()
	dc, err := events.DecodeCommit(data)
	if err != nil {
		t.Fatalf("stored batch does not decode: %v\n%s", err, data)
	}
	back := dc.Batches[0]
	lite, err := events.DecodeCommitLite(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		l := lite[0].Items[i]
		if l.ID != it.ID || l.URL != it.URL() || l.ClientID != it.ClientID() || l.Event != it.Event() || l.ApplicationToken != it.ApplicationToken() {
			t.Fatalf("peeked %+v, item has url %q client %q event %q token %q", l, it.URL(), it.ClientID(), it.Event(), it.ApplicationToken())
		}
	}
	for i, it := range items {
		if it.URL() == "" || it.Event() == "" || it.ID == "" {
			t.Fatalf("accepted an undeliverable item: %+v", it.Item.Map())
		}
		if phpform.Encode(back.Items[i].QueryData()) != phpform.Encode(it.QueryData()) {
			t.Fatalf("QUERY_DATA changed through the store")
		}
	}
}

// The one-pass JSON reader gives exactly what phpform's UnmarshalJSON
// gives, or fails where it fails.
func FuzzJSONMatchesPhpform(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(`{"a":[1,null,true,false,-0.5e+3,"x\u00e9\ud83d\ude00",{"":{}}],"a":"again","b":"\xff"}`))
	f.Add([]byte(`[[[]],{},"\"\\\/\b\f\n\r\t"] `))
	f.Fuzz(func(t *testing.T, body []byte) {
		var want phpform.Array
		werr := json.Unmarshal(body, &want)
		got, gerr := events.DecodeJSONArrayForTest(body)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("phpform err %v, one-pass err %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		if phpform.Encode(&want) != phpform.Encode(got) || strings.Join(want.Keys(), ",") != strings.Join(got.Keys(), ",") {
			t.Fatalf("differ:\n phpform %s\n one-pass %s", phpform.Encode(&want), phpform.Encode(got))
		}
		wj, _ := want.MarshalJSON()
		gj, _ := got.MarshalJSON()
		if string(wj) != string(gj) {
			t.Fatalf("structure differs:\n phpform %s\n one-pass %s", wj, gj)
		}
	})
}
