// Command eventrelay is isobox's event relay for an isolated Bitrix24 box: it
// takes REST events from the portal (or from authprovider's rest.event.call),
// stores them durably in NATS JetStream, delivers them to app and webhook
// handlers exactly as Bitrix does, with retries, dead letters and replay, and
// serves the local Push & Pull channel.
//
// With no arguments it starts an embedded NATS server (data under ./data).
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
		fmt.Fprintln(os.Stderr, "eventrelay:", err)
		os.Exit(1)
	}
}

// command is a subcommand of the eventrelay binary.
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
	if len(args) > 0 {
		if c, ok := commands()[args[0]]; ok {
			return c.run(ctx, args[1:], stdout, stderr, getenv)
		}
	}
	return serve(ctx, args, stdout, stderr, getenv)
}
