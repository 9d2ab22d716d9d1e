package portal

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
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
	VerifyClient(ctx context.Context, id, secret string) (oauth.Client, error)
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
	// Rebind: the approval lets the next registration take over the portal
	// already registered on Host (`authprovider portal rebind`).
	Rebind bool
}

// Approval is what an administrator approves (`authprovider portal allow`
// or `portal rebind`). The zero value beyond Host is a one-time approval
// that never lapses.
type Approval struct {
	// Host is the portal's host as in its address bar ("portal.example.local[:port]").
	Host string
	// Permanent: the approval is not used up by a registration, so that
	// anyone who can reach /oauth/register/ may register Host again while no
	// portal is registered there. An explicit choice; one-time is the default.
	Permanent bool
	// Rebind: the next registration from Host takes over the portal already
	// registered there (its apps move to the new identity, the old one is
	// deactivated): for a portal that lost its credentials. Always one-time.
	Rebind bool
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

// validHost reports whether h (normalized) is a host name, optionally with :port.
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "/ \t?#@\\")
}

// Allow approves a host for registration (replacing an earlier approval).
func (r *Registry) Allow(ctx context.Context, ap Approval) (Allowed, error) {
	host := NormalizeHost(ap.Host)
	if !validHost(host) {
		return Allowed{}, fmt.Errorf("portal: host %q: want a host name, optionally with :port", host)
	}
	once := !ap.Permanent || ap.Rebind
	now := r.now()
	a := Allowed{Host: host, Once: once, Note: ap.Note, CreatedAt: now.Truncate(time.Second), Licence: ap.LicenceKey != "", Rebind: ap.Rebind}
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
		_, err := tx.ExecContext(ctx, `INSERT INTO portal_allow (host, once, expires_at, note, created_at, licence, key_md5, rebind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			host, boolInt(once), unixOrZero(a.Expires), ap.Note, now.Unix(), licence, keyMD5, boolInt(ap.Rebind))
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
	rows, err := r.db.QueryContext(ctx, `SELECT host, once, expires_at, note, created_at, licence, rebind FROM portal_allow ORDER BY host`)
	if err != nil {
		return nil, fmt.Errorf("portal: read allowlist: %w", err)
	}
	defer rows.Close()
	var out []Allowed
	for rows.Next() {
		var a Allowed
		var once, rebind int
		var exp, created int64
		var licence string
		if err := rows.Scan(&a.Host, &once, &exp, &a.Note, &created, &licence, &rebind); err != nil {
			return nil, fmt.Errorf("portal: read allowlist: %w", err)
		}
		a.Once, a.CreatedAt, a.Licence, a.Rebind = once != 0, time.Unix(created, 0).UTC(), licence != "", rebind != 0
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
	// Hash is BX_HASH; Signed are the values it covers, in order (every
	// field before it, as CRestUtil::signLicenseRequest implodes them).
	Hash   string
	Signed []string
	// ClientID and ClientSecret are the portal's current credentials, if it
	// still holds them: proof that it is the portal registered on the host.
	ClientID, ClientSecret string
	// Challenge is a value from Challenge, covered by Hash: proof, made
	// with the licence key, that cannot be replayed.
	Challenge string
}

// Registered is a new portal client and its secret (shown once).
type Registered struct {
	Client oauth.Client
	Secret string
}

// ChallengeTTL is how long a registration challenge is good for.
const ChallengeTTL = 5 * time.Minute

// maxChallenges bounds the live challenges of one host: they are issued
// to unauthenticated callers.
const maxChallenges = 16

var (
	// ErrRegistered: the host already has a registered portal and the
	// registration brought no proof that it comes from that portal
	// (returned together with ErrNotAllowed).
	ErrRegistered = errors.New("portal: host is already registered; proof of identity is required")
	// ErrTooManyChallenges: the host has maxChallenges live challenges.
	ErrTooManyChallenges = errors.New("portal: too many open registration challenges for this host")
)

// Register creates a portal client for reg's host.
//
// A host with no active portal registers if the policy lets it: "open"
// lets anyone, "allowlist" only approved hosts (the approval is used up
// unless it is permanent, and checks the licence signature if it is
// licence-bound).
//
// A host that already has an active portal registers again only with
// proof that the caller is that portal: its current client_id and
// client_secret, a licence-key signature over a fresh Challenge (if the
// portal registered with a licence-bound approval), or an administrator's
// rebind approval. member_id is never proof: it is md5 of the client_id
// and travels in every event. With proof, the new identity takes over the
// old one's apps and the old one is deactivated; the policy is not asked.
func (r *Registry) Register(ctx context.Context, policy string, reg Registration) (Registered, error) {
	u, err := url.Parse(strings.TrimSpace(reg.RedirectURI))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || !validHost(NormalizeHost(u.Host)) {
		return Registered{}, fmt.Errorf("portal: redirect_uri %q: want http(s)://host: %w", reg.RedirectURI, oauth.ErrInvalidArgument)
	}
	host := NormalizeHost(u.Host)
	existing, err := r.activeOn(ctx, host)
	if err != nil {
		return Registered{}, err
	}
	var from []oauth.Client
	var keyMD5 string
	switch {
	case len(existing) > 0:
		if from, keyMD5, err = r.prove(ctx, host, existing, reg); err != nil {
			return Registered{}, err
		}
	case policy != PolicyOpen:
		if keyMD5, err = r.consume(ctx, host, reg, false); err != nil {
			return Registered{}, err
		}
	}
	out, err := r.add(ctx, u.Scheme+"://"+host, reg.MemberType, reg.Licence, keyMD5)
	if err != nil {
		return out, err
	}
	return out, r.adopt(ctx, out.Client, from)
}

// activeOn returns the active portals registered on host.
func (r *Registry) activeOn(ctx context.Context, host string) ([]oauth.Client, error) {
	portals, err := r.clients.ListClients(ctx, oauth.KindPortal, "")
	if err != nil {
		return nil, err
	}
	var out []oauth.Client
	for _, p := range portals {
		if p.Active && p.Host == host {
			out = append(out, p)
		}
	}
	return out, nil
}

// prove checks that a registration for host, which has the active portals
// existing, comes from one of them; it returns the portals to take over
// and the licence key hash the new identity keeps.
func (r *Registry) prove(ctx context.Context, host string, existing []oauth.Client, reg Registration) ([]oauth.Client, string, error) {
	if reg.ClientID != "" || reg.ClientSecret != "" {
		c, err := r.clients.VerifyClient(ctx, reg.ClientID, reg.ClientSecret)
		if err != nil && !errors.Is(err, oauth.ErrInvalidClient) {
			return nil, "", err
		}
		if err != nil || c.Kind != oauth.KindPortal || c.Host != host {
			return nil, "", fmt.Errorf("%w: %q (wrong portal credentials)", ErrNotAllowed, host)
		}
		key, err := r.keyOf(ctx, c.ID)
		return []oauth.Client{c}, key, err
	}
	if reg.Challenge != "" {
		for _, c := range existing {
			key, err := r.keyOf(ctx, c.ID)
			if err != nil {
				return nil, "", err
			}
			if key == "" || !licenceMatches(reg, key) {
				continue
			}
			if err := r.useChallenge(ctx, host, reg.Challenge); err != nil {
				return nil, "", err
			}
			return []oauth.Client{c}, key, nil
		}
		return nil, "", fmt.Errorf("%w: %q (licence signature over the challenge does not match)", ErrNotAllowed, host)
	}
	key, err := r.consume(ctx, host, reg, true)
	if err != nil {
		return nil, "", err
	}
	for _, c := range existing {
		if key != "" {
			break
		}
		if key, err = r.keyOf(ctx, c.ID); err != nil {
			return nil, "", err
		}
	}
	return existing, key, nil
}

// licenceMatches checks BX_LICENCE and BX_HASH against md5(licence key).
func licenceMatches(reg Registration, keyMD5 string) bool {
	hash := md5hex(md5hex(strings.Join(reg.Signed, "|")) + keyMD5)
	// BX_LICENCE is md5("BITRIX" . key . "LICENCE"): not derivable from
	// md5(key), so only BX_HASH (which is) proves the key.
	return reg.Licence != "" && subtle.ConstantTimeCompare([]byte(reg.Hash), []byte(hash)) == 1
}

// keyOf returns md5(licence key) recorded for portal id, "" if none.
func (r *Registry) keyOf(ctx context.Context, id string) (string, error) {
	var key string
	err := r.db.QueryRowContext(ctx, `SELECT key_md5 FROM portal_registrations WHERE client_id = ?`, id).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("portal: read registration of %q: %w", id, err)
	}
	return key, nil
}

// Challenge issues a single-use challenge, good for ChallengeTTL, with
// which the portal registered on redirectURI's host proves itself by its
// licence key: it registers again with challenge=<value> among the fields
// BX_HASH covers. Only hosts whose portal registered with a licence-bound
// approval get one (others have nothing to sign it with): ErrNotAllowed.
func (r *Registry) Challenge(ctx context.Context, redirectURI string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(redirectURI))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("portal: redirect_uri %q: want http(s)://host: %w", redirectURI, oauth.ErrInvalidArgument)
	}
	host := NormalizeHost(u.Host)
	existing, err := r.activeOn(ctx, host)
	if err != nil {
		return "", err
	}
	licensed := false
	for _, c := range existing {
		key, err := r.keyOf(ctx, c.ID)
		if err != nil {
			return "", err
		}
		licensed = licensed || key != ""
	}
	if !licensed {
		return "", fmt.Errorf("%w: %q (no portal registered with a licence key)", ErrNotAllowed, host)
	}
	var b [24]byte
	rand.Read(b[:])
	value := hex.EncodeToString(b[:])
	now := r.now()
	err = r.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM portal_challenges WHERE expires_at <= ?`, now.Unix()); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM portal_challenges WHERE host = ?`, host).Scan(&n); err != nil {
			return err
		}
		if n >= maxChallenges {
			return ErrTooManyChallenges
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO portal_challenges (challenge_hash, host, expires_at) VALUES (?, ?, ?)`,
			sha256hex(value), host, now.Add(ChallengeTTL).Unix())
		return err
	})
	if err != nil {
		if errors.Is(err, ErrTooManyChallenges) {
			return "", err
		}
		return "", fmt.Errorf("portal: store challenge: %w", err)
	}
	return value, nil
}

