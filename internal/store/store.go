// Package store opens the SQL database behind authprovider and keeps its schema
// current. One set of migrations runs unchanged on the embedded engine (SQLite,
// through the pure-Go modernc.org/sqlite driver) and on MariaDB/MySQL.
//
// The package deliberately offers only what both engines share: `?`
// placeholders, plain DDL, explicit transactions. Code that needs an
// engine-specific statement asks DB.Dialect.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	// SQLite is the embedded engine (modernc.org/sqlite, no cgo).
	SQLite Dialect = "sqlite"
	// MySQL is MariaDB or MySQL through github.com/go-sql-driver/mysql.
	MySQL Dialect = "mysql"
)

// Sentinel errors shared by every repository built on this package.
var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned when a write collides with an existing row
	// (unique key) or with a concurrent writer.
	ErrConflict = errors.New("store: conflict")
)

// DB is an open, migrated database.
type DB struct {
	*sql.DB
	// Dialect says which engine this is.
	Dialect Dialect
}

// Open connects to the database named by dsn and applies pending migrations.
//
// dsn is either "mysql://user:pass@tcp(host:port)/dbname?params" (the
// go-sql-driver DSN behind a "mysql://" scheme) or "sqlite:path/to/file.db"
// ("sqlite://path" works too); anything else is refused (CheckDSN).
func Open(ctx context.Context, dsn string) (*DB, error) {
	db, err := connect(dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: ping %s: %w", db.Dialect, err)
	}
	if err := Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func connect(dsn string) (*DB, error) {
	if dsn == "" {
		return nil, errors.New("store: empty DSN")
	}
	if err := CheckDSN(dsn); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch {
	case strings.HasPrefix(dsn, "mysql://"):
		cfg, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
		if err != nil {
			return nil, fmt.Errorf("store: parse mysql dsn: %w", err)
		}
		cfg.ParseTime = true
		// Matched rather than changed rows, as SQLite counts them, so that
		// "UPDATE, then INSERT if nothing matched" works on both engines.
		cfg.ClientFoundRows = true
		cfg.Loc = time.UTC
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
		sqldb, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return nil, fmt.Errorf("store: open mysql: %w", err)
		}
		sqldb.SetMaxOpenConns(64)
		sqldb.SetMaxIdleConns(64)
		sqldb.SetConnMaxLifetime(time.Hour)
		return &DB{DB: sqldb, Dialect: MySQL}, nil
	default:
		path := sqlitePath(dsn)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: create data dir: %w", err)
		}
		// Create the file ourselves so that it is private (0600): it holds
		// hashes only, but also client metadata and audit data.
		if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", path, err)
		} else {
			f.Close()
		}
		q := url.Values{}
		// WAL lets readers run beside the single writer; synchronous(FULL)
		// makes every commit survive power loss; _txlock=immediate takes the
		// write lock at BEGIN so two writers never deadlock on upgrade.
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		return &DB{DB: sqldb, Dialect: SQLite}, nil
	}
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise. The error of fn is returned unchanged.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// ForUpdate returns the row-locking suffix for a SELECT inside a transaction:
// " FOR UPDATE" on MySQL, nothing on SQLite, whose immediate transactions
// already hold the database's single write lock.
func (db *DB) ForUpdate() string {
	if db.Dialect == MySQL {
		return " FOR UPDATE"
	}
	return ""
}

// IsDuplicate reports whether err is a unique-key violation on either engine.
func IsDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
