// Package console is the web console of isobox: server-rendered HTML pages
// (html/template, a little JavaScript, charts drawn as SVG on the server)
// served by authprovider's admin listener under /console/. Everything it
// needs is embedded in the binary, so it works with no internet. It reads
// and changes authprovider's state in process (apps) and eventrelay's
// through the relay's admin gRPC API (deliveries, dead letters, handlers).
//
// Users log in with a name and password (argon2id hashes in the database,
// created with `authprovider console user add`); a session cookie
// (HttpOnly, SameSite=Strict, Secure under TLS) holds a random id of which
// only a hash is stored. Viewers may look; admins may change. Every
// state-changing request carries a CSRF token and must come from the
// console's own origin; every change is written to the audit log.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/portal"
)

//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

const cookieName = "isobox_console"

// RelayDialer returns the connection to the relay's admin API (services
// Relay and RelayOps) and a context that carries its key, derived from ctx.
type RelayDialer func(ctx context.Context) (grpc.ClientConnInterface, context.Context, error)

// Config configures the console.
type Config struct {
	Users *Users
	Audit *Audit
	// OAuth is authprovider's client and token service (the apps pages).
	OAuth *oauth.Service
	// Portals is the portal registry (the portals page); nil hides it.
	Portals *portal.Registry
	// Relay reaches eventrelay's admin API; nil shows the relay as not
	// configured.
	Relay RelayDialer
	// Ready runs authprovider's readiness checks (name → error).
	Ready func(ctx context.Context) map[string]error
	// Settings is the effective configuration, secrets already redacted.
	Settings func() [][2]string
	// LoginRate bounds login attempts per client address and per user name
	// from that address (burst LoginBurst, then one per LoginRate). Zero
	// means 12s and 5. Attempts on one user name from all addresses
	// together are capped too (burst 20*LoginBurst, 10 per LoginRate), so
	// guessing spread over many addresses stays slow while a colleague's
	// typos or an attacker elsewhere on the LAN do not lock a user out.
	LoginRate  time.Duration
	LoginBurst int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (login limits, sessions, the audit log); by default the
	// TCP peer is the client.
	TrustedProxies Proxies
	Log            *slog.Logger
}

// Console serves the pages.
type Console struct {
	cfg     Config
	log     *slog.Logger
	cat     catalogues
	pages   map[string]*template.Template
	mux     *http.ServeMux
	limiter *limiter // per address, per (user, address)
	global  *limiter // per user, all addresses
	sampler *sampler
}

// New builds the console; Run samples the relay's counters for the charts.
func New(cfg Config) (*Console, error) {
	if cfg.Users == nil || cfg.Audit == nil || cfg.OAuth == nil {
		return nil, errors.New("console: Users, Audit and OAuth are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 12 * time.Second
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 5
	}
	c := &Console{cfg: cfg, log: cfg.Log, limiter: newLimiter(cfg.LoginRate, cfg.LoginBurst),
		global: newLimiter(cfg.LoginRate/10, 20*cfg.LoginBurst), sampler: newSampler(360)}
	var err error
	if c.cat, err = loadCatalogues(); err != nil {
		return nil, err
	}
	if err := c.parse(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) parse() error {
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "web/templates/*.html")
	if err != nil {
		return err
	}
	funcs := template.FuncMap{
		"ms":      fmtMs,
		"time":    fmtTime,
		"pct":     pct,
		"msf":     fmtMsFloat,
		"chart":   chartSVG,
		"spark":   sparkSVG,
		"query":   func(v url.Values) string { return v.Encode() },
		"statusc": statusClass,
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "web/templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "web/templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", n, err)
		}
		c.pages[base] = t
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// Run samples the relay's counters until ctx ends, and sweeps expired
// sessions.
func (c *Console) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.cfg.Users.Sweep(sctx); err != nil && ctx.Err() == nil {
			c.log.Warn("console: sweep sessions", "err", err)
		}
		cancel()
	}
}

func (c *Console) sample(ctx context.Context) {
	if c.cfg.Relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, rctx, err := c.cfg.Relay(ctx)
	if err != nil {
		return
	}
	st, err := relayv1.NewRelayClient(conn).Stats(rctx, &relayv1.StatsRequest{})
	if err != nil {
		return
	}
	c.sampler.add(time.Now(), st)
}

// clientIP is the caller's address without the port (see Proxies).
func (c *Console) clientIP(r *http.Request) string {
	return c.cfg.TrustedProxies.ClientIP(r)
}

// sameOrigin reports whether a state-changing request comes from the
// console's own pages: the browser's Origin (or, without it, Referer) must
// be this host, and Sec-Fetch-Site, when sent, must not say cross-site.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	want := scheme + "://" + r.Host
	if o := r.Header.Get("Origin"); o != "" {
		return o == want
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && u.Scheme+"://"+u.Host == want
	}
	return false
}
