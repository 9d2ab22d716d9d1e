package portal

import (
	"context"
	"crypto/md5"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
)

// Registration policies (--portal-registration).
const (
	// PolicyAllowlist: only hosts approved with `authprovider portal allow`.
	PolicyAllowlist = "allowlist"
	// PolicyOpen: any caller may register (a first setup on a trusted network).
	PolicyOpen = "open"
)

// ErrNotAllowed: the host may not register under the current policy.
var ErrNotAllowed = errors.New("portal: host is not allowed to register")

// Clients is what the registry needs from the OAuth service.
type Clients interface {
	CreateClient(ctx context.Context, c oauth.Client) (oauth.Client, string, error)
	UpdateClient(ctx context.Context, c oauth.Client) error
	DeleteClient(ctx context.Context, id string) error
	GetClient(ctx context.Context, id string) (oauth.Client, error)
	ListClients(ctx context.Context, kind, portal string) ([]oauth.Client, error)
	RevokeTokens(ctx context.Context, clientID string, userID int64) (int, error)
}

// Registry decides who may register as a portal and creates portal
// clients. The administrator's CLI uses it directly on the database.
type Registry struct {
	db      *store.DB
	clients Clients
	now     func() time.Time
}

// NewRegistry returns a Registry; now nil = time.Now.
func NewRegistry(db *store.DB, clients Clients, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{db: db, clients: clients, now: now}
}

// Allowed is one approved host.
type Allowed struct {
	Host      string
	Once      bool
	Expires   time.Time // zero = never
	Note      string
	CreatedAt time.Time
	// Licence: registration must be signed with the portal's licence key.
	Licence bool
}

// Approval is what an administrator approves (`authprovider portal allow`).
type Approval struct {
	// Host is the portal's host as in its address bar ("portal.example.local[:port]").
	Host string
	// Once: the approval is consumed by the first registration.
	Once bool
	// TTL > 0: the approval lapses after it.
	TTL time.Duration
	// Note is free text for the allowlist.
	Note string
	// LicenceKey, if set, is the portal's licence key (LICENSE_KEY): the
	// registration must carry BX_LICENCE and BX_HASH made with it, as
	// CRestUtil::signLicenseRequest does. Only hashes of it are stored.
	LicenceKey string
}

// NormalizeHost lower-cases a host and drops a default port, as the portal
// does for its redirect_uri (":80", ":443").
func NormalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(strings.TrimSuffix(h, ":80"), ":443")
	return h
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Allow approves a host for registration (replacing an earlier approval).
func (r *Registry) Allow(ctx context.Context, ap Approval) (Allowed, error) {
	host := NormalizeHost(ap.Host)
	if host == "" || strings.ContainsAny(host, "/ \t?#@") {
		return Allowed{}, fmt.Errorf("portal: host %q: want a host name, optionally with :port", host)
	}
	now := r.now()
	a := Allowed{Host: host, Once: ap.Once, Note: ap.Note, CreatedAt: now.Truncate(time.Second), Licence: ap.LicenceKey != ""}
	if ap.TTL > 0 {
		a.Expires = now.Add(ap.TTL).Truncate(time.Second)
	}
	var licence, keyMD5 string
	if ap.LicenceKey != "" {
		licence, keyMD5 = md5hex("BITRIX"+ap.LicenceKey+"LICENCE"), md5hex(ap.LicenceKey)
	}
	err := r.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM portal_allow WHERE host = ?`, host); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO portal_allow (host, once, expires_at, note, created_at, licence, key_md5) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			host, boolInt(ap.Once), unixOrZero(a.Expires), ap.Note, now.Unix(), licence, keyMD5)
		return err
	})
	if err != nil {
		return Allowed{}, fmt.Errorf("portal: allow %q: %w", host, err)
	}
	return a, nil
}

// Disallow removes host's approval; store.ErrNotFound if there was none.
func (r *Registry) Disallow(ctx context.Context, host string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM portal_allow WHERE host = ?`, NormalizeHost(host))
	if err != nil {
		return fmt.Errorf("portal: disallow %q: %w", host, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("portal: disallow %q: %w", host, store.ErrNotFound)
	}
	return nil
}

