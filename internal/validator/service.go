package validator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/oauth"
)

// OAuth is what the portal-facing service needs from internal/oauth.
type OAuth interface {
	Tokens
	Clients
	Issue(ctx context.Context, g oauth.Grant, withRefresh bool) (oauth.TokenPair, error)
	IssueCode(ctx context.Context, g oauth.Grant, redirectURI string) (string, time.Time, error)
}

// Service is the token side of the portal protocol, shared by the drop-in
// HTTP face (/rest/rest.check, rest.authorize, rest.code, app.info) and the
// PHP module's PortalTokens and eventrelay's EventAuth gRPC services: one
// place decides what a portal may check and mint.
type Service struct {
	Validator *Validator
	Portals   *Portals
	oauth     OAuth
	// publicURL is how apps reach the Bitrix-facing HTTP address; "" =
	// derived from each request (baseURL arguments), or fallbackURL.
	publicURL   string
	fallbackURL func() string
	now         func() time.Time
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// PublicURL is how apps reach authprovider's Bitrix-facing address
	// ("https://auth.example.local"); "" = derived from each request.
	PublicURL string
	// FallbackURL gives the base URL when there is no request to derive it
	// from (gRPC calls) and PublicURL is empty; nil = "http://localhost".
	FallbackURL func() string
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// NewService returns the portal-facing token service.
func NewService(o OAuth, v *Validator, p *Portals, cfg ServiceConfig) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FallbackURL == nil {
		cfg.FallbackURL = func() string { return "http://localhost" }
	}
	return &Service{Validator: v, Portals: p, oauth: o, publicURL: strings.TrimRight(cfg.PublicURL, "/"), fallbackURL: cfg.FallbackURL, now: cfg.Now}
}

// Now returns the service's clock reading.
func (s *Service) Now() time.Time { return s.now() }

// BaseURL returns the URL apps use to reach the OAuth server: the
// configured public URL, else reqBase (scheme://host of the request), else
// the fallback.
func (s *Service) BaseURL(reqBase string) string {
	switch {
	case s.publicURL != "":
		return s.publicURL
	case reqBase != "":
		return strings.TrimRight(reqBase, "/")
	default:
		return strings.TrimRight(s.fallbackURL(), "/")
	}
}

// Check validates a token presented to portal: valid, issued for that
// portal, and (scope != "" and not "_global") carrying scope.
func (s *Service) Check(ctx context.Context, portal oauth.Client, token, scope string) (oauth.TokenInfo, error) {
	info, err := s.Validator.Check(ctx, token)
	if err != nil {
		return info, err
	}
	if info.Portal != portal.ID {
		// Another portal's token is as unknown to this one as garbage.
		return oauth.TokenInfo{}, oauth.ErrInvalidToken
	}
	if scope != "" && scope != "_global" && !slices.Contains(info.Scope, scope) {
		return oauth.TokenInfo{}, ErrInsufficientScope
	}
	return info, nil
}

// App returns the app appID if it is usable by portal: an active app owned
// by it, or created by the administrator for every portal (Portal "").
// Otherwise ErrNotInstalled.
func (s *Service) App(ctx context.Context, portal oauth.Client, appID string) (oauth.Client, error) {
	if appID == "" {
		return oauth.Client{}, ErrNotInstalled
	}
	app, err := s.oauth.GetClient(ctx, appID)
	if errors.Is(err, oauth.ErrNotFound) {
		return oauth.Client{}, fmt.Errorf("validator: app %q: %w", appID, ErrNotInstalled)
	}
	if err != nil {
		return oauth.Client{}, err
	}
	if app.Kind != oauth.KindApp || !app.Active || (app.Portal != "" && app.Portal != portal.ID) {
		return oauth.Client{}, fmt.Errorf("validator: app %q for portal %q: %w", appID, portal.ID, ErrNotInstalled)
	}
	return app, nil
}

// Minted is a token pair as the portal protocol returns it (rest.authorize,
// PortalTokens.Mint, an event's auth block).
type Minted struct {
	AccessToken, RefreshToken string
	Expires, ExpiresIn        int64
	Scope                     string
	// Domain is the portal's host, as rest.authorize answers it.
	Domain         string
	ServerEndpoint string
	Status         string
	ClientEndpoint string
	MemberID       string
	UserID         int64
	ClientID       string
}

// Endpoints returns the Bitrix endpoint fields for portal: its host, the
// OAuth server's host and /rest/ URL (from base), the portal's /rest/ URL
// (the scheme it registered with) and member_id.
func (s *Service) Endpoints(portal oauth.Client, base string) (portalHost, serverHost, serverEndpoint, clientEndpoint, memberID string) {
	base = s.BaseURL(base)
	if u, err := url.Parse(base); err == nil {
		serverHost = u.Host
	}
	portalHost = portal.Host
	clientEndpoint = "https://" + portal.Host + "/rest/"
	if u, err := url.Parse(portal.RedirectURI); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		clientEndpoint = u.Scheme + "://" + u.Host + "/rest/"
		if portalHost == "" {
			portalHost = u.Host
		}
	}
	return portalHost, serverHost, base + "/rest/", clientEndpoint, oauth.MemberID(portal.ID)
}

