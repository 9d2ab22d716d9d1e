package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// authLoad drives the authprovider instances the way apps do, next to the
// events: one worker checks a valid access token with rest.check, another
// walks refresh chains with refresh grants on /oauth/token/. Each call
// goes to the instances in turn, to the other when one does not answer.
//
// It checks two invariants:
//   - a valid token keeps validating: a check is refused (an answer other
//     than 200 with the app, from an instance that answered at all) never;
//     the longest time without any successful check is the refusal window;
//   - a refresh chain never branches: right after each refresh, the refresh
//     token just used is shown again to the other instance, which must
//     refuse it (it is within --refresh-grace, so the chain survives).
type authLoad struct {
	pc    *PortalClient
	app   App
	check string // an access token never refreshed, valid for an hour

	mu         sync.Mutex
	lastCheck  time.Time
	window     time.Duration // longest time without a successful check
	checks     int
	refused    []string // answers refusing the valid token
	refreshes  int
	branches   []string // a used refresh token accepted again
	lostChains int      // chains cut because a refresh's answer was lost
}

// AuthStats is what the token checks and refresh grants saw in a scenario.
type AuthStats struct {
	Checks, Refreshes int
	Refused           []string      // refusals of a valid token
	Branches          []string      // refresh chains that branched
	LostChains        int           // refresh answers lost (the chain restarted)
	Window            time.Duration // longest time no check succeeded
}

func newAuthLoad(ctx context.Context, t *Topology) (*authLoad, error) {
	a := &authLoad{pc: &PortalClient{HTTP: &http.Client{Timeout: 5 * time.Second}, URLs: t.AuthURLs, ID: t.PortalID, Secret: t.PortalSecret}}
	var err error
	if a.app, err = a.pc.AddApp(ctx, 0); err != nil {
		return nil, err
	}
	tok, err := a.pc.Authorize(ctx, 0, a.app, 1)
	if err != nil {
		return nil, err
	}
	a.check = tok.AccessToken
	return a, nil
}

// PortalClient calls authprovider instances as a portal (with its
// credentials) and its apps do.
type PortalClient struct {
	HTTP *http.Client
	// URLs are the instances' base URLs; calls name an instance by index.
	URLs []string
	// ID and Secret are the portal's credentials.
	ID, Secret string
}

// App is a registered application's credentials.
type App struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// Tokens are an authorization's or a refresh grant's tokens.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// AddApp registers an application (application.add) on instance inst.
func (c *PortalClient) AddApp(ctx context.Context, inst int) (App, error) {
	var app App
	err := c.Rest(ctx, inst, "application.add", url.Values{"TITLE": {"faults"}, "SCOPE": {"crm,user"}}, &app)
	return app, err
}

// Authorize starts a chain for app and portal user user (rest.authorize).
func (c *PortalClient) Authorize(ctx context.Context, inst int, app App, user int) (Tokens, error) {
	var tok Tokens
	err := c.Rest(ctx, inst, "rest.authorize", url.Values{"CLIENT_ID": {app.ID}, "PARAMS[LOCAL_USER]": {fmt.Sprint(user)}}, &tok)
	if err == nil && (tok.AccessToken == "" || tok.RefreshToken == "") {
		err = fmt.Errorf("faults: rest.authorize gave no tokens")
	}
	return tok, err
}

// RefreshForm is the form of a refresh grant as CRest and b24jssdk send it.
func RefreshForm(app App, refreshToken string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ID}, "client_secret": {app.Secret}, "refresh_token": {refreshToken}}
}

