package oauth

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/store"
)

// secretLen is the length of a client secret, as Bitrix's
// (Random::getString(50, true)).
const secretLen = 50

// validStatuses are the Bitrix app statuses (b_rest_app.STATUS).
var validStatuses = map[string]bool{"L": true, "F": true, "P": true, "T": true, "D": true, "S": true}

// MemberID is Bitrix's member_id of a portal: md5 of its OAuth client_id.
func MemberID(portalClientID string) string {
	sum := md5.Sum([]byte(portalClientID))
	return hex.EncodeToString(sum[:])
}

// NewClientID returns an id shaped like Bitrix's: prefix + "." + PHP
// uniqid(”, true), i.e. 13 hex digits of time, one digit, ".", 8 digits
// ("local.5c8bb1b0891cf2.87252039").
func NewClientID(prefix string, now time.Time) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("oauth: crypto/rand failed: %v", err))
	}
	r := binary.BigEndian.Uint64(b[:]) % 1_000_000_000
	return fmt.Sprintf("%s.%08x%05x%d.%08d", prefix, now.Unix(), now.Nanosecond()/1000, r/100_000_000, r%100_000_000)
}

// normalize validates c and fills defaults; it does not touch ID or times.
func (s *Service) normalize(c *Client) error {
	if c.Kind == "" {
		c.Kind = KindApp
	}
	if c.Kind != KindApp && c.Kind != KindPortal {
		return fmt.Errorf("%w: kind %q: want app or portal", ErrInvalidArgument, c.Kind)
	}
	if c.Status == "" && c.Kind == KindApp {
		c.Status = "L"
	}
	if c.Status != "" && !validStatuses[c.Status] {
		return fmt.Errorf("%w: status %q: want one of L, F, P, T, D, S", ErrInvalidArgument, c.Status)
	}
	if !validPrefix(c.TokenPrefix) {
		return fmt.Errorf("%w: token prefix %q: want up to %d of [A-Za-z0-9._-]", ErrInvalidArgument, c.TokenPrefix, maxPrefixLen)
	}
	if c.AccessTTL < 0 || c.RefreshTTL < 0 || c.CodeTTL < 0 {
		return fmt.Errorf("%w: lifetimes must not be negative", ErrInvalidArgument)
	}
	// Text from the portal may be in its legacy encoding; MariaDB refuses
	// invalid UTF-8, so store what can be stored on both engines.
	c.Name = strings.ToValidUTF8(c.Name, "\uFFFD")
	c.Host = strings.ToValidUTF8(c.Host, "\uFFFD")
	c.RedirectURI = strings.ToValidUTF8(c.RedirectURI, "\uFFFD")
	if len(c.Name) > 255 || len(c.Host) > 255 || len(c.Portal) > 64 || len(c.ID) > 64 {
		return fmt.Errorf("%w: name or host over 255 bytes, or id or portal over 64", ErrInvalidArgument)
	}
	c.Scope = cleanScope(c.Scope)
	for _, sc := range c.Scope {
		if strings.ContainsAny(sc, ", \t\r\n") {
			return fmt.Errorf("%w: scope %q", ErrInvalidArgument, sc)
		}
	}
	return nil
}

// cleanScope trims, drops empties and duplicates, keeping order.
func cleanScope(in []string) []string {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// SplitScope splits a Bitrix scope list ("crm,user" or "crm user").
func SplitScope(s string) []string {
	return cleanScope(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }))
}

func joinScope(sc []string) string { return strings.Join(sc, ",") }

func secs(d time.Duration) int64 { return int64(d / time.Second) }

// CreateClient stores a new client and returns it with its secret, which
// is not kept and cannot be read again. An empty ID is generated: apps get
// "local." + uniqid, portals "bx." + uniqid. The client is created active.
func (s *Service) CreateClient(ctx context.Context, c Client) (Client, string, error) {
	if err := s.normalize(&c); err != nil {
		return Client{}, "", err
	}
	c.Active = true
	now := s.now()
	c.CreatedAt, c.UpdatedAt = now.Truncate(time.Second), now.Truncate(time.Second)
	sec := secret.New(secretLen)
	generated := c.ID == ""
	for attempt := 0; ; attempt++ {
		if generated {
			prefix := "local"
			if c.Kind == KindPortal {
				prefix = "bx"
			}
			c.ID = NewClientID(prefix, s.now())
		}
		_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_clients (id, kind, name, redirect_uri, scope, status, active, portal, host,
			token_prefix, access_ttl, refresh_ttl, code_ttl, secret_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Kind, c.Name, c.RedirectURI, joinScope(c.Scope), c.Status, c.Portal, c.Host,
			c.TokenPrefix, secs(c.AccessTTL), secs(c.RefreshTTL), secs(c.CodeTTL), s.mac.secretHash(sec), now.Unix(), now.Unix())
		if store.IsDuplicate(err) {
			if generated && attempt < 3 {
				continue
			}
			return Client{}, "", fmt.Errorf("oauth: create client %q: %w", c.ID, store.ErrConflict)
		}
		if err != nil {
			return Client{}, "", fmt.Errorf("oauth: create client %q: %w", c.ID, err)
		}
		return c, sec, nil
	}
}

