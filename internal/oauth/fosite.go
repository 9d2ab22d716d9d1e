package oauth

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	hoauth2 "github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"
)

// This file adapts the Service to fosite: a client type with per-client
// lifetimes, a session carrying Bitrix's token fields, the token strategy
// (token.go's format with per-client prefixes), the secret hasher, and the
// storage with transactions and refresh-token rotation.

var (
	_ hoauth2.CoreStorage            = (*fositeStore)(nil)
	_ hoauth2.TokenRevocationStorage = (*fositeStore)(nil)
	_ storage.Transactional          = (*fositeStore)(nil)
	_ fosite.Storage                 = (*fositeStore)(nil)
	_ hoauth2.CoreStrategy           = (*strategy)(nil)
	_ fosite.Hasher                  = hasher{}
	_ fosite.Session                 = (*session)(nil)
	_ fosite.Client                  = (*fositeClient)(nil)

	_ fosite.ClientWithCustomTokenLifespans = (*fositeClient)(nil)
)

// errGraceReuse marks a refresh token shown again within the grace window:
// refused as invalid_grant, but the chain is not revoked.
var errGraceReuse = errors.New("oauth: refresh token was just used (within the grace window)")

// fositeClient is a Client as fosite sees it.
type fositeClient struct {
	Client
	hash []byte
}

func (c *fositeClient) GetID() string           { return c.ID }
func (c *fositeClient) GetHashedSecret() []byte { return c.hash }
func (c *fositeClient) GetRedirectURIs() []string {
	if c.RedirectURI == "" {
		return nil
	}
	return []string{c.RedirectURI}
}
func (c *fositeClient) GetGrantTypes() fosite.Arguments {
	return fosite.Arguments{"authorization_code", "refresh_token"}
}
func (c *fositeClient) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }
func (c *fositeClient) GetScopes() fosite.Arguments        { return fosite.Arguments(c.Scope) }
func (c *fositeClient) IsPublic() bool                     { return false }
func (c *fositeClient) GetAudience() fosite.Arguments      { return nil }

// GetEffectiveLifespan applies the client's own lifetimes.
func (c *fositeClient) GetEffectiveLifespan(_ fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	var d time.Duration
	switch tt {
	case fosite.AccessToken:
		d = c.AccessTTL
	case fosite.RefreshToken:
		d = c.RefreshTTL
	case fosite.AuthorizeCode:
		d = c.CodeTTL
	}
	if d > 0 {
		return d
	}
	return fallback
}

// session is the fosite session: who the token is for, Bitrix token
// parameters and the expiry times.
type session struct {
	UserID  int64
	Params  map[string]string
	Portal  string
	Expires map[fosite.TokenType]time.Time
}

func (s *session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.Expires == nil {
		s.Expires = map[fosite.TokenType]time.Time{}
	}
	s.Expires[key] = exp
}

func (s *session) GetExpiresAt(key fosite.TokenType) time.Time { return s.Expires[key] }
func (s *session) GetUsername() string                         { return "" }
func (s *session) GetSubject() string                          { return fmt.Sprint(s.UserID) }

func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := &session{UserID: s.UserID, Portal: s.Portal, Params: map[string]string{}, Expires: map[fosite.TokenType]time.Time{}}
	for k, v := range s.Params {
		c.Params[k] = v
	}
	for k, v := range s.Expires {
		c.Expires[k] = v
	}
	return c
}

// hasher checks client secrets by keyed hash in constant time (fosite's
// default is bcrypt, which would cost ~50 ms of CPU per token request).
type hasher struct{ mac mac }

func (h hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return []byte(h.mac.secretHash(string(data))), nil
}

func (h hasher) Compare(_ context.Context, hash, data []byte) error {
	if subtle.ConstantTimeCompare([]byte(h.mac.secretHash(string(data))), hash) != 1 {
		return ErrInvalidClient
	}
	return nil
}

// strategy mints and checks tokens in token.go's format.
type strategy struct{ s *Service }

func (st *strategy) mint(r fosite.Requester) (string, string, error) {
	c, ok := r.GetClient().(*fositeClient)
	if !ok {
		return "", "", fmt.Errorf("oauth: unexpected client type %T", r.GetClient())
	}
	tok, sig := st.s.mac.mint(st.s.prefixOf(c.Client))
	return tok, sig, nil
}

// sig returns the signature of a genuine token, "" otherwise: a forged or
// re-prefixed token then finds nothing in the store (invalid_grant).
func (st *strategy) sig(token string) string {
	sig, _, ok := st.s.mac.verify(token)
	if !ok {
		return ""
	}
	return sig
}

