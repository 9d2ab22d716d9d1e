package cmdline_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/cmdline"
)

func TestProgramAndGroup(t *testing.T) {
	var got []string
	rec := func(name string) cmdline.RunFunc {
		return func(_ context.Context, args []string, _, _ io.Writer) error {
			got = append(got, name+":"+strings.Join(args, ","))
			return nil
		}
	}
	run := cmdline.Program("prog", "does things", rec("serve"), map[string]cmdline.Command{
		"client": {Summary: "manage clients", Run: cmdline.Group("prog", "client", map[string]cmdline.Command{
			"add":  {Summary: "add a client", Run: rec("add")},
			"list": {Summary: "list clients", Run: rec("list")},
		})},
	})
	ctx := context.Background()
	for _, args := range [][]string{{"--http-addr", "x"}, {}, {"serve", "-x"}, {"client", "add", "--name", "n"}} {
		if err := run(ctx, args, io.Discard, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if want := "serve:--http-addr,x|serve:|serve:-x|add:--name,n"; strings.Join(got, "|") != want {
		t.Fatalf("ran %q, want %q", strings.Join(got, "|"), want)
	}
	got = nil
	for _, c := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"help"}, 0, "client", ""},
		{[]string{"hlep"}, 2, "", "commands:"},
		{[]string{"client"}, 2, "", "usage: prog client COMMAND"},
		{[]string{"client", "--help"}, 0, "add   add a client", ""},
		{[]string{"client", "nope"}, 2, "", "list  list clients"},
		{[]string{"help", "nope"}, 2, "", "commands:"},
		{[]string{"version"}, 0, "prog dev", ""},
		{[]string{"version", "x"}, 2, "", ""},
	} {
		var stdout, stderr bytes.Buffer
		err := run(ctx, c.args, &stdout, &stderr)
		if cmdline.ExitCode(err) != c.code || !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("%q: exit %d (%v), stdout %q, stderr %q", c.args, cmdline.ExitCode(err), err, stdout.String(), stderr.String())
		}
	}
	if len(got) != 0 {
		t.Errorf("a wrong command line ran %q", got)
	}
}

type settings struct {
	addr, name string
	ttl        time.Duration
	on         bool
}

func serverFlags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.StringVar(&s.addr, "http-addr", "127.0.0.1:1", "address")
	fs.StringVar(&s.name, "name", "def", "a name")
	fs.DurationVar(&s.ttl, "ttl", time.Second, "a ttl")
	fs.BoolVar(&s.on, "on", true, "a switch")
	return fs
}

func TestPrecedenceFlagOverEnvOverFileOverDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prog.conf")
	os.WriteFile(file, []byte("# comment\nhttp-addr 10.0.0.1:1 # from file\nname file-name\nttl 3s\non false\n"), 0o600)
	t.Setenv("PROG_NAME", "env-name")
	t.Setenv("PROG_TTL", "2s")
	var s settings
	p, err := cmdline.Parse(serverFlags(&s), []string{"--config", file, "--ttl", "1m"}, cmdline.Options{Prog: "prog", Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "10.0.0.1:1" || s.name != "env-name" || s.ttl != time.Minute || s.on {
		t.Fatalf("got %+v", s)
	}
	if p.Source["http-addr"] != "file" || p.Source["name"] != "env" || p.Source["ttl"] != "flag" {
		t.Fatalf("sources %v", p.Source)
	}

	// The configuration file may also come from the environment.
	t.Setenv("PROG_CONFIG", file)
	s = settings{}
	if _, err := cmdline.Parse(serverFlags(&s), nil, cmdline.Options{Prog: "prog", Server: true}); err != nil || s.addr != "10.0.0.1:1" {
		t.Fatalf("PROG_CONFIG: %v %+v", err, s)
	}
}

func TestServerRefusesUnknownNamesAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("http-adr 1.2.3.4:5\n"), 0o600)
	for _, args := range [][]string{{"--config", bad}, {"--config", filepath.Join(dir, "missing.conf")}, {"--nope"}, {"stray"}} {
		var s settings
		var stderr bytes.Buffer
		p, err := cmdline.Parse(serverFlags(&s), args, cmdline.Options{Prog: "prog", Server: true, Stderr: &stderr})
		if err == nil && len(p.Args) == 0 {
			t.Errorf("%q accepted", args)
			continue
		}
		if err != nil && cmdline.ExitCode(err) != 2 {
			t.Errorf("%q: exit %d: %v", args, cmdline.ExitCode(err), err)
		}
		if err != nil && strings.Contains(args[len(args)-1], ".conf") && !strings.Contains(err.Error(), args[len(args)-1]) {
			t.Errorf("%q: error does not name the file: %v", args, err)
		}
	}
}

func TestSubcommandReadsOnlySharedFlagsFromEnvAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prog.conf")
	os.WriteFile(file, []byte("http-addr 10.0.0.1:1\nname file-name\nserver-only-flag 1\n"), 0o600)
	t.Setenv("PROG_NAME", "env-name")
	t.Setenv("PROG_HTTP_ADDR", "10.0.0.2:2")
	var s settings
	var id bool
	fs := serverFlags(&s)
	fs.BoolVar(&id, "json", false, "print JSON")
	p, err := cmdline.Parse(fs, []string{"ID", "--json", "--config", file, "X"}, cmdline.Options{Prog: "prog", Shared: []string{"http-addr"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "10.0.0.2:2" || s.name != "def" || !id || strings.Join(p.Args, ",") != "ID,X" {
		t.Fatalf("got %+v json=%v args=%q", s, id, p.Args)
	}
	var help bytes.Buffer
	fs = flag.NewFlagSet("prog sub", flag.ContinueOnError)
	fs.StringVar(&s.addr, "http-addr", "", "address")
	fs.StringVar(&s.name, "name", "", "a name")
	if _, err := cmdline.Parse(fs, []string{"--help"}, cmdline.Options{Prog: "prog", Shared: []string{"http-addr"}, Stdout: &help}); !errors.Is(err, cmdline.ErrDone) {
		t.Fatal(err)
	}
	if !strings.Contains(help.String(), "PROG_HTTP_ADDR") || strings.Contains(help.String(), "PROG_NAME") {
		t.Fatalf("help:\n%s", help.String())
	}
}

func TestPrintConfigRedactsSecrets(t *testing.T) {
	var key, dsn, empty string
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.StringVar(&key, "push-signature-key", "", "key")
	fs.StringVar(&dsn, "db", "", "dsn")
	fs.StringVar(&empty, "public-url", "", "url")
	var out bytes.Buffer
	_, err := cmdline.Parse(fs, []string{"--push-signature-key", "s3cr3t", "--db", "mysql://u:pw@tcp(h:1)/d", "--print-config"}, cmdline.Options{
		Prog: "prog", Server: true, Stdout: &out,
		Redact: func(name, v string) string { return strings.ReplaceAll(v, ":pw@", ":REDACTED@") },
	})
	if !errors.Is(err, cmdline.ErrDone) {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, "s3cr3t") || strings.Contains(s, ":pw@") || !strings.Contains(s, "push-signature-key REDACTED # flag") ||
		!strings.Contains(s, "db mysql://u:REDACTED@tcp(h:1)/d") || !strings.Contains(s, "# public-url (empty)") {
		t.Fatalf("print-config:\n%s", s)
	}
}
