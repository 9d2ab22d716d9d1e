package oauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

func countRows(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJanitorDeletesExpiredRowsInBatches(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newService(t, db, oauth.Config{JanitorBatch: 3, AccessTTL: time.Minute, RefreshTTL: time.Hour})
		app, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}})
		long, _, _ := s.CreateClient(ctx, oauth.Client{Scope: []string{"crm"}, AccessTTL: 48 * time.Hour, RefreshTTL: 48 * time.Hour})
		for i := range 7 {
			if _, err := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: int64(i + 1)}, true); err != nil {
				t.Fatal(err)
			}
			s.IssueCode(ctx, oauth.Grant{ClientID: app.ID, UserID: 1}, "")
		}
		keep, _ := s.Issue(ctx, oauth.Grant{ClientID: long.ID, UserID: 1}, true)
		revoked, _ := s.Issue(ctx, oauth.Grant{ClientID: app.ID, UserID: 99}, false)
		s.Revoke(ctx, revoked.AccessToken)

		if n, err := s.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("Sweep before expiry = %d, %v", n, err)
		}
		clk.Advance(2 * time.Hour)
		n, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 8 access + 7 refresh + 7 codes, in batches of 3.
		if n != 22 {
			t.Fatalf("Sweep deleted %d rows, want 22", n)
		}
		if countRows(t, db, "oauth_access") != 1 || countRows(t, db, "oauth_refresh") != 1 || countRows(t, db, "oauth_codes") != 0 {
			t.Fatal("wrong rows left")
		}
		if _, err := s.Lookup(ctx, keep.AccessToken); err != nil {
			t.Fatalf("unexpired token swept: %v", err)
		}
		// RunJanitor stops when its context ends.
		jctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { s.RunJanitor(jctx); close(done) }()
		cancel()
		<-done
	})
}