// useChallenge consumes a live challenge issued for host.
func (r *Registry) useChallenge(ctx context.Context, host, value string) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM portal_challenges WHERE challenge_hash = ? AND host = ? AND expires_at > ?`,
		sha256hex(value), host, r.now().Unix())
	if err != nil {
		return fmt.Errorf("portal: use challenge: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: %q (challenge unknown, used or expired)", ErrNotAllowed, host)
	}
	return nil
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// adopt moves the apps of the portals from to next and deactivates them.
func (r *Registry) adopt(ctx context.Context, next oauth.Client, from []oauth.Client) error {
	for _, old := range from {
		if old.ID == next.ID {
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
// for one) and uses it up if it is one-time; it returns md5 of the
// approval's licence key ("" if it has none). rebindOnly: only a rebind
// approval will do (the host is registered already).
func (r *Registry) consume(ctx context.Context, host string, reg Registration, rebindOnly bool) (string, error) {
	var keyMD5 string
	err := r.db.InTx(ctx, func(tx *sql.Tx) error {
		var once, rebind int
		var exp int64
		var licence string
		err := tx.QueryRowContext(ctx, `SELECT once, expires_at, licence, key_md5, rebind FROM portal_allow WHERE host = ?`+r.db.ForUpdate(), host).
			Scan(&once, &exp, &licence, &keyMD5, &rebind)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && rebindOnly && rebind == 0) {
			if rebindOnly {
				return fmt.Errorf("%w: %q: %w", ErrNotAllowed, host, ErrRegistered)
			}
			return fmt.Errorf("%w: %q", ErrNotAllowed, host)
		}
		if err != nil {
			return fmt.Errorf("portal: read allowlist: %w", err)
		}
		if exp != 0 && r.now().Unix() >= exp {
			return fmt.Errorf("%w: %q (approval expired)", ErrNotAllowed, host)
		}
		if licence != "" {
			if subtle.ConstantTimeCompare([]byte(reg.Licence), []byte(licence)) != 1 || !licenceMatches(reg, keyMD5) {
				return fmt.Errorf("%w: %q (licence signature does not match)", ErrNotAllowed, host)
			}
		}
		if once != 0 || rebind != 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM portal_allow WHERE host = ?`, host); err != nil {
				return fmt.Errorf("portal: consume approval: %w", err)
			}
		}
		return nil
	})
	return keyMD5, err
}

