package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/portal"
)

// ---- portals ----

type portalsData struct {
	Portals   []oauth.Client
	Allowlist []portal.Allowed
}

func (c *Console) portals(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.portals")
	p.flashFrom(r)
	if c.cfg.Portals == nil {
		return errors.New("the portal registry is not configured")
	}
	ps, err := c.cfg.Portals.Portals(r.Context())
	if err != nil {
		return err
	}
	al, err := c.cfg.Portals.Allowlist(r.Context())
	if err != nil {
		return err
	}
	p.Data = portalsData{Portals: ps, Allowlist: al}
	c.render(w, http.StatusOK, "portals", p)
	return nil
}

func (c *Console) portalAllow(w http.ResponseWriter, r *http.Request, p *page) error {
	if c.cfg.Portals == nil {
		return errors.New("the portal registry is not configured")
	}
	ap := portal.Approval{Host: strings.TrimSpace(r.PostFormValue("host")), Note: strings.TrimSpace(r.PostFormValue("note")),
		Permanent: r.PostFormValue("permanent") == "yes", Rebind: r.PostFormValue("rebind") == "yes"}
	ttl, err := parseTTL(r.PostFormValue("ttl"))
	if err != nil {
		return err
	}
	ap.TTL = ttl
	a, err := c.cfg.Portals.Allow(r.Context(), ap)
	if err != nil {
		return err
	}
	c.record(r, p, "portal.allow", a.Host, fmt.Sprintf("once=%v rebind=%v expires=%s note=%q", a.Once, a.Rebind, fmtTime(a.Expires), a.Note))
	redirect(w, r, "portals", "ok.allowed")
	return nil
}

func (c *Console) portalDisallow(w http.ResponseWriter, r *http.Request, p *page) error {
	if c.cfg.Portals == nil {
		return errors.New("the portal registry is not configured")
	}
	host := r.PostFormValue("host")
	if err := c.cfg.Portals.Disallow(r.Context(), host); err != nil {
		return err
	}
	c.record(r, p, "portal.disallow", host, "")
	redirect(w, r, "portals", "ok.disallowed")
	return nil
}

func (c *Console) portalRemove(w http.ResponseWriter, r *http.Request, p *page) error {
	if c.cfg.Portals == nil {
		return errors.New("the portal registry is not configured")
	}
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		c.fail(w, r, p, http.StatusBadRequest, p.T("apps.needconfirm"))
		return nil
	}
	if err := c.cfg.Portals.Remove(r.Context(), id); err != nil {
		return err
	}
	c.record(r, p, "portal.remove", id, "with its apps and tokens")
	redirect(w, r, "portals", "ok.deleted")
	return nil
}

// ---- tokens ----

type tokensData struct {
	App, User string
	Tokens    []oauth.TokenRecord
	Searched  bool
	Intro     *oauth.Introspection
	Apps      []oauth.Client
}

func (c *Console) tokens(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.tokens")
	p.flashFrom(r)
	q := r.URL.Query()
	d := tokensData{App: strings.TrimSpace(q.Get("app")), User: strings.TrimSpace(q.Get("user"))}
	return c.renderTokens(w, r, p, d)
}

func (c *Console) renderTokens(w http.ResponseWriter, r *http.Request, p *page, d tokensData) error {
	apps, err := c.cfg.OAuth.ListClients(r.Context(), oauth.KindApp, "")
	if err != nil {
		return err
	}
	d.Apps = apps
	if d.App != "" || d.User != "" {
		uid, err := parseUser(d.User)
		if err != nil {
			return err
		}
		if d.Tokens, err = c.cfg.OAuth.ListTokens(r.Context(), d.App, uid, 200); err != nil {
			return err
		}
		d.Searched = true
	}
	p.Data = d
	c.render(w, http.StatusOK, "tokens", p)
	return nil
}

func parseUser(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("user id %q: a positive number", s)
	}
	return n, nil
}

// introspect is a POST (the token is a secret: not in a URL) that changes
// nothing, so viewers may use it.
func (c *Console) introspect(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.tokens")
	in, err := c.cfg.OAuth.Introspect(r.Context(), strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		return err
	}
	return c.renderTokens(w, r, p, tokensData{Intro: &in})
}

func (c *Console) revoke(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.tokens")
	if tok := strings.TrimSpace(r.PostFormValue("token")); tok != "" {
		in, _ := c.cfg.OAuth.Introspect(r.Context(), tok)
		if err := c.cfg.OAuth.Revoke(r.Context(), tok); err != nil {
			return err
		}
		c.record(r, p, "token.revoke", fmt.Sprintf("client_id=%s user_id=%d", in.ClientID, in.UserID), "one token and its chain")
		redirect(w, r, "tokens", "ok.revoked")
		return nil
	}
	app, user := strings.TrimSpace(r.PostFormValue("app")), strings.TrimSpace(r.PostFormValue("user"))
	uid, err := parseUser(user)
	if err != nil {
		return err
	}
	if app == "" && uid == 0 {
		return errors.New("give an app, a user or a token")
	}
	n, err := c.cfg.OAuth.RevokeTokens(r.Context(), app, uid)
	if err != nil {
		return err
	}
	c.record(r, p, "token.revoke-all", fmt.Sprintf("client_id=%s user_id=%d", app, uid), fmt.Sprintf("%d tokens", n))
	redirect(w, r, "tokens", "ok.revoked")
	return nil
}
