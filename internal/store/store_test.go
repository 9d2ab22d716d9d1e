package store_test

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"

	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/testkit"
)

func TestMigrationsApplyOnceOnEveryEngine(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var before int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		if before == 0 {
			t.Fatal("no migration recorded")
		}
		// A second run (a restart) must apply nothing and fail on nothing.
		if err := store.Migrate(ctx, db); err != nil {
			t.Fatalf("re-migrate: %v", err)
		}
		var after int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Fatalf("re-migrate recorded %d more migrations", after-before)
		}
	})
}

func TestMetaRoundTrip(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Meta(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Meta(missing) = %v, want ErrNotFound", err)
		}
		for _, v := range []string{"one", "one", "two"} { // same value twice: an UPDATE that changes nothing
			if err := db.SetMeta(ctx, "k", v); err != nil {
				t.Fatalf("SetMeta(%q): %v", v, err)
			}
			got, err := db.Meta(ctx, "k")
			if err != nil || got != v {
				t.Fatalf("Meta = %q, %v; want %q", got, err, v)
			}
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value, updated_at) VALUES ('rolled', 'back', 0)`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want boom", err)
		}
		if _, err := db.Meta(ctx, "rolled"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("row survived rollback: %v", err)
		}
	})
}

func TestDuplicateKeyIsRecognised(t *testing.T) {
	testkit.ForEachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		q := `INSERT INTO meta (name, value, updated_at) VALUES ('dup', 'x', 0)`
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
		_, err := db.ExecContext(ctx, q)
		if !store.IsDuplicate(err) {
			t.Fatalf("IsDuplicate(%v) = false", err)
		}
		if store.IsDuplicate(errors.New("other")) || store.IsDuplicate(nil) {
			t.Fatal("IsDuplicate true for a non-duplicate error")
		}
	})
}

func TestStatements(t *testing.T) {
	got := store.Statements("-- comment\nCREATE TABLE a (\n  x INT\n);\n\nCREATE INDEX i ON a (x);\nSELECT 1")
	want := []string{"CREATE TABLE a (\n  x INT\n)", "CREATE INDEX i ON a (x)", "SELECT 1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Statements = %q, want %q", got, want)
	}
}

func TestEngineIsTheOneAsked(t *testing.T) {
	sq := testkit.OpenStore(t, testkit.SQLite(t))
	my := testkit.OpenStore(t, testkit.MariaDB(t))
	if sq.Dialect != store.SQLite || my.Dialect != store.MySQL {
		t.Fatalf("dialects = %s, %s", sq.Dialect, my.Dialect)
	}
	var version string
	if err := my.QueryRow(`SELECT VERSION()`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version == "" {
		t.Fatal("empty MariaDB version")
	}
	if sq.ForUpdate() != "" || my.ForUpdate() != " FOR UPDATE" {
		t.Fatal("ForUpdate suffix wrong")
	}
}
