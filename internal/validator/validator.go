// Package validator is where a token is checked: the answer to the portal's
// rest.check and to the PHP module's PortalTokens.Validate, on every REST
// call the portal does not answer from its own cache.
//
// The hot path is a memory cache in front of oauth.Service.Lookup: keyed by
// the token's signature, bounded, with a short lifetime for answers and a
// shorter one for unknown tokens. Revocations reach the cache two ways: a
// revocation made through this process drops its entries at once, and a
// poller follows the OAuth service's revocation feed (shared by every
// instance through the database) every PollInterval.
package validator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/isobox/isobox/internal/oauth"
)

// Tokens is what the validator needs from the OAuth service.
type Tokens interface {
	// Lookup checks an access token (oauth.ErrInvalidToken, oauth.ErrExpiredToken).
	Lookup(ctx context.Context, accessToken string) (oauth.TokenInfo, error)
	// Revocations is the feed of revoked access-token signatures.
	Revocations(ctx context.Context, after int64, limit int) (sigs []string, next int64, err error)
	// Signature is the key Lookup and Revocations use for a token.
	Signature(token string) string
}

// Config tunes a Validator. Every zero value has a safe default.
type Config struct {
	// CacheSize bounds the number of cached answers; 0 = 100,000.
	CacheSize int
	// CacheTTL is how long a valid token's answer is reused; 0 = 30s. A
	// revoked token is dropped sooner (the feed); the TTL bounds how long a
	// changed client status or a deactivated client made elsewhere is seen late.
	CacheTTL time.Duration
	// NegativeTTL is how long an unknown, revoked or expired token's answer
	// is reused; 0 = 2s.
	NegativeTTL time.Duration
	// PollInterval is how often the revocation feed is read; 0 = 250ms.
	PollInterval time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Validator checks access tokens with a cache. Safe for concurrent use.
type Validator struct {
	tokens Tokens
	cfg    Config
	log    *slog.Logger
	pos    *cache // valid tokens by signature
	neg    *cache // unknown/expired tokens by whole-token hash

	hits, misses, revoked atomic.Int64
	cursor                atomic.Int64
	lastPoll              atomic.Int64 // unix nanos of the last successful feed read
}

// New returns a Validator over tokens.
func New(tokens Tokens, cfg Config, log *slog.Logger) *Validator {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 2 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Validator{tokens: tokens, cfg: cfg, log: log, pos: newCache(cfg.CacheSize), neg: newCache(cfg.CacheSize / 8)}
	// The feed's positions are wall-clock nanoseconds; an empty cache has
	// nothing older to forget, so start a little before now (the feed
	// re-sends its last seconds anyway).
	v.cursor.Store(time.Now().Add(-10 * time.Second).UnixNano())
	return v
}

// Check returns what is known about a valid access token, or
// oauth.ErrInvalidToken / oauth.ErrExpiredToken, or another error when the
// store cannot answer (not cached). The returned TokenInfo is shared: do not
// modify its Params.
func (v *Validator) Check(ctx context.Context, token string) (oauth.TokenInfo, error) {
	now := v.cfg.Now()
	nowNs := now.UnixNano()
	h := tokenHash(sha256.Sum256([]byte(token)))
	sig := v.tokens.Signature(token)
	if sig != "" {
		if e, ok := v.pos.get(sig, nowNs); ok && e.hash == h {
			v.hits.Add(1)
			if !now.Before(e.info.Expires) {
				return oauth.TokenInfo{}, oauth.ErrExpiredToken
			}
			return e.info, nil
		}
	}
	hk := string(h[:])
	if e, ok := v.neg.get(hk, nowNs); ok {
		v.hits.Add(1)
		return oauth.TokenInfo{}, e.err
	}
	v.misses.Add(1)
	// A revocation that commits between this read and the put below is
	// still in the feed's re-sent window at the next poll, which drops the
	// entry stored here.
	info, err := v.tokens.Lookup(ctx, token)
	switch {
	case err == nil:
		until := min(nowNs+int64(v.cfg.CacheTTL), info.Expires.UnixNano()+int64(v.cfg.NegativeTTL))
		v.pos.put(info.Signature, &entry{hash: h, info: info, until: until, owner: info.ClientID}, nowNs)
		return info, nil
	case errors.Is(err, oauth.ErrInvalidToken), errors.Is(err, oauth.ErrExpiredToken):
		v.neg.put(hk, &entry{hash: h, err: err, until: nowNs + int64(v.cfg.NegativeTTL)}, nowNs)
		return oauth.TokenInfo{}, err
	default:
		return oauth.TokenInfo{}, fmt.Errorf("validator: look up token: %w", err)
	}
}

// Forget drops the cached answer for a token signature (a revocation made
// by this process).
func (v *Validator) Forget(sig string) {
	if v.pos.drop(sig) {
		v.revoked.Add(1)
	}
}

// ForgetToken drops the cached answers for a token.
func (v *Validator) ForgetToken(token string) {
	if sig := v.tokens.Signature(token); sig != "" {
		v.Forget(sig)
	}
	h := sha256.Sum256([]byte(token))
	v.neg.drop(string(h[:]))
}

// ForgetClient drops every cached token of a client (deactivated, deleted,
// status changed).
func (v *Validator) ForgetClient(clientID string) {
	v.revoked.Add(int64(v.pos.dropOwner(clientID)))
}

// Run follows the revocation feed until ctx ends.
func (v *Validator) Run(ctx context.Context) {
	t := time.NewTicker(v.cfg.PollInterval)
	defer t.Stop()
	failing := false
	for {
		if err := v.Poll(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				v.log.Warn("validator: read revocation feed", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads the revocation feed once, to its end, and drops what it names.
func (v *Validator) Poll(ctx context.Context) error {
	const page = 1000
	after := v.cursor.Load()
	for {
		sigs, next, err := v.tokens.Revocations(ctx, after, page)
		if err != nil {
			return err
		}
		for _, s := range sigs {
			v.Forget(s)
		}
		if next > after {
			after = next
		}
		if len(sigs) < page {
			break
		}
	}
	v.cursor.Store(after)
	v.lastPoll.Store(time.Now().UnixNano())
	return nil
}

// Stats are the validator's counters, for metrics.
type Stats struct {
	Hits, Misses, Dropped int64
	Entries               int
	// FeedAge is how long ago the revocation feed was last read (0 before the first read).
	FeedAge time.Duration
}

// Stats returns the counters.
func (v *Validator) Stats() Stats {
	s := Stats{Hits: v.hits.Load(), Misses: v.misses.Load(), Dropped: v.revoked.Load(), Entries: v.pos.len() + v.neg.len()}
	if lp := v.lastPoll.Load(); lp != 0 {
		s.FeedAge = time.Since(time.Unix(0, lp))
	}
	return s
}
