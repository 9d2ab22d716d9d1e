package validator

import (
	"crypto/sha256"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/isobox/isobox/internal/oauth"
)

// shards spreads the cache over independent locks so that concurrent token
// checks on different tokens rarely contend.
const shards = 64

// tokenHash is the SHA-256 of a whole token. A positive entry is keyed by
// the token's signature (what the revocation feed names) but answers only
// for the exact token it was filled with: the signature alone is in the
// database and in the feed, and must not become a usable credential.
type tokenHash [sha256.Size]byte

// entry is one cached answer.
type entry struct {
	hash  tokenHash
	info  oauth.TokenInfo // positive entries
	err   error           // negative entries: oauth.ErrInvalidToken or oauth.ErrExpiredToken
	until int64           // unix nanoseconds after which the entry is stale
	// owner is the client_id of a positive entry, so that all entries of a
	// client can be dropped when it is deactivated or deleted.
	owner string
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
}

// cache is a bounded map with per-entry deadlines, sharded by key. When a
// shard is full, expired entries go first, then arbitrary ones (Go's map
// order): cheaper than LRU bookkeeping on every hit and good enough for a
// cache whose entries all live for seconds.
type cache struct {
	seed     maphash.Seed
	perShard int
	s        [shards]shard
	n        atomic.Int64
}

func newCache(size int) *cache {
	per := size / shards
	if per < 1 {
		per = 1
	}
	c := &cache{seed: maphash.MakeSeed(), perShard: per}
	for i := range c.s {
		c.s[i].m = make(map[string]*entry)
	}
	return c
}

func (c *cache) shard(key string) *shard {
	return &c.s[maphash.String(c.seed, key)%shards]
}

// get returns the entry under key if it is fresh at now.
func (c *cache) get(key string, now int64) (*entry, bool) {
	sh := c.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok || now >= e.until {
		return nil, false
	}
	return e, true
}

func (c *cache) put(key string, e *entry, now int64) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, exists := sh.m[key]; !exists && len(sh.m) >= c.perShard {
		c.evict(sh, now)
	}
	if _, exists := sh.m[key]; !exists {
		c.n.Add(1)
	}
	sh.m[key] = e
}

// evict frees at least one slot in sh (locked): expired entries among the
// first few looked at, else the first one.
func (c *cache) evict(sh *shard, now int64) {
	looked := 0
	var victim string
	for k, e := range sh.m {
		if now >= e.until {
			delete(sh.m, k)
			c.n.Add(-1)
			return
		}
		if victim == "" {
			victim = k
		}
		if looked++; looked >= 8 {
			break
		}
	}
	if victim != "" {
		delete(sh.m, victim)
		c.n.Add(-1)
	}
}

func (c *cache) drop(key string) bool {
	sh := c.shard(key)
	sh.mu.Lock()
	_, ok := sh.m[key]
	if ok {
		delete(sh.m, key)
		c.n.Add(-1)
	}
	sh.mu.Unlock()
	return ok
}

// dropOwner removes every entry of client owner. It scans the whole cache:
// it runs when a client is deactivated or deleted, which is rare.
func (c *cache) dropOwner(owner string) int {
	n := 0
	for i := range c.s {
		sh := &c.s[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.owner == owner {
				delete(sh.m, k)
				n++
			}
		}
		sh.mu.Unlock()
	}
	c.n.Add(int64(-n))
	return n
}

func (c *cache) len() int { return int(c.n.Load()) }
