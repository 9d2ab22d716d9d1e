package oauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/ory/fosite"
	hoauth2 "github.com/ory/fosite/handler/oauth2"

	"github.com/isobox/isobox/internal/bitrix"
)

// MaxTokenBody bounds a /oauth/token/ request body. Real requests are a few
// hundred bytes.
const MaxTokenBody = 16 << 10

// maxParam bounds one parameter value: tokens and secrets are < 128 bytes.
const maxParam = 2048

// tokenParams are the parameters /oauth/token/ reads. Each may appear once
// (or repeated with the same value) across the query and the body.
var tokenParams = []string{"grant_type", "client_id", "client_secret", "code", "refresh_token", "scope", "redirect_uri"}

// newProvider wires fosite by hand: the authorization-code and refresh
// grants on our storage, strategy and hasher.
func newProvider(s *Service) fosite.OAuth2Provider {
	st := &fositeStore{s: s}
	strat := &strategy{s: s}
	cfg := &fosite.Config{
		AccessTokenLifespan:      s.cfg.AccessTTL,
		RefreshTokenLifespan:     s.cfg.RefreshTTL,
		AuthorizeCodeLifespan:    s.cfg.CodeTTL,
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		RefreshTokenScopes:       []string{}, // every exchange gets a refresh token, as in Bitrix
		ClientSecretsHasher:      hasher{mac: s.mac},
	}
	cfg.TokenEndpointHandlers = fosite.TokenEndpointHandlers{
		&hoauth2.AuthorizeExplicitGrantHandler{
			AccessTokenStrategy: strat, RefreshTokenStrategy: strat, AuthorizeCodeStrategy: strat,
			CoreStorage: st, TokenRevocationStorage: st, Config: cfg,
		},
		&hoauth2.RefreshTokenGrantHandler{
			AccessTokenStrategy: strat, RefreshTokenStrategy: strat, TokenRevocationStorage: st, Config: cfg,
		},
	}
	return fosite.NewOAuth2Provider(st, cfg)
}

// TokenPaths returns the paths the token endpoint answers on: Bitrix's,
// without the trailing slash, and under the /rest/ prefix some SDKs build
// from server_endpoint. (Doubled slashes are collapsed before routing.)
func TokenPaths() []string {
	return []string{"/oauth/token/", "/oauth/token", "/rest/oauth/token/", "/rest/oauth/token"}
}

// TokenHandler serves /oauth/token/ as oauth.bitrix.info does: GET or POST,
// parameters in the query or a form body, Bitrix JSON and errors.
func (s *Service) TokenHandler() http.Handler {
	return http.HandlerFunc(s.serveToken)
}

// TokenResponse is the Bitrix token JSON (/oauth/token/, and the admin's
// token issue).
type TokenResponse struct {
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token,omitempty"`
	Expires        int64  `json:"expires"`
	ExpiresIn      int64  `json:"expires_in"`
	Scope          string `json:"scope"`
	Domain         string `json:"domain"`
	ServerEndpoint string `json:"server_endpoint"`
	ClientEndpoint string `json:"client_endpoint"`
	MemberID       string `json:"member_id"`
	Status         string `json:"status"`
	UserID         int64  `json:"user_id"`
}

// Response renders a token pair as Bitrix JSON. requestHost and https
// stand in for PublicURL when it is not configured.
func (s *Service) Response(p TokenPair, requestHost string, https bool) TokenResponse {
	domain, server, client, member := s.Endpoints(p.Grant)
	if s.cfg.PublicURL == "" && requestHost != "" {
		scheme := "http"
		if https {
			scheme = "https"
		}
		domain, server = requestHost, scheme+"://"+requestHost+"/rest/"
	}
	return TokenResponse{
		AccessToken: p.AccessToken, RefreshToken: p.RefreshToken,
		Expires: p.Expires.Unix(), ExpiresIn: p.ExpiresIn, Scope: joinScope(p.Grant.Scope),
		Domain: domain, ServerEndpoint: server, ClientEndpoint: client, MemberID: member,
		Status: p.Status, UserID: p.Grant.UserID,
	}
}

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	form, berr := ParseTokenRequest(w, r)
	if berr != nil {
		bitrix.WriteError(w, berr)
		return
	}
	pair, err := s.exchange(r.Context(), form)
	for try := 0; try < 2 && retryable(err); try++ {
		// A deadlock victim's transaction was rolled back whole: nothing
		// was used up, so the same request can simply run again.
		pair, err = s.exchange(r.Context(), form)
	}
	if err != nil {
		be := s.bitrixError(err)
		if be.Status >= 500 {
			s.log.Error("oauth: token request failed", "grant_type", form.Get("grant_type"), "client_id", form.Get("client_id"), "err", causes(err))
		} else {
			s.log.Debug("oauth: token request refused", "grant_type", form.Get("grant_type"), "client_id", form.Get("client_id"), "error", be.Code, "err", causes(err))
		}
		bitrix.WriteError(w, be)
		return
	}
	https := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	bitrix.WriteJSON(w, http.StatusOK, s.Response(pair, RequestHost(r, https), https))
}