// tokenParams copies params and sets LOCAL_USER to userID: the token
// parameters rest.check returns and the portal reads LOCAL_USER from.
func tokenParams(params map[string]string, userID int64) map[string]string {
	p := make(map[string]string, len(params)+1)
	maps.Copy(p, params)
	p["LOCAL_USER"] = strconv.FormatInt(userID, 10)
	return p
}

// Mint issues a token pair of app appID for a user of portal. scope nil =
// the app's whole scope; params become token parameters.
func (s *Service) Mint(ctx context.Context, portal oauth.Client, appID string, userID int64, scope []string, params map[string]string, base string, withRefresh bool) (Minted, error) {
	app, err := s.App(ctx, portal, appID)
	if err != nil {
		return Minted{}, err
	}
	pair, err := s.oauth.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: userID, Scope: scope, Params: tokenParams(params, userID), Portal: portal.ID}, withRefresh)
	if err != nil {
		return Minted{}, err
	}
	host, _, serverEndpoint, clientEndpoint, memberID := s.Endpoints(portal, base)
	return Minted{
		AccessToken: pair.AccessToken, RefreshToken: pair.RefreshToken,
		Expires: pair.Expires.Unix(), ExpiresIn: pair.ExpiresIn,
		Scope:  strings.Join(pair.Grant.Scope, ","),
		Domain: host, ServerEndpoint: serverEndpoint, Status: pair.Status, ClientEndpoint: clientEndpoint, MemberID: memberID,
		UserID: userID, ClientID: app.ID,
	}, nil
}

// MintedCode is an authorization code as rest.code returns it.
type MintedCode struct {
	Code, Domain, State, MemberID, Scope, RedirectURI string
	Expires                                           time.Time
}

// MintCode issues an authorization code of app appID for a user of portal,
// to be exchanged at /oauth/token/. Domain is the OAuth server's host (the
// portal's rest.authorize component moves it into server_domain).
func (s *Service) MintCode(ctx context.Context, portal oauth.Client, appID string, userID int64, state string, params map[string]string, base string) (MintedCode, error) {
	app, err := s.App(ctx, portal, appID)
	if err != nil {
		return MintedCode{}, err
	}
	code, exp, err := s.oauth.IssueCode(ctx, oauth.Grant{ClientID: app.ID, UserID: userID, Params: tokenParams(params, userID), Portal: portal.ID}, app.RedirectURI)
	if err != nil {
		return MintedCode{}, err
	}
	_, serverHost, _, _, memberID := s.Endpoints(portal, base)
	return MintedCode{Code: code, Domain: serverHost, State: state, MemberID: memberID, Scope: strings.Join(app.Scope, ","), RedirectURI: app.RedirectURI, Expires: exp}, nil
}

// Field is one key/value of an ordered form block.
type Field struct{ Key, Value string }

// EventAuthRequest is what an event's auth block is built from (one queue
// item of rest.event.call, see bitrix-wire.md §2.2-2.5).
type EventAuthRequest struct {
	ClientID         string // "" for an outgoing webhook
	UserID           int64  // auth.LOCAL_USER
	SendAuth         bool
	SendRefreshToken bool
	ApplicationToken string
	Domain           string // query.DOMAIN
	Params           map[string]string
	PortalID         string // "" = the app's portal, or the portal registered for Domain
	Event            string // QUERY_DATA.event; "" when unknown
}

