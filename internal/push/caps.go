package push

import (
	"net"
	"net/netip"
	"sync"
)

// caps counts the subscribers held at once per client address and per
// channel, so that no one address or channel can hold an unbounded share
// of the relay (issue 11, findings 5 and 8). A negative limit is no cap.
type caps struct {
	perIP, perChannel int

	mu    sync.Mutex
	ips   map[netip.Prefix]int
	chans map[chanKey]int
}

func newCaps(perIP, perChannel int) *caps {
	return &caps{perIP: perIP, perChannel: perChannel, ips: map[netip.Prefix]int{}, chans: map[chanKey]int{}}
}

// clientPrefix is the address a cap counts: the IPv4 address, or the
// IPv6 /64 (one host usually holds a whole /64).
func clientPrefix(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// acquire takes a slot for a subscriber from remoteAddr on keys. It
// returns the release function, or the name of the cap that is full
// ("ip" or "channel") and takes nothing.
func (c *caps) acquire(remoteAddr string, keys []chanKey) (func(), string) {
	ip := clientPrefix(remoteAddr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perIP >= 0 && c.ips[ip] >= c.perIP {
		return nil, "ip"
	}
	if c.perChannel >= 0 {
		for _, k := range keys {
			if c.chans[k] >= c.perChannel {
				return nil, "channel"
			}
		}
	}
	c.ips[ip]++
	for _, k := range keys {
		c.chans[k]++
	}
	var once sync.Once
	return func() { once.Do(func() { c.release(ip, keys) }) }, ""
}

func (c *caps) release(ip netip.Prefix, keys []chanKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ips[ip]--; c.ips[ip] <= 0 {
		delete(c.ips, ip)
	}
	for _, k := range keys {
		if c.chans[k]--; c.chans[k] <= 0 {
			delete(c.chans, k)
		}
	}
}
