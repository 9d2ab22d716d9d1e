package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v4"

	"github.com/isobox/isobox/internal/version"
)

// Options says how Parse reads a command's settings.
type Options struct {
	// Prog is the binary ("authprovider"); it prefixes every environment
	// variable: flag --http-addr is AUTHPROVIDER_HTTP_ADDR.
	Prog string
	// Server marks the server command: every flag reads the environment and
	// the configuration file, an unknown name in the file is an error, and
	// --version and --print-config are added.
	Server bool
	// Shared names the flags of a subcommand that, like the server's, also
	// come from the environment and the configuration file: the few that
	// find the server (--data-dir, --grpc-addr, ...). A subcommand's own
	// flags come from its command line only. Ignored for the server.
	Shared []string
	// Secret says which flags hold secrets, printed redacted by
	// --print-config; nil uses IsSecret.
	Secret func(name string) bool
	// Redact rewrites a value for --print-config (e.g. a DSN's password);
	// nil leaves it.
	Redact func(name, value string) string
	// Stdout and Stderr receive help and usage.
	Stdout, Stderr io.Writer
}

// Parsed is the result of Parse.
type Parsed struct {
	// Args are the positional arguments, in order.
	Args []string
	// Source tells, per flag name, where its value came from: "flag",
	// "env", "file" or "default".
	Source map[string]string
	// ConfigFile is the configuration file read, if any.
	ConfigFile string
}

// Given reports whether flag name was given on the command line.
func (p *Parsed) Given(name string) bool { return p.Source[name] == "flag" }

// EnvName returns the environment variable of flag name for prog:
// EnvName("authprovider", "http-addr") is "AUTHPROVIDER_HTTP_ADDR".
func EnvName(prog, name string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(prog + "_" + name))
}

// IsSecret is the default Options.Secret: flags named like a secret value
// (…-key, …-password, …-secret, …-seed, …-token), not a file holding one.
func IsSecret(name string) bool {
	for _, s := range []string{"key", "password", "secret", "seed", "token"} {
		if name == s || strings.HasSuffix(name, "-"+s) {
			return true
		}
	}
	return false
}

// Parse reads fs's flags with ff (github.com/peterbourgon/ff/v4) in this
// order of precedence: the command line, then the environment
// (PROG_FLAG_NAME), then the configuration file given by --config (or
// PROG_CONFIG), then the defaults. It adds --config to fs (and --version and
// --print-config for a server). Flags may come before or after positional
// arguments ("show ID --json"); "--" ends the flags.
//
// A help request prints fs's usage on o.Stdout and returns ErrDone; a wrong
// flag prints it on o.Stderr and returns a UsageError. --version and
// --print-config print and return ErrDone.
func Parse(fs *flag.FlagSet, args []string, o Options) (*Parsed, error) {
	var configFile string
	var showVersion, printConfig bool
	fs.StringVar(&configFile, "config", "", "`FILE` of settings: one \"flag-name value\" per line, # comments; the command line and the environment win over it")
	if o.Server {
		fs.BoolVar(&showVersion, "version", false, "print the version and exit")
		fs.BoolVar(&printConfig, "print-config", false, "print the effective configuration (secrets redacted) in the configuration file's format and exit")
	}
	shared := map[string]bool{"config": true}
	for _, n := range o.Shared {
		shared[n] = true
	}
	isShared := func(name string) bool { return o.Server || shared[name] }
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)

	flagArgs, pos := split(fs, args)
	cmd := ff.NewFlagSetFrom(fs.Name(), fs)
	if err := cmd.Parse(flagArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, o, isShared, o.Stdout)
			return nil, ErrDone
		}
		usage(fs, o, isShared, o.Stderr)
		return nil, &UsageError{Err: fmt.Errorf("%s: %w", fs.Name(), err)}
	}
	p := &Parsed{Args: pos, Source: map[string]string{}}
	cmd.WalkFlags(func(f ff.Flag) error {
		if f.IsSet() {
			name, _ := f.GetLongName()
			p.Source[name] = "flag"
		}
		return nil
	})
	if showVersion {
		fmt.Fprintln(o.Stdout, version.String(o.Prog))
		return nil, ErrDone
	}

	// The environment and the file fill only what the command line left
	// unset, and for a subcommand only its shared flags: a second flag set
	// holds exactly those.
	rest := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if !p.Given(f.Name) && isShared(f.Name) {
			rest.Var(f.Value, f.Name, f.Usage)
		}
	})
	restFF := ff.NewFlagSetFrom(fs.Name(), rest)
	opts := []ff.Option{ff.WithEnvVarPrefix(strings.ToUpper(o.Prog))}
	// The file's lines are checked against every flag of fs: a name fs does
	// not know is an error for the server (a typo would silently keep a
	// default); a subcommand reads the server's file and skips what it does
	// not need.
	parser := func(r io.Reader, set func(name, value string) error) error {
		return ff.PlainParser(r, func(name, value string) error {
			if fs.Lookup(name) == nil {
				if o.Server {
					return fmt.Errorf("unknown flag %q (see %s --help)", name, o.Prog)
				}
				return nil
			}
			if rest.Lookup(name) == nil || name == "config" {
				return nil
			}
			if p.Source[name] == "" {
				p.Source[name] = "file"
			}
			return set(name, value)
		})
	}
	if p.Given("config") {
		opts = append(opts, ff.WithConfigFile(configFile), ff.WithConfigFileParser(parser))
	} else {
		opts = append(opts, ff.WithConfigFileFlag("config"), ff.WithConfigFileParser(parser))
	}
	rest.VisitAll(func(f *flag.Flag) {
		if os.Getenv(EnvName(o.Prog, f.Name)) != "" {
			p.Source[f.Name] = "env"
		}
	})
	if err := ff.Parse(restFF, nil, opts...); err != nil {
		if configFile != "" && !strings.HasPrefix(err.Error(), "parse environment") {
			return nil, &UsageError{Err: fmt.Errorf("configuration file %s: %w", configFile, err)}
		}
		return nil, &UsageError{Err: err}
	}
	p.ConfigFile = configFile
	fs.VisitAll(func(f *flag.Flag) {
		if p.Source[f.Name] == "" {
			p.Source[f.Name] = "default"
		}
	})
	if printConfig {
		PrintConfig(o.Stdout, fs, p, o)
		return nil, ErrDone
	}
	return p, nil
}

