package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/bitrix"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/phpform"
	"github.com/isobox/isobox/internal/validator"
)

// argError is Bitrix's answer to a missing required argument.
func argError(name string) *bitrix.Error {
	return bitrix.NewError(http.StatusBadRequest, "ERROR_ARGUMENT", fmt.Sprintf("Argument '%s' is null or empty", name))
}

var errAppNotFound = bitrix.NewError(http.StatusNotFound, "APPLICATION_NOT_FOUND", "Application not found")

// flatParams turns PARAMS[...] into token parameters. EVENT_SESSION may
// arrive as an array from old portals; its TTL is what counts (as the
// cloud normalises it). Other nested values are dropped: token parameters
// are flat strings.
func flatParams(a *phpform.Array) map[string]string {
	p := map[string]string{}
	if a == nil {
		return p
	}
	for _, k := range a.Keys() {
		switch v := a.Get(k).(type) {
		case string:
			p[k] = v
		case *phpform.Array:
			if k == "EVENT_SESSION" {
				p[k] = v.String("TTL")
			}
		}
	}
	return p
}

// scopeOf reads a scope argument: "crm,user" or SCOPE[]=crm&SCOPE[]=user.
func scopeOf(f *phpform.Array, key string) []string {
	if a := f.Array(key); a != nil {
		var out []string
		for _, v := range a.List() {
			if s, ok := v.(string); ok {
				out = append(out, oauth.SplitScope(s)...)
			}
		}
		return out
	}
	return oauth.SplitScope(f.String(key))
}

// checkResult is rest.check's result, in the cloud's field order.
type checkResult struct {
	AccessToken string            `json:"access_token"`
	ExpiresIn   int64             `json:"expires_in"`
	Expires     int64             `json:"expires"`
	Scope       string            `json:"scope"`
	ClientID    string            `json:"client_id"`
	UserID      int64             `json:"user_id"`
	Parameters  map[string]string `json:"parameters"`
	Status      string            `json:"status"`
}

func (h *Handler) restCheck(ctx context.Context, c *call) (any, error) {
	token := c.form.String("TOKEN")
	if token == "" {
		return nil, argError("TOKEN")
	}
	info, err := h.svc.Check(ctx, c.portal, token, "")
	if err != nil {
		return nil, err
	}
	params := info.Params
	if params == nil {
		params = map[string]string{}
	}
	return checkResult{
		AccessToken: token, ExpiresIn: max(0, int64(info.Expires.Sub(h.svc.Now())/time.Second)), Expires: info.Expires.Unix(),
		Scope: strings.Join(info.Scope, ","), ClientID: info.ClientID, UserID: info.UserID,
		Parameters: params, Status: info.Status,
	}, nil
}

// userOf reads the portal user a token is for: PARAMS[LOCAL_USER].
func userOf(params map[string]string) (int64, error) {
	s := params["LOCAL_USER"]
	if s == "" {
		return 0, argError("PARAMS[LOCAL_USER]")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, bitrix.NewError(http.StatusBadRequest, "ERROR_ARGUMENT", "PARAMS[LOCAL_USER] must be a positive user id")
	}
	return n, nil
}

// authorizeResult is rest.authorize's result: the cloud removes user_id;
// the portal adds user_id and client_id itself.
type authorizeResult struct {
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token"`
	Expires        int64  `json:"expires"`
	ExpiresIn      int64  `json:"expires_in"`
	Scope          string `json:"scope"`
	Domain         string `json:"domain"`
	ServerEndpoint string `json:"server_endpoint"`
	Status         string `json:"status"`
	ClientEndpoint string `json:"client_endpoint"`
	MemberID       string `json:"member_id"`
}

// appUser reads what rest.authorize and rest.code share: the app
// (CLIENT_ID) and the token parameters (PARAMS[...]) with the user in
// PARAMS[LOCAL_USER].
func appUser(c *call) (appID string, params map[string]string, user int64, err error) {
	appID = c.form.String("CLIENT_ID")
	if appID == "" {
		return "", nil, 0, argError("CLIENT_ID")
	}
	params = flatParams(c.form.Array("PARAMS"))
	user, err = userOf(params)
	return appID, params, user, err
}

