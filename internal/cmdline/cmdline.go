// Package cmdline is the command-line skeleton both isobox binaries share: a
// default command (the server) plus subcommand trees (`authprovider client
// add`, `eventrelay dlq replay`), signal handling and exit codes.
package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// RunFunc runs a command with its arguments (the command's own name
// removed). Output goes to stdout, diagnostics to stderr; getenv reads the
// environment, so tests can give their own.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error

// Command is a named action of a binary.
type Command struct {
	// Summary is the one-line description printed in usage.
	Summary string
	// Run does the work.
	Run RunFunc
}

// Main runs the program prog with the process's arguments and environment.
// SIGINT and SIGTERM cancel the context. A -h/--help request exits 0; an
// error is printed as "prog: err" and exits 1.
func Main(prog string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(1)
	}
}

// Dispatch returns a RunFunc that runs the command named by its first
// argument, or def with every argument when the first is not a command.
func Dispatch(def RunFunc, cmds map[string]Command) RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
		if len(args) > 0 {
			if c, ok := cmds[args[0]]; ok {
				return c.Run(ctx, args[1:], stdout, stderr, getenv)
			}
		}
		return def(ctx, args, stdout, stderr, getenv)
	}
}

// Group returns the RunFunc of a command group ("prog name <sub>"): it runs
// the subcommand named by the first argument, or prints the group's usage
// (flag.ErrHelp for a help request or no argument, an error for an unknown
// subcommand).
func Group(prog, name string, subs map[string]Command) RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
		if len(args) > 0 {
			if c, ok := subs[args[0]]; ok {
				return c.Run(ctx, args[1:], stdout, stderr, getenv)
			}
		}
		names := make([]string, 0, len(subs))
		width := 0
		for n := range subs {
			names = append(names, n)
			width = max(width, len(n))
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: %s %s <command> [flags]\n\ncommands:\n", prog, name)
		for _, n := range names {
			fmt.Fprintf(stderr, "  %-*s  %s\n", width, n, subs[n].Summary)
		}
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			return flag.ErrHelp
		}
		return fmt.Errorf("%s: unknown command %q", name, args[0])
	}
}
