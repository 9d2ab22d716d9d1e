package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/isobox/isobox/internal/auditlog"
	"github.com/isobox/isobox/internal/broker"
	"github.com/isobox/isobox/internal/daemon"
	"github.com/isobox/isobox/internal/datadir"
	"github.com/isobox/isobox/internal/gateway"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/version"
)

// app is the running relay's parts, handed to each feature's mount
// function (events.go, push.go), which adds routes and services.
type app struct {
	cfg *config
	log *slog.Logger
	d   *daemon.Daemon
	nc  *broker.Broker

	// http is the mux on --http-addr: ingest and push subscribers.
	http *http.ServeMux
	// publish is the mux on --publish-addr: the portal's push publishing.
	publish *http.ServeMux
	// admin is the admin mux on --admin-addr (health, metrics, gateway).
	admin *http.ServeMux
	// grpc is the gRPC server on --grpc-addr.
	grpc *grpc.Server
	// grpcAuth says how each gRPC service authenticates its callers.
	grpcAuth grpcauth.Checks
	// gateway is the grpc-gateway mux, mounted on admin under /v1/.
	gateway     *runtime.ServeMux
	gatewayRegs []gateway.Registrar
	// tls is the listeners' and links' TLS material (nil parts: plain).
	tls *tlsSetup
	// peers names the client of a REST gateway call for the audit log.
	peers *gateway.Peers
	// audit is the relay's audit log (events.go); nil until opened.
	audit *auditlog.Log
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stdout, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	dataDir, created, err := datadir.Prepare(cfg.DataDir)
	if err != nil {
		return err
	}
	log.Info("starting", "service", "eventrelay", "version", version.Version, "commit", version.Commit, "data_dir", dataDir, "nats", natsDescribe(cfg.NATSURL), "pid", os.Getpid())
	if created {
		// Not an error: the zero-argument first start must work. But a
		// mistyped --data-dir would silently come with new keys, so say it.
		log.Warn("created a new, empty data dir: new keys will be generated; if this is not the first start, --data-dir is wrong", "data_dir", dataDir)
	}
	tlsSet, err := cfg.Listen.load(log)
	if err != nil {
		return err
	}
	nc, err := broker.Open(ctx, broker.Config{
		URL:        cfg.NATSURL,
		DataDir:    cfg.DataDir,
		Listen:     cfg.NATSListen,
		SyncAlways: cfg.SyncAlways,
		Auth:       cfg.NATSAuth,
		Name:       "eventrelay",
	}, log)
	if err != nil {
		return err
	}
	a := &app{
		cfg:      cfg,
		log:      log,
		d:        daemon.New(log),
		nc:       nc,
		http:     http.NewServeMux(),
		publish:  http.NewServeMux(),
		grpcAuth: grpcauth.Checks{},
		tls:      tlsSet,
		peers:    gateway.NewPeers(nil),
	}
	tlsSet.apply(a.d, &cfg.Listen)
	a.d.OnClose(func(context.Context) { nc.Close() })
	a.admin = a.d.AdminHandler()
	// Authentication first, then the audit of what an authenticated call
	// changed (audit.go).
	opts := append(a.grpcAuth.ServerOptions(), grpc.ChainUnaryInterceptor(a.auditAPI))
	a.grpc = grpc.NewServer(append(opts, a.d.GRPCOptions()...)...)
	a.gateway = gateway.New(runtime.WithMetadata(a.peers.Metadata))
	// grpc-gateway reads a whole body before the gRPC call authenticates it:
	// cap it, so that no caller can make the service buffer much.
	a.admin.Handle("/v1/", http.MaxBytesHandler(a.gateway, gateway.MaxBody))
	a.d.Ready("nats", nc.Ready)

	for _, mount := range []func(context.Context, *app) error{mountEvents, mountPush} {
		if err := mount(ctx, a); err != nil {
			nc.Close()
			return err
		}
	}
	a.d.HTTP("http", cfg.HTTPAddr, a.http, daemon.WriteTimeout(longPollWrite(cfg.Push.PollTimeout)))
	a.d.HTTP("publish", cfg.PublishAddr, a.publish)
	a.d.GRPC("grpc", cfg.GRPCAddr, a.grpc)
	a.d.HTTP("admin", cfg.AdminAddr, a.admin)
	if err := a.d.Listen(); err != nil {
		nc.Close()
		return err
	}
	conn, err := gateway.Connect(ctx, a.gateway, a.d.Addr("grpc"), a.gatewayRegs, a.tls.selfDial())
	if err != nil {
		nc.Close()
		return err
	}
	a.d.OnClose(func(context.Context) { conn.Close() })
	natsWhere := cfg.NATSURL
	if nc.Server != nil {
		natsWhere = "embedded " + nc.Server.ClientURL()
	}
	s := a.scheme()
	fmt.Fprintf(stdout, "eventrelay: ingest and subscribers on %s://%s, publish on %s://%s, gRPC on %s, admin on %s://%s, NATS %s\n",
		s, a.d.Addr("http"), s, a.d.Addr("publish"), a.d.Addr("grpc"), s, a.d.Addr("admin"), natsWhere)
	return a.d.Run(ctx)
}

// natsDescribe names the NATS the relay uses, for the start log line.
func natsDescribe(url string) string {
	if url == "" {
		return "embedded"
	}
	// nats://user:password@host: the credentials stay out of the log.
	var out []string
	for _, u := range strings.Split(url, ",") {
		if scheme, rest, ok := strings.Cut(u, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				u = scheme + "://REDACTED@" + rest[at+1:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}
