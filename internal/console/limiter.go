package console

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter bounds login attempts per key (a client address, a user name):
// a token bucket each, forgotten when the table grows past maxKeys (an
// attacker spraying names cannot make it grow without bound).
type limiter struct {
	every time.Duration
	burst int

	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

const maxLimiterKeys = 10000

func newLimiter(every time.Duration, burst int) *limiter {
	return &limiter{every: every, burst: burst, keys: map[string]*rate.Limiter{}}
}

// allow takes one attempt for every key; false if any of them is spent
// (then none is taken).
func (l *limiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) > maxLimiterKeys {
		clear(l.keys)
	}
	now := time.Now()
	ls := make([]*rate.Limiter, len(keys))
	for i, k := range keys {
		lim, ok := l.keys[k]
		if !ok {
			lim = rate.NewLimiter(rate.Every(l.every), l.burst)
			l.keys[k] = lim
		}
		if lim.TokensAt(now) < 1 {
			return false
		}
		ls[i] = lim
	}
	for _, lim := range ls {
		lim.AllowN(now, 1)
	}
	return true
}
