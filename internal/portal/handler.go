// Package portal speaks the portal ↔ OAuth-server protocol in place of
// oauth.bitrix.info, so that an unmodified Bitrix24 box whose OAuth-server
// URL points at authprovider registers itself (/oauth/register/), creates
// local apps (application.*), checks and issues tokens (rest.check,
// rest.authorize, rest.code) and submits events (rest.event.call), which go
// on to eventrelay. It also answers apps' app.info on the same /rest/.
//
// Requests are form bodies as PHP's http_build_query writes them (parsed
// with internal/phpform), answers JSON as \Bitrix\Rest\OAuth\Client reads
// it; errors are Bitrix-shaped (internal/bitrix).
package portal

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/phpform"
	"github.com/isobox/isobox/internal/validator"
)

// Config configures a Handler.
type Config struct {
	// Registration is the /oauth/register/ policy: PolicyAllowlist (default) or PolicyOpen.
	Registration string
	// MaxBody bounds a rest.event.call body (a hit's whole event batch); 0
	// = 8 MiB, the relay's own ingest limit, so that nothing accepted here
	// is refused there.
	MaxBody int64
	// MaxCallBody bounds every other call's body, read before the caller is
	// authenticated; 0 = 64 KiB.
	MaxCallBody int64
}

// Handler serves /oauth/register/ and /rest/{method}.
type Handler struct {
	cfg      Config
	svc      *validator.Service
	clients  Clients
	registry *Registry
	relay    *Relay
	log      *slog.Logger
	table    map[string]methodFunc

	mismatches   atomic.Int64
	mu           sync.Mutex
	lastMismatch map[string]string // portal id → last client_redirect_uri logged
	// OnClientChange, if set, is told when an app or portal changes (the
	// validation caches drop what they hold for it).
	OnClientChange func(id string)
}

// New returns the protocol handler.
func New(cfg Config, svc *validator.Service, clients Clients, registry *Registry, relay *Relay, log *slog.Logger) *Handler {
	if cfg.Registration == "" {
		cfg.Registration = PolicyAllowlist
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 8 << 20
	}
	if cfg.MaxCallBody <= 0 {
		cfg.MaxCallBody = 64 << 10
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, svc: svc, clients: clients, registry: registry, relay: relay, log: log, lastMismatch: map[string]string{}}
	h.table = h.methods()
	return h
}

// Register adds the handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("/oauth/register/challenge/", h.serveChallenge)
	mux.HandleFunc("/oauth/register/", h.serveRegister)
	mux.HandleFunc("/rest/", h.serveREST)
}

// requestBase is scheme://host of the request, for server_endpoint when no
// public URL is configured.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// readForm reads the parameters of a call: the form body of a POST (at most
// limit bytes), the query string otherwise.
func (h *Handler) readForm(w http.ResponseWriter, r *http.Request, limit int64) (*phpform.Array, *bitrix.Error) {
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			return nil, bitrix.BodyError(err)
		}
		raw = string(b)
	}
	return ParseForm(raw)
}

// ParseForm parses a call's form body with PHP's parse_str semantics.
// Malformed input is a 400 INVALID_REQUEST.
func ParseForm(body string) (*phpform.Array, *bitrix.Error) {
	f, err := phpform.Decode(body)
	if err != nil {
		return nil, bitrix.NewError(http.StatusBadRequest, "INVALID_REQUEST", "Malformed request body")
	}
	return f, nil
}

