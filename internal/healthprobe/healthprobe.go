// Package healthprobe is the `health` subcommand both services have: it asks
// a running service's /readyz and exits 0 only on 200, so that a container
// healthcheck needs no shell or curl in the image (the release images hold
// only the static binary).
package healthprobe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/certs"
)

// Run parses the health subcommand's flags (defaultURL is the service's
// default admin /readyz) and probes once.
func Run(ctx context.Context, prog, defaultURL string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(prog+" health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", defaultURL, "readiness URL of the running service (its admin listener's /readyz)")
	caFile := fs.String("tls-ca-file", "", "PEM CA certificates that verify an https URL's certificate")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := Probe(ctx, *url, *caFile, *timeout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// Probe GETs url and returns nil only for a 200 answer within timeout.
func Probe(ctx context.Context, url, caFile string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	if caFile != "" {
		roots, err := certs.LoadCAs(caFile)
		if err != nil {
			return err
		}
		client.Transport = &http.Transport{TLSClientConfig: certs.ClientConfig(roots, nil)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New("health: " + url + ": " + resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	return nil
}
