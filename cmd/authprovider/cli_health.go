package main

import (
	"context"
	"io"

	"github.com/isobox/isobox/internal/healthprobe"
)

// healthCmd is `authprovider health`: the container healthcheck (no shell or
// curl in the image).
func healthCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return healthprobe.Run(ctx, "authprovider", "http://127.0.0.1:8081/readyz", args, stdout, stderr)
}
