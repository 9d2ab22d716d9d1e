package events

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/bitrix"
)

// AppEvent is one app an ingest call carries events for.
type AppEvent struct {
	ClientID string
	// Uninstall is true for ONAPPUNINSTALL, which a portal may still send
	// for an app it no longer has.
	Uninstall bool
}

// AppChecker tells ingest which apps a portal may send events for
// (authprovider's EventAuth.CheckApps). allowed answers apps index by
// index; err means the answer could not be obtained.
type AppChecker interface {
	CheckApps(ctx context.Context, portal string, apps []AppEvent) (allowed []bool, err error)
}

// maxAppsPerCheck matches authprovider's bound on one CheckApps call.
const maxAppsPerCheck = 256

type appKey struct {
	portal string
	app    AppEvent
}

// checkApps refuses the call when one of its items is an event for an
// app that is not installed on the calling portal (issue 11, finding 4):
// otherwise it would be stored, answered 200, and only dead-lettered at
// delivery. Positive answers are cached for CacheTTL, so the steady state
// asks nothing; the apps a call needs and the cache lacks are asked in one
// CheckApps call. When authprovider cannot answer, the items are stored
// (ingest must not lose events while authprovider restarts) and the
// delivery-time check still refuses them.
func (in *Ingest) checkApps(ctx context.Context, portal string, items []Item) *bitrix.Error {
	if in.cfg.Apps == nil {
		return nil
	}
	now := time.Now()
	var missing []AppEvent
	seen := map[AppEvent]bool{}
	in.mu.Lock()
	for _, it := range items {
		id := it.ClientID()
		if id == "" {
			continue // an outgoing webhook: no app
		}
		a := AppEvent{ClientID: id, Uninstall: strings.EqualFold(it.QueryData().String("event"), "ONAPPUNINSTALL")}
		if seen[a] {
			continue
		}
		seen[a] = true
		if until, ok := in.apps[appKey{portal, a}]; ok && now.Before(until) {
			continue
		}
		missing = append(missing, a)
	}
	in.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if len(missing) > maxAppsPerCheck {
		return bitrix.NewError(http.StatusUnprocessableEntity, "invalid_request", fmt.Sprintf("Events for more than %d apps in one call", maxAppsPerCheck))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	allowed, err := in.cfg.Apps.CheckApps(ctx, portal, missing)
	if err == nil && len(allowed) != len(missing) {
		err = fmt.Errorf("%d answers for %d apps", len(allowed), len(missing))
	}
	if err != nil {
		in.appCheckFailed.Inc()
		in.cfg.Log.Warn("ingest: cannot check the apps of an ingest call; storing it, delivery checks again", "portal", portal, "err", err)
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, a := range missing {
		if !allowed[i] {
			in.cfg.Log.Warn("ingest: refused events for an app not installed on the calling portal", "portal", portal, "client_id", a.ClientID)
			return bitrix.NewError(http.StatusUnprocessableEntity, "NOT_INSTALLED", "Application not installed: "+a.ClientID)
		}
	}
	if in.cfg.CacheTTL > 0 {
		if len(in.apps) >= maxCache {
			clear(in.apps)
		}
		for _, a := range missing {
			in.apps[appKey{portal, a}] = now.Add(in.cfg.CacheTTL)
		}
	}
	return nil
}