// restAuthorize issues a token pair for a user of the portal. Like the
// cloud, the token carries the app's whole scope (SCOPE is what the portal
// believes the app has; the server's record decides).
func (h *Handler) restAuthorize(ctx context.Context, c *call) (any, error) {
	appID, params, user, err := appUser(c)
	if err != nil {
		return nil, err
	}
	m, err := h.svc.Mint(ctx, c.portal, appID, user, nil, params, c.base, true)
	if err != nil {
		return nil, err
	}
	return authorizeResult{m.AccessToken, m.RefreshToken, m.Expires, m.ExpiresIn, m.Scope, m.Domain, m.ServerEndpoint, m.Status, m.ClientEndpoint, m.MemberID}, nil
}

type codeResult struct {
	Code        string `json:"code"`
	Domain      string `json:"domain"`
	State       string `json:"state,omitempty"`
	MemberID    string `json:"member_id"`
	Scope       string `json:"scope"`
	RedirectURI string `json:"redirect_uri"`
}

func (h *Handler) restCode(ctx context.Context, c *call) (any, error) {
	appID, params, user, err := appUser(c)
	if err != nil {
		return nil, err
	}
	m, err := h.svc.MintCode(ctx, c.portal, appID, user, c.form.String("STATE"), params, c.base)
	if err != nil {
		return nil, err
	}
	return codeResult{m.Code, m.Domain, m.State, m.MemberID, m.Scope, m.RedirectURI}, nil
}

// restEventCall hands the hit's queue items to eventrelay: the QUERY[...]
// part of the body, re-encoded as http_build_query writes it (never the
// portal's credentials). The answer means "stored" (by the relay or in
// the outbox).
func (h *Handler) restEventCall(ctx context.Context, c *call) (any, error) {
	q := c.form.Array("QUERY")
	if q == nil || q.Len() == 0 {
		return nil, argError("QUERY")
	}
	q, refused, err := h.installedOnly(ctx, c.portal.ID, q)
	if err != nil {
		return nil, err
	}
	if q.Len() == 0 {
		return nil, bitrix.NewError(http.StatusUnprocessableEntity, "NOT_INSTALLED", "Application not installed: "+refused)
	}
	body := phpform.NewArray()
	body.Set("QUERY", q)
	// Once received, the batch is stored even if the portal hangs up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := h.relay.Submit(ctx, c.portal.ID, phpform.Encode(body)); err != nil {
		if errors.Is(err, errPermanent) {
			return nil, bitrix.NewError(http.StatusBadRequest, "INVALID_REQUEST", "The event relay refused the items")
		}
		return nil, err
	}
	if refused != "" {
		// The portal ignores the answer; the other items went on.
		return nil, bitrix.NewError(http.StatusUnprocessableEntity, "NOT_INSTALLED", "Application not installed: "+refused)
	}
	return true, nil
}

// installedOnly drops the items of q that are events for an app not
// installed on portal (issue 11, finding 4), so the relay neither stores
// them nor refuses the whole batch for them: the portal ignores
// rest.event.call's answer, and its other events in the same hit must
// still go. Each distinct app is looked up once per call. refused names
// the first dropped app ("" when none was).
func (h *Handler) installedOnly(ctx context.Context, portal string, q *phpform.Array) (*phpform.Array, string, error) {
	type app struct {
		id        string
		uninstall bool
	}
	allowed := map[app]bool{}
	out := phpform.NewArray()
	refused := ""
	for _, k := range q.Keys() {
		it := q.Array(k)
		id := ""
		if it != nil {
			id = it.String("client_id")
		}
		if id != "" {
			a := app{id, strings.EqualFold(it.Array("query").Array("QUERY_DATA").String("event"), "ONAPPUNINSTALL")}
			ok, seen := allowed[a]
			if !seen {
				var err error
				if ok, err = h.svc.AppAllowed(ctx, portal, a.id, a.uninstall); err != nil {
					return nil, "", err
				}
				allowed[a] = ok
				if !ok {
					h.log.Warn("portal: rest.event.call: dropped events for an app not installed on the portal", "portal", portal, "client_id", a.id)
				}
			}
			if !ok {
				if refused == "" {
					refused = a.id
				}
				continue
			}
		}
		out.Set(k, q.Get(k))
	}
	return out, refused, nil
}

func (h *Handler) accept(context.Context, *call) (any, error) { return true, nil }

// validRedirect accepts "" or an absolute http(s) URL.
func validRedirect(s string) bool {
	if s == "" {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https")
}

type addResult struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RedirectURI  string `json:"redirect_uri"`
	Scope        string `json:"scope"`
}

