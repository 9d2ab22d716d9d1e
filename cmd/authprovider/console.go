package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/console"
	"github.com/isobox/isobox/internal/gateway"
	"github.com/isobox/isobox/internal/grpcpeer"
	"github.com/isobox/isobox/internal/oauth/adminapi"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/secret"
)

// consoleConfig holds the web console's settings.
type consoleConfig struct {
	RelayGRPCAddr string
	RelayKeyFile  string
	SampleEvery   time.Duration
	// TrustedProxies: see console.ParseProxies.
	TrustedProxies string
}

func (c *consoleConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.RelayGRPCAddr, "console-relay-grpc-addr", "127.0.0.1:9091", "eventrelay's gRPC address, for the console's delivery, dead-letter and handler pages; empty hides them")
	fs.StringVar(&c.RelayKeyFile, "console-relay-admin-key-file", "", "eventrelay's admin key file, for the console; empty = <data-dir>/relay-admin.key")
	fs.StringVar(&c.TrustedProxies, "console-trusted-proxies", "", "comma-separated addresses or CIDR prefixes of reverse proxies in front of the admin listener whose X-Forwarded-For is believed (console logins, the audit log's address); empty = the TCP peer is the client")
	fs.DurationVar(&c.SampleEvery, "console-sample-interval", 10*time.Second, "how often the console samples eventrelay's counters for its charts (an hour of samples is kept)")
}

// relayWait is how long a console page waits for the connection to
// eventrelay to be ready before it calls anyway (and fails if the relay is
// down).
const relayWait = 3 * time.Second

// mountConsole serves the web console at /console/ on the admin listener
// and records every admin API change in the audit log.
func mountConsole(ctx context.Context, a *app) error {
	users := console.NewUsers(a.db)
	a.audit = console.NewAudit(a.db)
	cc := a.cfg.Console
	var dial console.RelayDialer
	if cc.RelayGRPCAddr != "" {
		// eventrelay's gRPC is TLS when authprovider has a CA to verify it
		// with (--tls-ca-file), as for its ingest.
		creds := grpc.WithTransportCredentials(insecure.NewCredentials())
		if a.tls != nil && a.tls.cas != nil {
			creds = grpc.WithTransportCredentials(credentials.NewTLS(certs.ClientConfig(a.tls.cas, a.tls.pair)))
		}
		conn, err := grpc.NewClient(cc.RelayGRPCAddr, append(grpcpeer.DialOptions(), creds)...)
		if err != nil {
			return fmt.Errorf("console: eventrelay at --console-relay-grpc-addr %s: %w", cc.RelayGRPCAddr, err)
		}
		a.d.OnClose(func(context.Context) { conn.Close() })
		keyPath := cc.RelayKeyFile
		if keyPath == "" {
			keyPath = filepath.Join(a.cfg.DataDir, "relay-admin.key")
		}
		// The key is read per call: eventrelay may write it after
		// authprovider started.
		dial = func(ctx context.Context) (grpc.ClientConnInterface, context.Context, error) {
			key, err := secret.Read(keyPath)
			if err != nil {
				return nil, nil, fmt.Errorf("eventrelay admin key (--console-relay-admin-key-file): %w", err)
			}
			// A page opened while the connection is coming back (eventrelay
			// restarted) waits for it rather than failing; a relay that is
			// down costs the page at most relayWait.
			grpcpeer.WaitReady(ctx, conn, relayWait)
			return conn, metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key), nil
		}
	}
	con, err := console.New(console.Config{
		Users: users, Audit: a.audit, OAuth: a.oauth, Relay: dial, Log: a.log, TrustedProxies: a.peers.proxies,
		Portals:  portal.NewRegistry(a.db, a.oauth, nil),
		Ready:    func(ctx context.Context) map[string]error { return map[string]error{"database": a.db.PingContext(ctx)} },
		Settings: func() [][2]string { return effectiveSettings(a.cfg) },
	})
	if err != nil {
		return err
	}
	a.admin.Handle(console.Prefix, con)
	a.admin.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); con.Run(bg, cc.SampleEvery) }()
	a.d.OnDrain(func(context.Context) { cancel(); <-done })
	return nil
}

