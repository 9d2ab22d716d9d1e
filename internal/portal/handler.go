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
	h := &Handler{cfg: cfg, svc: svc, clients: clients, registry: registry, relay: relay, log: log}
	h.table = h.methods()
	return h
}

// Register adds the handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
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
		MemberID: f.String("member_id"), Hash: f.String("BX_HASH"), Signed: signedValues(f),
	})
	switch {
	case err == nil:
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
		portal = h.moveHost(r.Context(), portal, cru)
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

// moveHost records the address the portal now calls itself by
// (client_redirect_uri, sent with every call), as the cloud does, so that
// client_endpoint and domain follow a portal that moved. Failures are
// logged; the call goes on with the stored portal.
func (h *Handler) moveHost(ctx context.Context, p oauth.Client, redirectURI string) oauth.Client {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return p
	}
	host := NormalizeHost(u.Host)
	next := u.Scheme + "://" + host
	if next == p.RedirectURI {
		return p
	}
	old := p.RedirectURI
	p.RedirectURI, p.Host = next, host
	if err := h.clients.UpdateClient(ctx, p); err != nil {
		h.log.Warn("portal: record new portal address", "portal", p.ID, "err", err)
		return p
	}
	h.changed(p.ID)
	h.log.Info("portal: address changed", "portal", p.ID, "from", old, "to", next)
	return p
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