// BuildEventAuth returns the auth[...] block of an event delivery in the
// order Bitrix sends it. An app item with sendAuth and a user gets a fresh
// token pair carrying the item's parameters; a webhook item, or one without
// a user or with sendAuth off, gets the empty auth (domain, client_endpoint,
// server_endpoint, member_id, application_token). For an app that is not
// installed (unknown, inactive, another portal's) only ONAPPUNINSTALL still
// gets the empty auth; any other event gets ErrNotInstalled, and the caller
// drops it as the cloud does.
func (s *Service) BuildEventAuth(ctx context.Context, r EventAuthRequest) ([]Field, error) {
	portal, err := s.eventPortal(ctx, r)
	if err != nil {
		return nil, err
	}
	// domain is the host isobox has on record for the portal, as the cloud
	// sends it, not query.DOMAIN: that is the Host header of whatever hit
	// fired the event (a public web form, say), and handlers call
	// https://{domain}/rest/ with the fresh token, so a forged Host would
	// hand the token to whoever forged it.
	host, _, serverEndpoint, clientEndpoint, memberID := s.Endpoints(portal, "")
	if host == "" {
		host = r.Domain
	}
	empty := func() []Field {
		f := []Field{{"domain", host}, {"client_endpoint", clientEndpoint}, {"server_endpoint", serverEndpoint}, {"member_id", memberID}}
		if r.ApplicationToken != "" {
			f = append(f, Field{"application_token", r.ApplicationToken})
		}
		return f
	}
	if r.ClientID == "" {
		return empty(), nil
	}
	if _, err := s.App(ctx, portal, r.ClientID); err != nil {
		if errors.Is(err, ErrNotInstalled) && strings.EqualFold(r.Event, "ONAPPUNINSTALL") && s.wasInstalled(ctx, portal, r.ClientID) {
			return empty(), nil
		}
		return nil, err
	}
	if !r.SendAuth || r.UserID <= 0 {
		return empty(), nil
	}
	m, err := s.Mint(ctx, portal, r.ClientID, r.UserID, nil, r.Params, "", r.SendRefreshToken)
	if err != nil {
		return nil, err
	}
	f := []Field{
		{"access_token", m.AccessToken},
		{"expires", strconv.FormatInt(m.Expires, 10)},
		{"expires_in", strconv.FormatInt(m.ExpiresIn, 10)},
		{"scope", m.Scope},
		{"domain", host},
		{"server_endpoint", m.ServerEndpoint},
		{"status", m.Status},
		{"client_endpoint", m.ClientEndpoint},
		{"member_id", m.MemberID},
		{"user_id", strconv.FormatInt(r.UserID, 10)},
	}
	if r.SendRefreshToken {
		f = append(f, Field{"refresh_token", m.RefreshToken})
	}
	if r.ApplicationToken != "" {
		f = append(f, Field{"application_token", r.ApplicationToken})
	}
	return f, nil
}

// AppAllowed reports whether portal may send events for appID: the app is
// installed there, or the event is ONAPPUNINSTALL (uninstall) of an app
// the portal once had. It is the check BuildEventAuth makes at delivery
// time, asked by eventrelay's ingest before it stores an event, so that an
// event for another portal's app is refused at once. An unknown portal is
// allowed nothing.
func (s *Service) AppAllowed(ctx context.Context, portalID, appID string, uninstall bool) (bool, error) {
	if portalID == "" {
		return false, nil
	}
	portal, err := s.oauth.GetClient(ctx, portalID)
	if errors.Is(err, oauth.ErrNotFound) || (err == nil && portal.Kind != oauth.KindPortal) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = s.App(ctx, portal, appID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotInstalled):
		return uninstall && s.wasInstalled(ctx, portal, appID), nil
	default:
		return false, err
	}
}

// wasInstalled reports whether appID is an app of portal (or of every
// portal) that has been deactivated: its ONAPPUNINSTALL still reaches the
// handler, with the empty auth. An unknown app, or another portal's, gets
// nothing, for ONAPPUNINSTALL as for every event: otherwise a portal could
// have the relay sign its own uninstall notice for a stranger's app
// (issue 11, finding 4).
func (s *Service) wasInstalled(ctx context.Context, portal oauth.Client, appID string) bool {
	app, err := s.oauth.GetClient(ctx, appID)
	return err == nil && app.Kind == oauth.KindApp && (app.Portal == "" || app.Portal == portal.ID)
}

// eventPortal finds the portal an event came from: the named one, else
// the app's owner, else the portal registered for the event's domain.
func (s *Service) eventPortal(ctx context.Context, r EventAuthRequest) (oauth.Client, error) {
	id := r.PortalID
	if id == "" && r.ClientID != "" {
		if app, err := s.oauth.GetClient(ctx, r.ClientID); err == nil {
			id = app.Portal
		}
	}
	if id != "" {
		p, err := s.oauth.GetClient(ctx, id)
		if errors.Is(err, oauth.ErrNotFound) || (err == nil && p.Kind != oauth.KindPortal) {
			return oauth.Client{}, fmt.Errorf("validator: portal %q: %w", id, oauth.ErrInvalidClient)
		}
		return p, err
	}
	portals, err := s.oauth.ListClients(ctx, oauth.KindPortal, "")
	if err != nil {
		return oauth.Client{}, err
	}
	var match []oauth.Client
	for _, p := range portals {
		if p.Active && (r.Domain == "" || strings.EqualFold(p.Host, r.Domain)) {
			match = append(match, p)
		}
	}
	if len(match) == 0 {
		return oauth.Client{}, fmt.Errorf("validator: no portal for domain %q: %w", r.Domain, oauth.ErrInvalidClient)
	}
	// A host that registered more than once: the newest identity is the one
	// the portal uses.
	newest := match[0]
	for _, p := range match[1:] {
		if p.CreatedAt.After(newest.CreatedAt) || (p.CreatedAt.Equal(newest.CreatedAt) && p.ID > newest.ID) {
			newest = p
		}
	}
	return newest, nil
}
