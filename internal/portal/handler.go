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
	"bytes"
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

	"golang.org/x/sync/semaphore"

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
	// authenticated; 0 = 64 KiB. It is also how much of a rest.event.call
	// body is read before its credentials are looked for.
	MaxCallBody int64
	// UnauthBudget bounds the bytes of rest.event.call bodies held, across
	// all calls at once, while their credentials are not yet known: the
	// portal sends them after the event items, so the body must be read to
	// its end first. 0 or less than MaxBody = 2 × MaxBody.
	UnauthBudget int64
	// UnauthWait bounds how long such a call waits for room in the budget
	// before it is answered 503 QUERY_LIMIT_EXCEEDED; 0 = 5s.
	UnauthWait time.Duration
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
	unauth   *semaphore.Weighted

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
	if cfg.UnauthBudget < cfg.MaxBody {
		cfg.UnauthBudget = 2 * cfg.MaxBody
	}
	if cfg.UnauthWait <= 0 {
		cfg.UnauthWait = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, svc: svc, clients: clients, registry: registry, relay: relay, log: log, lastMismatch: map[string]string{},
		unauth: semaphore.NewWeighted(cfg.UnauthBudget)}
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
		b, err := readBody(w, r, limit)
		if err != nil {
			return nil, bitrix.BodyError(err)
		}
		raw = string(b)
	}
	return ParseForm(raw)
}

// readBody reads a request body of at most limit bytes: into one buffer
// of its length when the length is announced (the portal's calls), else
// growing as io.ReadAll does.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		// net/http ends the body after ContentLength bytes.
		b := make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(body)
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
	noStore(w) // the answer carries the portal's secret
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
	noStore(w)
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
	noStore(w) // answers carry tokens, codes and app secrets
	// The portal may append "/?bx24_request_id=…" to the method.
	method := strings.ToLower(strings.Trim(strings.TrimPrefix(r.URL.Path, "/rest/"), "/"))
	method = strings.TrimSuffix(method, ".json")
	if method == "rest.event.call" {
		f, portal, berr := h.readEventCall(w, r)
		if berr != nil {
			// Refused before the body was read to its end: close it, so that
			// the server neither reads on nor keeps the connection (a wrapped
			// body would otherwise be drained before the answer is sent).
			r.Body.Close()
			bitrix.WriteError(w, berr)
			return
		}
		h.serveMethod(w, r, method, h.restEventCall, portal, f)
		return
	}
	// Other calls are small: read (at most MaxCallBody) before the portal
	// is authenticated, its credentials being in the body.
	f, berr := h.readForm(w, r, h.cfg.MaxCallBody)
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
	portal, berr := h.verify(r.Context(), f.String("client_id"), f.String("client_secret"))
	if berr != nil {
		bitrix.WriteError(w, berr)
		return
	}
	h.serveMethod(w, r, method, fn, portal, f)
}

// verify authenticates a portal by its client_id and client_secret.
func (h *Handler) verify(ctx context.Context, id, sec string) (oauth.Client, *bitrix.Error) {
	if id == "" || sec == "" {
		return oauth.Client{}, validator.NoAuth()
	}
	portal, err := h.svc.Portals.Verify(ctx, id, sec)
	if err != nil {
		if !errors.Is(err, oauth.ErrInvalidClient) && ctx.Err() == nil {
			h.log.Error("portal: verify portal", "err", err)
		}
		return oauth.Client{}, validator.BitrixError(err)
	}
	return portal, nil
}

