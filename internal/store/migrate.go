package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/version"
)

// migrations holds the schema, one file per version, named NNNN_what.sql.
// Every file must run unchanged on SQLite and MariaDB: use VARCHAR with a
// length for indexed text, BIGINT for times (unix seconds), no engine options.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies, in file-name order, every migration not yet recorded in
// schema_migrations. Each migration runs in its own transaction where the
// engine allows it (MariaDB commits DDL implicitly; a failed migration there
// must be fixed forward).
func Migrate(ctx context.Context, db *DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version VARCHAR(128) NOT NULL PRIMARY KEY,
		applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: list migrations: %w", err)
	}
	sort.Strings(names)
	if err := checkNotNewer(ctx, db, names); err != nil {
		return err
	}
	applied := false
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("store: read schema_migrations: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("store: read %s: %w", name, err)
		}
		if err := apply(ctx, db, version, string(body)); err != nil {
			return err
		}
		applied = true
	}
	if applied {
		// Remembered so that an older binary can name the release it needs.
		if err := db.SetMeta(ctx, schemaWriterMeta, version.Version); err != nil {
			return err
		}
	}
	return nil
}

// schemaWriterMeta is the meta row naming the release that last migrated
// the schema.
const schemaWriterMeta = "schema_migrated_by"

// ErrSchemaTooNew is returned by Open when the database has migrations this
// binary does not know: a newer release upgraded it. Starting would run old
// code on a new schema, so the binary refuses.
var ErrSchemaTooNew = errors.New("store: the database schema is newer than this binary")

// checkNotNewer refuses a database that records a migration not among
// names (this binary's migrations).
func checkNotNewer(ctx context.Context, db *DB, names []string) error {
	known := map[string]bool{}
	for _, n := range names {
		known[strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("store: read schema_migrations: %w", err)
	}
	defer rows.Close()
	var unknown []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("store: read schema_migrations: %w", err)
		}
		if !known[v] {
			unknown = append(unknown, v)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read schema_migrations: %w", err)
	}
	rows.Close()
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	latest := strings.TrimSuffix(strings.TrimPrefix(names[len(names)-1], "migrations/"), ".sql")
	by, err := db.Meta(ctx, schemaWriterMeta)
	if err != nil {
		by = "a newer release"
	} else {
		by = "release " + by
	}
	return fmt.Errorf("%w: it has schema version %s, this binary (%s) knows up to %s; the schema was written by %s: run that release or a newer one (or restore the backup taken before the upgrade, see docs/install.md)",
		ErrSchemaTooNew, unknown[len(unknown)-1], version.Version, latest, by)
}

func apply(ctx context.Context, db *DB, version, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migration %s: begin: %w", version, err)
	}
	defer tx.Rollback()
	for i, stmt := range Statements(body) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("store: migration %s statement %d: %w", version, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().Unix()); err != nil {
		return fmt.Errorf("store: record migration %s: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migration %s: commit: %w", version, err)
	}
	return nil
}

// Statements splits a migration file into statements: a statement ends with
// a line whose last non-space character is ';'. Lines starting with "--" are
// comments.
func Statements(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSpace(cur.String())
			out = append(out, strings.TrimSuffix(s, ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// OpenExisting connects to dsn and checks its schema without changing it:
// for `doctor`, which must not migrate (or create) a database. It fails
// when the schema is newer than this binary (ErrSchemaTooNew) or has
// migrations still to apply, and returns the schema's latest version.
func OpenExisting(ctx context.Context, dsn string) (*DB, string, error) {
	if !strings.HasPrefix(dsn, "mysql://") {
		if _, err := os.Stat(sqlitePath(dsn)); err != nil {
			return nil, "", fmt.Errorf("store: %w (the server creates it on its first start)", err)
		}
	}
	db, err := connect(dsn)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*DB, string, error) { db.Close(); return nil, "", err }
	if err := db.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("store: ping %s: %w", db.Dialect, err))
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fail(err)
	}
	sort.Strings(names)
	if err := checkNotNewer(ctx, db, names); err != nil {
		return fail(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		return fail(fmt.Errorf("store: read schema_migrations: %w", err))
	}
	latest := strings.TrimSuffix(strings.TrimPrefix(names[len(names)-1], "migrations/"), ".sql")
	if n < len(names) {
		return fail(fmt.Errorf("store: %d of %d migrations applied: start the server (this release) to migrate", n, len(names)))
	}
	return db, latest, nil
}
