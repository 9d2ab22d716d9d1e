package delivery

import (
	"net/url"
	"strconv"
	"strings"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
	"github.com/isobox/isobox/internal/phpform"
)

// Items are stored in canonical PHP form encoding (phpform.Encode of the
// item). Delivery reads what it needs straight from that text instead of
// decoding the item into an array and encoding the payload again: the
// payload is the item's query[QUERY_DATA][...] pairs with that prefix
// taken off, byte for byte what phpform.Encode(Payload(item, auth)) writes
// (FuzzPayloadFromForm holds the two together).

// Canonical keys (phpform.Encode escapes brackets as %5B and %5D).
const (
	fkClientID  = "client_id"
	fkAuth      = "auth%5B"
	fkSendAuth  = "additional%5BsendAuth%5D"
	fkSendRefr  = "additional%5BsendRefreshToken%5D"
	fkDomain    = "query%5BDOMAIN%5D"
	fkURL       = "query%5BQUERY_URL%5D"
	fkEvent     = "query%5BQUERY_DATA%5D%5Bevent%5D"
	fkQueryData = "query%5BQUERY_DATA%5D%5B"
	fkClose     = "%5D"
)

// view is what delivery needs of an item.
type view struct {
	clientID, appToken, url, domain, event, localUser string
	sendAuth, sendRefresh                             bool
	params                                            map[string]string // auth[...] besides LOCAL_USER, application_token
}

func unescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s // not in canonical output
	}
	return u
}

func truthy(v string) bool { return v != "" && v != "0" }

// viewOf reads an item's routing and auth fields from its stored form.
func viewOf(form string) view {
	v := view{params: map[string]string{}}
	for pair := range strings.SplitSeq(form, "&") {
		k, val, _ := strings.Cut(pair, "=")
		switch k {
		case fkClientID:
			v.clientID = unescape(val)
		case fkSendAuth:
			v.sendAuth = truthy(unescape(val))
		case fkSendRefr:
			v.sendRefresh = truthy(unescape(val))
		case fkDomain:
			v.domain = unescape(val)
		case fkURL:
			v.url = unescape(val)
		case fkEvent:
			v.event = strings.ToUpper(unescape(val))
		default:
			// auth[K]=v, not nested deeper.
			rest, ok := strings.CutPrefix(k, fkAuth)
			if !ok {
				continue
			}
			name, tail, ok := strings.Cut(rest, fkClose)
			if !ok || tail != "" {
				continue
			}
			switch name = unescape(name); name {
			case "application_token":
				v.appToken = unescape(val)
			case "LOCAL_USER":
				v.localUser = unescape(val)
			default:
				v.params[name] = unescape(val)
			}
		}
	}
	return v
}

// authRequestOf is the EventAuth.Build request for an item.
func authRequestOf(portal string, v view) *tokenv1.BuildEventAuthRequest {
	user, _ := strconv.ParseInt(v.localUser, 10, 64)
	return &tokenv1.BuildEventAuthRequest{
		ClientId: v.clientID, UserId: user, SendAuth: v.sendAuth, SendRefreshToken: v.sendRefresh,
		ApplicationToken: v.appToken, Domain: v.domain, PortalClientId: portal, Parameters: v.params, Event: v.event,
	}
}

// payloadBody is the delivery body: the item's QUERY_DATA (without any
// auth it carried) then auth[...] in the given order.
func payloadBody(form string, auth []*tokenv1.Field) []byte {
	b := make([]byte, 0, len(form)+512)
	for pair := range strings.SplitSeq(form, "&") {
		rest, ok := strings.CutPrefix(pair, fkQueryData)
		if !ok {
			continue
		}
		name, tail, ok := strings.Cut(rest, fkClose)
		if !ok || name == "auth" {
			continue
		}
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, name...)
		b = append(b, tail...)
	}
	a := phpform.NewArray()
	for _, f := range auth {
		a.Set(f.GetKey(), f.GetValue())
	}
	root := phpform.NewArray()
	root.Set("auth", a)
	if enc := phpform.Encode(root); enc != "" {
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, enc...)
	}
	return b
}
