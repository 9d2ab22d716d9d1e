package testkit

import (
	"sync"
	"time"
)

// Clock is a test clock: real time plus an offset the test moves forward.
// It follows real time (so that libraries that call time.Now themselves,
// fosite among them, stay in step) while letting a test jump past an expiry
// instead of sleeping through it.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}
