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
	"strings"
	"time"

	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/doctor"
)

// doctorCmd is `eventrelay doctor`: it reads the relay's settings (flags,
// environment, --config) and checks what an installation needs, one line
// per check; it exits 1 when something is wrong. It changes nothing.
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &config{}
	fs := flag.NewFlagSet("eventrelay doctor", flag.ContinueOnError)
	c.register(fs)
	var all []string
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f.Name) })
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "eventrelay", Shared: all, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return err
	}
	if len(p.Args) > 0 {
		return cmdline.Usagef("doctor: unexpected argument %q", p.Args[0])
	}
	r := doctor.New(stdout)
	dataDir, _ := filepath.Abs(c.DataDir)
	if r.DataDir(dataDir) {
		if c.AdminKeyFile == "" {
			r.KeyFile("relay admin key", relayAdminKeyPath(dataDir), true)
		}
		if c.Push.SignatureKey == "" && c.Push.SignatureKeyFile == "" {
			r.KeyFile("push signature key", filepath.Join(dataDir, "push-signature.key"), false)
		}
	}
	if c.AdminKeyFile != "" {
		r.KeyFile("relay admin key", c.AdminKeyFile, true)
	}
	r.KeyFile("service key", c.serviceKeyPath(), true)
	if c.Push.SignatureKeyFile != "" {
		r.KeyFile("push signature key", c.Push.SignatureKeyFile, true)
	}
	certFile := fs.Lookup("tls-cert-file").Value.String()
	if certFile != "" {
		r.Certificate(certFile, time.Now())
	}

	if c.NATSURL == "" {
		r.OK("NATS: embedded (checked through the relay's /readyz)")
	} else {
		for _, s := range strings.Split(c.NATSURL, ",") {
			u, err := url.Parse(strings.TrimSpace(s))
			if err != nil || u.Host == "" {
				r.Fail("--nats-url %q is not a URL: want nats://host:4222[,nats://...]", s)
				continue
			}
			host := u.Host
			if u.Port() == "" {
				host = net.JoinHostPort(u.Hostname(), "4222")
			}
			r.Reachable(ctx, "NATS server", host, "start it or correct --nats-url")
		}
	}

	client := &http.Client{Timeout: 5 * time.Second}
	scheme := "http"
	if certFile != "" {
		scheme = "https"
		if roots, err := certs.LoadCAs(certFile); err == nil {
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
		}
	}
	r.Ready(ctx, "eventrelay", scheme+"://"+c.AdminAddr+"/readyz", client, time.Now)
	r.Reachable(ctx, "authprovider gRPC (--auth-grpc-addr)", c.AuthGRPCAddr, "start authprovider or correct --auth-grpc-addr; deliveries to apps need fresh tokens from it")
	return r.Err()
}
