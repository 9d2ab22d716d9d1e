package validator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

// clock is the shared test clock.
type clock = testkit.Clock

// counting wraps the OAuth service and counts database lookups.
type counting struct {
	*oauth.Service
	mu      sync.Mutex
	lookups int
}

func (c *counting) Lookup(ctx context.Context, tok string) (oauth.TokenInfo, error) {
	c.mu.Lock()
	c.lookups++
	c.mu.Unlock()
	return c.Service.Lookup(ctx, tok)
}

func (c *counting) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookups
}

// fixture is one portal with one app on a real store.
type fixture struct {
	o      *oauth.Service
	clk    *clock
	portal oauth.Client
	psec   string
	app    oauth.Client
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	clk := &clock{}
	o, err := oauth.New(db, oauth.Config{Now: clk.Now, PublicURL: "https://auth.box.local"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, psec, err := o.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "portal.box.local", RedirectURI: "http://portal.box.local"})
	if err != nil {
		t.Fatal(err)
	}
	app, _, err := o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "app", Scope: []string{"crm", "user"}, Portal: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{o: o, clk: clk, portal: p, psec: psec, app: app}
}

func (f *fixture) issue(t *testing.T, user int64) oauth.TokenPair {
	t.Helper()
	pair, err := f.o.Issue(context.Background(), oauth.Grant{ClientID: f.app.ID, UserID: user, Params: map[string]string{"LOCAL_USER": "7"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func TestCheckCachesAndFollowsRevocationFeed(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		cnt := &counting{Service: f.o}
		v := validator.New(cnt, validator.Config{Now: f.clk.Now}, nil)
		pair := f.issue(t, 7)

		for range 3 {
			info, err := v.Check(ctx, pair.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if info.ClientID != f.app.ID || info.UserID != 7 || info.Portal != f.portal.ID {
				t.Fatalf("info = %+v", info)
			}
		}
		if cnt.n() != 1 {
			t.Fatalf("3 checks read the database %d times, want 1", cnt.n())
		}

		// A token that carries the cached signature but is not the cached
		// token must not be answered from memory.
		sig := f.o.Signature(pair.AccessToken)
		forged := strings.Repeat("0", 40) + "." + sig
		if _, err := v.Check(ctx, "isobox."+forged); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("forged token with a known signature: err = %v, want invalid token", err)
		}

		// Revoked by "another instance": a second Service on the same database.
		other, err := oauth.New(db, oauth.Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Revoke(ctx, pair.AccessToken); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Check(ctx, pair.AccessToken); err != nil {
			t.Fatalf("before the feed is read the cached answer stands (got %v): the test would prove nothing", err)
		}
		if err := v.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Check(ctx, pair.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("after the feed: err = %v, want invalid token", err)
		}
		if v.Stats().Dropped < 1 {
			t.Errorf("stats = %+v, want a dropped entry", v.Stats())
		}
	})
}

func TestCheckExpiryNegativeCacheAndClientDrop(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		cnt := &counting{Service: f.o}
		v := validator.New(cnt, validator.Config{Now: f.clk.Now, CacheTTL: time.Hour, NegativeTTL: time.Second}, nil)

		pair := f.issue(t, 7)
		if _, err := v.Check(ctx, pair.AccessToken); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Hour + time.Second)
		if _, err := v.Check(ctx, pair.AccessToken); !errors.Is(err, oauth.ErrExpiredToken) {
			t.Fatalf("expired token from cache: err = %v", err)
		}

		// Unknown tokens: one database read per NegativeTTL.
		garbage := "isobox." + strings.Repeat("a", 40) + "." + strings.Repeat("b", 32)
		before := cnt.n()
		for range 3 {
			if _, err := v.Check(ctx, garbage); !errors.Is(err, oauth.ErrInvalidToken) {
				t.Fatalf("garbage: %v", err)
			}
		}
		if cnt.n()-before != 1 {
			t.Fatalf("3 checks of an unknown token read the database %d times, want 1", cnt.n()-before)
		}
		f.clk.Advance(2 * time.Second)
		v.Check(ctx, garbage)
		if cnt.n()-before != 2 {
			t.Fatalf("after NegativeTTL the unknown token was not looked up again")
		}

		// ForgetClient drops every cached token of the client at once.
		pair2 := f.issue(t, 8)
		if _, err := v.Check(ctx, pair2.AccessToken); err != nil {
			t.Fatal(err)
		}
		app := f.app
		app.Active = false
		if err := f.o.UpdateClient(ctx, app); err != nil {
			t.Fatal(err)
		}
		v.ForgetClient(app.ID)
		if _, err := v.Check(ctx, pair2.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("token of a deactivated app after ForgetClient: %v", err)
		}
	})
}

