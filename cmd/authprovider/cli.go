package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/isobox/isobox/internal/secret"
)

// addCLICommands adds the subcommands that talk to a running server's admin
// API: client and token (cli_client.go), portal (cli_portal.go).
func addCLICommands(cmds map[string]command) {
	addClientCommands(cmds)
	addPortalCommands(cmds)
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
	conn, err := grpc.NewClient(c.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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

// subcommands dispatches `name sub ...` to subs, printing usage for an
// unknown or missing subcommand.
func subcommands(name string, subs map[string]command) func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
		if len(args) > 0 {
			if c, ok := subs[args[0]]; ok {
				return c.run(ctx, args[1:], stdout, stderr, getenv)
			}
		}
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: authprovider %s <command> [flags]\n\ncommands:\n", name)
		for _, n := range names {
			fmt.Fprintf(stderr, "  %-14s %s\n", n, subs[n].summary)
		}
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			return flag.ErrHelp
		}
		return fmt.Errorf("%s: unknown command %q", name, args[0])
	}
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
