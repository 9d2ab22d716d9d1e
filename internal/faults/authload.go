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
	t      *Topology
	client *http.Client
	app    struct{ id, secret string }
	check  string // an access token never refreshed, valid for an hour

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
	a := &authLoad{t: t, client: &http.Client{Timeout: 5 * time.Second}}
	var app struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := a.rest(ctx, 0, "application.add", url.Values{"TITLE": {"faults"}, "SCOPE": {"crm,user"}}, &app); err != nil {
		return nil, err
	}
	a.app.id, a.app.secret = app.ClientID, app.ClientSecret
	tok, err := a.authorize(ctx, 0)
	if err != nil {
		return nil, err
	}
	a.check = tok.AccessToken
	return a, nil
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (a *authLoad) authorize(ctx context.Context, inst int) (tokens, error) {
	var tok tokens
	err := a.rest(ctx, inst, "rest.authorize", url.Values{"CLIENT_ID": {a.app.id}, "PARAMS[LOCAL_USER]": {"1"}}, &tok)
	if err == nil && (tok.AccessToken == "" || tok.RefreshToken == "") {
		err = fmt.Errorf("faults: rest.authorize gave no tokens")
	}
	return tok, err
}

// rest calls a portal method (the portal's credentials) on instance inst
// and decodes its result into out.
func (a *authLoad) rest(ctx context.Context, inst int, method string, p url.Values, out any) error {
	p.Set("client_id", a.t.PortalID)
	p.Set("client_secret", a.t.PortalSecret)
	p.Set("client_redirect_uri", "http://portal.lan")
	status, b, err := a.post(ctx, a.t.AuthURLs[inst]+"/rest/"+method, p)
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

func (a *authLoad) post(ctx context.Context, u string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client.Do(req)
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
	n := len(a.t.AuthURLs)
	for i := 0; ctx.Err() == nil; i++ {
		ok := false
		for try := range n {
			form := url.Values{"TOKEN": {a.check}, "client_id": {a.t.PortalID}, "client_secret": {a.t.PortalSecret},
				"client_redirect_uri": {"http://portal.lan"}, "member_id": {"0"}}
			status, b, err := a.post(ctx, a.t.AuthURLs[(i+try)%n]+"/rest/rest.check", form)
			if ctx.Err() != nil {
				return
			}
			if unanswered(status, err) {
				continue
			}
			a.mu.Lock()
			a.checks++
			if status == http.StatusOK && strings.Contains(string(b), a.app.id) {
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
	n := len(a.t.AuthURLs)
	var cur tokens
	for i := 0; ctx.Err() == nil; i++ {
		if cur.RefreshToken == "" {
			tok, err := a.authorize(ctx, i%n)
			if err != nil {
				pause(ctx, 200*time.Millisecond)
				continue
			}
			cur = tok
		}
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {a.app.id}, "client_secret": {a.app.secret}, "refresh_token": {cur.RefreshToken}}
		inst := i % n
		status, b, err := a.post(ctx, a.t.AuthURLs[inst]+"/oauth/token/", form)
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
				cur = tokens{}
			}
			pause(ctx, 100*time.Millisecond)
			continue
		}
		var next tokens
		if status != http.StatusOK || json.Unmarshal(b, &next) != nil || next.RefreshToken == "" {
			// Refused: the chain is gone (it should not be); a new one.
			a.mu.Lock()
			if len(a.refused) < 5 {
				a.refused = append(a.refused, fmt.Sprintf("refresh %d %s", status, b))
			}
			a.mu.Unlock()
			cur = tokens{}
			continue
		}
		a.mu.Lock()
		a.refreshes++
		a.mu.Unlock()
		// The token just used, to the other instance: must be refused.
		status, b, err = a.post(ctx, a.t.AuthURLs[(inst+1)%n]+"/oauth/token/", form)
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
