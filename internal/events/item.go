// Package events is where an event is ACCEPTED: the /v1/events ingest
// endpoint that takes the portal's event provider items (JSON or PHP form
// encoding), authenticates the caller, and stores each call's items as one
// JetStream message before answering. Delivery to handlers lives in
// internal/delivery.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/isobox/isobox/internal/phpform"
)

// MaxItems bounds the items of one ingest call.
const MaxItems = 5000

// maxIDLen bounds a caller-chosen item id.
const maxIDLen = 200

// Errors returned by the parsers; each names what is wrong with the input.
var (
	ErrNoItems     = errors.New("events: no items")
	ErrTooMany     = errors.New("events: too many items")
	ErrBadItem     = errors.New("events: malformed item")
	ErrBadEncoding = errors.New("events: malformed body")
)

// Item is one event provider queue item (bitrix-wire.md §2.2), with its
// delivery id. The item is kept as the ordered PHP array the portal sent,
// so QUERY_DATA is delivered with its keys in the portal's order.
type Item struct {
	// ID is the delivery id: stable for the same item from the same portal
	// (the caller's "id" when it sent one, else a hash of the item), so a
	// repeated hand-off is recognised and delivered once.
	ID string
	// Item is the queue item: client_id, auth, additional, query.
	Item *phpform.Array
	// ownID is set when the caller sent the item's "id".
	ownID bool
	// form caches phpform.Encode(Item): items are stored in PHP form
	// encoding, which is ASCII and keeps every byte and the key order (a
	// JSON string would replace bytes that are not UTF-8, as a
	// windows-1251 portal may send).
	form string
}

// Form returns the item in PHP form encoding (as stored).
func (it Item) Form() string {
	if it.form != "" {
		return it.form
	}
	return phpform.Encode(it.Item)
}

// ItemFromForm rebuilds an item from its id and stored form.
func ItemFromForm(id, form string) (Item, error) {
	a, err := phpform.Decode(form)
	if err != nil {
		return Item{}, fmt.Errorf("events: stored item %s: %w", id, err)
	}
	return Item{ID: id, Item: a, form: form}, nil
}

// ClientID is the app's client_id, "" for an outgoing webhook.
func (it Item) ClientID() string { return it.Item.String("client_id") }

// URL is the handler URL (query.QUERY_URL).
func (it Item) URL() string { return it.Item.Array("query").String("QUERY_URL") }

// Domain is the portal host as the portal saw it (query.DOMAIN).
func (it Item) Domain() string { return it.Item.Array("query").String("DOMAIN") }

// QueryData is query.QUERY_DATA: event, event_handler_id, data, ts.
func (it Item) QueryData() *phpform.Array { return it.Item.Array("query").Array("QUERY_DATA") }

// Event is the uppercase event name.
func (it Item) Event() string { return strings.ToUpper(it.QueryData().String("event")) }

// Auth is the item's auth block: EVENT_SESSION, LOCAL_USER, application_token.
func (it Item) Auth() *phpform.Array { return it.Item.Array("auth") }

// ApplicationToken is auth.application_token.
func (it Item) ApplicationToken() string { return it.Auth().String("application_token") }

// UserID is auth.LOCAL_USER, 0 when absent or not a number.
func (it Item) UserID() int64 {
	n, _ := strconv.ParseInt(it.Auth().String("LOCAL_USER"), 10, 64)
	return n
}

// Flag reports additional.<name> as PHP truthiness of its form value.
func (it Item) Flag(name string) bool {
	v := it.Item.Array("additional").String(name)
	return v != "" && v != "0"
}

// Category is additional.category ("default" when absent).
func (it Item) Category() string {
	if c := it.Item.Array("additional").String("category"); c != "" {
		return c
	}
	return "default"
}

// validate checks that the item can be delivered.
func (it Item) validate() error {
	q := it.Item.Array("query")
	if q == nil {
		return fmt.Errorf("%w: no query", ErrBadItem)
	}
	if q.String("QUERY_URL") == "" {
		return fmt.Errorf("%w: no query.QUERY_URL", ErrBadItem)
	}
	qd := q.Array("QUERY_DATA")
	if qd == nil || qd.String("event") == "" {
		return fmt.Errorf("%w: no query.QUERY_DATA.event", ErrBadItem)
	}
	if it.Item.Get("client_id") != nil && it.ClientID() == "" {
		if _, isArr := it.Item.Get("client_id").(*phpform.Array); isArr {
			return fmt.Errorf("%w: client_id is not a string", ErrBadItem)
		}
	}
	return nil
}

