package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/oauth"
)

// page is what every template gets.
type page struct {
	cat    catalogues
	Lang   string
	User   User
	Admin  bool
	CSRF   string
	Nav    string
	Title  string
	Flash  string
	Error  string
	Path   string
	Data   any
	Relay  bool
	Langs  []string
	Layout bool
}

// T translates key into the page's language.
func (p *page) T(key string) string { return p.cat.text(p.Lang, key) }

// Tf translates key and fills its %s/%d verbs with args.
func (p *page) Tf(key string, args ...any) string {
	return fmt.Sprintf(p.cat.text(p.Lang, key), args...)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p *page) error

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "web/static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	m.Handle("GET "+Prefix+"static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET "+Prefix+"login", c.loginForm)
	m.HandleFunc("POST "+Prefix+"login", c.login)
	m.HandleFunc("GET "+Prefix+"lang", c.setLang)
	m.Handle("POST "+Prefix+"logout", c.auth("", true, c.logout))
	m.Handle("GET "+Prefix+"{$}", c.auth("overview", false, c.overview))
	m.Handle("GET "+Prefix+"deliveries", c.auth("deliveries", false, c.deliveries))
	m.Handle("POST "+Prefix+"deliveries/replay", c.auth("deliveries", false, c.replayMany))
	m.Handle("GET "+Prefix+"deliveries/{id}", c.auth("deliveries", false, c.delivery))
	m.Handle("POST "+Prefix+"deliveries/{id}/replay", c.auth("deliveries", false, c.replayOne))
	m.Handle("GET "+Prefix+"dlq", c.auth("dlq", false, c.dlq))
	m.Handle("POST "+Prefix+"dlq/replay", c.auth("dlq", false, c.dlqReplay))
	m.Handle("GET "+Prefix+"handlers", c.auth("handlers", false, c.handlers))
	m.Handle("POST "+Prefix+"handlers/{key}/{op}", c.auth("handlers", false, c.handlerOp))
	m.Handle("GET "+Prefix+"apps", c.auth("apps", false, c.apps))
	m.Handle("POST "+Prefix+"apps", c.auth("apps", false, c.appCreate))
	m.Handle("POST "+Prefix+"apps/{id}/{op}", c.auth("apps", false, c.appOp))
	m.Handle("GET "+Prefix+"portals", c.auth("portals", false, c.portals))
	m.Handle("POST "+Prefix+"portals/allow", c.auth("portals", false, c.portalAllow))
	m.Handle("POST "+Prefix+"portals/disallow", c.auth("portals", false, c.portalDisallow))
	m.Handle("POST "+Prefix+"portals/{id}/remove", c.auth("portals", false, c.portalRemove))
	m.Handle("GET "+Prefix+"tokens", c.auth("tokens", false, c.tokens))
	m.Handle("POST "+Prefix+"tokens/introspect", c.auth("tokens", true, c.introspect))
	m.Handle("POST "+Prefix+"tokens/revoke", c.auth("tokens", false, c.revoke))
	m.Handle("GET "+Prefix+"audit", c.auth("audit", false, c.audit))
	m.Handle("GET "+Prefix+"audit.jsonl", c.auth("audit", false, c.auditExport))
	m.Handle("GET "+Prefix+"settings", c.auth("settings", false, c.settings))
	m.Handle("GET "+Prefix+"push", c.auth("push", false, c.push))
	m.Handle("POST "+Prefix+"push/test", c.auth("push", false, c.pushTest))
	m.Handle("GET "+Prefix+"devices", c.auth("devices", false, c.devices))
	m.Handle("GET "+Prefix+"relay-settings", c.auth("relaysettings", false, c.relaySettings))
	c.mux = m
}

func (c *Console) newPage(r *http.Request, nav string) *page {
	return &page{cat: c.cat, Lang: language(r), Nav: nav, Path: r.URL.RequestURI(), Relay: c.cfg.Relay != nil, Langs: Languages, Layout: true}
}

func secureCookie(r *http.Request) bool { return r.TLS != nil }