// Allowlist returns the approved hosts.
func (r *Registry) Allowlist(ctx context.Context) ([]Allowed, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT host, once, expires_at, note, created_at, licence FROM portal_allow ORDER BY host`)
	if err != nil {
		return nil, fmt.Errorf("portal: read allowlist: %w", err)
	}
	defer rows.Close()
	var out []Allowed
	for rows.Next() {
		var a Allowed
		var once int
		var exp, created int64
		var licence string
		if err := rows.Scan(&a.Host, &once, &exp, &a.Note, &created, &licence); err != nil {
			return nil, fmt.Errorf("portal: read allowlist: %w", err)
		}
		a.Once, a.CreatedAt, a.Licence = once != 0, time.Unix(created, 0).UTC(), licence != ""
		if exp != 0 {
			a.Expires = time.Unix(exp, 0).UTC()
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Registration is what a portal sends to /oauth/register/.
type Registration struct {
	RedirectURI string // "https://portal.example.local"
	MemberType  string // BX_TYPE: CP, BSM, B24
	Licence     string // BX_LICENCE: md5("BITRIX" . key . "LICENCE")
	// MemberID is md5 of the portal's previous client_id, sent when it
	// registers again while it still knows its old identity.
	MemberID string
	// Hash is BX_HASH; Signed are the values it covers, in order (every
	// field before it, as CRestUtil::signLicenseRequest implodes them).
	Hash   string
	Signed []string
}

// Registered is a new portal client and its secret (shown once).
type Registered struct {
	Client oauth.Client
	Secret string
}

// Register creates a portal client if policy lets reg's host register:
// "open" lets anyone, "allowlist" only approved hosts (a one-time approval
// is consumed). Every registration is a new client: the portal stores the
// new credentials and forgets the old ones. Under the allowlist, a portal
// that registers again naming its previous identity (member_id) from the
// same host takes its local apps along and the old identity is
// deactivated, so that its apps keep working; member_id is no secret (it
// is in every event), so this is only done for an approved host.
func (r *Registry) Register(ctx context.Context, policy string, reg Registration) (Registered, error) {
	u, err := url.Parse(strings.TrimSpace(reg.RedirectURI))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Registered{}, fmt.Errorf("portal: redirect_uri %q: want http(s)://host: %w", reg.RedirectURI, oauth.ErrInvalidArgument)
	}
	host := NormalizeHost(u.Host)
	if policy != PolicyOpen {
		if err := r.consume(ctx, host, reg); err != nil {
			return Registered{}, err
		}
	}
	out, err := r.Add(ctx, u.Scheme+"://"+host, reg.MemberType, reg.Licence)
	if err != nil || policy == PolicyOpen || reg.MemberID == "" {
		return out, err
	}
	return out, r.adopt(ctx, out.Client, reg.MemberID)
}

// adopt moves the apps of the portal whose member_id is memberID (same
// host) to next, and deactivates it.
func (r *Registry) adopt(ctx context.Context, next oauth.Client, memberID string) error {
	portals, err := r.clients.ListClients(ctx, oauth.KindPortal, "")
	if err != nil {
		return err
	}
	for _, old := range portals {
		if old.ID == next.ID || old.Host != next.Host || oauth.MemberID(old.ID) != memberID {
			continue
		}
		apps, err := r.clients.ListClients(ctx, oauth.KindApp, old.ID)
		if err != nil {
			return err
		}
		for _, app := range apps {
			app.Portal = next.ID
			if err := r.clients.UpdateClient(ctx, app); err != nil {
				return fmt.Errorf("portal: move app %q to %q: %w", app.ID, next.ID, err)
			}
		}
		old.Active = false
		if err := r.clients.UpdateClient(ctx, old); err != nil {
			return fmt.Errorf("portal: deactivate %q: %w", old.ID, err)
		}
	}
	return nil
}

// consume checks host's approval (and the licence signature if it asks
// for one) and uses it up if it is one-time.
func (r *Registry) consume(ctx context.Context, host string, reg Registration) error {
	return r.db.InTx(ctx, func(tx *sql.Tx) error {
		var once int
		var exp int64
		var licence, keyMD5 string
		err := tx.QueryRowContext(ctx, `SELECT once, expires_at, licence, key_md5 FROM portal_allow WHERE host = ?`+r.db.ForUpdate(), host).
			Scan(&once, &exp, &licence, &keyMD5)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %q", ErrNotAllowed, host)
		}
		if err != nil {
			return fmt.Errorf("portal: read allowlist: %w", err)
		}
		if exp != 0 && r.now().Unix() >= exp {
			return fmt.Errorf("%w: %q (approval expired)", ErrNotAllowed, host)
		}
		if licence != "" {
			hash := md5hex(md5hex(strings.Join(reg.Signed, "|")) + keyMD5)
			if subtle.ConstantTimeCompare([]byte(reg.Licence), []byte(licence)) != 1 || subtle.ConstantTimeCompare([]byte(reg.Hash), []byte(hash)) != 1 {
				return fmt.Errorf("%w: %q (licence signature does not match)", ErrNotAllowed, host)
			}
		}
		if once != 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM portal_allow WHERE host = ?`, host); err != nil {
				return fmt.Errorf("portal: consume approval: %w", err)
			}
		}
		return nil
	})
}

