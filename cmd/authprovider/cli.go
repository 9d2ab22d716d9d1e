package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/secret"
)

// addCLICommands adds the subcommands that talk to a running server's admin
// API: client and token (cli_client.go), portal (cli_portal.go).
func addCLICommands(cmds map[string]command) {
	addClientCommands(cmds)
	addPortalCommands(cmds)
	addTLSCommands(cmds)
	addConsoleCommands(cmds)
}

// dialAdmin connects to the admin gRPC API of the server configured by c
// (--grpc-addr) with the admin key read from <data-dir>/admin.key. The
// returned context carries the key as "authorization: Bearer ..."; use it
// (or a context derived from it) for every call. Close the connection.
func dialAdmin(ctx context.Context, c *config) (*grpc.ClientConn, context.Context, error) {
	key, err := secret.Read(adminKeyPath(c.DataDir))
	if err != nil {
		return nil, nil, fmt.Errorf("read the admin key: %w (give the server's --data-dir, or its --config, e.g. --config /etc/isobox/authprovider.conf)", err)
	}
	creds, err := c.Listen.cliDial()
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(c.GRPCAddr, creds, grpc.WithChainUnaryInterceptor(explainUnreachable(c.GRPCAddr, adminKeyPath(c.DataDir))))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", c.GRPCAddr, err)
	}
	return conn, metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key), nil
}

// printJSON writes v as indented JSON and a newline.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// explainUnreachable turns the errors an administrator meets first — the
// server not running, a wrong address, a key from another installation —
// into sentences that name the address or file and say what to do.
func explainUnreachable(addr, keyFile string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		switch status.Code(err) {
		case codes.Unavailable:
			return fmt.Errorf("unavailable: authprovider's gRPC API at %s is not reachable: is the server running? (give its --grpc-addr, or its --config; detail: %s)", addr, status.Convert(err).Message())
		case codes.Unauthenticated:
			return fmt.Errorf("unauthenticated: authprovider at %s refused the admin key in %s: it belongs to another installation; give the server's --data-dir or --config", addr, keyFile)
		case codes.DeadlineExceeded:
			return fmt.Errorf("authprovider at %s did not answer in time: %w", addr, err)
		}
		return err
	}
}

// cliError turns a gRPC error into a short message for the terminal.
func cliError(err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", strings.ToLower(st.Code().String()), st.Message())
	}
	return err
}

// subcommands dispatches `authprovider name sub ...` to subs.
func subcommands(name string, subs map[string]command) cmdline.RunFunc {
	return cmdline.Group("authprovider", name, subs)
}

// via says how a subcommand reaches the server, and so which of the
// server's settings it reads (from its command line, the environment and
// the server's --config file, like the server): viaAPI talks to the admin
// API, viaDB opens the database itself.
type via []string

var (
	viaAPI = via{"grpc-addr", "data-dir", "tls-cert-file", "tls-key-file", "tls-ca-file"}
	viaDB  = via{"db", "data-dir"}
	// viaDataDir is for commands that only work on files under --data-dir.
	viaDataDir = via{"data-dir"}
)

// parseCLI parses a CLI subcommand's flags: its own (extra), from its
// command line only, and the server settings named by conn. Flags may come
// before or after positional arguments, which it returns.
func parseCLI(name string, args []string, stdout, stderr io.Writer, conn via, extra func(fs *flag.FlagSet)) (*config, []string, error) {
	c, p, err := parseCLIFlags(name, args, stdout, stderr, conn, extra)
	if err != nil {
		return nil, nil, err
	}
	return c, p.Args, nil
}

// parseCLIFlags is parseCLI that also tells which flags were given.
func parseCLIFlags(name string, args []string, stdout, stderr io.Writer, conn via, extra func(fs *flag.FlagSet)) (*config, *cmdline.Parsed, error) {
	// The server's declarations give the shared flags their defaults and
	// help text; only those named by conn are on the subcommand.
	c := &config{}
	server := flag.NewFlagSet("authprovider", flag.ContinueOnError)
	c.register(server)
	fs := flag.NewFlagSet("authprovider "+name, flag.ContinueOnError)
	for _, n := range conn {
		f := server.Lookup(n)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	if extra != nil {
		extra(fs)
	}
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "authprovider", Shared: conn, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, nil, err
	}
	c.dataDirStated = p.Source["data-dir"] != "default"
	return c, p, nil
}

// noArgs refuses positional arguments of a command that takes none.
func noArgs(name string, pos []string) error {
	if len(pos) > 0 {
		return cmdline.Usagef("%s: unexpected argument %q", name, pos[0])
	}
	return nil
}

// checkCLIDatabase refuses to let a subcommand create a database on the
// implicit default (./data): run from the wrong directory it would approve
// hosts into a ./data the server never reads. A data dir given by flag,
// environment or --config is the administrator's word, so setting a portal
// up before the first start works there.
func checkCLIDatabase(c *config) error {
	if c.DB != "" || c.dataDirStated {
		return nil
	}
	path, _ := filepath.Abs(c.embeddedDB())
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no authprovider database at %s (%v): run this where the server runs, or give the server's --data-dir, --db or --config (e.g. --config /etc/isobox/authprovider.conf)", path, errors.Unwrap(err))
	}
	return nil
}