func (h *Handler) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		bitrix.WriteError(w, bitrix.NewError(http.StatusMethodNotAllowed, "INVALID_REQUEST", "Use POST"))
		return
	}
	f, berr := h.readForm(w, r, h.cfg.MaxCallBody)
	if berr != nil {
		bitrix.WriteError(w, berr)
		return
	}
	if t := f.String("type"); t != "B" {
		bitrix.WriteError(w, bitrix.NewError(http.StatusBadRequest, "INVALID_REQUEST", "Only boxed portals (type=B) register here"))
		return
	}
	reg, err := h.registry.Register(r.Context(), h.cfg.Registration, Registration{
		RedirectURI: f.String("redirect_uri"), MemberType: f.String("BX_TYPE"), Licence: f.String("BX_LICENCE"),
		Hash: f.String("BX_HASH"), Signed: signedValues(f), ClientID: f.String("client_id"), ClientSecret: f.String("client_secret"),
		Challenge: signedChallenge(f),
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrRegistered):
		h.log.Warn("portal: registration refused", "err", err, "remote", r.RemoteAddr)
		bitrix.WriteError(w, bitrix.NewError(http.StatusForbidden, "ACCESS_DENIED",
			"This host is already registered; registering it again needs the portal's current credentials, a licence-signed challenge, or `authprovider portal rebind --host HOST` by the isobox administrator"))
		return
	case errors.Is(err, ErrNotAllowed):
		h.log.Warn("portal: registration refused", "err", err, "remote", r.RemoteAddr)
		bitrix.WriteError(w, bitrix.NewError(http.StatusForbidden, "ACCESS_DENIED",
			"This portal is not allowed to register; ask the isobox administrator to run `authprovider portal allow --host HOST`"))
		return
	case errors.Is(err, oauth.ErrInvalidArgument):
		bitrix.WriteError(w, bitrix.NewError(http.StatusBadRequest, "INVALID_REQUEST", "redirect_uri must be http(s)://host of the portal"))
		return
	default:
		h.log.Error("portal: register", "err", err)
		bitrix.WriteError(w, bitrix.NewError(http.StatusServiceUnavailable, "SERVER_ERROR", "Registration failed, try again later"))
		return
	}
	h.log.Info("portal registered", "client_id", reg.Client.ID, "host", reg.Client.Host)
	bitrix.WriteJSON(w, http.StatusOK, struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Host         string `json:"host"`
	}{reg.Client.ID, reg.Secret, reg.Client.Host})
}

// serveChallenge issues a registration challenge (Registry.Challenge) for
// the portal at redirect_uri: {"challenge": "…", "expires_in": seconds}.
func (h *Handler) serveChallenge(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		bitrix.WriteError(w, bitrix.NewError(http.StatusMethodNotAllowed, "INVALID_REQUEST", "Use POST"))
		return
	}
	f, berr := h.readForm(w, r, h.cfg.MaxCallBody)
	if berr != nil {
		bitrix.WriteError(w, berr)
		return
	}
	c, err := h.registry.Challenge(r.Context(), f.String("redirect_uri"))
	switch {
	case err == nil:
	case errors.Is(err, ErrNotAllowed):
		bitrix.WriteError(w, bitrix.NewError(http.StatusForbidden, "ACCESS_DENIED", "No portal registered on this host with a licence key"))
		return
	case errors.Is(err, ErrTooManyChallenges):
		bitrix.WriteError(w, bitrix.NewError(http.StatusTooManyRequests, "OVERLOAD_LIMIT", "Too many open challenges for this host, try again later"))
		return
	case errors.Is(err, oauth.ErrInvalidArgument):
		bitrix.WriteError(w, bitrix.NewError(http.StatusBadRequest, "INVALID_REQUEST", "redirect_uri must be http(s)://host of the portal"))
		return
	default:
		h.log.Error("portal: registration challenge", "err", err)
		bitrix.WriteError(w, bitrix.NewError(http.StatusServiceUnavailable, "SERVER_ERROR", "Try again later"))
		return
	}
	noStore(w)
	bitrix.WriteJSON(w, http.StatusOK, struct {
		Challenge string `json:"challenge"`
		ExpiresIn int64  `json:"expires_in"`
	}{c, int64(ChallengeTTL / time.Second)})
}

// methodFunc serves one /rest/ method for an authenticated portal.
type methodFunc func(ctx context.Context, c *call) (any, error)

// call is one authenticated /rest/ call.
type call struct {
	portal oauth.Client
	form   *phpform.Array
	base   string
}

func (h *Handler) methods() map[string]methodFunc {
	return map[string]methodFunc{
		"rest.check":                       h.restCheck,
		"rest.authorize":                   h.restAuthorize,
		"rest.code":                        h.restCode,
		"rest.event.call":                  h.restEventCall,
		"application.add":                  h.applicationAdd,
		"application.update":               h.applicationUpdate,
		"application.delete":               h.applicationDelete,
		"application.list":                 h.applicationList,
		"application.install":              h.applicationInstall,
		"application.install.subscription": h.applicationInstall,
		"application.uninstall":            h.applicationUninstall,
		"application.usage.add":            h.accept,
		"application.stat":                 h.accept,
	}
}

