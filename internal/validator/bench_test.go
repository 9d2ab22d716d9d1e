package validator_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/testkit"
	"github.com/isobox/isobox/internal/validator"
)

// BenchmarkValidateREST is the module's hot path in process: credentials
// from the header, JSON in, cached token, JSON out.
func BenchmarkValidateREST(b *testing.B) {
	db := testkit.OpenStore(b, testkit.SQLite(b))
	ctx := context.Background()
	o, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p, psec, err := o.CreateClient(ctx, oauth.Client{Kind: oauth.KindPortal, Host: "portal.box.local"})
	if err != nil {
		b.Fatal(err)
	}
	app, _, err := o.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Scope: []string{"crm"}, Portal: p.ID})
	if err != nil {
		b.Fatal(err)
	}
	v := validator.New(o, validator.Config{}, nil)
	svc := validator.NewService(o, v, validator.NewPortals(o, 0, nil), validator.ServiceConfig{})
	m, err := svc.Mint(ctx, p, app.ID, 1, nil, map[string]string{"TZ_OFFSET": "0", "EVENT_SESSION": "7"}, "", false)
	if err != nil {
		b.Fatal(err)
	}
	h := svc.ValidateHandler(nil)
	body := `{"access_token":"` + m.AccessToken + `","scope":"crm"}`
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, validator.ValidatePath, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+p.ID+":"+psec)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Body.String())
			}
		}
	})
}
