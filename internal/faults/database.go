package faults

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// FreshDatabase creates a new database on the MariaDB server base (a
// go-sql-driver DSN, as scripts/mariadb.sh start prints it) and returns
// its DSN in the mysql://... form authprovider takes.
func FreshDatabase(ctx context.Context, base string) (string, error) {
	cfg, db, err := openServer(base)
	if err != nil {
		return "", err
	}
	defer db.Close()
	name := fmt.Sprintf("faults_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", fmt.Errorf("create database on %s: %w", cfg.Addr, err)
	}
	cfg.DBName = name
	return "mysql://" + cfg.FormatDSN(), nil
}

// DurableCommits returns the server's version and an error unless every
// commit is flushed to disk (innodb_flush_log_at_trx_commit = 1), as in
// production.
func DurableCommits(ctx context.Context, base string) (string, error) {
	cfg, db, err := openServer(base)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var version string
	var flush int
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_flush_log_at_trx_commit").Scan(&version, &flush); err != nil {
		return "", fmt.Errorf("ask %s for innodb_flush_log_at_trx_commit: %w", cfg.Addr, err)
	}
	if flush != 1 {
		return version, fmt.Errorf("%s has innodb_flush_log_at_trx_commit = %d; durable commits need 1 (scripts/mariadb.sh start sets it)", cfg.Addr, flush)
	}
	return version, nil
}

func openServer(base string) (*mysql.Config, *sql.DB, error) {
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		return nil, nil, fmt.Errorf("MariaDB DSN: %w", err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, nil, err
	}
	return cfg, db, nil
}