var errBusy = bitrix.NewError(http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED", "Too many large calls at once, try again later")

// readEventCall reads a rest.event.call body (up to MaxBody) and
// authenticates the portal without holding much of an unauthenticated
// body: credentials in the query string or the first MaxCallBody bytes are
// checked before the rest is read; otherwise (the portal sends them last)
// the body is read within the shared UnauthBudget and the credentials are
// taken from its last MaxCallBody bytes before anything else is parsed.
// Either way the parsed form must carry the same credentials (PHP's last
// value wins).
func (h *Handler) readEventCall(w http.ResponseWriter, r *http.Request) (*phpform.Array, oauth.Client, *bitrix.Error) {
	ctx := r.Context()
	if r.ContentLength > h.cfg.MaxBody {
		return nil, oauth.Client{}, bitrix.BodyError(&http.MaxBytesError{Limit: h.cfg.MaxBody})
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	var buf bytes.Buffer
	_, err := io.CopyN(&buf, body, h.cfg.MaxCallBody)
	if err != nil && err != io.EOF {
		return nil, oauth.Client{}, bitrix.BodyError(err)
	}
	complete := err == io.EOF
	q := r.URL.Query()
	id, sec := q.Get("client_id"), q.Get("client_secret")
	fromQuery := id != "" && sec != ""
	if !fromQuery {
		id, sec = credentials(buf.Bytes(), complete, false)
	}
	var portal oauth.Client
	var berr *bitrix.Error
	switch {
	case complete:
	case id != "" && sec != "":
		if portal, berr = h.verify(ctx, id, sec); berr != nil {
			return nil, oauth.Client{}, berr
		}
		if _, err := io.Copy(&buf, body); err != nil {
			return nil, oauth.Client{}, bitrix.BodyError(err)
		}
	default:
		if berr := h.readUnauthenticated(ctx, &buf, body, r.ContentLength); berr != nil {
			return nil, oauth.Client{}, berr
		}
		id, sec = credentials(buf.Bytes(), true, true)
		if portal, berr = h.verify(ctx, id, sec); berr != nil {
			return nil, oauth.Client{}, berr
		}
	}
	f, berr := ParseForm(buf.String())
	if berr != nil {
		return nil, oauth.Client{}, berr
	}
	switch {
	case portal.ID == "": // a small body: authenticated as any other call
		if fromQuery && f.String("client_id") == "" {
			f.Set("client_id", id)
			f.Set("client_secret", sec)
		}
		if portal, berr = h.verify(ctx, f.String("client_id"), f.String("client_secret")); berr != nil {
			return nil, oauth.Client{}, berr
		}
	case fromQuery && f.Get("client_id") == nil && f.Get("client_secret") == nil:
	case f.String("client_id") != id || f.String("client_secret") != sec:
		// A later pair replaced the credentials that were checked.
		return nil, oauth.Client{}, validator.BitrixError(oauth.ErrInvalidClient)
	}
	return f, portal, nil
}

// readUnauthenticated reads the rest of body into buf, holding room in
// the unauthenticated budget for what it reads; the room is given back
// when it returns (the caller authenticates at once).
func (h *Handler) readUnauthenticated(ctx context.Context, buf *bytes.Buffer, body io.Reader, contentLength int64) *bitrix.Error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.UnauthWait)
	defer cancel()
	var held int64
	defer func() { h.unauth.Release(held) }()
	if rest := contentLength - int64(buf.Len()); contentLength > 0 && rest > 0 && contentLength <= h.cfg.MaxBody {
		// Known length: take room for all of it at once, so that a body
		// waits whole rather than holding part of the budget.
		if h.unauth.Acquire(ctx, rest) != nil {
			return errBusy
		}
		held = rest
		buf.Grow(int(rest))
		if _, err := io.Copy(buf, body); err != nil {
			return bitrix.BodyError(err)
		}
		return nil
	}
	const chunk = 64 << 10
	for {
		if h.unauth.Acquire(ctx, chunk) != nil {
			return errBusy
		}
		held += chunk
		n, err := io.CopyN(buf, body, chunk)
		if err == io.EOF || (err == nil && n < chunk) {
			return nil
		}
		if err != nil {
			return bitrix.BodyError(err)
		}
	}
}

// credentials finds the portal's client_id and client_secret among the
// complete name=value pairs of a form body's first MaxCallBody bytes
// (tail false) or last (tail true). complete: b is the whole body.
func credentials(b []byte, complete, tail bool) (id, secret string) {
	const window = 64 << 10
	switch {
	case tail && len(b) > window:
		b = b[len(b)-window:]
		if i := bytes.IndexByte(b, '&'); i >= 0 {
			b = b[i+1:]
		} else {
			return "", ""
		}
	case !complete:
		i := bytes.LastIndexByte(b, '&')
		if i < 0 {
			return "", ""
		}
		b = b[:i]
	}
	f, err := phpform.Decode(string(b))
	if err != nil {
		return "", ""
	}
	return f.String("client_id"), f.String("client_secret")
}

// serveMethod runs an authenticated call and writes its answer.
func (h *Handler) serveMethod(w http.ResponseWriter, r *http.Request, method string, fn methodFunc, portal oauth.Client, f *phpform.Array) {
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
	if ra, ok := res.(resultAppender); ok {
		writeResult(w, ra)
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
