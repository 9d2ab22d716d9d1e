// Package oauth is where a token is minted: isobox's OAuth 2.0 server for
// Bitrix24 REST apps. It keeps clients (REST apps and registered portals),
// authorization codes and access/refresh tokens in the store, serves
// /oauth/token/ in Bitrix's dialect on top of github.com/ory/fosite, and
// offers the Go API the portal protocol and the admin API build on.
//
// Tokens are opaque: a per-client prefix, 160 random bits and an HMAC tag
// (token.go). Only the tag (the token's signature) is stored, and client
// secrets only as keyed hashes.
package oauth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/isobox/isobox/internal/store"
)

// Sentinel errors. Callers map them to Bitrix codes (see bitrixError).
var (
	// ErrNotFound: the client (or token row) does not exist.
	ErrNotFound = errors.New("oauth: not found")
	// ErrInvalidClient: unknown or inactive client, or a wrong secret.
	ErrInvalidClient = errors.New("oauth: invalid client")
	// ErrInvalidToken: a token that is unknown, revoked, malformed, or shown
	// with another prefix than it was issued with.
	ErrInvalidToken = errors.New("oauth: invalid token")
	// ErrExpiredToken: a known token past its lifetime.
	ErrExpiredToken = errors.New("oauth: expired token")
	// ErrInvalidGrant: a code or refresh token that cannot be used (unknown,
	// used, revoked, issued to another client).
	ErrInvalidGrant = errors.New("oauth: invalid grant")
	// ErrInvalidScope: a requested scope the client does not have.
	ErrInvalidScope = errors.New("oauth: invalid scope")
	// ErrInvalidArgument: a client field with an unusable value.
	ErrInvalidArgument = errors.New("oauth: invalid argument")
)

// Client kinds.
const (
	KindApp    = "app"
	KindPortal = "portal"
)

// Client is an OAuth client: a REST app (Kind "app") or a registered portal (Kind "portal").
type Client struct {
	ID, Name, RedirectURI string
	// Scope is what tokens of the client may carry.
	Scope []string
	// Status is the Bitrix app status for apps: "L" local (default), "F", "P", "T", "D", "S".
	Status string
	// Active clients can authenticate and their tokens are valid.
	// CreateClient always creates an active client.
	Active bool
	// Kind is "app" (default) or "portal".
	Kind string
	// Portal, for apps: client_id of the portal that owns it ("bx.…"); "" if created by the admin.
	Portal string
	// Host, for portals: the portal's host as it registered ("portal.example.local").
	Host string
	// TokenPrefix prefixes the client's tokens; "" = server default.
	TokenPrefix string
	// Lifetimes of the client's tokens and codes; 0 = server default.
	AccessTTL, RefreshTTL, CodeTTL time.Duration
	CreatedAt, UpdatedAt           time.Time
}

// Grant says for whom and what a token or code is issued.
type Grant struct {
	ClientID string
	UserID   int64
	// Scope: nil = the client's whole scope; must be a subset (else ErrInvalidScope).
	Scope []string
	// Params are token parameters: LOCAL_USER, TZ_OFFSET, EVENT_SESSION, ...
	Params map[string]string
	// Portal is the client_id of the portal the token is for ("" = the app's Portal).
	Portal string
}

// TokenPair is what Issue returns.
type TokenPair struct {
	AccessToken, RefreshToken string // RefreshToken "" when not requested
	Expires                   time.Time
	ExpiresIn                 int64
	Grant                     Grant  // as issued (scope resolved)
	Status                    string // the client's status
}

// TokenInfo is what Lookup knows about a valid access token.
type TokenInfo struct {
	Grant
	Expires time.Time
	Status  string
	// Signature is the key Lookup, Revoke and Revocations use for this token.
	Signature string
}

// Config configures a Service. Every zero value has a safe default.
type Config struct {
	// TokenPrefix prefixes tokens of clients without their own; "" = "isobox.".
	TokenPrefix string
	// Default lifetimes; 0 = 1h access, 180 days refresh, 30s code.
	AccessTTL, RefreshTTL, CodeTTL time.Duration
	// RefreshGrace is how long after a refresh token was used it may be shown
	// again without being treated as reuse (a client that lost the response):
	// within it the request is refused with invalid_grant but the chain
	// survives; after it, reuse revokes the whole chain. 0 = no grace.
	RefreshGrace time.Duration
	// PublicURL is how apps reach the Bitrix-facing HTTP address
	// ("https://auth.example.local"); "" = derived from each request.
	PublicURL string
	// Now is the clock; nil = time.Now. Tests move it forward.
	Now func() time.Time
	// JanitorInterval is how often expired rows are deleted; 0 = 1 minute.
	JanitorInterval time.Duration
	// JanitorBatch bounds the rows one janitor statement deletes; 0 = 1000.
	JanitorBatch int
}

// Service is the OAuth server's state: clients and tokens in the store.
// It is safe for concurrent use.
type Service struct {
	db  *store.DB
	cfg Config
	log *slog.Logger
	mac mac

	seqMu   sync.Mutex
	lastSeq int64

	hostsMu sync.Mutex
	hosts   map[string]cachedHost

	provider fosite.OAuth2Provider

	hooksMu sync.Mutex
	hooks   []func(id string)

	stmts stmtCache

	clientsMu sync.Mutex
	clients   map[string]cachedClient // fositeStore.GetClient's cache

	writeLock chan struct{} // lockWrites
}

// OnClientChange registers fn to be called with a client's id after the
// client was updated, deleted or given a new secret, whoever did it (admin
// API, portal protocol): the place for caches of client data to drop it.
func (s *Service) OnClientChange(fn func(id string)) {
	s.hooksMu.Lock()
	s.hooks = append(s.hooks, fn)
	s.hooksMu.Unlock()
}