// RequestHost is the host[:port] a client reached: the Host header, with
// the port of the connection's own local address added when the header has
// none and the port is not the scheme's default. A portal's HTTP client
// sends Host without the port; without this, server_endpoint would send
// apps to port 80.
func RequestHost(r *http.Request, https bool) string {
	host := r.Host
	if host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return host
	}
	_, port, err := net.SplitHostPort(local.String())
	if err != nil || (port == "80" && !https) || (port == "443" && https) {
		return host
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
}

// ParseTokenRequest reads the token endpoint's parameters from the query
// and (for POST) a form body, refusing what a Bitrix client never sends:
// other methods, other content types, bodies over MaxTokenBody, non-UTF-8,
// a parameter repeated with different values, oversized values. It never
// panics; a fuzz test holds it to that.
func ParseTokenRequest(w http.ResponseWriter, r *http.Request) (url.Values, *bitrix.Error) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return nil, bitrix.NewError(http.StatusMethodNotAllowed, "invalid_request", "Use GET or POST")
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Malformed query string")
	}
	var body url.Values
	if r.Method == http.MethodPost && r.Body != nil {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxTokenBody))
		if err != nil {
			return nil, bitrix.BodyError(err)
		}
		if len(raw) > 0 {
			ct := r.Header.Get("Content-Type")
			mt, mp, err := mime.ParseMediaType(ct)
			if ct == "" {
				mt, err = "application/x-www-form-urlencoded", nil // curl -d without -H, PHP streams
			}
			switch {
			case err == nil && mt == "application/x-www-form-urlencoded":
				if body, err = url.ParseQuery(string(raw)); err != nil {
					return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Malformed form body")
				}
			case err == nil && mt == "multipart/form-data" && mp["boundary"] != "":
				// PHP's curl sends this when CURLOPT_POSTFIELDS is an array.
				if body, err = parseMultipart(raw, mp["boundary"]); err != nil {
					return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Malformed multipart form body")
				}
			default:
				return nil, bitrix.NewError(http.StatusUnsupportedMediaType, "invalid_request", "Send the parameters as a form (application/x-www-form-urlencoded) or in the query string")
			}
		}
	}
	out := url.Values{}
	for _, src := range []url.Values{query, body} {
		for k, vs := range src {
			if !utf8.ValidString(k) {
				return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameters must be UTF-8")
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameters must be UTF-8")
				}
			}
		}
	}
	for _, name := range tokenParams {
		var val string
		seen := false
		for _, src := range []url.Values{query, body} {
			for _, v := range src[name] {
				if seen && v != val {
					return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameter "+name+" is given more than once")
				}
				val, seen = v, true
			}
		}
		if !seen {
			continue
		}
		if len(val) > maxParam {
			return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameter "+name+" is too long")
		}
		out.Set(name, val)
	}
	switch gt := out.Get("grant_type"); {
	case gt == "":
		return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameter grant_type is missing")
	case gt != "authorization_code" && gt != "refresh_token":
		return nil, bitrix.NewError(http.StatusBadRequest, "unsupported_grant_type", "Grant type is not supported: use authorization_code or refresh_token")
	}
	if out.Get("client_id") == "" || out.Get("client_secret") == "" {
		return nil, bitrix.NewError(http.StatusBadRequest, "invalid_client", "Parameters client_id and client_secret are required")
	}
	if out.Get("grant_type") == "authorization_code" && out.Get("code") == "" {
		return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameter code is missing")
	}
	if out.Get("grant_type") == "refresh_token" && out.Get("refresh_token") == "" {
		return nil, bitrix.NewError(http.StatusBadRequest, "invalid_request", "Parameter refresh_token is missing")
	}
	return out, nil
}

// parseMultipart reads the text fields of a multipart/form-data body; a
// file part is an error (the endpoint takes none).
func parseMultipart(raw []byte, boundary string) (url.Values, error) {
	mr := multipart.NewReader(bytes.NewReader(raw), boundary)
	out := url.Values{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if part.FileName() != "" || part.FormName() == "" {
			return nil, errors.New("oauth: unexpected multipart part")
		}
		v, err := io.ReadAll(io.LimitReader(part, maxParam+1))
		if err != nil {
			return nil, err
		}
		out.Add(part.FormName(), string(v))
	}
}