func (st *strategy) validate(r fosite.Requester, tt fosite.TokenType, token string) error {
	if _, _, ok := st.s.mac.verify(token); !ok {
		return fosite.ErrInvalidTokenFormat
	}
	exp := r.GetSession().GetExpiresAt(tt)
	if !exp.IsZero() && !st.s.now().Before(exp) {
		return fosite.ErrTokenExpired.WithHintf("The %s expired.", tt)
	}
	return nil
}

func (st *strategy) AccessTokenSignature(_ context.Context, t string) string  { return st.sig(t) }
func (st *strategy) RefreshTokenSignature(_ context.Context, t string) string { return st.sig(t) }
func (st *strategy) AuthorizeCodeSignature(_ context.Context, t string) string {
	return st.sig(t)
}
func (st *strategy) GenerateAccessToken(_ context.Context, r fosite.Requester) (string, string, error) {
	return st.mint(r)
}
func (st *strategy) GenerateRefreshToken(_ context.Context, r fosite.Requester) (string, string, error) {
	return st.mint(r)
}
func (st *strategy) GenerateAuthorizeCode(_ context.Context, r fosite.Requester) (string, string, error) {
	return st.mint(r)
}
func (st *strategy) ValidateAccessToken(_ context.Context, r fosite.Requester, t string) error {
	return st.validate(r, fosite.AccessToken, t)
}
func (st *strategy) ValidateRefreshToken(_ context.Context, r fosite.Requester, t string) error {
	return st.validate(r, fosite.RefreshToken, t)
}
func (st *strategy) ValidateAuthorizeCode(_ context.Context, r fosite.Requester, t string) error {
	return st.validate(r, fosite.AuthorizeCode, t)
}

// fositeStore is fosite's storage on the Service's tables.
type fositeStore struct{ s *Service }

type txKey struct{}

// txState is fosite's transaction and the write lock it holds.
type txState struct {
	tx     *sql.Tx
	unlock func()
}

// BeginTX starts the transaction fosite runs a token exchange in; the
// storage methods called with the returned ctx use it.
func (fs *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	tx, unlock, err := fs.s.beginTx(ctx)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, txKey{}, &txState{tx: tx, unlock: unlock}), nil
}

func txFrom(ctx context.Context) (*txState, bool) {
	st, ok := ctx.Value(txKey{}).(*txState)
	return st, ok
}

func (fs *fositeStore) Commit(ctx context.Context) error {
	st, ok := txFrom(ctx)
	if !ok {
		return errors.New("oauth: commit without a transaction")
	}
	defer st.unlock()
	if err := st.tx.Commit(); err != nil {
		return fmt.Errorf("oauth: commit: %w", err)
	}
	return nil
}

func (fs *fositeStore) Rollback(ctx context.Context) error {
	st, ok := txFrom(ctx)
	if !ok {
		return nil
	}
	defer st.unlock()
	if err := st.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("oauth: rollback: %w", err)
	}
	return nil
}

func (fs *fositeStore) q(ctx context.Context) execer {
	if st, ok := txFrom(ctx); ok {
		return st.tx
	}
	return fs.s.db
}

// clientCacheTTL is how long a client row read for authentication is
// reused. Changes made through this process drop it at once
// (Service.clientChanged); another instance's changes (a deactivation, a
// rotated secret) are seen at most this late. It saves a read on every
// token request.
const clientCacheTTL = time.Second

type cachedClient struct {
	c    *fositeClient
	read time.Time
}

// GetClient returns an active client; fosite answers invalid_client otherwise.
func (fs *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	fs.s.clientsMu.Lock()
	cc, ok := fs.s.clients[id]
	fs.s.clientsMu.Unlock()
	if ok && time.Since(cc.read) < clientCacheTTL {
		return cc.c, nil
	}
	var hash string
	c, err := scanClient(fs.s.rowP(ctx, fs.q(ctx), `SELECT `+clientCols+`, secret_hash FROM oauth_clients WHERE id = ?`, id), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("oauth: read client %q: %w", id, err)
	}
	if !c.Active {
		return nil, fosite.ErrNotFound
	}
	fc := &fositeClient{Client: c, hash: []byte(hash)}
	fs.s.clientsMu.Lock()
	if len(fs.s.clients) > 10_000 {
		clear(fs.s.clients) // bounded; clients are few, this only guards memory
	}
	fs.s.clients[id] = cachedClient{c: fc, read: time.Now()}
	fs.s.clientsMu.Unlock()
	return fc, nil
}

// ClientAssertionJWTValid: JWT client assertions are not offered.
func (fs *fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT: JWT client assertions are not offered.
func (fs *fositeStore) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return errors.New("oauth: client assertions are not supported")
}

