package main

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/doctor"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/store"
)

// doctorCmd is `authprovider doctor`: it reads the server's settings (flags,
// environment, --config) and checks what an installation needs, one line
// per check; it exits 1 when something is wrong. It changes nothing.
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &config{}
	fs := flag.NewFlagSet("authprovider doctor", flag.ContinueOnError)
	c.register(fs)
	var all []string
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f.Name) })
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "authprovider", Shared: all, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return err
	}
	if err := noArgs("doctor", p.Args); err != nil {
		return err
	}
	r := doctor.New(stdout)
	if err := c.validate(); err != nil {
		r.Fail("settings: %v", err)
		return r.Err()
	}
	dataDir, _ := filepath.Abs(c.DataDir)
	if r.DataDir(dataDir) {
		r.KeyFile("admin key", adminKeyPath(dataDir), true)
	}
	r.KeyFile("service key", c.serviceKeyPath(), true)

	certFile := fs.Lookup("tls-cert-file").Value.String()
	if certFile != "" {
		r.Certificate(certFile, time.Now())
	}

	db, schema, err := store.OpenExisting(ctx, c.dsn())
	if err != nil {
		r.Fail("database %s: %v", store.Describe(c.dsn()), err)
	} else {
		r.OK("database %s (schema %s)", store.Describe(c.dsn()), schema)
		checkRegistration(ctx, r, c, db)
		db.Close()
	}

	client := &http.Client{Timeout: 5 * time.Second}
	scheme := "http"
	if certFile != "" {
		scheme = "https"
		ca := fs.Lookup("tls-ca-file").Value.String()
		if ca == "" {
			ca = certFile
		}
		if roots, err := certs.LoadCAs(ca); err == nil {
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
		}
	}
	r.Ready(ctx, "authprovider", scheme+"://"+c.AdminAddr+"/readyz", client, time.Now)
	if u, err := url.Parse(c.RelayURL); err != nil || u.Host == "" {
		r.Fail("--relay-url %q is not a URL: give eventrelay's ingest URL, e.g. http://127.0.0.1:8090", c.RelayURL)
	} else {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443"}[u.Scheme]+map[string]string{"http": "80"}[u.Scheme])
		}
		r.Reachable(ctx, "eventrelay (--relay-url)", host, "start eventrelay or correct --relay-url; rest.event.call items wait in the outbox until it answers")
	}
	return r.Err()
}

// checkRegistration says whether a portal can register or has.
func checkRegistration(ctx context.Context, r *doctor.Report, c *config, db *store.DB) {
	svc, err := oauth.New(db, oauth.Config{TokenPrefix: c.TokenPrefix, PublicURL: c.PublicURL}, nil)
	if err != nil {
		r.Fail("registration: %v", err)
		return
	}
	reg := portal.NewRegistry(db, svc, nil)
	portals, err := reg.Portals(ctx)
	if err != nil {
		r.Fail("registration: %v", err)
		return
	}
	allowed, err := reg.Allowlist(ctx)
	if err != nil {
		r.Fail("registration: %v", err)
		return
	}
	switch {
	case len(portals) > 0:
		r.OK("registration: %d portal(s) registered, %d host(s) approved", len(portals), len(allowed))
	case c.PortalRegistration == "allowlist" && len(allowed) == 0:
		r.Fail("registration: no portal registered and no host approved, so no portal can register: run authprovider portal allow --host PORTAL-HOST")
	default:
		r.OK("registration: no portal registered yet; %d host(s) approved (policy %s)", len(allowed), c.PortalRegistration)
	}
}
