package main

import (
	"context"
	"flag"
)

// portalConfig holds the portal-protocol settings.
type portalConfig struct{}

func (c *portalConfig) register(fs *flag.FlagSet) {}

// mountPortal adds the portal ↔ OAuth-server protocol (/oauth/register/,
// /rest/{method}), app.info and the validation API used by the PHP module.
func mountPortal(ctx context.Context, a *app) error {
	return nil
}