// rowFromRequest turns what fosite stores into a row.
func rowFromRequest(sig string, r fosite.Requester, tt fosite.TokenType) (tokenRow, error) {
	ss, ok := r.GetSession().(*session)
	if !ok {
		return tokenRow{}, fmt.Errorf("oauth: unexpected session type %T", r.GetSession())
	}
	return tokenRow{
		sig: sig, requestID: r.GetID(),
		grant:       Grant{ClientID: r.GetClient().GetID(), UserID: ss.UserID, Scope: r.GetGrantedScopes(), Params: ss.Params, Portal: ss.Portal},
		requestedAt: r.GetRequestedAt(), expiresAt: ss.GetExpiresAt(tt),
	}, nil
}

// request rebuilds a fosite request from a stored row and its client.
func request(reqID string, c *fositeClient, g Grant, requestedAt, expires time.Time, tt fosite.TokenType, into fosite.Session) *fosite.Request {
	ss, ok := into.(*session)
	if !ok || ss == nil {
		ss = &session{}
	}
	ss.UserID, ss.Params, ss.Portal = g.UserID, g.Params, g.Portal
	ss.SetExpiresAt(tt, expires)
	return &fosite.Request{
		ID: reqID, RequestedAt: requestedAt, Client: c,
		RequestedScope: fosite.Arguments(g.Scope), GrantedScope: fosite.Arguments(g.Scope),
		Form: url.Values{}, Session: ss,
	}
}

func (fs *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	row, err := rowFromRequest(sig, r, fosite.AuthorizeCode)
	if err != nil {
		return err
	}
	return fs.s.insertCode(ctx, fs.q(ctx), row, r.GetRequestForm().Get("redirect_uri"))
}

// tokenSelect reads a code or token row with its client in one query.
func (fs *fositeStore) tokenSelect(ctx context.Context, table, extraJoin, extraCols, sig string, extra ...any) (*fositeClient, Grant, string, time.Time, time.Time, error) {
	var g Grant
	var reqID, scope, params, hash string
	var requested, expires int64
	q := `SELECT t.request_id, t.user_id, t.scope, t.params, t.portal, t.requested_at, t.expires_at` + extraCols + `, ` +
		prefixCols("c.", clientCols) + `, c.secret_hash FROM ` + table + ` t JOIN oauth_clients c ON c.id = t.client_id` + extraJoin + ` WHERE t.signature = ?`
	row := fs.s.rowP(ctx, fs.q(ctx), q, sig)
	var c Client
	var err error
	c, err = scanClient(prefixScanner{row: row, pre: append([]any{&reqID, &g.UserID, &scope, &params, &g.Portal, &requested, &expires}, extra...)}, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, g, "", time.Time{}, time.Time{}, fosite.ErrNotFound
	}
	if err != nil {
		return nil, g, "", time.Time{}, time.Time{}, fmt.Errorf("oauth: read %s: %w", table, err)
	}
	g.ClientID, g.Scope, g.Params = c.ID, SplitScope(scope), decodeParams(params)
	return &fositeClient{Client: c, hash: []byte(hash)}, g, reqID, time.Unix(requested, 0).UTC(), time.Unix(expires, 0).UTC(), nil
}

