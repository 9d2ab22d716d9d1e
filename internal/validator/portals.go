package validator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/isobox/isobox/internal/oauth"
)

// Clients is what the portal side needs from the OAuth service's clients.
type Clients interface {
	VerifyClient(ctx context.Context, id, secret string) (oauth.Client, error)
	GetClient(ctx context.Context, id string) (oauth.Client, error)
	ListClients(ctx context.Context, kind, portal string) ([]oauth.Client, error)
}

// Portals authenticates portals by their OAuth client_id and secret, with a
// short cache of verified credentials: a portal presents them on every
// rest.check and every module call. The cache is keyed by the SHA-256 of
// "id:secret", so it holds no secret; only a successful verification is
// cached, so a wrong secret always reaches the constant-time check.
type Portals struct {
	clients Clients
	ttl     time.Duration
	now     func() time.Time

	mu sync.RWMutex
	m  map[[sha256.Size]byte]cachedPortal
}

type cachedPortal struct {
	c     oauth.Client
	until time.Time
}

// maxCachedPortals bounds the credential cache; a box has a handful of
// portals, so overflowing it means something odd and it is simply reset.
const maxCachedPortals = 1024

// NewPortals returns a Portals caching verified credentials for ttl (0 = 10s).
func NewPortals(clients Clients, ttl time.Duration, now func() time.Time) *Portals {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Portals{clients: clients, ttl: ttl, now: now, m: map[[sha256.Size]byte]cachedPortal{}}
}

// Verify returns the active portal with these credentials, or an error
// wrapping oauth.ErrInvalidClient.
func (p *Portals) Verify(ctx context.Context, id, secret string) (oauth.Client, error) {
	if id == "" || secret == "" {
		return oauth.Client{}, oauth.ErrInvalidClient
	}
	key := sha256.Sum256([]byte(id + ":" + secret))
	now := p.now()
	p.mu.RLock()
	c, ok := p.m[key]
	p.mu.RUnlock()
	if ok && now.Before(c.until) {
		return c.c, nil
	}
	cl, err := p.clients.VerifyClient(ctx, id, secret)
	if err != nil {
		if errors.Is(err, oauth.ErrInvalidClient) {
			return oauth.Client{}, err
		}
		return oauth.Client{}, fmt.Errorf("validator: verify portal %q: %w", id, err)
	}
	if cl.Kind != oauth.KindPortal {
		return oauth.Client{}, fmt.Errorf("validator: client %q is not a portal: %w", id, oauth.ErrInvalidClient)
	}
	p.mu.Lock()
	if len(p.m) >= maxCachedPortals {
		clear(p.m)
	}
	p.m[key] = cachedPortal{c: cl, until: now.Add(p.ttl)}
	p.mu.Unlock()
	return cl, nil
}

// Forget drops the cached credentials of portal id (its secret was
// rotated, or it was removed or changed).
func (p *Portals) Forget(id string) {
	p.mu.Lock()
	for k, c := range p.m {
		if c.c.ID == id {
			delete(p.m, k)
		}
	}
	p.mu.Unlock()
}
