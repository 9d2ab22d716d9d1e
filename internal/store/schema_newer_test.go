package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

// A binary older than the schema refuses the database and names the
// version it needs, on both engines.
func TestOlderBinaryRefusesANewerSchema(t *testing.T) {
	for _, b := range testkit.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			db := testkit.OpenStore(t, dsn)
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_from_the_future', ?)`, time.Now().Unix()); err != nil {
				t.Fatal(err)
			}
			if err := db.SetMeta(ctx, "schema_migrated_by", "9.9.9"); err != nil {
				t.Fatal(err)
			}
			_, err := store.Open(ctx, dsn)
			if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999_from_the_future") || !strings.Contains(err.Error(), "release 9.9.9") {
				t.Fatalf("Open on a newer schema: %v", err)
			}
		})
	}
}