// exchange runs a parsed token request through fosite.
func (s *Service) exchange(ctx context.Context, form url.Values) (TokenPair, error) {
	var requested []string
	if sc := form.Get("scope"); sc != "" {
		requested = SplitScope(sc)
	}
	// fosite wants POST with scope space-separated; Bitrix clients send GET
	// or POST with a comma list. It reads only PostForm.
	post := url.Values{}
	for k, v := range form {
		if k != "scope" {
			post[k] = v
		}
	}
	req := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/oauth/token/"}, Header: http.Header{}, PostForm: post, Form: post}
	ctx = context.WithValue(ctx, rotationKey{}, &rotation{})
	req = req.WithContext(ctx)
	sess := &session{}
	ar, err := s.provider.NewAccessRequest(ctx, req, sess)
	if err != nil {
		return TokenPair{}, err
	}
	if requested != nil {
		// A refresh may narrow the chain's scope (RFC 6749 §6); a code
		// exchange only checks it, fosite grants the code's scope.
		if form.Get("grant_type") == "refresh_token" {
			if !subset(requested, ar.GetGrantedScopes()) {
				return TokenPair{}, ErrInvalidScope
			}
			if a, ok := ar.(*fosite.AccessRequest); ok {
				a.GrantedScope = fosite.Arguments(requested)
			}
		} else if !subset(requested, ar.GetRequestedScopes()) {
			return TokenPair{}, ErrInvalidScope
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		return TokenPair{}, err
	}
	c, ok := ar.GetClient().(*fositeClient)
	if !ok {
		return TokenPair{}, errors.New("oauth: unexpected client type")
	}
	ss, _ := ar.GetSession().(*session)
	if ss == nil {
		return TokenPair{}, errors.New("oauth: unexpected session type")
	}
	accessTTL, _, _ := s.ttls(c.Client)
	refresh, _ := resp.GetExtra("refresh_token").(string)
	return TokenPair{
		AccessToken: resp.GetAccessToken(), RefreshToken: refresh,
		Expires: ss.GetExpiresAt(fosite.AccessToken), ExpiresIn: secs(accessTTL),
		Grant:  Grant{ClientID: c.ID, UserID: ss.UserID, Scope: ar.GetGrantedScopes(), Params: ss.Params, Portal: ss.Portal},
		Status: c.Status,
	}, nil
}

// retryable reports a MySQL deadlock or lock-wait timeout.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// causes renders an error chain for the log: each distinct message once,
// without the stack traces fosite's errors carry.
func causes(err error) string {
	var parts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		if len(parts) == 0 || !strings.Contains(parts[len(parts)-1], msg) {
			parts = append(parts, msg)
		}
	}
	return strings.Join(parts, ": ")
}

// bitrixError maps a token-exchange failure to what oauth.bitrix.info
// answers (bitrix-wire.md §4.2). Descriptions are chosen here, never taken
// from fosite's hints or debug text.
func (s *Service) bitrixError(err error) *bitrix.Error {
	bad := func(code, text string) *bitrix.Error { return bitrix.NewError(http.StatusBadRequest, code, text) }
	switch {
	case errors.Is(err, errGraceReuse):
		return bad("invalid_grant", "The refresh token has already been used")
	case errors.Is(err, fosite.ErrTokenExpired):
		return bitrix.NewError(http.StatusUnauthorized, "expired_token", "The token provided has expired")
	case errors.Is(err, ErrInvalidScope):
		return bad("invalid_scope", "The requested scope exceeds the scope granted")
	case errors.Is(err, fosite.ErrSerializationFailure), errors.Is(err, ErrInvalidGrant),
		errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
		// Lost a race with a concurrent request on the same code or
		// refresh token (fosite reports the code's second read as a
		// server error).
		return bad("invalid_grant", "The grant was used by a concurrent request")
	}
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		return bitrix.NewError(http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Internal server error")
	}
	switch rfc.ErrorField {
	case "invalid_client":
		return bad("invalid_client", "Invalid client credentials")
	case "invalid_grant":
		return bad("invalid_grant", "Invalid grant: the code or refresh token is unknown, used or revoked")
	case "invalid_scope":
		return bad("invalid_scope", "The requested scope exceeds the scope granted")
	case "unsupported_grant_type":
		return bad("unsupported_grant_type", "Grant type is not supported")
	case "unauthorized_client":
		return bad("unauthorized_client", "The client may not use this grant type")
	case "invalid_request":
		// fosite's "retry" after a lost race on one refresh token, and
		// its refusal of a token that fails validation.
		return bad("invalid_grant", "Invalid grant: the code or refresh token is unknown, used or revoked")
	}
	if errors.Is(err, fosite.ErrNotFound) {
		// A row that vanished between fosite's reads (swept, deleted).
		return bad("invalid_grant", "Invalid grant: the code or refresh token is unknown, used or revoked")
	}
	if rfc.CodeField >= 500 || rfc.CodeField == 0 {
		return bitrix.NewError(http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Internal server error")
	}
	return bad("invalid_request", "Invalid request")
}

// CollapseSlashes routes "//oauth//token/" like "/oauth/token/": SDKs that
// join server_endpoint and a path produce doubled slashes, and
// http.ServeMux would answer them with a redirect, which turns a POST into a
// GET without its body.
func CollapseSlashes(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "//") {
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			for strings.Contains(u.Path, "//") {
				u.Path = strings.ReplaceAll(u.Path, "//", "/")
			}
			u.RawPath = ""
			r2.URL = &u
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}
