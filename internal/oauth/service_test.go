package oauth_test

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

// clock is the shared test clock.
type clock = testkit.Clock

func newService(t *testing.T, db *store.DB, cfg oauth.Config) (*oauth.Service, *clock) {
	t.Helper()
	clk := &clock{}
	cfg.Now = clk.Now
	s, err := oauth.New(db, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

var (
	localID  = regexp.MustCompile(`^local\.[0-9a-f]{13}[0-9]\.[0-9]{8}$`)
	portalID = regexp.MustCompile(`^bx\.[0-9a-f]{13}[0-9]\.[0-9]{8}$`)
	alnum50  = regexp.MustCompile(`^[A-Za-z0-9]{50}$`)
)

func TestClientLifecycle(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, oauth.Config{})
		portal, psec, err := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "portal.example.local", Name: "box"})
		if err != nil {
			t.Fatal(err)
		}
		if !portalID.MatchString(portal.ID) || !alnum50.MatchString(psec) {
			t.Fatalf("portal id %q secret %q: wrong shape", portal.ID, psec)
		}
		app, sec, err := s.CreateClient(ctx, oauth.Client{Name: "CRM sync", Scope: []string{"crm", "user", "crm"}, Portal: portal.ID, AccessTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !localID.MatchString(app.ID) || app.Status != "L" || !app.Active || app.Kind != oauth.KindApp {
			t.Fatalf("app = %+v", app)
		}
		got, err := s.GetClient(ctx, app.ID)
		if err != nil || strings.Join(got.Scope, ",") != "crm,user" || got.AccessTTL != time.Minute || got.Portal != portal.ID {
			t.Fatalf("GetClient = %+v, %v", got, err)
		}
		if _, err := s.VerifyClient(ctx, app.ID, sec); err != nil {
			t.Fatalf("VerifyClient(right secret) = %v", err)
		}
		for _, bad := range []string{"", sec[:49], sec + "x", psec} {
			if _, err := s.VerifyClient(ctx, app.ID, bad); !errors.Is(err, oauth.ErrInvalidClient) {
				t.Fatalf("VerifyClient(%q) = %v, want ErrInvalidClient", bad, err)
			}
		}
		if _, err := s.VerifyClient(ctx, "local.nope", sec); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Fatalf("VerifyClient(unknown) = %v", err)
		}
		apps, err := s.ListClients(ctx, oauth.KindApp, portal.ID)
		if err != nil || len(apps) != 1 || apps[0].ID != app.ID {
			t.Fatalf("ListClients(app, portal) = %v, %v", apps, err)
		}
		all, _ := s.ListClients(ctx, "", "")
		if len(all) != 2 {
			t.Fatalf("ListClients(any) = %d clients", len(all))
		}

		got.Name, got.Status, got.Scope = "renamed", "P", []string{"crm"}
		if err := s.UpdateClient(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got2, _ := s.GetClient(ctx, app.ID); got2.Name != "renamed" || got2.Status != "P" || len(got2.Scope) != 1 {
			t.Fatalf("after update %+v", got2)
		}
		if err := s.UpdateClient(ctx, oauth.Client{ID: "local.none"}); !errors.Is(err, oauth.ErrNotFound) {
			t.Fatalf("UpdateClient(unknown) = %v", err)
		}
		if err := s.UpdateClient(ctx, oauth.Client{ID: app.ID, Status: "X"}); !errors.Is(err, oauth.ErrInvalidArgument) {
			t.Fatalf("UpdateClient(bad status) = %v", err)
		}

		newSec, err := s.RotateSecret(ctx, app.ID)
		if err != nil || newSec == sec {
			t.Fatalf("RotateSecret = %q, %v", newSec, err)
		}
		if _, err := s.VerifyClient(ctx, app.ID, sec); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Fatal("old secret still works after rotation")
		}
		if _, err := s.VerifyClient(ctx, app.ID, newSec); err != nil {
			t.Fatalf("new secret: %v", err)
		}

		got.Active = false
		got.Name = "renamed"
		if err := s.UpdateClient(ctx, got); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyClient(ctx, app.ID, newSec); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Fatal("inactive client authenticated")
		}

		if err := s.DeleteClient(ctx, app.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetClient(ctx, app.ID); !errors.Is(err, oauth.ErrNotFound) {
			t.Fatalf("GetClient(deleted) = %v", err)
		}
		if err := s.DeleteClient(ctx, app.ID); !errors.Is(err, oauth.ErrNotFound) {
			t.Fatalf("DeleteClient twice = %v", err)
		}
	})
}