var dsnPassword = regexp.MustCompile(`^(mysql://[^:@/]*:)[^@]*@`)

// effectiveSettings lists every flag with the value in effect; values of
// flags that hold secrets are replaced, the database password masked.
func effectiveSettings(cfg *config) [][2]string {
	fs := flag.NewFlagSet("settings", flag.ContinueOnError)
	view := &config{}
	view.register(fs)
	*view = *cfg // the flags' values now read cfg's copy
	var out [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		n := f.Name
		switch {
		case n == "db":
			v = dsnPassword.ReplaceAllString(v, "${1}*****@")
		case !strings.HasSuffix(n, "-file") && (strings.Contains(n, "secret") || strings.Contains(n, "password") || strings.Contains(n, "seed") ||
			strings.HasSuffix(n, "-key") || strings.Contains(n, "creds")):
			if v != "" {
				v = "(set, not shown)"
			}
		}
		out = append(out, [2]string{n, v})
	})
	return out
}

// gatewayPeers names the client of an admin API call (gateway.Peers) as
// the console does: behind --console-trusted-proxies, by X-Forwarded-For.
type gatewayPeers struct {
	*gateway.Peers
	proxies console.Proxies
}

func newGatewayPeers(trusted string) (*gatewayPeers, error) {
	ps, err := console.ParseProxies(trusted)
	if err != nil {
		return nil, fmt.Errorf("--console-trusted-proxies: %w", err)
	}
	return &gatewayPeers{Peers: gateway.NewPeers(ps.ClientIP), proxies: ps}, nil
}

// metadata is the gateway's runtime.WithMetadata hook.
func (g *gatewayPeers) metadata(ctx context.Context, r *http.Request) metadata.MD {
	return g.Peers.Metadata(ctx, r)
}

// remote is where a gRPC call came from.
func (g *gatewayPeers) remote(ctx context.Context) string { return g.Peers.Remote(ctx) }

// auditedAdminMethods are the admin API methods that change something.
var auditedAdminMethods = map[string]string{
	"CreateClient": "app.create", "UpdateClient": "app.update", "DeleteClient": "app.delete", "RotateSecret": "app.rotate-secret",
	"IssueToken": "token.issue", "RevokeTokens": "token.revoke-all", "Revoke": "token.revoke",
}

// auditAdminAPI is a gRPC interceptor that records every successful change
// made through the admin API (the CLI's client and token commands, the
// REST gateway) in the audit log: which method, on what, from where.
func (a *app) auditAdminAPI(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	svc, method, _ := strings.Cut(strings.TrimPrefix(info.FullMethod, "/"), "/")
	action, ok := auditedAdminMethods[method]
	if err != nil || !ok || svc != adminapi.ServiceName || a.audit == nil {
		return resp, err
	}
	remote := a.peers.remote(ctx)
	// What it was about: the request's ids, and the response's (the id of
	// a created client).
	target, detail := describe(req), ""
	if r := describe(resp); r != "" && !strings.Contains(target, r) {
		target = strings.TrimSpace(target + " " + r)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if aerr := a.audit.Record(actx, console.Entry{Source: console.SourceAdminAPI, Actor: "admin-key", Action: action, Target: target, Detail: detail, Remote: remote}); aerr != nil {
		a.log.Error("audit: admin API change not recorded", "method", method, "err", aerr)
	}
	return resp, err
}

// describe names what a request is about from its id-like fields; never a
// token or secret field.
func describe(req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return ""
	}
	r := m.ProtoReflect()
	var parts []string
	for _, name := range []protoreflect.Name{"id", "client_id", "user_id", "name"} {
		fd := r.Descriptor().Fields().ByName(name)
		if fd == nil || fd.IsList() || fd.IsMap() || !r.Has(fd) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", name, r.Get(fd).Interface()))
	}
	return strings.Join(parts, " ")
}
