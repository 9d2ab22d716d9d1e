package main

import (
	"context"
	"flag"
)

// pushConfig holds the push channel settings.
type pushConfig struct{}

func (c *pushConfig) register(fs *flag.FlagSet) {}

// mountPush adds the Push & Pull channel: subscribers on --http-addr,
// publishing on --publish-addr.
func mountPush(ctx context.Context, a *app) error {
	return nil
}
