// Package cmdline is the command-line skeleton both isobox binaries share: a
// server plus subcommand trees (`authprovider client add`, `eventrelay dlq
// replay`), `help` and `version`, signal handling and exit codes.
//
// A command line never surprises: an unknown command, flag or argument
// prints usage on stderr and exits 2 without starting anything; help asked
// for goes to stdout and exits 0. Flags, their environment variables and the
// configuration file are read by Parse (flags.go).
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
	"strings"
	"syscall"

	"github.com/isobox/isobox/internal/version"
)

// RunFunc runs a command with its arguments (the command's own name
// removed). Output goes to stdout, diagnostics to stderr.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Command is a named action of a binary.
type Command struct {
	// Summary is the one-line description printed in usage.
	Summary string
	// Run does the work.
	Run RunFunc
}

// ErrDone ends a command successfully without further output: help or the
// version was asked for and has been printed.
var ErrDone = errors.New("done")

// UsageError is a wrong command line: Main prints it and exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// ExitCode is what Main exits with after run returned err: 0 for success
// and for help, 2 for a wrong command line, 1 for anything else.
func ExitCode(err error) int {
	var u *UsageError
	switch {
	case err == nil, errors.Is(err, ErrDone), errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	default:
		return 1
	}
}

// Main runs the program prog with the process's arguments. SIGINT and
// SIGTERM cancel the context. An error is printed as "prog: err" and exits
// with ExitCode.
func Main(prog string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code := ExitCode(err)
	if code != 0 {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		if code == 2 {
			fmt.Fprintf(os.Stderr, "run '%s help' for the commands, '%s COMMAND --help' for a command's flags\n", prog, prog)
		}
	}
	os.Exit(code)
}

// Program returns the RunFunc of a whole binary: with no arguments or with
// flags first it runs serve; otherwise the command named by the first
// argument, `help [COMMAND...]` or `version`. Anything else is a usage
// error, and nothing is started.
func Program(prog, summary string, serve RunFunc, cmds map[string]Command) RunFunc {
	all := map[string]Command{
		"serve":   {Summary: "run the server (the default when the first argument is a flag or there is none)", Run: serve},
		"version": {Summary: "print the version, commit and build date", Run: printVersion(prog)},
		"help":    {Summary: "show this help, or a command's: help COMMAND"},
	}
	for n, c := range cmds {
		all[n] = c
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "%s: %s\n\nusage: %s [flags]           run the server (%s --help lists its flags)\n       %s COMMAND [flags]\n\n", prog, summary, prog, prog, prog)
		listCommands(w, all)
	}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return serve(ctx, args, stdout, stderr)
		}
		switch args[0] {
		case "help":
			if len(args) == 1 {
				usage(stdout)
				return ErrDone
			}
			c, ok := all[args[1]]
			if !ok || args[1] == "help" {
				usage(stderr)
				return Usagef("help: unknown command %q", args[1])
			}
			return c.Run(ctx, append(args[2:], "--help"), stdout, stderr)
		}
		if c, ok := all[args[0]]; ok {
			return c.Run(ctx, args[1:], stdout, stderr)
		}
		usage(stderr)
		return Usagef("unknown command %q", args[0])
	}
}

func printVersion(prog string) RunFunc {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(stdout, "usage: %s version\n\nprints the version, commit and build date\n", prog)
			return ErrDone
		}
		if len(args) > 0 {
			return Usagef("version: unexpected argument %q", args[0])
		}
		fmt.Fprintln(stdout, version.String(prog))
		return nil
	}
}

func listCommands(w io.Writer, cmds map[string]Command) {
	names := make([]string, 0, len(cmds))
	width := 0
	for n := range cmds {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, cmds[n].Summary)
	}
}

// Group returns the RunFunc of a command group ("prog name <sub>"): it runs
// the subcommand named by the first argument. Help asked for (-h, --help,
// help) prints the group's usage on stdout; no or an unknown subcommand
// prints it on stderr and is a usage error.
func Group(prog, name string, subs map[string]Command) RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) > 0 {
			if c, ok := subs[args[0]]; ok {
				return c.Run(ctx, args[1:], stdout, stderr)
			}
		}
		usage := func(w io.Writer) {
			fmt.Fprintf(w, "usage: %s %s COMMAND [flags]   (%s %s COMMAND --help lists its flags)\n\n", prog, name, prog, name)
			listCommands(w, subs)
		}
		switch {
		case len(args) == 0:
			usage(stderr)
			return Usagef("%s: missing command", name)
		case args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help":
			usage(stdout)
			return ErrDone
		default:
			usage(stderr)
			return Usagef("%s: unknown command %q", name, args[0])
		}
	}
}