// ParseJSON parses a JSON list of items (the module's json_encode of
// $queryData; an object {"0": item, ...} is accepted too) for portal.
func ParseJSON(portal string, body []byte) ([]Item, error) {
	root, err := decodeJSONArray(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEncoding, err)
	}
	return fromList(portal, root)
}

// ParseForm parses a PHP form body as the portal posts it to
// rest.event.call: QUERY[0][client_id]=...&QUERY[0][query][...]=... Other
// top-level fields (the portal's common parameters) are ignored.
func ParseForm(portal string, body string) ([]Item, error) {
	root, err := phpform.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEncoding, err)
	}
	q := root.Array("QUERY")
	if q == nil {
		return nil, ErrNoItems
	}
	return fromList(portal, q)
}

func fromList(portal string, list *phpform.Array) ([]Item, error) {
	if list.Len() == 0 {
		return nil, ErrNoItems
	}
	if list.Len() > MaxItems {
		return nil, ErrTooMany
	}
	items := make([]Item, 0, list.Len())
	for i, v := range list.List() {
		a, ok := v.(*phpform.Array)
		if !ok {
			return nil, fmt.Errorf("%w: item %d is not an array", ErrBadItem, i)
		}
		it, err := newItem(portal, a)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		items = append(items, it)
	}
	return items, nil
}

// newItem takes the caller's "id" out of a and derives the delivery id.
// The item is normalised to what PHP's parse_str makes of its
// http_build_query encoding (what the cloud queue did with every item, and
// what the handler parses), so that JSON and form hand-offs of the same
// item are one item and the stored form is exactly what is delivered.
func newItem(portal string, a *phpform.Array) (Item, error) {
	if !plainKeys(a, true) {
		var err error
		if a, err = phpform.Decode(phpform.Encode(a)); err != nil {
			return Item{}, fmt.Errorf("%w: %v", ErrBadItem, err)
		}
	}
	given := ""
	if v := a.Get("id"); v != nil {
		s, ok := v.(string)
		if !ok || s == "" || len(s) > maxIDLen {
			return Item{}, fmt.Errorf("%w: id must be a string of 1-%d bytes", ErrBadItem, maxIDLen)
		}
		given = s
		a.Delete("id")
	}
	it := Item{Item: a, ownID: given != ""}
	if err := it.validate(); err != nil {
		return Item{}, err
	}
	it.form = phpform.Encode(a)
	it.ID = deliveryID(portal, given, it.form)
	return it, nil
}

// plainKeys reports whether parse_str(http_build_query(a)) gives a back
// unchanged, as it does for every key Bitrix itself uses: no empty keys,
// no brackets, and (for top-level names) no spaces or dots.
func plainKeys(a *phpform.Array, top bool) bool {
	for _, k := range a.Keys() {
		if k == "" || strings.ContainsAny(k, "[]") || (top && strings.ContainsAny(k, " .")) {
			return false
		}
		if sub, ok := a.Get(k).(*phpform.Array); ok && (sub.Len() == 0 || !plainKeys(sub, false)) {
			return false
		}
	}
	return true
}

// DeliveryID derives the delivery id of an item: a hash of the portal and
// the caller's id, or of the portal and the item's form encoding when the
// caller sent none. Hashing the portal in keeps two portals' ids apart.
// (The ingest gives an item without an id the id "<Idempotency-Key>:<index>"
// when the call has that header; see KeyIDs.)
func DeliveryID(portal, given string, a *phpform.Array) string {
	return deliveryID(portal, given, phpform.Encode(a))
}

func deliveryID(portal, given, form string) string {
	h := sha256.New()
	h.Write([]byte(portal))
	h.Write([]byte{0})
	if given != "" {
		h.Write([]byte("id:"))
		h.Write([]byte(given))
	} else {
		h.Write([]byte("item:"))
		h.Write([]byte(form))
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// KeyIDs gives each item that came without its own "id" the id
// "<key>:<index>" (index in the call), key being the call's
// Idempotency-Key. Two calls with content-identical items (the same event
// fired twice in the same second) are then distinct events, while the same
// call sent again (a retry reuses its key) is still recognised. Without a
// key the content hash stays: it is all there is to recognise a repeat.
func KeyIDs(portal, key string, items []Item) {
	if key == "" {
		return
	}
	for i := range items {
		if !items[i].ownID {
			items[i].ID = deliveryID(portal, key+":"+strconv.Itoa(i), "")
		}
	}
}