func (fs *fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	var used int64
	c, g, reqID, requested, expires, err := fs.tokenSelect(ctx, "oauth_codes", "", ", t.used_at", sig, &used)
	if err != nil {
		return nil, err
	}
	r := request(reqID, c, g, requested, expires, fosite.AuthorizeCode, into)
	if used != 0 {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	if !c.Active {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession marks the code used; of two concurrent
// exchanges of one code only one gets here first.
func (fs *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	res, err := fs.q(ctx).ExecContext(ctx, `UPDATE oauth_codes SET used_at = ? WHERE signature = ? AND used_at = 0`, fs.s.now().Unix(), sig)
	if err != nil {
		return fmt.Errorf("oauth: use code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("oauth: code used concurrently: %w", ErrInvalidGrant)
	}
	return nil
}

func (fs *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	row, err := rowFromRequest(sig, r, fosite.AccessToken)
	if err != nil {
		return err
	}
	return fs.s.insertAccess(ctx, fs.q(ctx), row)
}

func (fs *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	var revoked int64
	c, g, reqID, requested, expires, err := fs.tokenSelect(ctx, "oauth_access", "", ", t.revoked_at", sig, &revoked)
	if err != nil {
		return nil, err
	}
	if revoked != 0 || !c.Active {
		return nil, fosite.ErrNotFound
	}
	return request(reqID, c, g, requested, expires, fosite.AccessToken, into), nil
}

// DeleteAccessTokenSession revokes (rather than deletes) one access token.
func (fs *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	tx, done, err := fs.tx(ctx)
	if err != nil {
		return err
	}
	_, err = fs.s.revokeAccess(ctx, tx, "signature = ?", sig)
	return done(err)
}

func (fs *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	row, err := rowFromRequest(sig, r, fosite.RefreshToken)
	if err != nil {
		return err
	}
	return fs.s.insertRefresh(ctx, fs.q(ctx), row, accessSig)
}

// GetRefreshTokenSession returns the refresh token's request. A used or
// revoked token is reported as fosite.ErrInactiveToken (with the request),
// on which fosite revokes the whole chain — except within the grace window
// after its use, where errGraceReuse refuses the request and keeps the chain.
func (fs *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	var used, revoked int64
	var accessSig string
	c, g, reqID, requested, expires, err := fs.tokenSelect(ctx, "oauth_refresh", "",
		", t.used_at, t.revoked_at, t.access_signature", sig, &used, &revoked, &accessSig)
	if err != nil {
		return nil, err
	}
	if h, ok := ctx.Value(rotationKey{}).(*rotation); ok {
		*h = rotation{sig: sig, accessSig: accessSig}
	}
	r := request(reqID, c, g, requested, expires, fosite.RefreshToken, into)
	if grace := fs.s.cfg.RefreshGrace; grace > 0 && used != 0 && revoked == 0 && fs.s.now().Unix()-used <= int64(grace/time.Second) {
		return nil, errGraceReuse
	}
	if used != 0 || revoked != 0 {
		return r, fosite.ErrInactiveToken
	}
	if !c.Active {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

// DeleteRefreshTokenSession revokes (rather than deletes) one refresh
// token, so that its later reuse is still recognised.
func (fs *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	_, err := fs.q(ctx).ExecContext(ctx, `UPDATE oauth_refresh SET revoked_at = ? WHERE signature = ? AND revoked_at = 0`, fs.s.now().Unix(), sig)
	if err != nil {
		return fmt.Errorf("oauth: revoke refresh token: %w", err)
	}
	return nil
}

// rotation carries, from GetRefreshTokenSession to RotateRefreshToken of
// the same request, the access token issued with the refresh token, which
// saves a read inside the rotation's transaction.
type rotation struct{ sig, accessSig string }

type rotationKey struct{}

// RotateRefreshToken marks the presented refresh token used and revokes the
// access token issued with it, inside fosite's transaction. The UPDATE
// takes the row lock, so of concurrent refreshes of one token exactly one
// matches the row; the others get ErrSerializationFailure (invalid_grant).
func (fs *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	tx, done, err := fs.tx(ctx)
	if err != nil {
		return err
	}
	now := fs.s.now().Unix()
	res, err := fs.s.execP(ctx, tx, `UPDATE oauth_refresh SET used_at = ? WHERE signature = ? AND used_at = 0 AND revoked_at = 0`, now, sig)
	if err != nil {
		return done(fmt.Errorf("oauth: rotate refresh token: %w", err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return done(fosite.ErrSerializationFailure)
	}
	h, ok := ctx.Value(rotationKey{}).(*rotation)
	if !ok || h.sig != sig {
		h = &rotation{sig: sig}
		err := fs.s.rowP(ctx, tx, `SELECT access_signature FROM oauth_refresh WHERE signature = ?`, sig).Scan(&h.accessSig)
		if err != nil {
			return done(fmt.Errorf("oauth: rotate refresh token: %w", err))
		}
	}
	if _, err := fs.s.execP(ctx, tx, `UPDATE oauth_access SET revoked_at = ?, revoked_seq = ? WHERE signature = ? AND revoked_at = 0`,
		now, fs.s.nextSeq(), h.accessSig); err != nil {
		return done(fmt.Errorf("oauth: revoke access token: %w", err))
	}
	return done(nil)
}

// RevokeRefreshToken revokes every refresh token of a chain.
func (fs *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := fs.q(ctx).ExecContext(ctx, `UPDATE oauth_refresh SET revoked_at = ? WHERE request_id = ? AND revoked_at = 0`, fs.s.now().Unix(), requestID)
	if err != nil {
		return fmt.Errorf("oauth: revoke refresh tokens: %w", err)
	}
	return nil
}

// RevokeAccessToken revokes every access token of a chain.
func (fs *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	tx, done, err := fs.tx(ctx)
	if err != nil {
		return err
	}
	_, err = fs.s.revokeAccess(ctx, tx, "request_id = ?", requestID)
	return done(err)
}

// tx returns the fosite transaction in ctx, or a new one that done
// commits (on a nil error) or rolls back.
func (fs *fositeStore) tx(ctx context.Context) (*sql.Tx, func(error) error, error) {
	if st, ok := txFrom(ctx); ok {
		return st.tx, func(err error) error { return err }, nil
	}
	tx, unlock, err := fs.s.beginTx(ctx)
	if err != nil {
		return nil, nil, err
	}
	return tx, func(err error) error {
		defer unlock()
		if err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("oauth: commit: %w", err)
		}
		return nil
	}, nil
}
