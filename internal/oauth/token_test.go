package oauth_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

// tokenEnv is a Service with its token endpoint on a loopback server.
type tokenEnv struct {
	s      *oauth.Service
	clk    *clock
	db     *store.DB
	srv    *httptest.Server
	portal oauth.Client
	app    oauth.Client
	secret string
}

func newTokenEnv(t *testing.T, db *store.DB, cfg oauth.Config, app oauth.Client) *tokenEnv {
	t.Helper()
	ctx := context.Background()
	s, clk := newService(t, db, cfg)
	portal, _, err := s.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "portal.example.local"})
	if err != nil {
		t.Fatal(err)
	}
	if app.Scope == nil {
		app.Scope = []string{"crm", "user"}
	}
	app.Portal = portal.ID
	app, sec, err := s.CreateClient(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range oauth.TokenPaths() {
		mux.Handle(p, s.TokenHandler())
	}
	srv := httptest.NewServer(oauth.CollapseSlashes(mux))
	t.Cleanup(srv.Close)
	return &tokenEnv{s: s, clk: clk, db: db, srv: srv, portal: portal, app: app, secret: sec}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: status %d, body %q is not JSON", req.Method, req.URL, resp.StatusCode, raw)
	}
	return r
}

func (e *tokenEnv) post(t *testing.T, path string, form url.Values) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func (e *tokenEnv) refreshForm(refresh string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {e.app.ID}, "client_secret": {e.secret}, "refresh_token": {refresh}}
}

func (e *tokenEnv) issue(t *testing.T, user int64) oauth.TokenPair {
	t.Helper()
	p, err := e.s.Issue(context.Background(), oauth.Grant{ClientID: e.app.ID, UserID: user, Params: map[string]string{"LOCAL_USER": fmt.Sprint(user)}}, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code || r.str("error_description") == "" {
		t.Fatalf("got %d %s, want %d {error: %s, error_description: ...}", r.status, r.raw, status, code)
	}
}

func wantTokens(t *testing.T, e *tokenEnv, r reply) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers %v", r.header)
	}
	for _, k := range []string{"access_token", "refresh_token", "expires", "expires_in", "scope", "domain", "server_endpoint", "client_endpoint", "member_id", "status", "user_id"} {
		if _, ok := r.body[k]; !ok {
			t.Fatalf("response lacks %q: %s", k, r.raw)
		}
	}
	if r.str("client_endpoint") != "https://portal.example.local/rest/" || r.str("member_id") != oauth.MemberID(e.portal.ID) ||
		r.str("status") != "L" || r.str("scope") != "crm,user" || !strings.HasSuffix(r.str("server_endpoint"), "/rest/") {
		t.Fatalf("Bitrix fields wrong: %s", r.raw)
	}
	if _, err := e.s.Lookup(context.Background(), r.str("access_token")); err != nil {
		t.Fatalf("issued access token does not validate: %v", err)
	}
}

func TestAuthorizationCodeGrant(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{TokenPrefix: "crm7.", CodeTTL: 20 * time.Second})
		code, _, err := e.s.IssueCode(ctx, oauth.Grant{ClientID: e.app.ID, UserID: 5, Params: map[string]string{"LOCAL_USER": "5"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {e.app.ID}, "client_secret": {e.secret}, "code": {code}, "scope": {"telephony"}}
		wantError(t, e.post(t, "/oauth/token/", form), 400, "invalid_scope")
		form.Set("scope", "crm,user")
		r := e.post(t, "/oauth/token/", form)
		wantTokens(t, e, r)
		if !strings.HasPrefix(r.str("access_token"), "crm7.") || !strings.HasPrefix(r.str("refresh_token"), "crm7.") {
			t.Fatalf("client prefix not used: %s", r.raw)
		}
		if r.body["user_id"].(float64) != 5 || r.body["expires_in"].(float64) != 3600 {
			t.Fatalf("user_id/expires_in: %s", r.raw)
		}
		info, _ := e.s.Lookup(ctx, r.str("access_token"))
		if info.Params["LOCAL_USER"] != "5" || info.Portal != e.portal.ID {
			t.Fatalf("token parameters lost: %+v", info)
		}
		// A code works once; using it again revokes what it gave (RFC 6749 §4.1.2).
		wantError(t, e.post(t, "/oauth/token/", form), 400, "invalid_grant")
		if _, err := e.s.Lookup(ctx, r.str("access_token")); err == nil {
			t.Fatal("tokens from a replayed code survived")
		}
		// Expired code, by the client's own code lifetime (20 s).
		code2, _, _ := e.s.IssueCode(ctx, oauth.Grant{ClientID: e.app.ID, UserID: 5}, "")
		e.clk.Advance(21 * time.Second)
		form.Set("code", code2)
		wantError(t, e.post(t, "/oauth/token/", form), 401, "expired_token")
		// Another client's code.
		other, osec, _ := e.s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}})
		code3, _, _ := e.s.IssueCode(ctx, oauth.Grant{ClientID: e.app.ID, UserID: 5}, "")
		wantError(t, e.post(t, "/oauth/token/", url.Values{"grant_type": {"authorization_code"}, "client_id": {other.ID}, "client_secret": {osec}, "code": {code3}}), 400, "invalid_grant")
	})
}

