package validator_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// BenchmarkRevocationReach measures how long a revocation made on one
// instance takes to reach another instance's cache on the same MariaDB
// (both following the feed at the default 250 ms): from Revoke's commit to
// the first refused check. Reported as ms/op.
func BenchmarkRevocationReach(b *testing.B) {
	db := testkit.OpenStore(b, testkit.MariaDB(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	other, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	app, _, err := a.CreateClient(ctx, oauth.Client{Kind: oauth.KindApp, Scope: []string{"crm"}})
	if err != nil {
		b.Fatal(err)
	}
	v := validator.New(other, validator.Config{CacheTTL: time.Hour}, nil)
	go v.Run(ctx)
	var total, worst time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		pair, err := a.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 1}, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Check(ctx, pair.AccessToken); err != nil {
			b.Fatal(err)
		}
		// Revoke at a random point of the poll period, not in phase with it.
		time.Sleep(time.Duration(rand.Int64N(int64(250 * time.Millisecond))))
		b.StartTimer()
		if err := a.Revoke(ctx, pair.AccessToken); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			if _, err := v.Check(ctx, pair.AccessToken); err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		total += took
		worst = max(worst, took)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/revocation")
	b.ReportMetric(float64(worst.Milliseconds()), "ms-worst")
}
