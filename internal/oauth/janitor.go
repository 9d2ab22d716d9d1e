package oauth

import (
	"context"
	"fmt"
	"time"

	"github.com/isobox/isobox/internal/store"
)

// expiring are the tables the janitor sweeps: every row past expires_at is
// useless (an expired code or token cannot be used, nor its revocation
// matter to a cache).
var expiring = []string{"oauth_codes", "oauth_access", "oauth_refresh"}

// RunJanitor deletes expired rows every JanitorInterval until ctx is done.
// Each statement deletes at most JanitorBatch rows, so that it never holds
// locks long next to live token traffic.
func (s *Service) RunJanitor(ctx context.Context) {
	t := time.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("oauth: janitor", "err", err)
		} else if n > 0 {
			s.log.Debug("oauth: janitor deleted expired rows", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep deletes expired rows in bounded batches until none is left or ctx
// is done, and returns how many it deleted.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now().Unix()
	total := 0
	for _, table := range expiring {
		q := `DELETE FROM ` + table + ` WHERE expires_at < ? LIMIT ?`
		if s.db.Dialect != store.MySQL {
			q = `DELETE FROM ` + table + ` WHERE rowid IN (SELECT rowid FROM ` + table + ` WHERE expires_at < ? LIMIT ?)`
		}
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			res, err := s.db.ExecContext(ctx, q, now, s.cfg.JanitorBatch)
			if err != nil {
				return total, fmt.Errorf("oauth: sweep %s: %w", table, err)
			}
			n, _ := res.RowsAffected()
			total += int(n)
			if n < int64(s.cfg.JanitorBatch) {
				break
			}
		}
	}
	return total, nil
}
