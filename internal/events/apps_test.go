package events

import (
	"context"
	"errors"
	"testing"
)

// fakeApps answers CheckApps from a set and counts the calls.
type fakeApps struct {
	installed map[string]bool
	err       error
	calls     [][]AppEvent
}

func (f *fakeApps) CheckApps(_ context.Context, _ string, apps []AppEvent) ([]bool, error) {
	f.calls = append(f.calls, apps)
	if f.err != nil {
		return nil, f.err
	}
	out := make([]bool, len(apps))
	for i, a := range apps {
		out[i] = f.installed[a.ClientID]
	}
	return out, nil
}

func itemsFor(t *testing.T, body string) []Item {
	t.Helper()
	items, err := ParseJSON("bx.portal", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func TestCheckAppsAsksOncePerAppAndCachesOnlyAcceptance(t *testing.T) {
	apps := &fakeApps{installed: map[string]bool{"app.a": true}}
	in := NewIngest(IngestConfig{Apps: apps, ServiceKey: "k"})
	ctx := context.Background()
	good := itemsFor(t, `[{"client_id":"app.a","query":{"QUERY_URL":"http://h.lan/","QUERY_DATA":{"event":"ONCRMDEALADD"}}},
		{"client_id":"app.a","query":{"QUERY_URL":"http://h.lan/","QUERY_DATA":{"event":"ONCRMDEALUPDATE","ts":2}}},
		{"client_id":null,"query":{"QUERY_URL":"http://h.lan/","QUERY_DATA":{"event":"ONCRMDEALADD","ts":3}}}]`)
	if e := in.checkApps(ctx, "bx.portal", good); e != nil {
		t.Fatalf("installed app refused: %v", e)
	}
	if e := in.checkApps(ctx, "bx.portal", good); e != nil {
		t.Fatalf("installed app refused the second time: %v", e)
	}
	if len(apps.calls) != 1 || len(apps.calls[0]) != 1 || apps.calls[0][0].ClientID != "app.a" {
		t.Fatalf("CheckApps calls = %v, want one call for app.a (webhooks are not asked; the second call is cached)", apps.calls)
	}
	bad := itemsFor(t, `[{"client_id":"app.b","query":{"QUERY_URL":"http://h.lan/","QUERY_DATA":{"event":"onAppUninstall"}}}]`)
	for range 2 {
		e := in.checkApps(ctx, "bx.portal", bad)
		if e == nil || e.Status != 422 || e.Code != "NOT_INSTALLED" {
			t.Fatalf("app not installed: %v, want 422 NOT_INSTALLED", e)
		}
	}
	if n := len(apps.calls); n != 3 || !apps.calls[2][0].Uninstall {
		t.Fatalf("CheckApps calls = %v: a refusal must be asked again, and the event recognised as ONAPPUNINSTALL", apps.calls)
	}
	// Another portal does not share the first one's cache.
	if e := in.checkApps(ctx, "bx.other", good); e != nil || len(apps.calls) != 4 {
		t.Fatalf("other portal: %v, calls %d", e, len(apps.calls))
	}
	// authprovider down: stored anyway (delivery checks again), counted.
	down := &fakeApps{err: errors.New("unavailable")}
	in = NewIngest(IngestConfig{Apps: down, ServiceKey: "k"})
	if e := in.checkApps(ctx, "bx.portal", bad); e != nil {
		t.Fatalf("authprovider down: %v, want the call stored", e)
	}
}
