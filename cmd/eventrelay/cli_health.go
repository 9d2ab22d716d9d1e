package main

import (
	"context"
	"io"

	"github.com/isobox/isobox/internal/healthprobe"
)

// healthCmd is `eventrelay health`: the container healthcheck (no shell or
// curl in the image).
func healthCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return healthprobe.Run(ctx, "eventrelay", "http://127.0.0.1:8091/readyz", args, stdout, stderr)
}