func TestIssueLookupRevoke(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newService(t, db, oauth.Config{TokenPrefix: "srv."})
		portal, _, _ := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "portal.example.local"})
		app, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm", "user"}, Portal: portal.ID, TokenPrefix: "app7.", AccessTTL: 10 * time.Minute})
		plain, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}})

		pair, err := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 7, Params: map[string]string{"LOCAL_USER": "7"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pair.AccessToken, "app7.") || !strings.HasPrefix(pair.RefreshToken, "app7.") {
			t.Fatalf("tokens %q %q lack the client's prefix", pair.AccessToken, pair.RefreshToken)
		}
		if pair.ExpiresIn != 600 || pair.Status != "L" || pair.Grant.Portal != portal.ID || strings.Join(pair.Grant.Scope, ",") != "crm,user" {
			t.Fatalf("pair = %+v", pair)
		}
		info, err := s.Lookup(ctx, pair.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if info.ClientID != app.ID || info.UserID != 7 || info.Params["LOCAL_USER"] != "7" || info.Status != "L" ||
			info.Signature != s.Signature(pair.AccessToken) || info.Portal != portal.ID {
			t.Fatalf("Lookup = %+v", info)
		}
		// The refresh token is not an access token; a re-prefixed or altered token is invalid.
		body := strings.TrimPrefix(pair.AccessToken, "app7.")
		for _, bad := range []string{pair.RefreshToken, "srv." + body, "app8." + body, pair.AccessToken + "0", "", "x.y", strings.ToUpper(pair.AccessToken)} {
			if _, err := s.Lookup(ctx, bad); !errors.Is(err, oauth.ErrInvalidToken) {
				t.Fatalf("Lookup(%q) = %v, want ErrInvalidToken", bad, err)
			}
		}

		// Default prefix, no refresh, scope subset, scope too wide.
		p2, err := s.Issue(ctx, oauth.Grant{ClientID: plain.ID, UserID: 1, Scope: []string{"crm"}}, false)
		if err != nil || p2.RefreshToken != "" || !strings.HasPrefix(p2.AccessToken, "srv.") || p2.ExpiresIn != 3600 {
			t.Fatalf("Issue(plain) = %+v, %v", p2, err)
		}
		if _, err := s.Issue(ctx, oauth.Grant{ClientID: plain.ID, UserID: 1, Scope: []string{"crm", "user"}}, false); !errors.Is(err, oauth.ErrInvalidScope) {
			t.Fatalf("Issue(wide scope) = %v", err)
		}
		if _, err := s.Issue(ctx, oauth.Grant{ClientID: "local.none", UserID: 1}, false); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Fatalf("Issue(unknown client) = %v", err)
		}

		// Expiry per client: app's token (10 min) expires, plain's (1 h) not.
		clk.Advance(11 * time.Minute)
		if _, err := s.Lookup(ctx, pair.AccessToken); !errors.Is(err, oauth.ErrExpiredToken) {
			t.Fatalf("Lookup after 11 min = %v, want ErrExpiredToken", err)
		}
		if _, err := s.Lookup(ctx, p2.AccessToken); err != nil {
			t.Fatalf("Lookup(1h token) after 11 min = %v", err)
		}

		// Revoke by the refresh token revokes the chain's access token too; the feed has it.
		pair3, _ := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 8}, true)
		sigs, cur, err := s.Revocations(ctx, 0, 100)
		if err != nil || len(sigs) != 0 {
			t.Fatalf("Revocations before = %v, %v", sigs, err)
		}
		if err := s.Revoke(ctx, pair3.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(ctx, pair3.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("Lookup after Revoke = %v", err)
		}
		if err := s.Revoke(ctx, "srv.garbage"); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("Revoke(garbage) = %v", err)
		}
		sigs, cur2, err := s.Revocations(ctx, cur, 100)
		if err != nil || len(sigs) != 1 || sigs[0] != s.Signature(pair3.AccessToken) {
			t.Fatalf("Revocations = %v, %v", sigs, err)
		}
		if cur2 < cur {
			t.Fatalf("cursor went back: %d < %d", cur2, cur)
		}

		// RevokeTokens by user, then by client.
		a, _ := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 20}, true)
		b, _ := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 21}, true)
		n, err := s.RevokeTokens(ctx, app.ID, 20)
		if err != nil || n != 2 {
			t.Fatalf("RevokeTokens(user 20) = %d, %v; want 2", n, err)
		}
		if _, err := s.Lookup(ctx, a.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatal("user 20's token survived")
		}
		if _, err := s.Lookup(ctx, b.AccessToken); err != nil {
			t.Fatalf("user 21's token: %v", err)
		}
		recs, err := s.ListTokens(ctx, app.ID, 21, 10)
		if err != nil || len(recs) != 2 {
			t.Fatalf("ListTokens = %+v, %v", recs, err)
		}
		// Deleting the client revokes the rest.
		if err := s.DeleteClient(ctx, app.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(ctx, b.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatal("token of a deleted client still valid")
		}
		sigs, _, _ = s.Revocations(ctx, 0, 100)
		if len(sigs) < 3 {
			t.Fatalf("feed has %d signatures, want >= 3", len(sigs))
		}
	})
}