func TestCacheIsBounded(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	ctx := context.Background()
	f := newFixture(t, db)
	v := validator.New(f.o, validator.Config{CacheSize: 64}, nil)
	for i := range 300 {
		pair := f.issue(t, int64(i+1))
		if _, err := v.Check(ctx, pair.AccessToken); err != nil {
			t.Fatal(err)
		}
		v.Check(ctx, "garbage-"+pair.AccessToken)
	}
	// 64 positive slots (one per shard at least) plus 1/8 for negatives.
	if n := v.Stats().Entries; n > 64+64 {
		t.Fatalf("cache holds %d entries, bound is 128", n)
	}
}

func TestServiceCheckPortalAndScope(t *testing.T) {
	db := testkit.OpenStore(t, testkit.SQLite(t))
	ctx := context.Background()
	f := newFixture(t, db)
	v := validator.New(f.o, validator.Config{}, nil)
	svc := validator.NewService(f.o, v, validator.NewPortals(f.o, 0, nil), validator.ServiceConfig{PublicURL: "https://auth.box.local"})
	other, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "other.box.local"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := svc.Mint(ctx, f.portal, f.app.ID, 7, nil, map[string]string{"TZ_OFFSET": "10800"}, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if m.Domain != "portal.box.local" || m.ClientEndpoint != "http://portal.box.local/rest/" || m.ServerEndpoint != "https://auth.box.local/rest/" ||
		m.MemberID != oauth.MemberID(f.portal.ID) || m.Scope != "crm,user" || m.Status != "L" || m.RefreshToken == "" {
		t.Fatalf("minted = %+v", m)
	}
	info, err := svc.Check(ctx, f.portal, m.AccessToken, "crm")
	if err != nil {
		t.Fatal(err)
	}
	if info.Params["LOCAL_USER"] != "7" || info.Params["TZ_OFFSET"] != "10800" {
		t.Fatalf("params = %v", info.Params)
	}
	if _, err := svc.Check(ctx, f.portal, m.AccessToken, "_global"); err != nil {
		t.Fatalf("global scope: %v", err)
	}
	if _, err := svc.Check(ctx, f.portal, m.AccessToken, "tasks"); !errors.Is(err, validator.ErrInsufficientScope) {
		t.Fatalf("scope tasks: %v", err)
	}
	if _, err := svc.Check(ctx, other, m.AccessToken, ""); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("another portal's token: %v", err)
	}
	if _, err := svc.Mint(ctx, other, f.app.ID, 7, nil, nil, "", false); !errors.Is(err, validator.ErrNotInstalled) {
		t.Fatalf("minting another portal's app: %v", err)
	}
	for _, tc := range []struct {
		err    error
		code   string
		status int
	}{
		{oauth.ErrInvalidToken, "invalid_token", 401},
		{oauth.ErrExpiredToken, "expired_token", 401},
		{validator.ErrInsufficientScope, "insufficient_scope", 401},
		{validator.ErrNotInstalled, "ERROR_OAUTH", 401},
		{oauth.ErrInvalidClient, "invalid_client", 401},
		{errors.New("db down"), "CONNECTION_ERROR", 503},
	} {
		if be := validator.BitrixError(tc.err); be.Code != tc.code || be.Status != tc.status {
			t.Errorf("BitrixError(%v) = %s %d, want %s %d", tc.err, be.Code, be.Status, tc.code, tc.status)
		}
	}
}

func keys(fs []validator.Field) string {
	var ks []string
	for _, f := range fs {
		ks = append(ks, f.Key)
	}
	return strings.Join(ks, ",")
}

