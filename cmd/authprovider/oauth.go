package main

import (
	"context"
	"flag"
)

// oauthConfig holds OAuth settings beyond the common ones in config.
type oauthConfig struct{}

func (c *oauthConfig) register(fs *flag.FlagSet) {}

// mountOAuth adds the OAuth 2.0 server: /oauth/token/ on the Bitrix-facing
// mux, the admin API (gRPC + gateway), introspection and revocation.
func mountOAuth(ctx context.Context, a *app) error {
	return nil
}
