// Package flagenv gives every command-line flag an environment-variable
// equivalent: flag "--http-addr" of program "authprovider" is also read from
// AUTHPROVIDER_HTTP_ADDR. A flag given on the command line wins over the
// environment, which wins over the default.
package flagenv

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Name returns the environment variable for flag name under prefix:
// Name("authprovider", "http-addr") is "AUTHPROVIDER_HTTP_ADDR".
func Name(prefix, name string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return strings.ToUpper(r.Replace(prefix + "_" + name))
}

// Parse parses args into fs, first filling every flag not given on the
// command line from its environment variable (looked up with getenv).
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	fs.Usage = func() { Usage(fs, prefix, fs.Output()) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := Name(prefix, f.Name)
		if v := getenv(env); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// Usage prints every flag with its default and its environment variable.
func Usage(fs *flag.FlagSet, prefix string, w io.Writer) {
	fmt.Fprintf(w, "Usage of %s:\n", fs.Name())
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "\n    \tenv %s\n", Name(prefix, f.Name))
	})
}
