package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/isobox/isobox/internal/oauth"
)

// oauthConfig holds OAuth settings beyond the common ones in config.
type oauthConfig struct{}

func (c *oauthConfig) register(fs *flag.FlagSet) {}

// mountOAuth adds the OAuth 2.0 server: /oauth/token/ on the Bitrix-facing
// mux, the admin API (gRPC + gateway), introspection and revocation. It
// builds a.oauth, which the portal feature (mounted after it) uses.
func mountOAuth(ctx context.Context, a *app) error {
	svc, err := oauth.New(a.db, oauth.Config{
		TokenPrefix:  a.cfg.TokenPrefix,
		AccessTTL:    a.cfg.AccessTTL,
		RefreshTTL:   a.cfg.RefreshTTL,
		CodeTTL:      a.cfg.CodeTTL,
		RefreshGrace: a.cfg.RefreshGrace,
		PublicURL:    a.cfg.PublicURL,
	}, a.log)
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	a.oauth = svc
	return nil
}
