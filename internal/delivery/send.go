package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/isobox/isobox/api/isobox/token/v1"
)

// errDenied marks a handler address refused by the deny list.
var errDenied = errors.New("delivery: handler address denied by policy")

// result is the outcome of one attempt.
type result struct {
	ok         bool
	permanent  bool // retrying cannot help (bad URL, denied address)
	aborted    bool // shutting down before an attempt was made
	status     int
	err        string
	retryAfter time.Duration
	took       time.Duration
	event      string // the item's event name, for the record
}

type sender struct {
	cfg     Config
	client  *http.Client
	secrets *Secrets
	auth    *authCache
	// noBatch is set once authprovider answers that it has no BuildBatch
	// (an older version): items then ask one by one without trying again.
	noBatch atomic.Bool
}

func newSender(cfg Config, secrets *Secrets) *sender {
	deny := cfg.Deny
	dialer := &net.Dialer{
		Timeout:   cfg.Timeout,
		KeepAlive: 30 * time.Second,
		// Checked on the resolved address of every connection, so a DNS
		// name cannot smuggle a denied address in.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", errDenied, address)
			}
			if denied(deny, ap.Addr()) {
				return fmt.Errorf("%w: %s", errDenied, ap.Addr())
			}
			if cfg.Self != nil && isSelf(cfg.Self(), ap) {
				return fmt.Errorf("%w: %s is the relay's own listener", errDenied, ap)
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:               nil, // handlers are on the LAN; never via an environment proxy
		DialContext:         dialer.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: max(cfg.Concurrency*2, 16),
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		ForceAttemptHTTP2:   true,
	}
	c := &http.Client{Transport: tr}
	if !cfg.FollowRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return &sender{cfg: cfg, client: c, secrets: secrets, auth: &authCache{ttl: cfg.AuthCacheTTL, m: map[string]cachedAuth{}}}
}