// Add creates a portal client for the portal at baseURL ("https://host")
// without asking the policy: the administrator's `portal add`.
func (r *Registry) Add(ctx context.Context, baseURL, memberType, licence string) (Registered, error) {
	return r.add(ctx, baseURL, memberType, licence, "")
}

func (r *Registry) add(ctx context.Context, baseURL, memberType, licence, keyMD5 string) (Registered, error) {
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
	_, err = r.db.ExecContext(ctx, `INSERT INTO portal_registrations (client_id, host, member_type, licence, key_md5, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		c.ID, host, memberType, licence, keyMD5, r.now().Unix())
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

// Move records a new address for portal id (`authprovider portal update`):
// scheme "" keeps the current one. Only an administrator moves a portal:
// what a portal's calls say about its address (client_redirect_uri, Host)
// never does.
func (r *Registry) Move(ctx context.Context, id, scheme, host string) (oauth.Client, error) {
	p, err := r.clients.GetClient(ctx, id)
	if err != nil {
		return oauth.Client{}, err
	}
	if p.Kind != oauth.KindPortal {
		return oauth.Client{}, fmt.Errorf("portal: %q is not a portal: %w", id, oauth.ErrNotFound)
	}
	host = NormalizeHost(host)
	if !validHost(host) {
		return oauth.Client{}, fmt.Errorf("portal: host %q: want a host name, optionally with :port: %w", host, oauth.ErrInvalidArgument)
	}
	if scheme == "" {
		scheme = "https"
		if u, err := url.Parse(p.RedirectURI); err == nil && u.Scheme != "" {
			scheme = u.Scheme
		}
	}
	if scheme != "http" && scheme != "https" {
		return oauth.Client{}, fmt.Errorf("portal: scheme %q: want http or https: %w", scheme, oauth.ErrInvalidArgument)
	}
	p.Host, p.RedirectURI = host, scheme+"://"+host
	if err := r.clients.UpdateClient(ctx, p); err != nil {
		return oauth.Client{}, err
	}
	if _, err := r.db.ExecContext(ctx, `UPDATE portal_registrations SET host = ? WHERE client_id = ?`, host, id); err != nil {
		return oauth.Client{}, fmt.Errorf("portal: record move of %q: %w", id, err)
	}
	return p, nil
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
