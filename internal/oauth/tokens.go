package oauth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// execer is what both *sql.DB and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tokenRow is one stored code or token: its signature and what it grants.
type tokenRow struct {
	sig, requestID string
	grant          Grant
	requestedAt    time.Time
	expiresAt      time.Time
}

func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("oauth: crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

func encodeParams(p map[string]string) string {
	if len(p) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(p) // a map[string]string always marshals
	return string(b)
}

func decodeParams(s string) map[string]string {
	p := map[string]string{}
	_ = json.Unmarshal([]byte(s), &p) // written by encodeParams only
	return p
}

func (s *Service) insertAccess(ctx context.Context, q execer, r tokenRow) error {
	_, err := s.execP(ctx, q, `INSERT INTO oauth_access (signature, request_id, client_id, user_id, scope, params, portal,
		requested_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		r.sig, r.requestID, r.grant.ClientID, r.grant.UserID, joinScope(r.grant.Scope), encodeParams(r.grant.Params), r.grant.Portal,
		r.requestedAt.Unix(), r.expiresAt.Unix())
	if err != nil {
		return fmt.Errorf("oauth: store access token: %w", err)
	}
	return nil
}

func (s *Service) insertRefresh(ctx context.Context, q execer, r tokenRow, accessSig string) error {
	_, err := s.execP(ctx, q, `INSERT INTO oauth_refresh (signature, request_id, access_signature, client_id, user_id, scope, params,
		portal, requested_at, expires_at, used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)`,
		r.sig, r.requestID, accessSig, r.grant.ClientID, r.grant.UserID, joinScope(r.grant.Scope), encodeParams(r.grant.Params),
		r.grant.Portal, r.requestedAt.Unix(), r.expiresAt.Unix())
	if err != nil {
		return fmt.Errorf("oauth: store refresh token: %w", err)
	}
	return nil
}

func (s *Service) insertCode(ctx context.Context, q execer, r tokenRow, redirectURI string) error {
	_, err := s.execP(ctx, q, `INSERT INTO oauth_codes (signature, request_id, client_id, user_id, scope, params, portal,
		redirect_uri, requested_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		r.sig, r.requestID, r.grant.ClientID, r.grant.UserID, joinScope(r.grant.Scope), encodeParams(r.grant.Params), r.grant.Portal,
		redirectURI, r.requestedAt.Unix(), r.expiresAt.Unix())
	if err != nil {
		return fmt.Errorf("oauth: store code: %w", err)
	}
	return nil
}

// resolve checks a grant against its client and fills the defaults: the
// client's whole scope, the app's portal.
func (s *Service) resolve(ctx context.Context, g Grant) (Grant, Client, error) {
	c, err := s.GetClient(ctx, g.ClientID)
	if errors.Is(err, ErrNotFound) {
		return g, c, fmt.Errorf("oauth: client %q: %w", g.ClientID, ErrInvalidClient)
	}
	if err != nil {
		return g, c, err
	}
	if !c.Active {
		return g, c, fmt.Errorf("oauth: client %q is inactive: %w", g.ClientID, ErrInvalidClient)
	}
	if g.Scope == nil {
		g.Scope = append([]string{}, c.Scope...)
	} else {
		g.Scope = cleanScope(g.Scope)
		if !subset(g.Scope, c.Scope) {
			return g, c, fmt.Errorf("oauth: scope %q exceeds client %q's %q: %w", joinScope(g.Scope), c.ID, joinScope(c.Scope), ErrInvalidScope)
		}
	}
	if g.Portal == "" {
		g.Portal = c.Portal
	}
	return g, c, nil
}

func subset(a, of []string) bool {
	for _, x := range a {
		found := false
		for _, y := range of {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// prefixOf returns the token prefix of client c.
func (s *Service) prefixOf(c Client) string {
	if c.TokenPrefix != "" {
		return c.TokenPrefix
	}
	return s.cfg.TokenPrefix
}

func (s *Service) ttls(c Client) (access, refresh, code time.Duration) {
	access, refresh, code = s.cfg.AccessTTL, s.cfg.RefreshTTL, s.cfg.CodeTTL
	if c.AccessTTL > 0 {
		access = c.AccessTTL
	}
	if c.RefreshTTL > 0 {
		refresh = c.RefreshTTL
	}
	if c.CodeTTL > 0 {
		code = c.CodeTTL
	}
	return
}

// Issue mints a token pair (a new chain) for g: the admin's and the portal
// protocol's way to provision an app, device or integration.
func (s *Service) Issue(ctx context.Context, g Grant, withRefresh bool) (TokenPair, error) {
	g, c, err := s.resolve(ctx, g)
	if err != nil {
		return TokenPair{}, err
	}
	accessTTL, refreshTTL, _ := s.ttls(c)
	now := s.now().Truncate(time.Second)
	prefix := s.prefixOf(c)
	reqID := newRequestID()
	access, accessSig := s.mac.mint(prefix)
	pair := TokenPair{AccessToken: access, Expires: now.Add(accessTTL), ExpiresIn: secs(accessTTL), Grant: g, Status: c.Status}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.insertAccess(ctx, tx, tokenRow{sig: accessSig, requestID: reqID, grant: g, requestedAt: now, expiresAt: pair.Expires}); err != nil {
			return err
		}
		if !withRefresh {
			return nil
		}
		refresh, refreshSig := s.mac.mint(prefix)
		pair.RefreshToken = refresh
		return s.insertRefresh(ctx, tx, tokenRow{sig: refreshSig, requestID: reqID, grant: g, requestedAt: now, expiresAt: now.Add(refreshTTL)}, accessSig)
	})
	if err != nil {
		return TokenPair{}, fmt.Errorf("oauth: issue for %q: %w", g.ClientID, err)
	}
	return pair, nil
}

// IssueCode mints an authorization code for g, to be exchanged at
// /oauth/token/ with grant_type=authorization_code within the client's
// code lifetime. redirectURI is recorded for the response, not enforced.
func (s *Service) IssueCode(ctx context.Context, g Grant, redirectURI string) (string, time.Time, error) {
	g, c, err := s.resolve(ctx, g)
	if err != nil {
		return "", time.Time{}, err
	}
	_, _, codeTTL := s.ttls(c)
	now := s.now().Truncate(time.Second)
	code, sig := s.mac.mint(s.prefixOf(c))
	exp := now.Add(codeTTL)
	if err := s.insertCode(ctx, s.db, tokenRow{sig: sig, requestID: newRequestID(), grant: g, requestedAt: now, expiresAt: exp}, redirectURI); err != nil {
		return "", time.Time{}, err
	}
	return code, exp, nil
}

// Lookup checks an access token: one indexed read by signature. It returns
// ErrInvalidToken for unknown, revoked, malformed or re-prefixed tokens and
// tokens of inactive or deleted clients, ErrExpiredToken past expiry.
func (s *Service) Lookup(ctx context.Context, accessToken string) (TokenInfo, error) {
	sig, _, ok := s.mac.verify(accessToken)
	if !ok {
		return TokenInfo{}, ErrInvalidToken
	}
	var info TokenInfo
	var scope, params string
	var expires, revoked int64
	var active int
	err := s.rowP(ctx, s.db, `SELECT a.client_id, a.user_id, a.scope, a.params, a.portal, a.expires_at, a.revoked_at,
		c.status, c.active FROM oauth_access a JOIN oauth_clients c ON c.id = a.client_id WHERE a.signature = ?`, sig).
		Scan(&info.ClientID, &info.UserID, &scope, &params, &info.Portal, &expires, &revoked, &info.Status, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return TokenInfo{}, ErrInvalidToken
	}
	if err != nil {
		return TokenInfo{}, fmt.Errorf("oauth: look up token: %w", err)
	}
	if revoked != 0 || active == 0 {
		return TokenInfo{}, ErrInvalidToken
	}
	info.Scope, info.Params, info.Expires, info.Signature = SplitScope(scope), decodeParams(params), time.Unix(expires, 0).UTC(), sig
	if !s.now().Before(info.Expires) {
		return TokenInfo{}, ErrExpiredToken
	}
	return info, nil
}

// Revoke revokes an access or refresh token together with its whole chain
// (every token refreshed from the same grant). ErrInvalidToken if unknown.
func (s *Service) Revoke(ctx context.Context, token string) error {
	sig, _, ok := s.mac.verify(token)
	if !ok {
		return ErrInvalidToken
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var reqID string
		err := tx.QueryRowContext(ctx, `SELECT request_id FROM oauth_access WHERE signature = ?`, sig).Scan(&reqID)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRowContext(ctx, `SELECT request_id FROM oauth_refresh WHERE signature = ?`, sig).Scan(&reqID)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return ErrInvalidToken
		}
		if err != nil {
			return err
		}
		_, err = s.revokeWhere(ctx, tx, "request_id = ?", reqID)
		return err
	})
	if err != nil && !errors.Is(err, ErrInvalidToken) {
		return fmt.Errorf("oauth: revoke token: %w", err)
	}
	return err
}

// RevokeTokens revokes every live token of a client, or of one of its
// users (userID 0 = all users), and returns how many tokens it revoked.
func (s *Service) RevokeTokens(ctx context.Context, clientID string, userID int64) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if userID == 0 {
			n, err = s.revokeWhere(ctx, tx, "client_id = ?", clientID)
		} else {
			n, err = s.revokeWhere(ctx, tx, "client_id = ? AND user_id = ?", clientID, userID)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("oauth: revoke tokens of %q: %w", clientID, err)
	}
	return n, nil
}