// applicationAdd creates a local app owned by the portal: "local." +
// uniqid client_id and a 50-character secret.
func (h *Handler) applicationAdd(ctx context.Context, c *call) (any, error) {
	title := strings.TrimSpace(c.form.String("TITLE"))
	if title == "" {
		return nil, argError("TITLE")
	}
	redirect := strings.TrimSpace(c.form.String("REDIRECT_URI"))
	if !validRedirect(redirect) {
		return nil, bitrix.NewError(http.StatusBadRequest, "ERROR_ARGUMENT", "Wrong redirect_uri value")
	}
	app, sec, err := h.clients.CreateClient(ctx, oauth.Client{
		Kind: oauth.KindApp, Name: truncate(title, 255), RedirectURI: redirect, Scope: scopeOf(c.form, "SCOPE"),
		Status: "L", Portal: c.portal.ID,
	})
	if errors.Is(err, oauth.ErrInvalidArgument) {
		return nil, bitrix.NewError(http.StatusBadRequest, "ERROR_ARGUMENT", "Wrong application fields")
	}
	if err != nil {
		return nil, err
	}
	h.log.Info("portal: app added", "portal", c.portal.ID, "client_id", app.ID)
	return addResult{app.ID, sec, app.RedirectURI, strings.Join(app.Scope, ",")}, nil
}

// ownApp returns the app CLIENT_ID if the portal owns it.
func (h *Handler) ownApp(ctx context.Context, c *call) (oauth.Client, error) {
	id := c.form.String("CLIENT_ID")
	if id == "" {
		return oauth.Client{}, argError("CLIENT_ID")
	}
	app, err := h.clients.GetClient(ctx, id)
	if errors.Is(err, oauth.ErrNotFound) || (err == nil && (app.Kind != oauth.KindApp || app.Portal != c.portal.ID)) {
		return oauth.Client{}, errAppNotFound
	}
	return app, err
}

func (h *Handler) changed(id string) {
	if h.OnClientChange != nil {
		h.OnClientChange(id)
	}
}

func (h *Handler) applicationUpdate(ctx context.Context, c *call) (any, error) {
	app, err := h.ownApp(ctx, c)
	if err != nil {
		return nil, err
	}
	if c.form.Get("TITLE") != nil {
		if t := strings.TrimSpace(c.form.String("TITLE")); t != "" {
			app.Name = truncate(t, 255)
		}
	}
	if c.form.Get("REDIRECT_URI") != nil {
		r := strings.TrimSpace(c.form.String("REDIRECT_URI"))
		if !validRedirect(r) {
			return nil, bitrix.NewError(http.StatusBadRequest, "ERROR_ARGUMENT", "Wrong redirect_uri value")
		}
		app.RedirectURI = r
	}
	if c.form.Get("SCOPE") != nil {
		app.Scope = scopeOf(c.form, "SCOPE")
	}
	if err := h.clients.UpdateClient(ctx, app); err != nil {
		if errors.Is(err, oauth.ErrInvalidArgument) {
			return nil, bitrix.NewError(http.StatusBadRequest, "ERROR_ARGUMENT", "Wrong application fields")
		}
		return nil, err
	}
	h.changed(app.ID)
	return true, nil
}