func TestRefreshRotationGraceAndReuse(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newTokenEnv(t, db, oauth.Config{RefreshGrace: 5 * time.Second}, oauth.Client{})
		p0 := e.issue(t, 9)
		r1 := e.post(t, "/oauth/token/", e.refreshForm(p0.RefreshToken))
		wantTokens(t, e, r1)
		if r1.body["user_id"].(float64) != 9 {
			t.Fatalf("user_id: %s", r1.raw)
		}
		// The used refresh token and the access token issued with it stop working.
		if _, err := e.s.Lookup(ctx, p0.AccessToken); err == nil {
			t.Fatal("access token of a used refresh token still valid")
		}
		// Within grace: refused, but the chain (r1's tokens) survives. No branch.
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(p0.RefreshToken)), 400, "invalid_grant")
		if _, err := e.s.Lookup(ctx, r1.str("access_token")); err != nil {
			t.Fatalf("grace-window retry revoked the chain: %v", err)
		}
		// The chain goes on.
		r2 := e.post(t, "/oauth/token/", e.refreshForm(r1.str("refresh_token")))
		wantTokens(t, e, r2)
		// A refresh may narrow the scope (RFC 6749 §6), never widen it.
		pn := e.issue(t, 9)
		nf := e.refreshForm(pn.RefreshToken)
		nf.Set("scope", "crm")
		rn := e.post(t, "/oauth/token/", nf)
		if rn.status != 200 || rn.str("scope") != "crm" {
			t.Fatalf("narrowing refresh: %d %s", rn.status, rn.raw)
		}
		nf = e.refreshForm(rn.str("refresh_token"))
		nf.Set("scope", "crm,user")
		wantError(t, e.post(t, "/oauth/token/", nf), 400, "invalid_scope")
		// After grace, reusing an old refresh token revokes the whole chain.
		e.clk.Advance(6 * time.Second)
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(r1.str("refresh_token"))), 400, "invalid_grant")
		if _, err := e.s.Lookup(ctx, r2.str("access_token")); err == nil {
			t.Fatal("reuse did not revoke the chain's access token")
		}
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(r2.str("refresh_token"))), 400, "invalid_grant")
		// A parallel chain of the same user and app is untouched.
		pa := e.issue(t, 9)
		pb := e.issue(t, 9)
		wantTokens(t, e, e.post(t, "/oauth/token/", e.refreshForm(pa.RefreshToken)))
		wantTokens(t, e, e.post(t, "/oauth/token/", e.refreshForm(pb.RefreshToken)))
	})
}

func TestRefreshExpiryPerClientAndRevocation(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{RefreshTTL: time.Hour, AccessTTL: 5 * time.Minute})
		p := e.issue(t, 1)
		r := e.post(t, "/oauth/token/", e.refreshForm(p.RefreshToken))
		wantTokens(t, e, r)
		if r.body["expires_in"].(float64) != 300 {
			t.Fatalf("per-client access TTL not applied: %s", r.raw)
		}
		e.clk.Advance(61 * time.Minute)
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(r.str("refresh_token"))), 401, "expired_token")
		// Revoked refresh token.
		p2 := e.issue(t, 2)
		if err := e.s.Revoke(ctx, p2.AccessToken); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(p2.RefreshToken)), 400, "invalid_grant")
		// Inactive client.
		p3 := e.issue(t, 3)
		c := e.app
		c.Active = false
		if err := e.s.UpdateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(p3.RefreshToken)), 400, "invalid_client")
	})
}

