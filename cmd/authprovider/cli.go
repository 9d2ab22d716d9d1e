package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
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
		return nil, nil, fmt.Errorf("admin key (run with the server's --data-dir): %w", err)
	}
	creds, err := c.Listen.cliDial()
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(c.GRPCAddr, creds)
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

// parseCLI parses a CLI subcommand's flags: the server's own (so that
// --data-dir and --grpc-addr find the server) plus the command's. Flags may
// come before or after positional arguments, which it returns.
func parseCLI(name string, args []string, stderr io.Writer, getenv func(string) string, extra func(fs *flag.FlagSet)) (*config, []string, error) {
	c, fs, err := parseConfig("authprovider "+name, args, getenv, func(fs *flag.FlagSet) {
		fs.SetOutput(stderr)
		if extra != nil {
			extra(fs)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	var pos []string
	for rest := fs.Args(); len(rest) > 0; rest = fs.Args() {
		pos = append(pos, rest[0])
		if err := fs.Parse(rest[1:]); err != nil {
			return nil, nil, err
		}
	}
	return c, pos, nil
}
