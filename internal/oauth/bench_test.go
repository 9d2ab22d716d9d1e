package oauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

// benchWorkers is the number of concurrent clients, each refreshing its own
// chain over its own keep-alive connection (as many apps refreshing at once).
const benchWorkers = 64

// runLoad runs b.N requests split over benchWorkers goroutines; do performs
// one request for worker w and reports whether it succeeded. It reports
// req/s, p50 and p99.
func runLoad(b *testing.B, do func(w int) error) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, benchWorkers)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := do(w); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * benchWorkers, MaxIdleConnsPerHost: 2 * benchWorkers, DisableCompression: true}}
}

// BenchmarkNoopHandler is the ceiling: the same client loop against a Go
// handler that answers 200 {} on loopback.
func BenchmarkNoopHandler(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	cl := benchClient()
	body := "grant_type=refresh_token&client_id=local.5c8bb1b0891cf2.87252039&client_secret=" + strings.Repeat("x", 50) + "&refresh_token=" + strings.Repeat("y", 80)
	runLoad(b, func(int) error {
		resp, err := cl.Post(srv.URL+"/oauth/token/", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
}

// BenchmarkRefreshGrant measures refresh_token grants over real HTTP on
// loopback against MariaDB with durable commits: each request rotates a
// refresh token in one transaction.
func BenchmarkRefreshGrant(b *testing.B) {
	db := testkit.OpenStore(b, testkit.MariaDB(b))
	benchRefresh(b, db)
}

// BenchmarkRefreshGrantSQLite is the same on the embedded store.
func BenchmarkRefreshGrantSQLite(b *testing.B) {
	db := testkit.OpenStore(b, testkit.SQLite(b))
	benchRefresh(b, db)
}

func benchRefresh(b *testing.B, db *store.DB) {
	ctx := context.Background()
	if db.Dialect == store.MySQL {
		var flush int
		if err := db.QueryRow(`SELECT @@innodb_flush_log_at_trx_commit`).Scan(&flush); err != nil {
			b.Fatal(err)
		}
		if flush != 1 {
			b.Fatalf("innodb_flush_log_at_trx_commit = %d; the benchmark needs durable commits (1)", flush)
		}
	}
	s, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	app, secret, err := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm", "user"}})
	if err != nil {
		b.Fatal(err)
	}
	refresh := make([]string, benchWorkers)
	for w := range refresh {
		p, err := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: int64(w + 1), Params: map[string]string{"LOCAL_USER": fmt.Sprint(w + 1)}}, true)
		if err != nil {
			b.Fatal(err)
		}
		refresh[w] = p.RefreshToken
	}
	mux := http.NewServeMux()
	mux.Handle("/oauth/token/", s.TokenHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cl := benchClient()
	runLoad(b, func(w int) error {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ID}, "client_secret": {secret}, "refresh_token": {refresh[w]}}
		resp, err := cl.Post(srv.URL+"/oauth/token/", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			RefreshToken string `json:"refresh_token"`
			Error        string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("refresh: status %d error %q (%v)", resp.StatusCode, out.Error, err)
		}
		refresh[w] = out.RefreshToken
		return nil
	})
}

// BenchmarkLookupMariaDB measures Service.Lookup, the uncached token check
// (one indexed read with the client joined), on MariaDB with 64 callers.
func BenchmarkLookupMariaDB(b *testing.B) {
	ctx := context.Background()
	db := testkit.OpenStore(b, testkit.MariaDB(b))
	s, err := oauth.New(db, oauth.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	app, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}})
	tokens := make([]string, 1000)
	for i := range tokens {
		p, err := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: int64(i + 1)}, false)
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = p.AccessToken
	}
	var i atomic.Int64
	runLoad(b, func(int) error {
		_, err := s.Lookup(ctx, tokens[i.Add(1)%int64(len(tokens))])
		return err
	})
}