func TestBuildEventAuth(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		v := validator.New(f.o, validator.Config{}, nil)
		svc := validator.NewService(f.o, v, validator.NewPortals(f.o, 0, nil), validator.ServiceConfig{})
		req := validator.EventAuthRequest{ClientID: f.app.ID, UserID: 7, SendAuth: true, SendRefreshToken: true, ApplicationToken: "apptok",
			Domain: "portal.box.local", Params: map[string]string{"EVENT_SESSION": "6", "TZ_OFFSET": "0"}, PortalID: f.portal.ID, Event: "ONCRMDEALADD"}
		fs, err := svc.BuildEventAuth(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := "access_token,expires,expires_in,scope,domain,server_endpoint,status,client_endpoint,member_id,user_id,refresh_token,application_token"
		if keys(fs) != want {
			t.Fatalf("keys = %s\nwant   %s", keys(fs), want)
		}
		info, err := v.Check(ctx, fs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		if info.Params["EVENT_SESSION"] != "6" || info.Params["LOCAL_USER"] != "7" {
			t.Fatalf("event token params = %v", info.Params)
		}

		req.SendRefreshToken = false
		if fs, _ = svc.BuildEventAuth(ctx, req); strings.Contains(keys(fs), "refresh_token") {
			t.Fatalf("refresh token without sendRefreshToken: %s", keys(fs))
		}
		empty := "domain,client_endpoint,server_endpoint,member_id,application_token"
		// An app of this portal that was deactivated still gets its
		// ONAPPUNINSTALL, with the empty auth.
		inactive, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "gone", RedirectURI: "http://gone/", Portal: f.portal.ID})
		if err != nil {
			t.Fatal(err)
		}
		inactive.Active = false
		if err := f.o.UpdateClient(ctx, inactive); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]validator.EventAuthRequest{
			"no user":   {ClientID: f.app.ID, SendAuth: true, ApplicationToken: "apptok", Domain: "portal.box.local"},
			"send off":  {ClientID: f.app.ID, UserID: 7, ApplicationToken: "apptok", Domain: "portal.box.local"},
			"webhook":   {UserID: 7, SendAuth: true, ApplicationToken: "hooktok", Domain: "portal.box.local"},
			"uninstall": {ClientID: "__inactive__", UserID: 7, SendAuth: true, ApplicationToken: "apptok", Domain: "portal.box.local", Event: "ONAPPUNINSTALL"},
		} {
			if r.ClientID == "__inactive__" {
				r.ClientID = inactive.ID
			}
			fs, err := svc.BuildEventAuth(ctx, r)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if keys(fs) != empty || fs[3].Value != oauth.MemberID(f.portal.ID) || fs[1].Value != "http://portal.box.local/rest/" {
				t.Fatalf("%s: %v", name, fs)
			}
		}
		// query.DOMAIN is the Host header of the hit that fired the event:
		// a forged one must not become the domain a handler sends the
		// fresh token to.
		forged := req
		forged.Domain = "attacker.example"
		fs, err = svc.BuildEventAuth(ctx, forged)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if strings.Contains(f.Value, "attacker") {
				t.Fatalf("forged DOMAIN reached auth[%s] = %q", f.Key, f.Value)
			}
			if f.Key == "domain" && f.Value != "portal.box.local" {
				t.Fatalf("auth[domain] = %q, want the registered host", f.Value)
			}
		}
		// An unknown app, or another portal's, is refused for every event,
		// ONAPPUNINSTALL included (issue 11, finding 4).
		strangers, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "stranger.box.local"})
		if err != nil {
			t.Fatal(err)
		}
		theirs, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "theirs", RedirectURI: "http://theirs/", Portal: strangers.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, app := range []string{"local.gone", theirs.ID} {
			for _, ev := range []string{"ONCRMDEALADD", "ONAPPUNINSTALL", "onappuninstall"} {
				_, err = svc.BuildEventAuth(ctx, validator.EventAuthRequest{ClientID: app, PortalID: f.portal.ID, UserID: 7, SendAuth: true, Domain: "portal.box.local", Event: ev})
				if !errors.Is(err, validator.ErrNotInstalled) {
					t.Errorf("%s of app %s not installed on the calling portal: %v", ev, app, err)
				}
			}
		}
	})
}

func BenchmarkCheckCached(b *testing.B) {
	db := testkit.OpenStore(b, testkit.SQLite(b))
	ctx := context.Background()
	o, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	app, _, err := o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Scope: []string{"crm"}})
	if err != nil {
		b.Fatal(err)
	}
	pair, err := o.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 1}, false)
	if err != nil {
		b.Fatal(err)
	}
	v := validator.New(o, validator.Config{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Check(ctx, pair.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// AppAllowed is BuildEventAuth's refusal asked ahead, at ingest.
func TestAppAllowed(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		svc := validator.NewService(f.o, validator.New(f.o, validator.Config{}, nil), validator.NewPortals(f.o, 0, nil), validator.ServiceConfig{})
		inactive, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "gone", RedirectURI: "http://gone/", Portal: f.portal.ID})
		if err != nil {
			t.Fatal(err)
		}
		inactive.Active = false
		if err := f.o.UpdateClient(ctx, inactive); err != nil {
			t.Fatal(err)
		}
		shared, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "shared", RedirectURI: "http://shared/"})
		if err != nil {
			t.Fatal(err)
		}
		strangers, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "stranger.box.local"})
		if err != nil {
			t.Fatal(err)
		}
		theirs, _, err := f.o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Name: "theirs", RedirectURI: "http://theirs/", Portal: strangers.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			portal, app string
			uninstall   bool
			want        bool
		}{
			{f.portal.ID, f.app.ID, false, true},
			{f.portal.ID, shared.ID, false, true},
			{f.portal.ID, inactive.ID, false, false},
			{f.portal.ID, inactive.ID, true, true}, // its ONAPPUNINSTALL still goes
			{f.portal.ID, theirs.ID, false, false},
			{f.portal.ID, theirs.ID, true, false},
			{f.portal.ID, "local.unknown", true, false},
			{strangers.ID, f.app.ID, false, false},
			{"bx.nobody", f.app.ID, false, false},
			{f.app.ID, f.app.ID, false, false}, // an app is no portal
		} {
			got, err := svc.AppAllowed(ctx, c.portal, c.app, c.uninstall)
			if err != nil || got != c.want {
				t.Errorf("AppAllowed(%s, %s, uninstall=%v) = %v, %v; want %v", c.portal, c.app, c.uninstall, got, err, c.want)
			}
		}
	})
}