// split separates flag arguments from positional ones, so that flags may
// follow positional arguments. A non-boolean flag takes the next argument
// as its value unless written --name=value; a boolean flag takes a
// following "true" or "false", as ff does.
func split(fs *flag.FlagSet, args []string) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(pos, args[i+1:]...)
		case len(a) < 2 || a[0] != '-':
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || i+1 >= len(args) {
			continue
		}
		if isBool(f) {
			if _, err := strconv.ParseBool(args[i+1]); err == nil {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		flags = append(flags, args[i+1])
		i++
	}
	return flags, pos
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// usage prints every flag of fs with its default and, where it reads one,
// its environment variable.
func usage(fs *flag.FlagSet, o Options, shared func(string) bool, w io.Writer) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "usage: %s [flags]", fs.Name())
	if !o.Server {
		fmt.Fprint(w, " [ARGS]")
	}
	fmt.Fprint(w, "\n\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(text, "\n", "\n    \t"))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		if shared(f.Name) {
			fmt.Fprintf(w, "\n    \tenv %s", EnvName(o.Prog, f.Name))
		}
		fmt.Fprintln(w)
	})
}

// PrintConfig writes the effective settings of fs in the configuration
// file's format, each line commented with where the value came from.
// Secrets are redacted; an empty value is written as a comment (the file's
// format cannot hold an empty value).
func PrintConfig(w io.Writer, fs *flag.FlagSet, p *Parsed, o Options) {
	secret := o.Secret
	if secret == nil {
		secret = IsSecret
	}
	fmt.Fprintf(w, "# %s configuration (%s)\n", o.Prog, version.String(o.Prog))
	if p.ConfigFile != "" {
		fmt.Fprintf(w, "# read from the command line, the environment and %s\n", p.ConfigFile)
	}
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "version", "print-config":
			return
		}
		v := f.Value.String()
		if v != "" && secret(f.Name) {
			v = "REDACTED"
		} else if o.Redact != nil {
			v = o.Redact(f.Name, v)
		}
		if v == "" {
			fmt.Fprintf(w, "# %s (empty) # %s\n", f.Name, p.Source[f.Name])
			return
		}
		fmt.Fprintf(w, "%s %s # %s\n", f.Name, v, p.Source[f.Name])
	})
}