// revokeWhere revokes the live access and refresh tokens matching cond (a
// condition on columns both tables share) and records the access tokens in
// the revocation feed. It returns how many tokens it revoked.
func (s *Service) revokeWhere(ctx context.Context, tx *sql.Tx, cond string, args ...any) (int, error) {
	n, err := s.revokeAccess(ctx, tx, cond, args...)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE oauth_refresh SET revoked_at = ? WHERE `+cond+` AND revoked_at = 0`, append([]any{s.now().Unix()}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("oauth: revoke refresh tokens: %w", err)
	}
	m, _ := res.RowsAffected()
	return n + int(m), nil
}

// revokeAccess revokes the live access tokens matching cond, giving each
// its own position in the revocation feed (revoked_seq).
func (s *Service) revokeAccess(ctx context.Context, tx *sql.Tx, cond string, args ...any) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT signature FROM oauth_access WHERE `+cond+` AND revoked_at = 0`+s.db.ForUpdate(), args...)
	if err != nil {
		return 0, fmt.Errorf("oauth: find tokens to revoke: %w", err)
	}
	var sigs []string
	for rows.Next() {
		var sig string
		if err := rows.Scan(&sig); err != nil {
			rows.Close()
			return 0, fmt.Errorf("oauth: find tokens to revoke: %w", err)
		}
		sigs = append(sigs, sig)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("oauth: find tokens to revoke: %w", err)
	}
	now := s.now().Unix()
	for _, sig := range sigs {
		if _, err := s.execP(ctx, tx, `UPDATE oauth_access SET revoked_at = ?, revoked_seq = ? WHERE signature = ? AND revoked_at = 0`,
			now, s.nextSeq(), sig); err != nil {
			return 0, fmt.Errorf("oauth: revoke access token: %w", err)
		}
	}
	return len(sigs), nil
}