// UpdateClient replaces the stored client c.ID's fields (except Kind,
// secret and CreatedAt). ErrNotFound if it does not exist.
func (s *Service) UpdateClient(ctx context.Context, c Client) error {
	if err := s.normalize(&c); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_clients SET name = ?, redirect_uri = ?, scope = ?, status = ?, active = ?,
		portal = ?, host = ?, token_prefix = ?, access_ttl = ?, refresh_ttl = ?, code_ttl = ?, updated_at = ? WHERE id = ?`,
		c.Name, c.RedirectURI, joinScope(c.Scope), c.Status, boolInt(c.Active), c.Portal, c.Host, c.TokenPrefix,
		secs(c.AccessTTL), secs(c.RefreshTTL), secs(c.CodeTTL), s.now().Unix(), c.ID)
	if err != nil {
		return fmt.Errorf("oauth: update client %q: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("oauth: update client %q: %w", c.ID, ErrNotFound)
	}
	s.clientChanged(c.ID)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DeleteClient deletes a client and revokes every token it holds; for a
// portal, also every token and code issued for that portal.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM oauth_clients WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		// A deleted portal takes the tokens issued for it along (its apps'
		// tokens too): nothing issued for a portal that is gone may pass.
		if _, err := s.revokeWhere(ctx, tx, "(client_id = ? OR portal = ?)", id, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE oauth_codes SET used_at = ? WHERE (client_id = ? OR portal = ?) AND used_at = 0`, s.now().Unix(), id, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("oauth: delete client %q: %w", id, err)
	}
	s.clientChanged(id)
	return nil
}

const clientCols = `id, kind, name, redirect_uri, scope, status, active, portal, host, token_prefix,
	access_ttl, refresh_ttl, code_ttl, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanClient(r scanner, extra ...any) (Client, error) {
	var c Client
	var scope string
	var active int
	var at, rt, ct, created, updated int64
	dest := append([]any{&c.ID, &c.Kind, &c.Name, &c.RedirectURI, &scope, &c.Status, &active, &c.Portal, &c.Host,
		&c.TokenPrefix, &at, &rt, &ct, &created, &updated}, extra...)
	if err := r.Scan(dest...); err != nil {
		return Client{}, err
	}
	c.Scope = SplitScope(scope)
	c.Active = active != 0
	c.AccessTTL, c.RefreshTTL, c.CodeTTL = time.Duration(at)*time.Second, time.Duration(rt)*time.Second, time.Duration(ct)*time.Second
	c.CreatedAt, c.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	return c, nil
}

// GetClient returns the client id, or ErrNotFound.
func (s *Service) GetClient(ctx context.Context, id string) (Client, error) {
	c, err := scanClient(s.db.QueryRowContext(ctx, `SELECT `+clientCols+` FROM oauth_clients WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, fmt.Errorf("oauth: client %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Client{}, fmt.Errorf("oauth: read client %q: %w", id, err)
	}
	return c, nil
}

// ListClients returns the clients of a kind and owning portal ("" = any),
// ordered by id.
func (s *Service) ListClients(ctx context.Context, kind, portal string) ([]Client, error) {
	q := `SELECT ` + clientCols + ` FROM oauth_clients WHERE 1 = 1`
	var args []any
	if kind != "" {
		q += ` AND kind = ?`
		args = append(args, kind)
	}
	if portal != "" {
		q += ` AND portal = ?`
		args = append(args, portal)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("oauth: list clients: %w", err)
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("oauth: list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("oauth: list clients: %w", err)
	}
	return out, nil
}

// RotateSecret gives client id a new secret, returned once; the old one
// stops working at once. Tokens already issued stay valid.
func (s *Service) RotateSecret(ctx context.Context, id string) (string, error) {
	sec := secret.New(secretLen)
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_clients SET secret_hash = ?, updated_at = ? WHERE id = ?`,
		s.mac.secretHash(sec), s.now().Unix(), id)
	if err != nil {
		return "", fmt.Errorf("oauth: rotate secret of %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", fmt.Errorf("oauth: rotate secret of %q: %w", id, ErrNotFound)
	}
	s.clientChanged(id)
	return sec, nil
}

// VerifyClient authenticates a client by id and secret (constant-time
// comparison of keyed hashes). Unknown, inactive or wrong: ErrInvalidClient.
func (s *Service) VerifyClient(ctx context.Context, id, secret string) (Client, error) {
	var hash string
	c, err := scanClient(s.db.QueryRowContext(ctx, `SELECT `+clientCols+`, secret_hash FROM oauth_clients WHERE id = ?`, id), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		// Spend the same hash as a real check would.
		s.secretMatches(secret, strings.Repeat("0", 64))
		return Client{}, ErrInvalidClient
	}
	if err != nil {
		return Client{}, fmt.Errorf("oauth: read client %q: %w", id, err)
	}
	if !s.secretMatches(secret, hash) || !c.Active {
		return Client{}, ErrInvalidClient
	}
	return c, nil
}

func (s *Service) secretMatches(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(s.mac.secretHash(secret)), []byte(hash)) == 1
}