func (h *Handler) serveREST(w http.ResponseWriter, r *http.Request) {
	// The portal may append "/?bx24_request_id=…" to the method.
	method := strings.ToLower(strings.Trim(strings.TrimPrefix(r.URL.Path, "/rest/"), "/"))
	method = strings.TrimSuffix(method, ".json")
	// Bodies are read before the portal is authenticated (its credentials
	// are in the body), so only the one call that carries event batches may
	// be large.
	limit := h.cfg.MaxCallBody
	if method == "rest.event.call" {
		limit = h.cfg.MaxBody
	}
	f, berr := h.readForm(w, r, limit)
	if berr != nil {
		bitrix.WriteError(w, berr)
		return
	}
	if method == "app.info" {
		h.appInfo(w, r, f)
		return
	}
	fn, ok := h.table[method]
	if !ok {
		bitrix.WriteError(w, bitrix.NewError(http.StatusNotFound, "ERROR_METHOD_NOT_FOUND", "Method not found!"))
		return
	}
	id, sec := f.String("client_id"), f.String("client_secret")
	if id == "" || sec == "" {
		bitrix.WriteError(w, validator.NoAuth())
		return
	}
	portal, err := h.svc.Portals.Verify(r.Context(), id, sec)
	if err != nil {
		if !errors.Is(err, oauth.ErrInvalidClient) && r.Context().Err() == nil {
			h.log.Error("portal: verify portal", "err", err)
		}
		bitrix.WriteError(w, validator.BitrixError(err))
		return
	}
	if cru := f.String("client_redirect_uri"); cru != "" && cru != portal.RedirectURI {
		h.addressMismatch(portal, cru)
	}
	res, err := fn(r.Context(), &call{portal: portal, form: f, base: requestBase(r)})
	if err != nil {
		be := validator.BitrixError(err)
		if be.Status >= 500 && r.Context().Err() == nil { // not a caller that hung up
			h.log.Error("portal: "+method, "portal", portal.ID, "err", err)
		}
		bitrix.WriteError(w, be)
		return
	}
	bitrix.WriteJSON(w, http.StatusOK, struct {
		Result any `json:"result"`
	}{res})
}

// addressMismatch notes a call whose client_redirect_uri is not the
// portal's registered address. The cloud moves the portal; here it is
// ignored, because the portal builds the value from the Host header of the
// hit that made the call, which anyone who can reach the portal chooses
// (finding 2 of issue 11). It is counted, and logged once per portal and
// value so that a portal that really moved is noticed without a log line
// per call; the administrator moves it with `authprovider portal update`.
func (h *Handler) addressMismatch(p oauth.Client, sent string) {
	if u, err := url.Parse(sent); err == nil && u.Host != "" && u.Scheme+"://"+NormalizeHost(u.Host) == p.RedirectURI {
		return // the same address spelled with a default port or upper case
	}
	h.mismatches.Add(1)
	sent = truncate(sent, 200)
	h.mu.Lock()
	if len(h.lastMismatch) > 10_000 {
		clear(h.lastMismatch)
	}
	seen := h.lastMismatch[p.ID] == sent
	h.lastMismatch[p.ID] = sent
	h.mu.Unlock()
	if !seen {
		h.log.Warn("portal: client_redirect_uri differs from the registered address; ignored (move a portal with `authprovider portal update`)",
			"portal", p.ID, "registered", p.RedirectURI, "sent", sent)
	}
}

// AddressMismatches counts calls whose client_redirect_uri was not the
// portal's registered address (isobox_portal_address_mismatch_total).
func (h *Handler) AddressMismatches() int64 { return h.mismatches.Load() }

// noStore marks a response that carries a token or secret as not to be
// stored by any cache (RFC 9111; Pragma for HTTP/1.0 caches).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// signedChallenge returns the registration's challenge if BX_HASH covers
// it (it comes before BX_HASH), else "".
func signedChallenge(f *phpform.Array) string {
	for _, k := range f.Keys() {
		switch k {
		case "BX_HASH":
			return ""
		case "challenge":
			return f.String(k)
		}
	}
	return ""
}

// signedValues are the values BX_HASH covers: every top-level field before
// it, in order (PHP's implode of the request; an array shows as "Array").
func signedValues(f *phpform.Array) []string {
	var out []string
	for _, k := range f.Keys() {
		if k == "BX_HASH" {
			break
		}
		if v, ok := f.Get(k).(string); ok {
			out = append(out, v)
		} else {
			out = append(out, "Array")
		}
	}
	return out
}