// auth serves fn for a logged-in user. A POST must come from the console's
// own origin with the session's CSRF token, and (unless anyRole) from an
// admin.
func (c *Console) auth(nav string, anyRole bool, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var sess Session
		ck, err := r.Cookie(cookieName)
		if err == nil {
			sess, err = c.cfg.Users.Session(r.Context(), ck.Value)
		}
		if err != nil {
			if !errors.Is(err, ErrNoSession) && !errors.Is(err, http.ErrNoCookie) {
				c.log.Error("console: session", "err", err)
				http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
				return
			}
			if r.Method != http.MethodGet {
				http.Error(w, "not logged in", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		p := c.newPage(r, nav)
		p.User, p.CSRF, p.Admin = sess.User, sess.CSRF, sess.User.Role == RoleAdmin
		r = r.WithContext(context.WithValue(r.Context(), actorKey{}, actor{name: sess.User.Name, ip: c.clientIP(r)}))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if !sameOrigin(r) || !tokensEqual(r.PostFormValue("csrf"), sess.CSRF) {
				c.log.Warn("console: refused a request without the console's origin or CSRF token", "user", sess.User.Name,
					"path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
				c.fail(w, r, p, http.StatusForbidden, p.T("err.csrf"))
				return
			}
			if !anyRole && !p.Admin {
				c.fail(w, r, p, http.StatusForbidden, p.T("err.viewer"))
				return
			}
		}
		if err := fn(w, r, p); err != nil {
			code := http.StatusBadGateway
			if st, ok := status.FromError(err); ok && st.Code().String() == "NotFound" {
				code = http.StatusNotFound
			}
			c.log.Warn("console: page", "path", r.URL.Path, "err", err)
			c.fail(w, r, p, code, err.Error())
		}
	})
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, p *page, code int, msg string) {
	p.Error = msg
	p.Title = p.T("err.title")
	c.render(w, code, "error", p)
}

func (c *Console) render(w http.ResponseWriter, code int, name string, p *page) {
	t := c.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// audit writes a console change to the audit log; a failure to write it is
// logged (the change was made).
func (c *Console) record(r *http.Request, p *page, action, target, detail string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := c.cfg.Audit.Record(ctx, Entry{Source: SourceConsole, Actor: p.User.Name, Action: action, Target: target, Detail: detail, Remote: c.clientIP(r)}); err != nil {
		c.log.Error("console: audit", "action", action, "err", err)
	}
}

func redirect(w http.ResponseWriter, r *http.Request, path string, flash string) {
	u := Prefix + path
	if flash != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "flash=" + url.QueryEscape(flash)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// flash shows a message handed over by redirect: only known keys, so that
// a link cannot put text on the page.
func (p *page) flashFrom(r *http.Request) {
	if k := r.URL.Query().Get("flash"); strings.HasPrefix(k, "ok.") {
		if s, ok := p.cat["en"][k]; ok && s != "" {
			p.Flash = p.T(k)
		}
	}
}

// ---- login ----

type loginData struct {
	Next    string
	Name    string
	NoUsers bool
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix
	}
	return next
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p := c.newPage(r, "login")
	p.Layout = false
	p.Title = p.T("login.title")
	d := loginData{Next: safeNext(r.URL.Query().Get("next"))}
	if n, err := c.cfg.Users.Count(r.Context()); err == nil && n == 0 {
		d.NoUsers = true
	}
	p.Data = d
	c.render(w, http.StatusOK, "login", p)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	p := c.newPage(r, "login")
	p.Layout = false
	p.Title = p.T("login.title")
	name, password := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	d := loginData{Next: safeNext(r.PostFormValue("next")), Name: name}
	p.Data = d
	if !sameOrigin(r) {
		p.Error = p.T("err.csrf")
		c.render(w, http.StatusForbidden, "login", p)
		return
	}
	ip := c.clientIP(r)
	user := strings.ToLower(name)
	if !c.limiter.allow("ip:"+ip, "user:"+user+"@"+ip) || !c.global.allow("user:"+user) {
		c.log.Warn("console: login rate limited", "user", name, "remote", ip)
		p.Error = p.T("login.limited")
		w.Header().Set("Retry-After", strconv.Itoa(int(c.cfg.LoginRate.Seconds())+1))
		c.render(w, http.StatusTooManyRequests, "login", p)
		return
	}
	u, err := c.cfg.Users.Verify(r.Context(), name, password)
	if err != nil {
		if !errors.Is(err, ErrBadLogin) {
			c.log.Error("console: login", "err", err)
		}
		c.log.Warn("console: login failed", "user", name, "remote", ip)
		p.Error = p.T("login.bad")
		c.render(w, http.StatusUnauthorized, "login", p)
		return
	}
	id, _, err := c.cfg.Users.Login(r.Context(), u, ip)
	if err != nil {
		c.log.Error("console: login", "err", err)
		p.Error = err.Error()
		c.render(w, http.StatusServiceUnavailable, "login", p)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: Prefix, HttpOnly: true, Secure: secureCookie(r), SameSite: http.SameSiteStrictMode})
	c.log.Info("console: logged in", "user", u.Name, "role", u.Role, "remote", ip)
	c.cfg.Audit.Record(r.Context(), Entry{Source: SourceConsole, Actor: u.Name, Action: "login", Remote: ip})
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, p *page) error {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.cfg.Users.Logout(r.Context(), ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: secureCookie(r), SameSite: http.SameSiteStrictMode})
	c.record(r, p, "logout", "", "")
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
	return nil
}

