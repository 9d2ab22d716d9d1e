package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/console"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

const (
	adminPW  = "correct horse battery"
	viewerPW = "viewer password 1"
)

type site struct {
	t     *testing.T
	srv   *httptest.Server
	users *console.Users
	audit *console.Audit
}

func newSite(t *testing.T, db *store.DB, opts ...func(*console.Config)) *site {
	t.Helper()
	svc, err := oauth.New(db, oauth.Config{TokenPrefix: "isobox."}, nil)
	if err != nil {
		t.Fatal(err)
	}
	users, audit := console.NewUsers(db), console.NewAudit(db)
	ctx := context.Background()
	if _, err := users.Put(ctx, "admin", console.RoleAdmin, adminPW); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Put(ctx, "olga", console.RoleViewer, viewerPW); err != nil {
		t.Fatal(err)
	}
	cfg := console.Config{Users: users, Audit: audit, OAuth: svc, LoginRate: time.Hour, LoginBurst: 3}
	for _, o := range opts {
		o(&cfg)
	}
	con, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, con)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &site{t: t, srv: srv, users: users, audit: audit}
}

// browser is a client with cookies that sends the Origin a browser sends
// for the console's own forms.
type browser struct {
	s      *site
	c      *http.Client
	origin string
	header http.Header // sent with every request
}

func (s *site) browser() *browser { return s.browserFrom("") }

