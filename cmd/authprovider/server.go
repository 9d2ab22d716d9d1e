package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/isobox/isobox/internal/console"
	"github.com/isobox/isobox/internal/daemon"
	"github.com/isobox/isobox/internal/datadir"
	"github.com/isobox/isobox/internal/gateway"
	"github.com/isobox/isobox/internal/grpcauth"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/store"
	"github.com/isobox/isobox/internal/version"
)

// app is the running server's parts, built by serve and handed to each
// feature's mount function (oauth.go, portal.go, ...), which adds routes,
// gRPC services and their authentication.
type app struct {
	cfg *config
	log *slog.Logger
	db  *store.DB
	d   *daemon.Daemon

	// bitrix is the Bitrix-facing mux on --http-addr.
	bitrix *http.ServeMux
	// admin is the admin mux on --admin-addr (health, metrics, gateway).
	admin *http.ServeMux
	// validation is the mux of the module's validation API: its own
	// listener on --validation-addr, or admin when that is empty.
	validation *http.ServeMux
	// validationRegs register the validation API's gateway handlers
	// (/v1/token/...) on validation.
	validationRegs []gateway.Registrar
	// grpc is the gRPC server on --grpc-addr.
	grpc *grpc.Server
	// grpcAuth says how each gRPC service authenticates its callers; a
	// service missing here refuses every call.
	grpcAuth grpcauth.Checks
	// gateway is the grpc-gateway mux, mounted on admin under /v1/.
	gateway *runtime.ServeMux
	// gatewayRegs register gateway handlers once the gRPC listener is bound.
	gatewayRegs []gateway.Registrar
	// adminKeyHash is the SHA-256 of the admin API key.
	adminKeyHash string
	// oauth is the OAuth service (clients, tokens), built by mountOAuth.
	oauth *oauth.Service
	// tls is the listeners' and links' TLS material (nil parts: plain).
	tls *tlsSetup
	// audit is the audit log, built by mountConsole.
	audit *console.Audit
	// peers names the client of a REST gateway call for the audit log.
	peers *gatewayPeers
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stdout, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	peers, err := newGatewayPeers(cfg.Console.TrustedProxies)
	if err != nil {
		return err
	}
	dataDir, created, err := datadir.Prepare(cfg.DataDir)
	if err != nil {
		return err
	}
	log.Info("starting", "service", "authprovider", "version", version.Version, "commit", version.Commit, "data_dir", dataDir, "database", store.Describe(cfg.dsn()), "pid", os.Getpid())
	if created {
		// Not an error: the zero-argument first start must work. But a
		// mistyped --data-dir would silently come with new keys, so say it.
		log.Warn("created a new, empty data dir: new keys will be generated; if this is not the first start, --data-dir is wrong", "data_dir", dataDir)
	}
	db, err := store.Open(ctx, cfg.dsn())
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	log.Info("database ready", "engine", db.Dialect)
	tlsSet, err := cfg.Listen.load(log)
	if err != nil {
		db.Close()
		return err
	}

	a := &app{
		cfg:      cfg,
		log:      log,
		db:       db,
		d:        daemon.New(log),
		bitrix:   http.NewServeMux(),
		grpcAuth: grpcauth.Checks{},
		tls:      tlsSet,
		peers:    peers,
	}
	tlsSet.apply(a.d, &cfg.Listen)
	a.d.OnClose(func(context.Context) { db.Close() })
	a.admin = a.d.AdminHandler()
	a.grpc = grpc.NewServer(append(append(a.grpcAuth.ServerOptions(), a.d.GRPCOptions()...), grpc.ChainUnaryInterceptor(a.auditAdminAPI))...)
	a.gateway = gateway.New(runtime.WithMetadata(peers.metadata))
	// grpc-gateway reads a whole body before the gRPC call authenticates it:
	// cap it, so that no caller can make the service buffer much.
	a.admin.Handle("/v1/", http.MaxBytesHandler(gateway.NoStore(a.gateway), gateway.MaxBody))
	a.validation = a.admin
	var valGateway *runtime.ServeMux
	if cfg.Listen.ValidationAddr != "" {
		a.validation = http.NewServeMux()
		a.validation.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		})
		valGateway = gateway.New()
		a.validation.Handle("/v1/token/", http.MaxBytesHandler(gateway.NoStore(valGateway), gateway.MaxBody))
	}
	a.d.Ready("database", db.PingContext)

	if err := a.setupAdminKey(ctx); err != nil {
		db.Close()
		return err
	}
	for _, mount := range []func(context.Context, *app) error{mountOAuth, mountPortal, mountConsole} {
		if err := mount(ctx, a); err != nil {
			db.Close()
			return err
		}
	}

	a.d.HTTP("http", cfg.HTTPAddr, oauth.CollapseSlashes(a.bitrix))
	a.d.GRPC("grpc", cfg.GRPCAddr, a.grpc)
	a.d.HTTP("admin", cfg.AdminAddr, a.admin)
	if valGateway != nil {
		a.d.HTTP("validation", cfg.Listen.ValidationAddr, a.validation)
	} else {
		a.gatewayRegs = append(a.gatewayRegs, a.validationRegs...)
	}
	if err := a.d.Listen(); err != nil {
		db.Close()
		return err
	}
	if cfg.PublicURL == "" && !isLoopback(a.d.Addr("http")) {
		a.log.Warn("--public-url is empty on a non-loopback listener: server_endpoint is derived from each request's Host header (with this listener's port when it has none); set --public-url to how portals and apps reach this address", "http_addr", a.d.Addr("http"))
	}
	gateways := []struct {
		mux  *runtime.ServeMux
		regs []gateway.Registrar
	}{{a.gateway, a.gatewayRegs}}
	if valGateway != nil {
		gateways = append(gateways, struct {
			mux  *runtime.ServeMux
			regs []gateway.Registrar
		}{valGateway, a.validationRegs})
	}
	for _, g := range gateways {
		conn, err := gateway.Connect(ctx, g.mux, a.d.Addr("grpc"), g.regs, a.tls.selfDial())
		if err != nil {
			db.Close()
			return err
		}
		a.d.OnClose(func(context.Context) { conn.Close() })
	}
	scheme := a.scheme()
	validation := "on the admin address"
	if valGateway != nil {
		validation = "on " + scheme + "://" + a.d.Addr("validation")
	} else if !loopbackAddr(a.d.Addr("admin")) {
		log.Warn("the admin API and the module's validation API share --admin-addr, which is reachable beyond this host; set --validation-addr to firewall them separately",
			"addr", a.d.Addr("admin"))
	}
	fmt.Fprintf(stdout, "authprovider: Bitrix OAuth on %s://%s, gRPC on %s, admin on %s://%s, validation API %s (data in %s)\n",
		scheme, a.d.Addr("http"), a.d.Addr("grpc"), scheme, a.d.Addr("admin"), validation, cfg.DataDir)
	return a.d.Run(ctx)
}

// isLoopback says whether a listener's host:port is on a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