func (s *Service) clientChanged(id string) {
	s.forgetHost(id)
	s.clientsMu.Lock()
	delete(s.clients, id)
	s.clientsMu.Unlock()
	s.hooksMu.Lock()
	hooks := append([]func(string){}, s.hooks...)
	s.hooksMu.Unlock()
	for _, fn := range hooks {
		fn(id)
	}
}

type cachedHost struct {
	host string
	at   time.Time
}

const keyMeta = "oauth_hmac_key"

// New returns a Service on db, creating the server key on first use.
func New(db *store.DB, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.TokenPrefix == "" {
		cfg.TokenPrefix = "isobox."
	}
	if !validPrefix(cfg.TokenPrefix) {
		return nil, fmt.Errorf("oauth: token prefix %q: want up to %d of [A-Za-z0-9._-]", cfg.TokenPrefix, maxPrefixLen)
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = time.Hour
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = 180 * 24 * time.Hour
	}
	if cfg.CodeTTL == 0 {
		cfg.CodeTTL = 30 * time.Second
	}
	if cfg.AccessTTL < 0 || cfg.RefreshTTL < 0 || cfg.CodeTTL < 0 || cfg.RefreshGrace < 0 {
		return nil, errors.New("oauth: lifetimes and grace must not be negative")
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("oauth: public URL %q: want http(s)://host[:port]", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.JanitorInterval <= 0 {
		cfg.JanitorInterval = time.Minute
	}
	if cfg.JanitorBatch <= 0 {
		cfg.JanitorBatch = 1000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := loadKey(context.Background(), db)
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, cfg: cfg, log: log, mac: mac{key: key}, hosts: map[string]cachedHost{}, clients: map[string]cachedClient{}, writeLock: make(chan struct{}, 1)}
	s.provider = newProvider(s)
	return s, nil
}

// loadKey reads the server key, creating it if this is the first instance
// on the database. Two instances starting together agree: the second
// insert fails on the primary key and re-reads the first one's key.
func loadKey(ctx context.Context, db *store.DB) ([]byte, error) {
	for range 2 {
		v, err := db.Meta(ctx, keyMeta)
		if err == nil {
			key, err := hex.DecodeString(v)
			if err != nil || len(key) < 32 {
				return nil, fmt.Errorf("oauth: server key in meta %q is malformed", keyMeta)
			}
			return key, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("oauth: read server key: %w", err)
		}
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("oauth: server key: %w", err)
		}
		_, err = db.ExecContext(ctx, `INSERT INTO meta (name, value, updated_at) VALUES (?, ?, ?)`,
			keyMeta, hex.EncodeToString(b[:]), time.Now().Unix())
		if err != nil && !store.IsDuplicate(err) {
			return nil, fmt.Errorf("oauth: store server key: %w", err)
		}
	}
	return nil, errors.New("oauth: server key: could not create or read it")
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// nextSeq returns a revocation feed position: wall-clock nanoseconds, made
// strictly increasing within this process.
func (s *Service) nextSeq() int64 {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	n := time.Now().UnixNano()
	if n <= s.lastSeq {
		n = s.lastSeq + 1
	}
	s.lastSeq = n
	return n
}

// Signature returns the key TokenInfo.Signature has for token, without a
// database read; "" for something that is not shaped like a token.
func (s *Service) Signature(token string) string { return signature(token) }

// PublicURL returns the configured public URL ("" when derived per request).
func (s *Service) PublicURL() string { return s.cfg.PublicURL }

// Endpoints returns the Bitrix fields of a token response for g: domain is
// the OAuth server's host (from PublicURL, "" when it is not configured),
// serverEndpoint PublicURL + "/rest/" ("" likewise), clientEndpoint the
// portal's own site (with the scheme it registered with, https when it did
// not say) + "/rest/" and memberID md5(portal client_id); the last two are
// "" for a grant with no portal.
func (s *Service) Endpoints(g Grant) (domain, serverEndpoint, clientEndpoint, memberID string) {
	if s.cfg.PublicURL != "" {
		u, _ := url.Parse(s.cfg.PublicURL)
		domain = u.Host
		serverEndpoint = s.cfg.PublicURL + "/rest/"
	}
	if g.Portal != "" {
		memberID = MemberID(g.Portal)
		if base := s.portalBase(g.Portal); base != "" {
			clientEndpoint = base + "/rest/"
		}
	}
	return domain, serverEndpoint, clientEndpoint, memberID
}

// portalBase returns the scheme://host of a portal's own site, cached for a
// minute because Endpoints runs on every token response and has no context.
// The scheme is the one the portal registered with (its redirect URI): a box
// on plain http must get an http client_endpoint, or SDKs call a dead URL.
func (s *Service) portalBase(id string) string {
	s.hostsMu.Lock()
	h, ok := s.hosts[id]
	s.hostsMu.Unlock()
	if ok && time.Since(h.at) < time.Minute {
		return h.host
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var host, redirect string
	err := s.db.QueryRowContext(ctx, `SELECT host, redirect_uri FROM oauth_clients WHERE id = ?`, id).Scan(&host, &redirect)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.log.Warn("oauth: read portal host", "portal", id, "err", err)
		return h.host
	}
	base := ""
	if host != "" {
		base = "https://" + host
	}
	if u, err := url.Parse(redirect); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		base = u.Scheme + "://" + u.Host
	}
	s.hostsMu.Lock()
	s.hosts[id] = cachedHost{host: base, at: time.Now()}
	s.hostsMu.Unlock()
	return base
}

func (s *Service) forgetHost(id string) {
	s.hostsMu.Lock()
	delete(s.hosts, id)
	s.hostsMu.Unlock()
}
