package portal_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

// BenchmarkRestCheck is the drop-in hot path in process: form parsing,
// cached portal credentials, cached token, JSON answer.
func BenchmarkRestCheck(b *testing.B) {
	db := testkit.OpenStore(b, testkit.SQLite(b))
	ctx := b.Context()
	o, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	v := validator.New(o, validator.Config{}, nil)
	svc := validator.NewService(o, v, validator.NewPortals(o, 0, nil), validator.ServiceConfig{PublicURL: "http://auth.box.local"})
	registry := portal.NewRegistry(db, o, nil)
	reg, err := registry.Add(ctx, "http://portal.box.local", "", "")
	if err != nil {
		b.Fatal(err)
	}
	m, err := svc.Mint(ctx, reg.Client, mustApp(b, o, reg.Client.ID), 1, nil, map[string]string{"TZ_OFFSET": "0", "EVENT_SESSION": "7"}, "", false)
	if err != nil {
		b.Fatal(err)
	}
	h := portal.New(portal.Config{}, svc, o, registry, portal.NewRelay(db, portal.RelayConfig{}, nil), nil)
	mux := http.NewServeMux()
	h.Register(mux)
	body := url.Values{"TOKEN": {m.AccessToken}, "client_id": {reg.Client.ID}, "client_secret": {reg.Secret},
		"client_redirect_uri": {"http://portal.box.local"}, "member_id": {oauth.MemberID(reg.Client.ID)}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/rest/rest.check", strings.NewReader(body)))
			if rec.Code != 200 {
				b.Fatal(rec.Body.String())
			}
		}
	})
}

func mustApp(b *testing.B, o *oauth.Service, portalID string) string {
	app, _, err := o.CreateClient(b.Context(), oauth.Client{Kind: oauth.KindApp, Scope: []string{"crm"}, Portal: portalID})
	if err != nil {
		b.Fatal(err)
	}
	return app.ID
}
