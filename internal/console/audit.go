package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/isobox/isobox/internal/auditlog"
	"github.com/isobox/isobox/internal/store"
)

// Audit sources.
const (
	SourceConsole  = "console"
	SourceCLI      = "cli"
	SourceAdminAPI = "admin-api"
)

// Entry is one change in the audit log: who (Source, Actor, Remote) did
// what (Action on Target, Detail) and when.
type Entry struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// Service is the service whose log holds it (the console's merged
	// view: authprovider or eventrelay); not stored.
	Service string `json:"service,omitempty"`
	Source  string `json:"source"`
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Target  string `json:"target,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Remote  string `json:"remote,omitempty"`
}

// Audit is the audit log in the database.
type Audit struct {
	db  *store.DB
	now func() time.Time
}

// NewAudit returns the audit log on db.
func NewAudit(db *store.DB) *Audit { return &Audit{db: db, now: time.Now} }

// Record appends e (its ID and At are set here). Detail must hold no
// secret.
func (a *Audit) Record(ctx context.Context, e Entry) error {
	at := a.now()
	e.ID = auditlog.NewID(at)
	_, err := a.db.ExecContext(ctx, `INSERT INTO audit_log (id, at_ms, source, actor, action, target, detail, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, at.UnixMilli(), truncate(e.Source, 16), truncate(e.Actor, 64), truncate(e.Action, 64), truncate(e.Target, 255), truncate(e.Detail, 4000), truncate(e.Remote, 128))
	if err != nil {
		return fmt.Errorf("console: write audit log: %w", err)
	}
	return nil
}

// AuditFilter selects entries; zero fields match all.
type AuditFilter struct {
	Since, Until time.Time
	Actor        string
	Limit        int
}

// List returns entries, newest first.
func (a *Audit) List(ctx context.Context, f AuditFilter) ([]Entry, error) {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 200
	}
	var out []Entry
	err := a.each(ctx, f, "DESC", func(e Entry) error { out = append(out, e); return nil })
	return out, err
}

// Export writes entries oldest first as JSON lines.
func (a *Audit) Export(ctx context.Context, w io.Writer, f AuditFilter) (int, error) {
	if f.Limit <= 0 {
		f.Limit = 1 << 30
	}
	enc := json.NewEncoder(w)
	n := 0
	err := a.each(ctx, f, "ASC", func(e Entry) error { n++; return enc.Encode(e) })
	return n, err
}

func (a *Audit) each(ctx context.Context, f AuditFilter, order string, fn func(Entry) error) error {
	q := `SELECT id, at_ms, source, actor, action, target, detail, remote FROM audit_log WHERE at_ms >= ? AND at_ms <= ?`
	until := int64(1<<62 - 1)
	if !f.Until.IsZero() {
		until = f.Until.UnixMilli()
	}
	args := []any{f.Since.UnixMilli(), until}
	if f.Since.IsZero() {
		args[0] = int64(0)
	}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	q += ` ORDER BY at_ms ` + order + `, id ` + order + fmt.Sprintf(` LIMIT %d`, f.Limit)
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("console: read audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var ms int64
		if err := rows.Scan(&e.ID, &ms, &e.Source, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Remote); err != nil {
			return err
		}
		e.At = time.UnixMilli(ms).UTC()
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}