// Rest calls a portal method on instance inst and decodes its result
// into out.
func (c *PortalClient) Rest(ctx context.Context, inst int, method string, p url.Values, out any) error {
	p.Set("client_id", c.ID)
	p.Set("client_secret", c.Secret)
	p.Set("client_redirect_uri", "http://portal.lan")
	status, b, err := c.Post(ctx, c.URLs[inst]+"/rest/"+method, p)
	if err != nil {
		return err
	}
	var r struct {
		Result json.RawMessage `json:"result"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &r) != nil || len(r.Result) == 0 {
		return fmt.Errorf("faults: %s: %d %s", method, status, b)
	}
	return json.Unmarshal(r.Result, out)
}

// Post posts form to u and returns the status and (up to 1 MiB of) the
// body.
func (c *PortalClient) Post(ctx context.Context, u string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// unanswered reports whether status/err mean the instance could not answer
// (down, restarting, its database away) rather than a verdict.
func unanswered(status int, err error) bool { return err != nil || status >= 500 }

func (a *authLoad) run(ctx context.Context) {
	a.mu.Lock()
	a.lastCheck = time.Now()
	a.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.checkLoop(ctx) }()
	go func() { defer wg.Done(); a.refreshChain(ctx) }()
	wg.Wait()
}

func (a *authLoad) checkLoop(ctx context.Context) {
	n := len(a.pc.URLs)
	for i := 0; ctx.Err() == nil; i++ {
		ok := false
		for try := range n {
			form := url.Values{"TOKEN": {a.check}, "client_id": {a.pc.ID}, "client_secret": {a.pc.Secret},
				"client_redirect_uri": {"http://portal.lan"}, "member_id": {"0"}}
			status, b, err := a.pc.Post(ctx, a.pc.URLs[(i+try)%n]+"/rest/rest.check", form)
			if ctx.Err() != nil {
				return
			}
			if unanswered(status, err) {
				continue
			}
			a.mu.Lock()
			a.checks++
			if status == http.StatusOK && strings.Contains(string(b), a.app.ID) {
				now := time.Now()
				a.window = max(a.window, now.Sub(a.lastCheck))
				a.lastCheck = now
				ok = true
			} else if len(a.refused) < 5 {
				a.refused = append(a.refused, fmt.Sprintf("%d %s", status, b))
			}
			a.mu.Unlock()
			break
		}
		if !ok {
			pause(ctx, 100*time.Millisecond)
		} else {
			pause(ctx, 20*time.Millisecond)
		}
	}
}

func (a *authLoad) refreshChain(ctx context.Context) {
	n := len(a.pc.URLs)
	var cur Tokens
	for i := 0; ctx.Err() == nil; i++ {
		if cur.RefreshToken == "" {
			tok, err := a.pc.Authorize(ctx, i%n, a.app, 1)
			if err != nil {
				pause(ctx, 200*time.Millisecond)
				continue
			}
			cur = tok
		}
		form := RefreshForm(a.app, cur.RefreshToken)
		inst := i % n
		status, b, err := a.pc.Post(ctx, a.pc.URLs[inst]+"/oauth/token/", form)
		if ctx.Err() != nil {
			return
		}
		if unanswered(status, err) {
			if err != nil && !strings.Contains(err.Error(), "connection refused") {
				// Sent but unanswered: it may have been used. Showing it
				// again would be refused; the app starts a new chain.
				a.mu.Lock()
				a.lostChains++
				a.mu.Unlock()
				cur = Tokens{}
			}
			pause(ctx, 100*time.Millisecond)
			continue
		}
		var next Tokens
		if status != http.StatusOK || json.Unmarshal(b, &next) != nil || next.RefreshToken == "" {
			// Refused: the chain is gone (it should not be); a new one.
			a.mu.Lock()
			if len(a.refused) < 5 {
				a.refused = append(a.refused, fmt.Sprintf("refresh %d %s", status, b))
			}
			a.mu.Unlock()
			cur = Tokens{}
			continue
		}
		a.mu.Lock()
		a.refreshes++
		a.mu.Unlock()
		// The token just used, to the other instance: must be refused.
		status, b, err = a.pc.Post(ctx, a.pc.URLs[(inst+1)%n]+"/oauth/token/", form)
		if !unanswered(status, err) && status == http.StatusOK {
			a.mu.Lock()
			if len(a.branches) < 5 {
				a.branches = append(a.branches, fmt.Sprintf("refresh token accepted twice: %s", b))
			}
			a.mu.Unlock()
		}
		cur = next
		pause(ctx, 20*time.Millisecond)
	}
}

// take returns the period's figures and starts a new period.
func (a *authLoad) take() AuthStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	a.window = max(a.window, now.Sub(a.lastCheck))
	a.lastCheck = now
	s := AuthStats{Checks: a.checks, Refreshes: a.refreshes, Refused: a.refused, Branches: a.branches, LostChains: a.lostChains, Window: a.window}
	a.checks, a.refreshes, a.refused, a.branches, a.lostChains, a.window = 0, 0, nil, nil, 0, 0
	return s
}
