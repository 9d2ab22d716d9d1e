package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Authproviders are authprovider instances on one database, sharing one
// data directory (on several hosts: the same key files copied) and one
// portal, portal.lan.
type Authproviders struct {
	procs     []*proc
	grpcAddrs []string
	dataDir   string
	// URLs are the instances' Bitrix-facing base URLs (/rest/,
	// /oauth/token/), in instance order.
	URLs []string
	// The portal's credentials.
	PortalID, PortalSecret string
}

// StartAuthproviders registers the portal in the database (the DSN of an
// empty one, mysql://...) and starts n instances of bin under dir (logs in
// dir/logs), each ready before the next starts (the first makes the shared
// keys); relayURL(i) is instance i's --relay-url. ports are the 3n ports
// the instances listen on (HTTP, gRPC, admin each), nil for free ones. A
// non-nil result comes with an error too: Close it.
func StartAuthproviders(ctx context.Context, bin, dir, mariaDB string, n int, relayURL func(i int) string, ports []int) (*Authproviders, error) {
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return nil, err
	}
	a := &Authproviders{dataDir: filepath.Join(dir, "authprovider")}
	out, err := exec.CommandContext(ctx, bin, "portal", "add", "--host", "portal.lan", "--json", "--db", mariaDB, "--data-dir", a.dataDir).Output()
	if err != nil {
		return nil, fmt.Errorf("faults: authprovider portal add: %w", err)
	}
	var portal struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &portal); err != nil || portal.ClientSecret == "" {
		return nil, fmt.Errorf("faults: portal add printed %q: %v", out, err)
	}
	a.PortalID, a.PortalSecret = portal.ClientID, portal.ClientSecret
	if ports == nil {
		if ports, err = freePorts(3 * n); err != nil {
			return nil, err
		}
	}
	if len(ports) != 3*n {
		return nil, fmt.Errorf("faults: %d ports for %d authprovider instances, want %d", len(ports), n, 3*n)
	}
	for i := range n {
		h, g, adm := ports[3*i], ports[3*i+1], ports[3*i+2]
		a.URLs = append(a.URLs, "http://"+addr(h))
		a.grpcAddrs = append(a.grpcAddrs, addr(g))
		a.procs = append(a.procs, &proc{name: fmt.Sprintf("authprovider-%d", i+1), bin: bin,
			args: []string{"--http-addr", addr(h), "--grpc-addr", addr(g), "--admin-addr", addr(adm), "--data-dir", a.dataDir,
				"--db", mariaDB, "--relay-url", relayURL(i)},
			log: filepath.Join(logs, fmt.Sprintf("authprovider-%d.log", i+1)), ready: fmt.Sprintf("http://127.0.0.1:%d/readyz", adm)})
	}
	for _, p := range a.procs {
		if err := p.start(); err != nil {
			return a, err
		}
		if err := p.waitReady(ctx, 60*time.Second); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Close stops the instances (SIGTERM, SIGKILL after 30 s).
func (a *Authproviders) Close() {
	for _, p := range a.procs {
		p.stop(30 * time.Second)
	}
}

// Crashes returns (and forgets) the instances that exited by themselves.
func (a *Authproviders) Crashes() []string {
	var out []string
	for _, p := range a.procs {
		out = append(out, p.takeCrashes()...)
	}
	return out
}
