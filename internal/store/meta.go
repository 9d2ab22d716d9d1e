package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Meta returns the value stored under name in the meta table, or ErrNotFound.
func (db *DB) Meta(ctx context.Context, name string) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: read meta %q: %w", name, err)
	}
	return v, nil
}

// SetMeta stores value under name, replacing any previous value.
func (db *DB) SetMeta(ctx context.Context, name, value string) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().Unix()
		res, err := tx.ExecContext(ctx, `UPDATE meta SET value = ?, updated_at = ? WHERE name = ?`, value, now, name)
		if err != nil {
			return fmt.Errorf("store: update meta %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value, updated_at) VALUES (?, ?, ?)`, name, value, now); err != nil {
			return fmt.Errorf("store: insert meta %q: %w", name, err)
		}
		return nil
	})
}