func TestBadRequests(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{})
		p := e.issue(t, 1)
		f := e.refreshForm(p.RefreshToken)
		with := func(k, v string) url.Values {
			g := url.Values{}
			for kk, vv := range f {
				g[kk] = vv
			}
			if v == "" {
				g.Del(k)
			} else {
				g.Set(k, v)
			}
			return g
		}
		wantError(t, e.post(t, "/oauth/token/", with("grant_type", "")), 400, "invalid_request")
		wantError(t, e.post(t, "/oauth/token/", with("grant_type", "password")), 400, "unsupported_grant_type")
		wantError(t, e.post(t, "/oauth/token/", with("grant_type", "client_credentials")), 400, "unsupported_grant_type")
		wantError(t, e.post(t, "/oauth/token/", with("client_secret", "")), 400, "invalid_client")
		wantError(t, e.post(t, "/oauth/token/", with("client_secret", "wrong")), 400, "invalid_client")
		wantError(t, e.post(t, "/oauth/token/", with("client_id", "local.nobody")), 400, "invalid_client")
		wantError(t, e.post(t, "/oauth/token/", with("refresh_token", "")), 400, "invalid_request")
		wantError(t, e.post(t, "/oauth/token/", with("refresh_token", "isobox.nonsense")), 400, "invalid_grant")
		wantError(t, e.post(t, "/oauth/token/", with("refresh_token", p.AccessToken)), 400, "invalid_grant")
		wantError(t, e.post(t, "/oauth/token/", with("scope", "crm,telephony")), 400, "invalid_scope")
		// Duplicated parameter with different values (body twice, and query vs body).
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/", strings.NewReader(f.Encode()+"&grant_type=authorization_code"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantError(t, do(t, req), 400, "invalid_request")
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/?client_id=local.other", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantError(t, do(t, req), 400, "invalid_request")
		// Non-UTF-8, malformed escapes.
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/", strings.NewReader(f.Encode()+"&x=%ff%fe"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantError(t, do(t, req), 400, "invalid_request")
		req, _ = http.NewRequest(http.MethodGet, e.srv.URL+"/oauth/token/?grant_type=%zz", nil)
		wantError(t, do(t, req), 400, "invalid_request")
		// A multipart form (PHP curl with an array body) is accepted; a file part is not.
		var mb bytes.Buffer
		mw := multipart.NewWriter(&mb)
		for _, k := range []string{"grant_type", "client_id", "client_secret", "refresh_token"} {
			mw.WriteField(k, f.Get(k))
		}
		fw, _ := mw.CreateFormFile("upload", "x.txt")
		fw.Write([]byte("x"))
		mw.Close()
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/", bytes.NewReader(mb.Bytes()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		wantError(t, do(t, req), 400, "invalid_request")
		// Wrong content type, oversized body, wrong method.
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/", strings.NewReader(`{"grant_type":"refresh_token"}`))
		req.Header.Set("Content-Type", "application/json")
		wantError(t, do(t, req), 415, "invalid_request")
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/", bytes.NewReader(bytes.Repeat([]byte("a"), oauth.MaxTokenBody+1)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantError(t, do(t, req), 413, "invalid_request")
		req, _ = http.NewRequest(http.MethodPut, e.srv.URL+"/oauth/token/", strings.NewReader(f.Encode()))
		wantError(t, do(t, req), 405, "invalid_request")
		// After all that, the refresh token still works once (as a multipart form).
		mb.Reset()
		mw = multipart.NewWriter(&mb)
		for _, k := range []string{"grant_type", "client_id", "client_secret", "refresh_token"} {
			mw.WriteField(k, f.Get(k))
		}
		mw.Close()
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token/", bytes.NewReader(mb.Bytes()))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		wantTokens(t, e, do(t, req))
	})
}