func denied(deny []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range deny {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isSelf reports whether ap is one of the relay's listeners: the same
// address and port, or the port of a listener on the unspecified address
// and ap an address of this host.
func isSelf(self []netip.AddrPort, ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	var local []netip.Addr
	for _, s := range self {
		if s.Port() != ap.Port() {
			continue
		}
		sa := s.Addr().Unmap()
		if sa == a {
			return true
		}
		if !sa.IsUnspecified() {
			continue
		}
		if a.IsLoopback() || a.IsUnspecified() {
			return true
		}
		if local == nil {
			local = localAddrs()
		}
		for _, l := range local {
			if l == a {
				return true
			}
		}
	}
	return false
}

// localAddrs lists the addresses of this host's interfaces.
func localAddrs() []netip.Addr {
	out := []netip.Addr{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// checkURL refuses what can never be delivered: not http(s), no host, or a
// literal address on the deny list.
func (s *sender) checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("handler URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("handler URL scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("handler URL has no host")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && denied(s.cfg.Deny, a) {
		return nil, fmt.Errorf("%w: %s", errDenied, a)
	}
	return u, nil
}

// prebuilt is an item's auth block (or its refusal) asked for with the
// rest of its group in one EventAuth.BuildBatch call.
type prebuilt struct {
	fields []*tokenv1.Field
	err    error // wraps ErrAuthRefused
	at     time.Time
}

// maxPrebuiltAge bounds how old a prebuilt auth block may be when its
// delivery is attempted (a group's items wait for free slots); an older
// one is built again, so every delivery carries a fresh token.
const maxPrebuiltAge = 30 * time.Second

// maxAuthBatch is the most requests sent in one BuildBatch call
// (authprovider's bound).
const maxAuthBatch = 256

// prebuild asks authprovider, in as few BuildBatch calls as possible, for
// the auth blocks of the items of a group that need one (a valid URL and
// no cached answer). It returns one entry per item, nil where the item
// builds its own at attempt time: when the builder cannot batch, when the
// call fails (authprovider unreachable: each item then waits on its own,
// as before) or when that item alone failed transiently.
func (s *sender) prebuild(ctx context.Context, portal string, views []view) []*prebuilt {
	bb, ok := s.cfg.Auth.(BatchAuthBuilder)
	out := make([]*prebuilt, len(views))
	if !ok || len(views) < 2 || s.noBatch.Load() {
		return out
	}
	now := time.Now()
	var reqs []*tokenv1.BuildEventAuthRequest
	var idx []int
	for i, v := range views {
		if _, err := s.checkURL(v.url); err != nil {
			continue
		}
		req := authRequestOf(portal, v)
		if s.auth.ttl > 0 {
			if _, ok := s.auth.get(cacheKey(req), now); ok {
				continue
			}
		}
		reqs, idx = append(reqs, req), append(idx, i)
	}
	for len(reqs) > 0 {
		n := min(len(reqs), maxAuthBatch)
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rs, err := bb.BuildAuthBatch(bctx, reqs[:n])
		cancel()
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				s.noBatch.Store(true)
			}
			s.cfg.Log.Debug("delivery: BuildBatch failed, items build their own auth", "err", err)
			return out
		}
		at := time.Now()
		for j, r := range rs {
			switch {
			case r.Err == nil:
				if s.auth.ttl > 0 {
					s.auth.put(cacheKey(reqs[j]), r.Fields, at)
				}
				out[idx[j]] = &prebuilt{fields: r.Fields, at: at}
			case errors.Is(r.Err, ErrAuthRefused):
				out[idx[j]] = &prebuilt{err: r.Err, at: at}
			}
		}
		reqs, idx = reqs[n:], idx[n:]
	}
	return out
}

// deliver builds the payload (with the prebuilt auth block when there is
// a fresh one, else asking authprovider, waiting while it is unreachable),
// signs it and POSTs it once.
func (s *sender) deliver(ctx context.Context, portal string, e entry, v view, pre *prebuilt) result {
	r := s.attempt(ctx, portal, e, v, pre)
	r.event = v.event
	return r
}

func (s *sender) attempt(ctx context.Context, portal string, e entry, v view, pre *prebuilt) result {
	u, err := s.checkURL(v.url)
	if err != nil {
		return result{permanent: true, err: err.Error()}
	}
	var fields []*tokenv1.Field
	if pre != nil && time.Since(pre.at) < maxPrebuiltAge {
		fields, err = pre.fields, pre.err
	} else {
		fields, err = s.buildAuth(ctx, e.ID, authRequestOf(portal, v))
	}
	if errors.Is(err, ErrAuthRefused) {
		return result{permanent: true, err: err.Error()}
	}
	if err != nil {
		return result{aborted: true}
	}
	body := payloadBody(e.Form, fields)
	keys, err := s.secrets.Keys(ctx, SecretName(portal, v.clientID, v.appToken))
	if err != nil {
		// The signing key store is the broker: transient like authprovider.
		return result{err: "signing secret: " + err.Error()}
	}
	// The attempt itself is not cut short by shutdown: it is bounded by
	// the delivery timeout, and the drain waits for it.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, u.String(), strings.NewReader(string(body)))
	if err != nil {
		return result{permanent: true, err: err.Error()}
	}
	ts := s.cfg.Clock.Now().Unix()
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "isobox-eventrelay")
	req.Header.Set("webhook-id", e.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(e.ID, ts, body, keys...))
	start := time.Now()
	resp, err := s.client.Do(req)
	took := time.Since(start)
	if err != nil {
		if errors.Is(err, errDenied) {
			return result{permanent: true, err: err.Error(), took: took}
		}
		return result{err: transportError(err), took: took}
	}
	defer resp.Body.Close()
	head := make([]byte, 200)
	n, _ := io.ReadFull(io.LimitReader(resp.Body, s.cfg.MaxResponseBody), head)
	io.Copy(io.Discard, io.LimitReader(resp.Body, max(s.cfg.MaxResponseBody-int64(n), 0)))
	r := result{status: resp.StatusCode, took: took}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		r.ok = true
		return r
	}
	r.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(strings.ToValidUTF8(string(head[:n]), "?")))
	r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.cfg.Clock.Now())
	return r
}

// buildAuth asks authprovider for the auth block, retrying with back-off
// while it is unreachable (the queue message's ack deadline is kept alive
// meanwhile). It fails only on a refusal (ErrAuthRefused) or when ctx
// ends first.
func (s *sender) buildAuth(ctx context.Context, id string, req *tokenv1.BuildEventAuthRequest) ([]*tokenv1.Field, error) {
	var key string
	if s.auth.ttl > 0 {
		key = cacheKey(req)
		if fields, ok := s.auth.get(key, time.Now()); ok {
			return fields, nil
		}
	}
	wait := 200 * time.Millisecond
	for {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fields, err := s.cfg.Auth.BuildAuth(bctx, req)
		cancel()
		if err == nil && s.auth.ttl > 0 {
			s.auth.put(key, fields, time.Now())
		}
		if err == nil || errors.Is(err, ErrAuthRefused) {
			return fields, err
		}
		s.cfg.Log.Warn("delivery: authprovider unavailable, delivery waits", "id", id, "err", err)
		if !sleepCtx(ctx, wait) {
			return nil, ctx.Err()
		}
		wait = min(wait*2, 10*time.Second)
	}
}

func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 if absent/bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