// setLang stores the language choice (a preference, not a change of
// state worth a CSRF token) and goes back.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	l := r.URL.Query().Get("l")
	for _, x := range Languages {
		if x == l {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: Prefix, MaxAge: 365 * 24 * 3600, Secure: secureCookie(r), SameSite: http.SameSiteStrictMode})
		}
	}
	http.Redirect(w, r, safeNext(r.URL.Query().Get("back")), http.StatusSeeOther)
}

// ---- relay helpers ----

var errNoRelay = errors.New("eventrelay is not configured (--console-relay-grpc-addr)")

// actorKey carries the logged-in user and address of a request to the
// relay calls it makes.
type actorKey struct{}

type actor struct{ name, ip string }

// relayConn dials the relay's admin API. The call carries the console's
// user and the user's address, which the relay writes to its audit log.
func (c *Console) relayConn(ctx context.Context) (grpc.ClientConnInterface, context.Context, context.CancelFunc, error) {
	if c.cfg.Relay == nil {
		return nil, nil, nil, errNoRelay
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, rctx, err := c.cfg.Relay(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	if a, ok := ctx.Value(actorKey{}).(actor); ok {
		rctx = metadata.AppendToOutgoingContext(rctx, "x-isobox-source", "console", "x-isobox-actor", a.name, "x-isobox-remote", a.ip)
	}
	return conn, rctx, cancel, nil
}

func (c *Console) relay(ctx context.Context) (relayv1.RelayClient, context.Context, context.CancelFunc, error) {
	conn, rctx, cancel, err := c.relayConn(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return relayv1.NewRelayClient(conn), rctx, cancel, nil
}

func (c *Console) relayOps(ctx context.Context) (relayv1.RelayOpsClient, context.Context, context.CancelFunc, error) {
	conn, rctx, cancel, err := c.relayConn(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return relayv1.NewRelayOpsClient(conn), rctx, cancel, nil
}

// ---- overview ----

type check struct {
	Name string
	OK   bool
	Err  string
}

type overviewData struct {
	Checks     []check
	Stats      *relayv1.StatsResponse
	RelayErr   string
	Handlers   []*relayv1.Handler
	Open       int
	Paused     int
	Throughput Chart
	Backlog    Chart
	SparkIn    []float64
	SparkDel   []float64
	SparkQueue []float64
	SparkDead  []float64
	Recent     []*relayv1.Delivery
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.overview")
	d := overviewData{}
	if c.cfg.Ready != nil {
		res := c.cfg.Ready(r.Context())
		names := make([]string, 0, len(res))
		for n := range res {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ck := check{Name: "authprovider: " + n, OK: res[n] == nil}
			if res[n] != nil {
				ck.Err = res[n].Error()
			}
			d.Checks = append(d.Checks, ck)
		}
	}
	rc, ctx, cancel, err := c.relay(r.Context())
	if err == nil {
		defer cancel()
		d.Stats, err = rc.Stats(ctx, &relayv1.StatsRequest{})
	}
	relayCheck := check{Name: "eventrelay (NATS JetStream)", OK: err == nil}
	if err != nil {
		relayCheck.Err = grpcMessage(err)
		d.RelayErr = relayCheck.Err
	} else {
		c.sampler.add(time.Now(), d.Stats)
		if hs, err := rc.ListHandlers(ctx, &relayv1.ListHandlersRequest{}); err == nil {
			d.Handlers = hs.Handlers
			for _, h := range hs.Handlers {
				if h.Breaker != "closed" {
					d.Open++
				}
				if h.Paused {
					d.Paused++
				}
			}
		}
		if ds, err := rc.ListDeliveries(ctx, &relayv1.ListDeliveriesRequest{Limit: 200}); err == nil {
			for _, x := range ds.Deliveries {
				if x.LastError != "" && len(d.Recent) < 8 {
					d.Recent = append(d.Recent, x)
				}
			}
		}
	}
	d.Checks = append(d.Checks, relayCheck)
	ss := c.sampler.all()
	if len(ss) > 0 {
		from, to := ss[0].at, ss[len(ss)-1].at
		in := rates(ss, func(s sample) int64 { return s.ingested })
		del := rates(ss, func(s sample) int64 { return s.delivered })
		d.Throughput = Chart{Title: p.T("ov.throughput"), From: from, To: to, Series: []Series{
			{Name: p.T("ov.ingested"), Class: "s1", Points: in},
			{Name: p.T("ov.delivered"), Class: "s2", Points: del},
			{Name: p.T("ov.retried"), Class: "s3", Points: rates(ss, func(s sample) int64 { return s.retried })},
			{Name: p.T("ov.deadlettered"), Class: "s4", Points: rates(ss, func(s sample) int64 { return s.dead })},
		}}
		q := levels(ss, func(s sample) int64 { return s.queued })
		dead := levels(ss, func(s sample) int64 { return s.deadNow })
		d.Backlog = Chart{Title: p.T("ov.backlog"), From: from, To: to, Series: []Series{
			{Name: p.T("ov.queued"), Class: "s1", Points: q},
			{Name: p.T("ov.dead"), Class: "s4", Points: dead},
		}}
		d.SparkIn, d.SparkDel, d.SparkQueue, d.SparkDead = in, del, q, dead
	}
	p.Data = d
	c.render(w, http.StatusOK, "overview", p)
	return nil
}

func grpcMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// ---- deliveries ----

type deliveriesData struct {
	Filter     url.Values
	Deliveries []*relayv1.Delivery
	Statuses   []string
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.deliveries")
	p.flashFrom(r)
	q := r.URL.Query()
	req := &relayv1.ListDeliveriesRequest{App: q.Get("app"), Handler: q.Get("handler"), Event: q.Get("event"), Status: q.Get("status"), Limit: 200}
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	resp, err := rc.ListDeliveries(ctx, req)
	if err != nil {
		return err
	}
	p.Data = deliveriesData{Filter: q, Deliveries: resp.Deliveries, Statuses: []string{"pending", "retrying", "delivered", "dead"}}
	c.render(w, http.StatusOK, "deliveries", p)
	return nil
}

func (c *Console) delivery(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.deliveries")
	p.flashFrom(r)
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	d, err := rc.GetDelivery(ctx, &relayv1.GetDeliveryRequest{Id: r.PathValue("id")})
	if err != nil {
		return err
	}
	p.Data = d
	c.render(w, http.StatusOK, "delivery", p)
	return nil
}

func (c *Console) replayOne(w http.ResponseWriter, r *http.Request, p *page) error {
	id := r.PathValue("id")
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := rc.ReplayDelivery(ctx, &relayv1.ReplayDeliveryRequest{Id: id}); err != nil {
		return err
	}
	c.record(r, p, "delivery.replay", id, "")
	redirect(w, r, "deliveries/"+url.PathEscape(id), "ok.replayed")
	return nil
}

func (c *Console) replayMany(w http.ResponseWriter, r *http.Request, p *page) error {
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		redirect(w, r, "deliveries", "")
		return nil
	}
	if len(ids) > 500 {
		return fmt.Errorf("at most 500 deliveries at once")
	}
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	done := 0
	for _, id := range ids {
		if _, err := rc.ReplayDelivery(ctx, &relayv1.ReplayDeliveryRequest{Id: id}); err != nil {
			c.record(r, p, "delivery.replay", strings.Join(ids[:done], ","), fmt.Sprintf("%d of %d replayed; stopped at %s: %s", done, len(ids), id, grpcMessage(err)))
			return err
		}
		done++
	}
	c.record(r, p, "delivery.replay", strings.Join(ids, ","), fmt.Sprintf("%d deliveries", done))
	redirect(w, r, "deliveries", "ok.replayed")
	return nil
}

// ---- dead letters ----

type dlqData struct {
	Handler    string
	Deliveries []*relayv1.Delivery
	Total      int64
	Handlers   []*relayv1.Handler
}

func (c *Console) dlq(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.dlq")
	p.flashFrom(r)
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	h := r.URL.Query().Get("handler")
	resp, err := rc.ListDeliveries(ctx, &relayv1.ListDeliveriesRequest{Status: "dead", Handler: h, Limit: 500})
	if err != nil {
		return err
	}
	st, err := rc.Stats(ctx, &relayv1.StatsRequest{})
	if err != nil {
		return err
	}
	hs, err := rc.ListHandlers(ctx, &relayv1.ListHandlersRequest{})
	if err != nil {
		return err
	}
	var withDead []*relayv1.Handler
	for _, x := range hs.Handlers {
		if x.Dead > 0 {
			withDead = append(withDead, x)
		}
	}
	p.Data = dlqData{Handler: h, Deliveries: resp.Deliveries, Total: st.Dead, Handlers: withDead}
	c.render(w, http.StatusOK, "dlq", p)
	return nil
}

// dlqReplay replays one handler's dead letters, or every dead letter when
// the form says so twice: scope=all and the confirmation box.
func (c *Console) dlqReplay(w http.ResponseWriter, r *http.Request, p *page) error {
	h := r.PostFormValue("handler")
	if h == "" && (r.PostFormValue("scope") != "all" || r.PostFormValue("confirm") != "yes") {
		c.fail(w, r, p, http.StatusBadRequest, p.T("dlq.needconfirm"))
		return nil
	}
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	resp, err := rc.ReplayDeadLetters(ctx, &relayv1.ReplayDeadLettersRequest{Handler: h})
	if err != nil {
		return err
	}
	target := h
	if target == "" {
		target = "all handlers"
	}
	c.record(r, p, "dlq.replay", target, fmt.Sprintf("%d dead letters replayed", resp.Replayed))
	redirect(w, r, "dlq", "ok.replayed")
	return nil
}

// ---- handlers ----

type handlersData struct {
	Handlers      []*relayv1.Handler
	SecretApp     string
	Secret        string
	PreviousUntil int64
}

func (c *Console) handlers(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.handlers")
	p.flashFrom(r)
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	hs, err := rc.ListHandlers(ctx, &relayv1.ListHandlersRequest{})
	if err != nil {
		return err
	}
	p.Data = handlersData{Handlers: hs.Handlers}
	c.render(w, http.StatusOK, "handlers", p)
	return nil
}

func (c *Console) handlerOp(w http.ResponseWriter, r *http.Request, p *page) error {
	key, op := r.PathValue("key"), r.PathValue("op")
	rc, ctx, cancel, err := c.relay(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	switch op {
	case "rotate-secret":
		return c.rotateSigning(w, r, p, rc, ctx, key)
	case "pause":
		_, err = rc.PauseHandler(ctx, &relayv1.HandlerRequest{Key: key})
	case "resume":
		_, err = rc.ResumeHandler(ctx, &relayv1.HandlerRequest{Key: key})
	default:
		http.NotFound(w, r)
		return nil
	}
	if err != nil {
		return err
	}
	c.record(r, p, "handler."+op, key, "")
	redirect(w, r, "handlers", "ok."+op)
	return nil
}

// rotateSigning makes a new signing secret for the app behind handler key
// and shows it once; the previous one keeps signing during the overlap.
func (c *Console) rotateSigning(w http.ResponseWriter, r *http.Request, p *page, rc relayv1.RelayClient, ctx context.Context, key string) error {
	p.Title = p.T("nav.handlers")
	hs, err := rc.ListHandlers(ctx, &relayv1.ListHandlersRequest{})
	if err != nil {
		return err
	}
	var clientID, portal string
	for _, h := range hs.Handlers {
		if h.Key == key {
			clientID, portal = h.ClientId, h.Portal
		}
	}
	if clientID == "" {
		return fmt.Errorf("handler %q is not an app's (a webhook's secret is rotated with its application token: eventrelay secrets rotate)", key)
	}
	sec, err := rc.RotateSigningSecret(ctx, &relayv1.SigningSecretRequest{ClientId: clientID, Portal: portal})
	if err != nil {
		return err
	}
	c.record(r, p, "signing-secret.rotate", clientID, "previous signs until "+time.Unix(sec.PreviousUntil, 0).UTC().Format(time.RFC3339))
	p.Flash = p.T("ok.rotated")
	p.Data = handlersData{Handlers: hs.Handlers, SecretApp: clientID, Secret: sec.Secret, PreviousUntil: sec.PreviousUntil}
	c.render(w, http.StatusOK, "handlers", p)
	return nil
}

// ---- apps ----

type appsData struct {
	Apps   []oauth.Client
	New    *oauth.Client
	Secret string
}

func (c *Console) apps(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.apps")
	p.flashFrom(r)
	return c.renderApps(w, r, p, appsData{})
}

func (c *Console) renderApps(w http.ResponseWriter, r *http.Request, p *page, d appsData) error {
	apps, err := c.cfg.OAuth.ListClients(r.Context(), oauth.KindApp, "")
	if err != nil {
		return err
	}
	d.Apps = apps
	p.Data = d
	c.render(w, http.StatusOK, "apps", p)
	return nil
}

func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad lifetime %q: use e.g. 1h, 30m, 720h", s)
	}
	return d, nil
}

func (c *Console) appCreate(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.apps")
	cl := oauth.Client{Kind: oauth.KindApp, Name: strings.TrimSpace(r.PostFormValue("name")), RedirectURI: strings.TrimSpace(r.PostFormValue("redirect_uri")),
		TokenPrefix: strings.TrimSpace(r.PostFormValue("token_prefix"))}
	for _, s := range strings.Split(r.PostFormValue("scope"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			cl.Scope = append(cl.Scope, s)
		}
	}
	var err error
	if cl.AccessTTL, err = parseTTL(r.PostFormValue("access_ttl")); err == nil {
		if cl.RefreshTTL, err = parseTTL(r.PostFormValue("refresh_ttl")); err == nil {
			cl.CodeTTL, err = parseTTL(r.PostFormValue("code_ttl"))
		}
	}
	if err != nil {
		p.Error = err.Error()
		return c.renderApps(w, r, p, appsData{})
	}
	created, secret, err := c.cfg.OAuth.CreateClient(r.Context(), cl)
	if err != nil {
		p.Error = err.Error()
		return c.renderApps(w, r, p, appsData{})
	}
	c.record(r, p, "app.create", created.ID, fmt.Sprintf("name=%q scope=%s", created.Name, strings.Join(created.Scope, ",")))
	p.Flash = p.T("ok.appcreated")
	return c.renderApps(w, r, p, appsData{New: &created, Secret: secret})
}

func (c *Console) appOp(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.apps")
	id := r.PathValue("id")
	cl, err := c.cfg.OAuth.GetClient(r.Context(), id)
	if err != nil || cl.Kind != oauth.KindApp {
		return fmt.Errorf("no app %q", id)
	}
	switch r.PathValue("op") {
	case "rotate":
		secret, err := c.cfg.OAuth.RotateSecret(r.Context(), id)
		if err != nil {
			return err
		}
		c.record(r, p, "app.rotate-secret", id, "")
		p.Flash = p.T("ok.rotated")
		return c.renderApps(w, r, p, appsData{New: &cl, Secret: secret})
	case "delete":
		if r.PostFormValue("confirm") != "yes" {
			c.fail(w, r, p, http.StatusBadRequest, p.T("apps.needconfirm"))
			return nil
		}
		if err := c.cfg.OAuth.DeleteClient(r.Context(), id); err != nil {
			return err
		}
		c.record(r, p, "app.delete", id, fmt.Sprintf("name=%q", cl.Name))
		redirect(w, r, "apps", "ok.deleted")
		return nil
	case "revoke-tokens":
		n, err := c.cfg.OAuth.RevokeTokens(r.Context(), id, 0)
		if err != nil {
			return err
		}
		c.record(r, p, "app.revoke-tokens", id, fmt.Sprintf("%d tokens", n))
		redirect(w, r, "apps", "ok.revoked")
		return nil
	}
	http.NotFound(w, r)
	return nil
}

// ---- audit ----

// auditView is the audit page: both services' entries, merged.
type auditView struct {
	Entries  []Entry
	RelayErr string
}

// relayAudit returns the relay's audit entries, newest first, without
// those the console made (its own log has them, with the same actor):
// changes made through eventrelay's CLI or REST API.
func (c *Console) relayAudit(ctx context.Context, limit int, actor string) ([]Entry, error) {
	ops, rctx, cancel, err := c.relayOps(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	resp, err := ops.ListAudit(rctx, &relayv1.ListAuditRequest{Limit: int32(limit), Actor: actor})
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range resp.Entries {
		if e.Source == SourceConsole {
			continue
		}
		out = append(out, Entry{ID: e.Id, At: time.UnixMilli(e.AtMs).UTC(), Service: "eventrelay", Source: e.Source, Actor: e.Actor,
			Action: e.Action, Target: e.Target, Detail: e.Detail, Remote: e.Remote})
	}
	return out, nil
}

// mergeAudit merges two newest-first lists into one, at most limit.
func mergeAudit(a, b []Entry, limit int) []Entry {
	out := make([]Entry, 0, min(len(a)+len(b), limit))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && !a[0].At.Before(b[0].At) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.audit")
	const limit = 500
	actor := r.URL.Query().Get("actor")
	es, err := c.cfg.Audit.List(r.Context(), AuditFilter{Actor: actor, Limit: limit})
	if err != nil {
		return err
	}
	for i := range es {
		es[i].Service = "authprovider"
	}
	v := auditView{}
	if c.cfg.Relay != nil {
		rs, err := c.relayAudit(r.Context(), limit, actor)
		if err != nil {
			v.RelayErr = grpcMessage(err)
		}
		es = mergeAudit(es, rs, limit)
	}
	v.Entries = es
	p.Data = v
	c.render(w, http.StatusOK, "audit", p)
	return nil
}

func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, p *page) error {
	w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="isobox-audit.jsonl"`)
	// Both services' entries, oldest first: authprovider's from its
	// database, eventrelay's (the 10,000 newest not made by the console)
	// merged in by time.
	var rs []Entry
	if c.cfg.Relay != nil {
		var err error
		if rs, err = c.relayAudit(r.Context(), 10000, ""); err != nil {
			c.log.Warn("console: audit export without eventrelay's entries", "err", err)
		}
		slices.Reverse(rs)
	}
	enc := json.NewEncoder(w)
	flush := func(until time.Time) error {
		for len(rs) > 0 && (until.IsZero() || rs[0].At.Before(until)) {
			if err := enc.Encode(rs[0]); err != nil {
				return err
			}
			rs = rs[1:]
		}
		return nil
	}
	err := c.cfg.Audit.each(r.Context(), AuditFilter{Limit: 1 << 30}, "ASC", func(e Entry) error {
		if err := flush(e.At); err != nil {
			return err
		}
		e.Service = "authprovider"
		return enc.Encode(e)
	})
	if err == nil {
		err = flush(time.Time{})
	}
	if err != nil {
		c.log.Error("console: audit export", "err", err)
	}
	return nil
}

// ---- settings ----

func (c *Console) settings(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.settings")
	var s [][2]string
	if c.cfg.Settings != nil {
		s = c.cfg.Settings()
	}
	p.Data = s
	c.render(w, http.StatusOK, "settings", p)
	return nil
}

// ---- template helpers ----

func fmtMs(ms int64) string {
	if ms == 0 {
		return "—"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// fmtMsFloat shows a response time in milliseconds.
func fmtMsFloat(ms float64) string {
	switch {
	case ms <= 0:
		return "—"
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

func pct(ok, failed int64) string {
	if ok+failed == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(ok)/float64(ok+failed))
}

func statusClass(s string) template.HTMLAttr {
	switch s {
	case "delivered", "closed", "ok":
		return `class="badge ok"`
	case "dead", "open":
		return `class="badge bad"`
	default:
		return `class="badge warn"`
	}
}
