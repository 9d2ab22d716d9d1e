package oauth

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/isobox/isobox/internal/store"
)

// stmtCache holds the prepared hot-path statements. With the MySQL driver
// an unprepared query with arguments costs a prepare, an execute and a
// close per call; a statement prepared once per connection costs one round
// trip, which roughly halves the work of a refresh grant.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (s *Service) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if st, ok := s.stmts.m[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.stmts.m == nil {
		s.stmts.m = map[string]*sql.Stmt{}
	}
	s.stmts.m[query] = st
	return st, nil
}

// execP runs a prepared statement on q (the database or a transaction).
func (s *Service) execP(ctx context.Context, q execer, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return q.ExecContext(ctx, query, args...)
	}
	if tx, ok := q.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return st.ExecContext(ctx, args...)
}

// rowP runs a prepared single-row query on q.
func (s *Service) rowP(ctx context.Context, q execer, query string, args ...any) *sql.Row {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return q.QueryRowContext(ctx, query, args...)
	}
	if tx, ok := q.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// lockWrites serialises this process's write transactions on the embedded
// engine. SQLite has one writer at a time; waiting writers otherwise poll
// with the busy handler's growing sleeps, which under many concurrent
// refreshes starves some for seconds. A FIFO channel queue keeps the wait
// fair and short. On MySQL it does nothing. The returned unlock is
// idempotent.
func (s *Service) lockWrites(ctx context.Context) (func(), error) {
	if s.db.Dialect != store.SQLite {
		return func() {}, nil
	}
	select {
	case s.writeLock <- struct{}{}:
		return sync.OnceFunc(func() { <-s.writeLock }), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// beginTx starts a write transaction, holding the write lock until unlock.
func (s *Service) beginTx(ctx context.Context) (*sql.Tx, func(), error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("oauth: begin: %w", err)
	}
	return tx, unlock, nil
}

// inTx runs fn in a write transaction (store.DB.InTx with the write lock).
func (s *Service) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.db.InTx(ctx, fn)
}