func (h *Handler) applicationDelete(ctx context.Context, c *call) (any, error) {
	app, err := h.ownApp(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := h.clients.DeleteClient(ctx, app.ID); err != nil && !errors.Is(err, oauth.ErrNotFound) {
		return nil, err
	}
	h.changed(app.ID)
	h.log.Info("portal: app deleted", "portal", c.portal.ID, "client_id", app.ID)
	return true, nil
}

type listEntry struct {
	Code     string `json:"code"`
	ClientID string `json:"client_id"`
	Version  int    `json:"version"`
	Scope    string `json:"scope"`
	Status   string `json:"status"`
	Active   bool   `json:"active"`
}

// applicationList lists the portal's non-local installs (Market-style
// apps an administrator created with another status), as the cloud does.
func (h *Handler) applicationList(ctx context.Context, c *call) (any, error) {
	apps, err := h.clients.ListClients(ctx, oauth.KindApp, c.portal.ID)
	if err != nil {
		return nil, err
	}
	out := []listEntry{}
	for _, a := range apps {
		if a.Status == "L" {
			continue
		}
		out = append(out, listEntry{Code: a.Name, ClientID: a.ID, Version: 1, Scope: strings.Join(a.Scope, ","), Status: a.Status, Active: a.Active})
	}
	return out, nil
}

// applicationInstall marks a known app installed (active) for the portal.
// Nothing can be fetched from a marketplace offline: unknown apps are 404.
func (h *Handler) applicationInstall(ctx context.Context, c *call) (any, error) {
	id := c.form.String("CLIENT_ID")
	if id == "" {
		return nil, argError("CLIENT_ID")
	}
	app, err := h.clients.GetClient(ctx, id)
	if errors.Is(err, oauth.ErrNotFound) || (err == nil && (app.Kind != oauth.KindApp || (app.Portal != "" && app.Portal != c.portal.ID))) {
		return nil, errAppNotFound
	}
	if err != nil {
		return nil, err
	}
	if !app.Active && app.Portal == c.portal.ID {
		app.Active = true
		if err := h.clients.UpdateClient(ctx, app); err != nil {
			return nil, err
		}
		h.changed(app.ID)
	}
	return true, nil
}

// applicationUninstall deactivates an app the portal owns and revokes its
// tokens; an administrator's shared app is left alone (other portals may use it).
func (h *Handler) applicationUninstall(ctx context.Context, c *call) (any, error) {
	id := c.form.String("CLIENT_ID")
	if id == "" {
		return nil, argError("CLIENT_ID")
	}
	app, err := h.clients.GetClient(ctx, id)
	if errors.Is(err, oauth.ErrNotFound) || (err == nil && (app.Kind != oauth.KindApp || (app.Portal != "" && app.Portal != c.portal.ID))) {
		return nil, errAppNotFound
	}
	if err != nil {
		return nil, err
	}
	if app.Portal == c.portal.ID && app.Active {
		app.Active = false
		if err := h.clients.UpdateClient(ctx, app); err != nil {
			return nil, err
		}
		if _, err := h.clients.RevokeTokens(ctx, app.ID, 0); err != nil {
			return nil, err
		}
		h.changed(app.ID)
	}
	return true, nil
}

// appInfoInstall is app.info's install block (OAS Rest::appInfo).
type appInfoInstall struct {
	Installed      bool   `json:"installed"`
	Version        int    `json:"version"`
	Status         string `json:"status"`
	Scope          string `json:"scope"`
	Domain         string `json:"domain"`
	URI            string `json:"uri"`
	ClientEndpoint string `json:"client_endpoint"`
	MemberID       string `json:"member_id"`
	MemberType     string `json:"member_type"`
}

type appInfoResult struct {
	ClientID string         `json:"client_id"`
	Scope    string         `json:"scope"`
	Expires  string         `json:"expires"`
	Install  appInfoInstall `json:"install"`
}

// appInfo answers an app's trusted app.info on the OAuth server
// (auth=<access_token>, access_token=, or Authorization: Bearer).
func (h *Handler) appInfo(w http.ResponseWriter, r *http.Request, f *phpform.Array) {
	token := ""
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		token = strings.TrimSpace(a[7:])
	}
	if token == "" {
		token = f.String("auth")
	}
	if token == "" {
		token = f.String("access_token")
	}
	if token == "" {
		bitrix.WriteError(w, validator.NoAuth())
		return
	}
	ctx := r.Context()
	info, err := h.svc.Validator.Check(ctx, token)
	if err != nil {
		bitrix.WriteError(w, validator.BitrixError(err))
		return
	}
	res := appInfoResult{ClientID: info.ClientID, Scope: strings.Join(info.Scope, ","), Expires: info.Expires.Format(time.RFC3339)}
	if portal, err := h.clients.GetClient(ctx, info.Portal); err == nil {
		host, _, _, clientEndpoint, memberID := h.svc.Endpoints(portal, requestBase(r))
		uri := strings.TrimSuffix(clientEndpoint, "/rest/")
		res.Install = appInfoInstall{
			Installed: true, Version: 1, Status: info.Status, Scope: res.Scope, Domain: host, URI: uri,
			ClientEndpoint: clientEndpoint, MemberID: memberID, MemberType: h.registry.MemberType(ctx, portal.ID),
		}
	}
	bitrix.WriteJSON(w, http.StatusOK, struct {
		Result appInfoResult `json:"result"`
	}{res})
}