// TestDumpHoldsNoSecret dumps every column of every table as text and looks
// for each issued token, code and secret.
func TestDumpHoldsNoSecret(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{})
		secrets := []string{e.secret}
		p := e.issue(t, 1)
		secrets = append(secrets, p.AccessToken, p.RefreshToken)
		r := e.post(t, "/oauth/token/", e.refreshForm(p.RefreshToken))
		secrets = append(secrets, r.str("access_token"), r.str("refresh_token"))
		code, _, _ := e.s.IssueCode(ctx, oauth.Grant{ClientID: e.app.ID, UserID: 2}, "")
		secrets = append(secrets, code)
		rotated, _ := e.s.RotateSecret(ctx, e.app.ID)
		secrets = append(secrets, rotated)
		dump := dumpAll(t, db)
		if len(dump) < 1000 {
			t.Fatalf("dump is suspiciously small (%d bytes)", len(dump))
		}
		for _, s := range secrets {
			if s == "" {
				t.Fatal("empty secret in test")
			}
			// The whole token, and its random middle part without prefix and signature.
			i := strings.LastIndexByte(s, '.')
			for _, part := range []string{s, s[max(0, i-40):max(0, i)]} {
				if part != "" && strings.Contains(dump, part) {
					t.Fatalf("database dump contains %q", part)
				}
			}
		}
	})
}

func dumpAll(t *testing.T, db *store.DB) string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect == store.MySQL {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tb := range tables {
		rows, err := db.Query("SELECT * FROM " + tb)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				b.Write(v)
				b.WriteByte('\t')
			}
			b.WriteByte('\n')
		}
		rows.Close()
	}
	return b.String()
}

func TestConcurrentRefreshOneWinner(t *testing.T) {
	concurrentRefresh(t, 5*time.Second)
}

// TestConcurrentRefreshNoGrace: without a grace window the losers' reuse
// revokes the chain, racing the winner's transaction; still exactly one
// success, and no 500 (deadlock victims are retried).
func TestConcurrentRefreshNoGrace(t *testing.T) {
	concurrentRefresh(t, 0)
}

func concurrentRefresh(t *testing.T, grace time.Duration) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		e := newTokenEnv(t, db, oauth.Config{RefreshGrace: grace}, oauth.Client{})
		p := e.issue(t, 1)
		body := e.refreshForm(p.RefreshToken).Encode()
		const n = 50
		var wg sync.WaitGroup
		start := make(chan struct{})
		statuses := make([]int, n)
		codes := make([]string, n)
		access := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := http.Post(e.srv.URL+"/oauth/token/", "application/x-www-form-urlencoded", strings.NewReader(body))
				if err != nil {
					statuses[i] = -1
					return
				}
				defer resp.Body.Close()
				var m map[string]any
				json.NewDecoder(resp.Body).Decode(&m)
				statuses[i] = resp.StatusCode
				codes[i], _ = m["error"].(string)
				access[i], _ = m["access_token"].(string)
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		var winner string
		for i := range n {
			switch {
			case statuses[i] == 200:
				wins++
				winner = access[i]
			case statuses[i] != 400 || codes[i] != "invalid_grant":
				t.Fatalf("request %d: status %d error %q", i, statuses[i], codes[i])
			}
		}
		if wins != 1 {
			t.Fatalf("%d refreshes succeeded, want exactly 1", wins)
		}
		// Losers inside the grace window do not revoke the winner's chain.
		if _, err := e.s.Lookup(context.Background(), winner); grace > 0 && err != nil {
			t.Fatalf("winner's token: %v", err)
		}
	})
}