// browserFrom connects from the given loopback address (all of 127/8 is
// on lo), a machine of its own as far as the console can tell.
func (s *site) browserFrom(local string) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	if local != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		tr.DialContext = d.DialContext
	}
	s.t.Cleanup(tr.CloseIdleConnections)
	return &browser{s: s, origin: s.srv.URL, c: &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.s.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	if b.origin != "" && method == http.MethodPost {
		req.Header.Set("Origin", b.origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) login(name, pw string) *http.Response {
	resp, _ := b.do("POST", "/console/login", url.Values{"name": {name}, "password": {pw}, "next": {"/console/apps"}})
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the token from a page's form.
func (b *browser) csrf(path string) string {
	b.s.t.Helper()
	_, body := b.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.s.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

func TestLoginSessionAndCookie(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		s := newSite(t, db)
		b := s.browser()
		// Not logged in: every page goes to the login form.
		if resp, _ := b.do("GET", "/console/apps", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
			t.Fatalf("anonymous GET: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp := b.login("admin", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", resp.StatusCode)
		}
		resp := b.login("admin", adminPW)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps" {
			t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "isobox_console" {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" || ck.Secure {
			t.Fatalf("session cookie = %+v (plain HTTP: not Secure)", ck)
		}
		// Only the id's hash is stored.
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM console_sessions WHERE id_hash = ?`, ck.Value).Scan(&n); err != nil || n != 0 {
			t.Errorf("session id stored in clear: %d %v", n, err)
		}
		if resp, body := b.do("GET", "/console/apps", nil); resp.StatusCode != 200 || !strings.Contains(body, "admin") {
			t.Fatalf("apps page: %d", resp.StatusCode)
		}
		// A login page never redirects off the console.
		if resp, _ := s.browser().do("POST", "/console/login", url.Values{"name": {"admin"}, "password": {adminPW}, "next": {"//evil.example/"}}); resp.Header.Get("Location") != "/console/" {
			t.Errorf("open redirect: %s", resp.Header.Get("Location"))
		}
		// Logout ends the session server-side.
		tok := b.csrf("/console/apps")
		b.do("POST", "/console/logout", url.Values{"csrf": {tok}})
		if _, err := s.users.Session(context.Background(), ck.Value); err == nil {
			t.Errorf("session alive after logout")
		}
	})
}

func TestIdleSessionExpires(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		users := console.NewUsers(db)
		ctx := context.Background()
		users.Put(ctx, "admin", console.RoleAdmin, adminPW)
		u, err := users.Verify(ctx, "admin", adminPW)
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := users.Login(ctx, u, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		users.IdleTimeout = time.Nanosecond
		if _, err := users.Session(ctx, id); err != console.ErrNoSession {
			t.Fatalf("idle session: %v", err)
		}
		users.IdleTimeout = time.Hour
		if _, err := users.Session(ctx, id); err != console.ErrNoSession {
			t.Fatalf("an expired session came back: %v", err)
		}
		id, _, _ = users.Login(ctx, u, "127.0.0.1")
		users.AbsoluteTimeout = time.Nanosecond
		if _, err := users.Session(ctx, id); err != console.ErrNoSession {
			t.Fatalf("session past its absolute lifetime: %v", err)
		}
	})
}

func TestLoginRateLimited(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		s := newSite(t, db)
		b := s.browser()
		for range 3 {
			if resp := b.login("admin", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("attempt: %d", resp.StatusCode)
			}
		}
		// The right password no longer helps: the user's and the
		// address's attempts are spent.
		if resp := b.login("admin", adminPW); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("4th attempt: %d", resp.StatusCode)
		}
		if resp := b.login("olga", viewerPW); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("another user from the same address: %d", resp.StatusCode)
		}
		// The attacker's failures are the attacker's: the admin at
		// another address logs in (the finding: a LAN host locked the
		// admin out by failing on the admin's name).
		if resp := s.browserFrom("127.0.0.2").login("admin", adminPW); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin from another address after the attack: %d", resp.StatusCode)
		}
		// A forged X-Forwarded-For does not give the attacker a fresh
		// address: no proxy is trusted, so the TCP peer counts.
		b.header = http.Header{"X-Forwarded-For": {"10.9.9.9"}}
		if resp := b.login("admin", adminPW); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("spoofed X-Forwarded-For: %d", resp.StatusCode)
		}
	})
}

// Attempts on one name from many addresses together are capped: a guess
// spread over the LAN stays slow.
func TestLoginGlobalCap(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		s := newSite(t, db, func(c *console.Config) { c.LoginBurst = 1 }) // global burst 20
		for i := range 20 {
			if resp := s.browserFrom(fmt.Sprintf("127.0.1.%d", i+1)).login("admin", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i, resp.StatusCode)
			}
		}
		if resp := s.browserFrom("127.0.2.1").login("admin", adminPW); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("21st attempt on the name from a fresh address: %d", resp.StatusCode)
		}
		if resp := s.browserFrom("127.0.2.2").login("olga", viewerPW); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("another name: %d", resp.StatusCode)
		}
	})
}

// The audit log records the TCP peer; X-Forwarded-For counts only when the
// peer is a configured proxy, and then only its nearest untrusted entry.
func TestAuditRemoteIsThePeer(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		remotes := func(s *site) []string {
			es, err := s.audit.List(context.Background(), console.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range es {
				out = append(out, e.Remote)
			}
			return out
		}
		s := newSite(t, db)
		b := s.browserFrom("127.0.0.3")
		b.header = http.Header{"X-Forwarded-For": {"6.6.6.6"}}
		if resp := b.login("admin", adminPW); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		if got := remotes(s); len(got) != 1 || got[0] != "127.0.0.3" {
			t.Fatalf("untrusted X-Forwarded-For: audit remotes %q, want the peer", got)
		}

		proxies, err := console.ParseProxies("127.0.0.4, 10.0.0.0/8")
		if err != nil {
			t.Fatal(err)
		}
		s = newSite(t, db, func(c *console.Config) { c.TrustedProxies = proxies })
		b = s.browserFrom("127.0.0.4")
		// The client claims 6.6.6.6, the LAN proxy 10.1.1.1 saw 192.168.5.7.
		b.header = http.Header{"X-Forwarded-For": {"6.6.6.6, 192.168.5.7", "10.1.1.1"}}
		if resp := b.login("admin", adminPW); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login via proxy: %d", resp.StatusCode)
		}
		if got := remotes(s); len(got) < 2 || got[0] != "192.168.5.7" {
			t.Fatalf("trusted proxy: audit remotes %q, want 192.168.5.7 first", got)
		}
	})
}

func TestParseProxies(t *testing.T) {
	if _, err := console.ParseProxies("10.0.0.0/8,nonsense"); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("bad entry: %v", err)
	}
	if ps, err := console.ParseProxies(" "); err != nil || len(ps) != 0 {
		t.Errorf("empty: %v %v", ps, err)
	}
}

// Every state change needs the session's CSRF token and the console's
// origin; a viewer may change nothing.
func TestCSRFOriginAndRoles(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		s := newSite(t, db)
		admin := s.browser()
		admin.login("admin", adminPW)
		tok := admin.csrf("/console/apps")
		create := url.Values{"csrf": {tok}, "name": {"Deal export"}, "scope": {"crm"}, "redirect_uri": {"http://app.lan/install"}}

		if resp, _ := admin.do("POST", "/console/apps", url.Values{"name": {"x"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST without a token: %d", resp.StatusCode)
		}
		wrong := url.Values{"csrf": {"x" + tok}, "name": {"x"}}
		if resp, _ := admin.do("POST", "/console/apps", wrong); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with a wrong token: %d", resp.StatusCode)
		}
		admin.origin = "http://evil.example"
		if resp, _ := admin.do("POST", "/console/apps", create); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST: %d", resp.StatusCode)
		}
		admin.origin = ""
		if resp, _ := admin.do("POST", "/console/apps", create); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST without Origin or Referer: %d", resp.StatusCode)
		}
		admin.origin = s.srv.URL
		resp, body := admin.do("POST", "/console/apps", create)
		if resp.StatusCode != 200 || !strings.Contains(body, "Deal export") || !regexp.MustCompile(`class="mono select">[A-Za-z0-9]{50}<`).MatchString(body) {
			t.Fatalf("create app: %d", resp.StatusCode)
		}

		viewer := s.browser()
		viewer.login("olga", viewerPW)
		vtok := viewer.csrf("/console/audit") // the logout form carries it
		_, page := viewer.do("GET", "/console/apps", nil)
		if strings.Contains(page, `action="/console/apps"`) || strings.Contains(page, "Rotate secret") {
			t.Errorf("a viewer is shown change forms")
		}
		if resp, _ := viewer.do("POST", "/console/apps", url.Values{"csrf": {vtok}, "name": {"viewer app"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST: %d", resp.StatusCode)
		}
		if resp, _ := viewer.do("POST", "/console/dlq/replay", url.Values{"csrf": {vtok}, "scope": {"all"}, "confirm": {"yes"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer replay: %d", resp.StatusCode)
		}

		// The audit log has the login and the app; nothing of the refused.
		var buf strings.Builder
		if _, err := s.audit.Export(context.Background(), &buf, console.AuditFilter{}); err != nil {
			t.Fatal(err)
		}
		var actions []string
		sc := bufio.NewScanner(strings.NewReader(buf.String()))
		for sc.Scan() {
			var e console.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("audit line %q: %v", sc.Text(), err)
			}
			if e.Source != console.SourceConsole || e.Remote == "" {
				t.Errorf("audit entry %+v", e)
			}
			actions = append(actions, e.Actor+":"+e.Action)
		}
		if got := strings.Join(actions, ","); got != "admin:login,admin:app.create,olga:login" {
			t.Errorf("audit = %s", got)
		}
	})
}

func TestPasswordHash(t *testing.T) {
	h := console.HashPassword(adminPW)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, adminPW) {
		t.Fatalf("hash %s", h)
	}
	if !console.CheckPassword(h, adminPW) || console.CheckPassword(h, adminPW+"x") || console.CheckPassword("$argon2id$v=19$m=0,t=0,p=0$$", "") {
		t.Fatal("CheckPassword")
	}
	if h == console.HashPassword(adminPW) {
		t.Fatal("no salt")
	}
}

func TestUserValidation(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		u := console.NewUsers(db)
		ctx := context.Background()
		for _, c := range []struct{ name, role, pw string }{{"a b", "admin", adminPW}, {"ann", "root", adminPW}, {"ann", "viewer", "short"}} {
			if _, err := u.Put(ctx, c.name, c.role, c.pw); err == nil {
				t.Errorf("Put(%q, %q, %q) accepted", c.name, c.role, c.pw)
			}
		}
	})
}