// Add creates a portal client for the portal at baseURL ("https://host")
// without asking the policy: the administrator's `portal add`.
func (r *Registry) Add(ctx context.Context, baseURL, memberType, licence string) (Registered, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return Registered{}, fmt.Errorf("portal: %q: want http(s)://host: %w", baseURL, oauth.ErrInvalidArgument)
	}
	host := NormalizeHost(u.Host)
	c, sec, err := r.clients.CreateClient(ctx, oauth.Client{
		Kind: oauth.KindPortal, Name: host, Host: host, RedirectURI: u.Scheme + "://" + host,
		Scope: []string{"rest", "application"},
	})
	if err != nil {
		return Registered{}, err
	}
	if len(memberType) > 16 {
		memberType = memberType[:16]
	}
	if len(licence) > 64 {
		licence = licence[:64]
	}
	_, err = r.db.ExecContext(ctx, `INSERT INTO portal_registrations (client_id, host, member_type, licence, created_at) VALUES (?, ?, ?, ?, ?)`,
		c.ID, host, memberType, licence, r.now().Unix())
	if err != nil {
		return Registered{}, fmt.Errorf("portal: record registration of %q: %w", c.ID, err)
	}
	return Registered{Client: c, Secret: sec}, nil
}

// MemberType returns what a portal said it is at registration (BX_TYPE),
// "BSM" when unknown.
func (r *Registry) MemberType(ctx context.Context, clientID string) string {
	var t string
	err := r.db.QueryRowContext(ctx, `SELECT member_type FROM portal_registrations WHERE client_id = ?`, clientID).Scan(&t)
	if err != nil || t == "" {
		return "BSM"
	}
	return t
}

// Portals lists the registered portals.
func (r *Registry) Portals(ctx context.Context) ([]oauth.Client, error) {
	return r.clients.ListClients(ctx, oauth.KindPortal, "")
}

// Remove deletes portal id, its apps and their tokens.
func (r *Registry) Remove(ctx context.Context, id string) error {
	p, err := r.clients.GetClient(ctx, id)
	if err != nil {
		return err
	}
	if p.Kind != oauth.KindPortal {
		return fmt.Errorf("portal: %q is not a portal: %w", id, oauth.ErrNotFound)
	}
	apps, err := r.clients.ListClients(ctx, oauth.KindApp, id)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if err := r.clients.DeleteClient(ctx, a.ID); err != nil && !errors.Is(err, oauth.ErrNotFound) {
			return err
		}
	}
	if err := r.clients.DeleteClient(ctx, id); err != nil {
		return err
	}
	if _, err := r.db.ExecContext(ctx, `DELETE FROM portal_registrations WHERE client_id = ?`, id); err != nil {
		return fmt.Errorf("portal: forget registration of %q: %w", id, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