// TestClients drives the endpoint the way real clients do: golang.org/x/oauth2
// (exchange and refresh), and raw requests shaped as CRest, b24phpsdk and
// b24jssdk send them (bitrix-wire.md §4.4).
func TestClients(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{})

		conf := &oauth2.Config{ClientID: e.app.ID, ClientSecret: e.secret,
			Endpoint: oauth2.Endpoint{TokenURL: e.srv.URL + "/oauth/token/", AuthStyle: oauth2.AuthStyleInParams}}
		code, _, _ := e.s.IssueCode(ctx, oauth.Grant{ClientID: e.app.ID, UserID: 4}, "")
		tok, err := conf.Exchange(ctx, code)
		if err != nil {
			t.Fatalf("x/oauth2 Exchange: %v", err)
		}
		if tok.RefreshToken == "" || tok.Expiry.IsZero() || tok.Extra("member_id") != oauth.MemberID(e.portal.ID) {
			t.Fatalf("x/oauth2 token = %+v", tok)
		}
		tok.Expiry = time.Now().Add(-time.Minute) // force a refresh
		tok2, err := conf.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatalf("x/oauth2 refresh: %v", err)
		}
		if tok2.AccessToken == tok.AccessToken || tok2.RefreshToken == tok.RefreshToken {
			t.Fatal("x/oauth2 refresh returned the old tokens")
		}
		if _, err := e.s.Lookup(ctx, tok2.AccessToken); err != nil {
			t.Fatal(err)
		}

		// CRest 1.33: POST form client_id, grant_type, client_secret, refresh_token.
		p := e.issue(t, 1)
		crest := url.Values{}
		crest.Set("client_id", e.app.ID)
		crest.Set("grant_type", "refresh_token")
		crest.Set("client_secret", e.secret)
		crest.Set("refresh_token", p.RefreshToken)
		wantTokens(t, e, e.post(t, "/oauth/token/", crest))

		// b24phpsdk: GET with query + bx24_request_id and X-Request-ID.
		p = e.issue(t, 1)
		q := url.Values{"grant_type": {"refresh_token"}, "client_id": {e.app.ID}, "client_secret": {e.secret},
			"refresh_token": {p.RefreshToken}, "bx24_request_id": {"1f0c8e2a"}}
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/oauth/token/?"+q.Encode(), nil)
		req.Header.Set("X-Request-ID", "1f0c8e2a")
		r := do(t, req)
		wantTokens(t, e, r)

		// b24jssdk: POST form to {server_endpoint minus "/rest/"}/oauth/token/.
		p = e.issue(t, 1)
		base := strings.TrimSuffix(r.str("server_endpoint"), "/rest/")
		resp, err := http.Post(base+"/oauth/token/", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "client_id": {e.app.ID}, "client_secret": {e.secret}, "refresh_token": {p.RefreshToken}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(raw), `"access_token"`) {
			t.Fatalf("b24jssdk-shaped request: %d %s", resp.StatusCode, raw)
		}

		// Path variants: no trailing slash, doubled slashes, /rest/ prefix.
		for _, path := range []string{"/oauth/token", "//oauth//token/", "/rest/oauth/token/", "/rest//oauth/token/"} {
			p = e.issue(t, 1)
			wantTokens(t, e, e.post(t, path, e.refreshForm(p.RefreshToken)))
		}
	})
}

func TestNoGraceReuseRevokesAtOnce(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{})
		p := e.issue(t, 1)
		r := e.post(t, "/oauth/token/", e.refreshForm(p.RefreshToken))
		wantTokens(t, e, r)
		wantError(t, e.post(t, "/oauth/token/", e.refreshForm(p.RefreshToken)), 400, "invalid_grant")
		if _, err := e.s.Lookup(context.Background(), r.str("access_token")); err == nil {
			t.Fatal("with no grace window, reuse did not revoke the chain")
		}
		// The feed names both revoked access tokens: the rotated one and the chain's.
		sigs, _, err := e.s.Revocations(context.Background(), 0, 100)
		if err != nil || len(sigs) != 2 || sigs[0] != e.s.Signature(p.AccessToken) || sigs[1] != e.s.Signature(r.str("access_token")) {
			t.Fatalf("Revocations = %v, %v", sigs, err)
		}
	})
}

func TestConcurrentCodeExchangeOneWinner(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		e := newTokenEnv(t, db, oauth.Config{}, oauth.Client{})
		code, _, err := e.s.IssueCode(context.Background(), oauth.Grant{ClientID: e.app.ID, UserID: 1}, "")
		if err != nil {
			t.Fatal(err)
		}
		body := url.Values{"grant_type": {"authorization_code"}, "client_id": {e.app.ID}, "client_secret": {e.secret}, "code": {code}}.Encode()
		const n = 20
		var wg sync.WaitGroup
		start := make(chan struct{})
		statuses := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := http.Post(e.srv.URL+"/oauth/token/", "application/x-www-form-urlencoded", strings.NewReader(body))
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, st := range statuses {
			switch st {
			case 200:
				wins++
			case 400:
			default:
				t.Fatalf("request %d: status %d", i, st)
			}
		}
		if wins != 1 {
			t.Fatalf("%d exchanges of one code succeeded, want exactly 1", wins)
		}
	})
}