func TestEndpoints(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, oauth.Config{PublicURL: "https://auth.example.local/"})
		portal, _, _ := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "portal.example.local"})
		d, se, ce, m := s.Endpoints(oauth.Grant{Portal: portal.ID})
		if d != "auth.example.local" || se != "https://auth.example.local/rest/" || ce != "https://portal.example.local/rest/" || m != oauth.MemberID(portal.ID) || len(m) != 32 {
			t.Fatalf("Endpoints = %q %q %q %q", d, se, ce, m)
		}
		d, se, ce, m = s.Endpoints(oauth.Grant{})
		if d != "auth.example.local" || se == "" || ce != "" || m != "" {
			t.Fatalf("Endpoints(no portal) = %q %q %q %q", d, se, ce, m)
		}
	})
}

func TestCodeIssue(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newService(t, db, oauth.Config{})
		app, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}, CodeTTL: 10 * time.Second})
		before := clk.Now()
		code, exp, err := s.IssueCode(ctx, oauth.Grant{ClientID: app.ID, UserID: 3}, "https://app.example/cb")
		after := clk.Now()
		if err != nil || !strings.HasPrefix(code, "isobox.") {
			t.Fatalf("IssueCode = %q, %v", code, err)
		}
		// The client's 10 s, counted from the issue (expiries are whole
		// seconds), however slow the machine is.
		if lo, hi := before.Add(10*time.Second).Truncate(time.Second), after.Add(10*time.Second); exp.Before(lo) || exp.After(hi) {
			t.Fatalf("code expires at %s, want between %s and %s", exp, lo, hi)
		}
		if _, err := s.Lookup(ctx, code); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("a code works as an access token: %v", err)
		}
	})
}

func TestIntrospect(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newService(t, db, oauth.Config{})
		app, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}, AccessTTL: time.Minute})
		p, _ := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 12, Params: map[string]string{"TZ_OFFSET": "10800"}}, true)
		in, err := s.Introspect(ctx, p.AccessToken)
		if err != nil || !in.Active || in.TokenType != "access_token" || in.UserID != 12 || in.Params["TZ_OFFSET"] != "10800" || in.IssuedAt.IsZero() {
			t.Fatalf("Introspect(access) = %+v, %v", in, err)
		}
		in, err = s.Introspect(ctx, p.RefreshToken)
		if err != nil || !in.Active || in.TokenType != "refresh_token" || in.ClientID != app.ID {
			t.Fatalf("Introspect(refresh) = %+v, %v", in, err)
		}
		for _, bad := range []string{"", "nonsense", "isobox." + strings.Repeat("0", 40) + "." + strings.Repeat("0", 32)} {
			if in, err := s.Introspect(ctx, bad); err != nil || in.Active {
				t.Fatalf("Introspect(%q) = %+v, %v", bad, in, err)
			}
		}
		clk.Advance(2 * time.Minute)
		if in, _ := s.Introspect(ctx, p.AccessToken); in.Active {
			t.Fatal("expired access token is active")
		}
		if err := s.Revoke(ctx, p.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if in, _ := s.Introspect(ctx, p.RefreshToken); in.Active {
			t.Fatal("revoked refresh token is active")
		}
	})
}

// testWriter sends log output to t.Log, so that a failing test shows it.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// A box on plain http must get an http client_endpoint: SDKs call the
// portal back at that URL.
func TestEndpointsUseThePortalsScheme(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, oauth.Config{PublicURL: "http://auth.lan:8080"})
		for _, c := range []struct{ redirect, want string }{
			{"http://box.lan", "http://box.lan/rest/"},
			{"https://box.lan", "https://box.lan/rest/"},
			{"", "https://box.lan/rest/"},
		} {
			p, _, err := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "box.lan", RedirectURI: c.redirect})
			if err != nil {
				t.Fatal(err)
			}
			domain, server, client, member := s.Endpoints(oauth.Grant{Portal: p.ID})
			if domain != "auth.lan:8080" || server != "http://auth.lan:8080/rest/" || client != c.want || member != oauth.MemberID(p.ID) {
				t.Errorf("redirect %q: Endpoints = %q %q %q %q, want client_endpoint %q", c.redirect, domain, server, client, member, c.want)
			}
		}
	})
}

// Deleting a portal revokes what was issued for it, its apps' tokens and
// codes included: nothing issued for a portal that is gone may pass.
func TestDeletingAPortalRevokesItsTokens(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, oauth.Config{})
		p, _, err := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "box.lan"})
		if err != nil {
			t.Fatal(err)
		}
		other, _, _ := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "other.lan"})
		app, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}, Portal: p.ID})
		mine, err := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 1, Portal: p.ID}, true)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 1, Portal: other.ID}, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteClient(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(ctx, mine.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
			t.Fatalf("token issued for the deleted portal: %v", err)
		}
		if _, err := s.Lookup(ctx, theirs.AccessToken); err != nil {
			t.Fatalf("another portal's token was revoked too: %v", err)
		}
	})
}
