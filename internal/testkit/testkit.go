// Package testkit gives tests the real parts they run against: a database on
// the throwaway MariaDB server that the test command starts, the embedded
// SQL engine, and an embedded NATS server with JetStream.
//
// Helpers fail the test when a part is missing; they never skip. Every helper
// cleans up after itself through t.Cleanup.
package testkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/isobox/isobox/internal/store"
)

// MariaDBEnv names the environment variable holding the DSN of the throwaway
// MariaDB server (go-sql-driver form, without a database name), set by
// scripts/test.sh.
const MariaDBEnv = "ISOBOX_TEST_MARIADB"

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// MariaDB creates a fresh, empty database for the test on the throwaway
// MariaDB server and returns its DSN in the "mysql://..." form store.Open
// takes. The database is dropped when the test ends.
func MariaDB(t testing.TB) string {
	t.Helper()
	base := os.Getenv(MariaDBEnv)
	if base == "" {
		t.Fatalf("testkit: %s is not set: run the tests with `make test` (scripts/test.sh starts MariaDB)", MariaDBEnv)
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("testkit: parse %s: %v", MariaDBEnv, err)
	}
	name := strings.ToLower(nonWord.ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + randomHex(4)
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("testkit: open mariadb: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("testkit: create database on %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	})
	cfg.DBName = name
	return "mysql://" + cfg.FormatDSN()
}

// SQLite returns the DSN of a fresh embedded database file in t.TempDir().
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "isobox.db")
}

// Backend is one database engine a shared suite runs against.
type Backend struct {
	// Name is "sqlite" or "mariadb"; it names the subtest.
	Name string
	// DSN returns a fresh database's DSN for the calling test.
	DSN func(t testing.TB) string
}

// Backends lists the engines every store-level suite must pass on.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", DSN: SQLite},
		{Name: "mariadb", DSN: MariaDB},
	}
}

// ForEachStore runs fn once per backend, as a subtest, with a freshly opened
// and migrated store.DB that is closed when the subtest ends.
func ForEachStore(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, OpenStore(t, b.DSN(t)))
		})
	}
}

// OpenStore opens and migrates the database at dsn, closing it at cleanup.
func OpenStore(t testing.TB, dsn string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("testkit: open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("testkit: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