// prefixCols qualifies a comma-separated column list with a table alias.
func prefixCols(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// prefixScanner scans pre's columns before the ones asked for.
type prefixScanner struct {
	row interface{ Scan(...any) error }
	pre []any
}

func (p prefixScanner) Scan(dest ...any) error { return p.row.Scan(append(p.pre, dest...)...) }

// revocationWindow is how far back Revocations keeps re-sending: a revoking
// transaction that took its feed position before committing becomes
// visible late, and a reader that had already moved past that position
// would otherwise miss it. Re-sent signatures are harmless to a cache.
const revocationWindow = 2 * time.Second

// Revocations is a feed of revoked access-token signatures in revocation
// order, so that every authprovider instance's validation cache can drop
// them: it returns signatures revoked after cursor `after` (0 = from the
// start) and the cursor for the next call. Signatures revoked within the
// last few seconds may be returned again by the next call.
func (s *Service) Revocations(ctx context.Context, after int64, limit int) ([]string, int64, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, `SELECT revoked_seq, signature FROM oauth_access WHERE revoked_seq > ? ORDER BY revoked_seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, after, fmt.Errorf("oauth: read revocations: %w", err)
	}
	defer rows.Close()
	var sigs []string
	last := after
	for rows.Next() {
		var sig string
		if err := rows.Scan(&last, &sig); err != nil {
			return nil, after, fmt.Errorf("oauth: read revocations: %w", err)
		}
		sigs = append(sigs, sig)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("oauth: read revocations: %w", err)
	}
	next := last
	if len(sigs) < limit {
		// Caught up: stay far enough back to see late commits.
		next = max(after, min(last, time.Now().Add(-revocationWindow).UnixNano()))
	}
	return sigs, next, nil
}

// TokenRecord describes a stored token for the admin: never the token.
type TokenRecord struct {
	Kind      string // "access" or "refresh"
	Signature string
	Grant
	IssuedAt, Expires time.Time
}

// ListTokens returns the live (unrevoked, unused, unexpired) tokens of a
// client and/or user (""/0 = any), newest first, at most limit of each kind.
func (s *Service) ListTokens(ctx context.Context, clientID string, userID int64, limit int) ([]TokenRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	now := s.now().Unix()
	var out []TokenRecord
	for _, t := range []struct{ kind, table, extra string }{{"access", "oauth_access", ""}, {"refresh", "oauth_refresh", " AND used_at = 0"}} {
		q := `SELECT signature, client_id, user_id, scope, params, portal, requested_at, expires_at FROM ` + t.table +
			` WHERE revoked_at = 0 AND expires_at > ?` + t.extra
		args := []any{now}
		if clientID != "" {
			q += ` AND client_id = ?`
			args = append(args, clientID)
		}
		if userID != 0 {
			q += ` AND user_id = ?`
			args = append(args, userID)
		}
		rows, err := s.db.QueryContext(ctx, q+` ORDER BY requested_at DESC LIMIT ?`, append(args, limit)...)
		if err != nil {
			return nil, fmt.Errorf("oauth: list tokens: %w", err)
		}
		for rows.Next() {
			r := TokenRecord{Kind: t.kind}
			var scope, params string
			var issued, exp int64
			if err := rows.Scan(&r.Signature, &r.ClientID, &r.UserID, &scope, &params, &r.Portal, &issued, &exp); err != nil {
				rows.Close()
				return nil, fmt.Errorf("oauth: list tokens: %w", err)
			}
			r.Scope, r.Params = SplitScope(scope), decodeParams(params)
			r.IssuedAt, r.Expires = time.Unix(issued, 0).UTC(), time.Unix(exp, 0).UTC()
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("oauth: list tokens: %w", err)
		}
	}
	return out, nil
}

// Introspection is the RFC 7662 view of a token.
type Introspection struct {
	Active    bool
	TokenType string // "access_token" or "refresh_token" when known
	TokenInfo
	IssuedAt time.Time
}

// Introspect tells whether token (access or refresh) is active and what it
// grants. An unknown or invalid token is simply inactive.
func (s *Service) Introspect(ctx context.Context, token string) (Introspection, error) {
	info, err := s.Lookup(ctx, token)
	switch {
	case err == nil:
		in := Introspection{Active: true, TokenType: "access_token", TokenInfo: info}
		in.IssuedAt = s.issuedAt(ctx, "oauth_access", info.Signature)
		return in, nil
	case errors.Is(err, ErrExpiredToken):
		return Introspection{TokenType: "access_token"}, nil
	case !errors.Is(err, ErrInvalidToken):
		return Introspection{}, err
	}
	sig, _, ok := s.mac.verify(token)
	if !ok {
		return Introspection{}, nil
	}
	var scope, params string
	var expires, issued, used, revoked int64
	var active int
	in := Introspection{TokenType: "refresh_token"}
	err = s.db.QueryRowContext(ctx, `SELECT r.client_id, r.user_id, r.scope, r.params, r.portal, r.requested_at, r.expires_at,
		r.used_at, r.revoked_at, c.status, c.active FROM oauth_refresh r JOIN oauth_clients c ON c.id = r.client_id WHERE r.signature = ?`, sig).
		Scan(&in.ClientID, &in.UserID, &scope, &params, &in.Portal, &issued, &expires, &used, &revoked, &in.Status, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return Introspection{}, nil
	}
	if err != nil {
		return Introspection{}, fmt.Errorf("oauth: introspect: %w", err)
	}
	in.Scope, in.Params, in.Signature = SplitScope(scope), decodeParams(params), sig
	in.Expires, in.IssuedAt = time.Unix(expires, 0).UTC(), time.Unix(issued, 0).UTC()
	in.Active = used == 0 && revoked == 0 && active != 0 && s.now().Before(in.Expires)
	if !in.Active {
		return Introspection{TokenType: "refresh_token"}, nil
	}
	return in, nil
}

func (s *Service) issuedAt(ctx context.Context, table, sig string) time.Time {
	var t int64
	if err := s.db.QueryRowContext(ctx, `SELECT requested_at FROM `+table+` WHERE signature = ?`, sig).Scan(&t); err != nil {
		return time.Time{}
	}
	return time.Unix(t, 0).UTC()
}
