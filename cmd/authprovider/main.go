// Command authprovider is isobox's OAuth 2.0 server for an isolated Bitrix24
// box: it mints and checks the tokens REST apps use, speaks the portal's
// OAuth-server protocol in place of oauth.bitrix.info, and serves the admin
// and validation APIs over gRPC with a REST face.
//
// With no arguments it serves on embedded defaults (data under ./data).
// Subcommands (client, token, portal, ...) talk to a running server's admin API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "authprovider:", err)
		os.Exit(1)
	}
}

// command is a subcommand of the authprovider binary.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error
}

func commands() map[string]command {
	cmds := map[string]command{
		"serve": {"run the server (the default)", serve},
	}
	addCLICommands(cmds)
	return cmds
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmds := commands()
	if len(args) > 0 {
		if c, ok := cmds[args[0]]; ok {
			return c.run(ctx, args[1:], stdout, stderr, getenv)
		}
	}
	return serve(ctx, args, stdout, stderr, getenv)
}
