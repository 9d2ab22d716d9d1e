package main

import (
	"context"
	"flag"
)

// eventsConfig holds the delivery settings.
type eventsConfig struct{}

func (c *eventsConfig) register(fs *flag.FlagSet) {}

// mountEvents adds event ingest (/v1/events), the delivery workers and the
// delivery admin API.
func mountEvents(ctx context.Context, a *app) error {
	return nil
}
