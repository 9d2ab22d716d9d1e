package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/store"
)

const adminKeyMeta = "admin_key_sha256"

func adminKeyPath(dataDir string) string { return filepath.Join(dataDir, "admin.key") }

// setupAdminKey makes sure an admin key exists. On first start it creates
// one, writes it once to <data-dir>/admin.key (0600) and stores only its
// hash. If the database is new but the file exists (a fresh MariaDB behind
// an old data dir), the file's key is adopted.
func (a *app) setupAdminKey(ctx context.Context) error {
	hash, err := a.db.Meta(ctx, adminKeyMeta)
	switch {
	case err == nil:
		a.adminKeyHash = hash
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	path := adminKeyPath(a.cfg.DataDir)
	key, created, err := secret.LoadOrCreate(path, 48)
	if err != nil {
		return fmt.Errorf("admin key: %w", err)
	}
	if err := a.db.SetMeta(ctx, adminKeyMeta, secret.Hash(key)); err != nil {
		return fmt.Errorf("admin key: %w", err)
	}
	a.adminKeyHash = secret.Hash(key)
	a.log.Info("admin key ready", "path", path, "created", created)
	return nil
}

// adminCheck authenticates a gRPC call by the admin key, sent as
// "authorization: Bearer <key>".
func (a *app) adminCheck(ctx context.Context, _ string) (context.Context, error) {
	key := grpcauth.BearerToken(ctx)
	if key == "" || !secret.Matches(key, a.adminKeyHash) {
		return nil, status.Error(codes.Unauthenticated, "a valid admin key is required (Authorization: Bearer <key from admin.key>)")
	}
	return ctx, nil
}
