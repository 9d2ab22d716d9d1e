package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

const (
	authproviderPkg = "github.com/isobox/isobox/cmd/authprovider"
	eventrelayPkg   = "github.com/isobox/isobox/cmd/eventrelay"
)

// result is how a command-line run ended.
type result struct {
	code           int
	stdout, stderr string
}

// runBin runs bin to completion in dir with extra environment variables.
// A run that does not end within a minute (a server was started) fails the
// test.
func runBin(t *testing.T, dir, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not end: it started something\n%s", filepath.Base(bin), args, stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %q: %v", filepath.Base(bin), args, err)
	}
	return r
}

// entries lists what dir holds.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestUnknownWordsStartNothing: `authprovider help`, `version` or any other
// word used to start the server (`eventrelay help` opened the live
// JetStream store a second time). Now: help and version print and exit 0,
// anything unknown prints usage on stderr and exits 2, and nothing is
// created in the working directory.
func TestUnknownWordsStartNothing(t *testing.T) {
	for _, pkg := range []string{authproviderPkg, eventrelayPkg} {
		bin := testkit.Build(t, pkg)
		prog := filepath.Base(pkg)
		for _, c := range []struct {
			args   []string
			code   int
			stdout string
			stderr string
		}{
			{[]string{"help"}, 0, "commands:", ""},
			{[]string{"version"}, 0, prog + " dev (commit", ""},
			{[]string{"--version"}, 0, prog + " dev (commit", ""},
			{[]string{"start"}, 2, "", `unknown command "start"`},
			{[]string{"help", "start"}, 2, "", `unknown command "start"`},
			{[]string{"serve", "now"}, 2, "", `unexpected argument "now"`},
			{[]string{"--no-such-flag"}, 2, "", "no-such-flag"},
			{[]string{"version", "2"}, 2, "", `unexpected argument "2"`},
		} {
			dir := t.TempDir()
			r := runBin(t, dir, bin, nil, c.args...)
			if r.code != c.code || !strings.Contains(r.stdout, c.stdout) || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want exit %d", prog, c.args, r.code, r.stdout, r.stderr, c.code)
			}
			if c.code == 2 && !strings.Contains(r.stderr, "usage:") && !strings.Contains(r.stderr, "help") {
				t.Errorf("%s %q: no usage on stderr: %q", prog, c.args, r.stderr)
			}
			if e := entries(t, dir); len(e) > 0 {
				t.Errorf("%s %q created %q: something was started", prog, c.args, e)
			}
		}
	}
}

// TestSubcommandHelpListsOnlyItsFlags: `client add --help` printed 88
// lines, 29 of them server flags, and the server's help showed
// "--portal-registration portal allow".
func TestSubcommandHelpListsOnlyItsFlags(t *testing.T) {
	ap := testkit.Build(t, authproviderPkg)
	dir := t.TempDir()
	r := runBin(t, dir, ap, nil, "client", "add", "--help")
	if r.code != 0 {
		t.Fatalf("client add --help: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"--name", "--scope", "--grpc-addr", "--data-dir", "--config", "AUTHPROVIDER_GRPC_ADDR"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("client add --help lacks %s:\n%s", want, r.stdout)
		}
	}
	for _, server := range []string{"\n  --http-addr ", "\n  --refresh-grace ", "\n  --relay-url ", "\n  --portal-registration ", "\n  --db ", "AUTHPROVIDER_NAME", "AUTHPROVIDER_ACCESS_TTL"} {
		if strings.Contains(r.stdout, server) {
			t.Errorf("client add --help lists the server's %s:\n%s", server, r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "\n"); n > 50 {
		t.Errorf("client add --help is %d lines", n)
	}
	r = runBin(t, dir, ap, nil, "--help")
	if strings.Contains(r.stdout, "--portal-registration portal") || !strings.Contains(r.stdout, "--portal-registration string") {
		t.Errorf("--portal-registration help:\n%s", r.stdout)
	}
	r = runBin(t, dir, ap, nil, "portal", "allow", "--help")
	if !strings.Contains(r.stdout, "\n  --db ") || strings.Contains(r.stdout, "\n  --grpc-addr ") || strings.Contains(r.stdout, "\n  --http-addr ") {
		t.Errorf("portal allow --help:\n%s", r.stdout)
	}
}

// TestConfigFileEnvironmentAndFlags: --config FILE, precedence flags >
// environment > file > defaults, --print-config with secrets redacted, and
// a server started from the file alone.
func TestConfigFileEnvironmentAndFlags(t *testing.T) {
	ap := testkit.Build(t, authproviderPkg)
	er := testkit.Build(t, eventrelayPkg)
	dir := t.TempDir()
	conf := filepath.Join(dir, "authprovider.conf")
	os.WriteFile(conf, []byte(`# authprovider settings
http-addr 127.0.0.1:0
grpc-addr 127.0.0.1:0
admin-addr 127.0.0.1:0
data-dir `+filepath.Join(dir, "state")+`
token-prefix file.   # from the file
access-ttl 2h
log-level debug
db mysql://isobox:hunter2@tcp(127.0.0.1:1)/isobox
`), 0o600)
	r := runBin(t, dir, ap, []string{"AUTHPROVIDER_ACCESS_TTL=3h", "AUTHPROVIDER_LOG_LEVEL=error"}, "--config", conf, "--log-level", "warn", "--print-config")
	if r.code != 0 {
		t.Fatalf("--print-config: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"token-prefix file. # file", "access-ttl 3h0m0s # env", "log-level WARN # flag", "refresh-grace 5s # default",
		"db mysql://isobox:REDACTED@tcp(127.0.0.1:1)/isobox # file", "# public-url (empty) # default"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "hunter2") {
		t.Errorf("--print-config shows the database password:\n%s", r.stdout)
	}
	r = runBin(t, dir, er, nil, "--push-signature-key", "sekrit-value", "--print-config")
	if r.code != 0 || strings.Contains(r.stdout, "sekrit-value") || !strings.Contains(r.stdout, "push-signature-key REDACTED # flag") {
		t.Errorf("eventrelay --print-config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A typo in the file is refused, naming the file.
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("http-adr 127.0.0.1:0\n"), 0o600)
	r = runBin(t, dir, ap, nil, "--config", bad)
	if r.code != 2 || !strings.Contains(r.stderr, bad) || !strings.Contains(r.stderr, `"http-adr"`) {
		t.Errorf("typo in the file: exit %d, %q", r.code, r.stderr)
	}
	r = runBin(t, dir, ap, nil, "--config", filepath.Join(dir, "missing.conf"))
	if r.code != 2 || !strings.Contains(r.stderr, "missing.conf") {
		t.Errorf("missing file: exit %d, %q", r.code, r.stderr)
	}

	// The server runs from the file alone (the database of the file is
	// overridden by the environment: an empty value does not count, so
	// use the embedded one by flag).
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("http-addr 127.0.0.1:0\ngrpc-addr 127.0.0.1:0\nadmin-addr 127.0.0.1:0\ndata-dir "+filepath.Join(dir, "state")+"\ntoken-prefix file.\n"), 0o600)
	p := testkit.Start(t, dir, ap, []string{"--config", good}, "http", "grpc", "admin")
	if _, err := os.Stat(filepath.Join(dir, "state", "admin.key")); err != nil {
		t.Fatalf("data-dir of the file not used: %v\n%s", err, p.Logs())
	}
	// A CLI command from another directory finds the server's data dir
	// (its admin key) through the same file, and reads only the settings
	// it needs from it. (The file's grpc-addr is port 0, so the address is
	// given.)
	other := t.TempDir()
	grpcAddr := "--grpc-addr=" + p.Addr("grpc")
	r = runBin(t, other, ap, []string{"AUTHPROVIDER_NAME=from-env", "AUTHPROVIDER_ACCESS_TTL=5m"}, "client", "add", "--config", good, "--json", grpcAddr)
	if r.code != 0 {
		t.Fatalf("client add --config: exit %d\n%s", r.code, r.stderr)
	}
	var created map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatalf("client add: %q", r.stdout)
	}
	r = runBin(t, other, ap, nil, "client", "show", created["client_id"], "--json", "--config", good, grpcAddr)
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("client show: %q %q", r.stdout, r.stderr)
	}
	// AUTHPROVIDER_NAME named the client, AUTHPROVIDER_ACCESS_TTL gave it
	// a lifetime, the file's token-prefix became its prefix: no more.
	if shown["name"] != "" || shown["access_ttl"].(float64) != 0 || shown["token_prefix"] != "" {
		t.Errorf("client add read server settings: %v", shown)
	}
	if e := entries(t, other); len(e) > 0 {
		t.Errorf("the CLI created %q", e)
	}
}

// TestCLIErrorsNameTheAddressAndWhatToDo: with the server down the CLI
// printed a raw gRPC dial error; run from another directory `portal allow`
// approved into a fresh ./data the server never reads.
func TestCLIErrorsNameTheAddressAndWhatToDo(t *testing.T) {
	ap := testkit.Build(t, authproviderPkg)
	er := testkit.Build(t, eventrelayPkg)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	for _, f := range []string{"admin.key", "relay-admin.key"} {
		os.WriteFile(filepath.Join(data, f), []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	for _, c := range []struct {
		bin  string
		args []string
	}{
		{ap, []string{"client", "list"}},
		{er, []string{"handlers", "list"}},
	} {
		r := runBin(t, dir, c.bin, nil, append(c.args, "--grpc-addr", down)...)
		if r.code != 1 || !strings.Contains(r.stderr, down) || !strings.Contains(r.stderr, "not reachable") || !strings.Contains(r.stderr, "running") ||
			strings.Contains(r.stderr, "rpc error") {
			t.Errorf("%s %q with the server down: exit %d, %q", filepath.Base(c.bin), c.args, r.code, r.stderr)
		}
	}
	// No admin key where the CLI looked: it says where and what to do.
	other := t.TempDir()
	r := runBin(t, other, ap, nil, "client", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "admin.key") || !strings.Contains(r.stderr, "--config") {
		t.Errorf("client list without a key: exit %d, %q", r.code, r.stderr)
	}
	r = runBin(t, other, ap, nil, "portal", "allow", "--host", "portal.example.local")
	want, _ := filepath.Abs(filepath.Join(other, "data", "authprovider.db"))
	if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--data-dir") {
		t.Errorf("portal allow from another directory: exit %d, %q (want it to name %s)", r.code, r.stderr, want)
	}
	if e := entries(t, other); len(e) > 0 {
		t.Errorf("portal allow from another directory created %q", e)
	}
}

// TestDatabaseFormsOutsideTheAcceptedOnesAreRefused: `--db
// isobox:pw@tcp(127.0.0.1:3306)/isobox` or `postgres://…` started healthy
// on a new SQLite file named after the string.
func TestDatabaseFormsOutsideTheAcceptedOnesAreRefused(t *testing.T) {
	ap := testkit.Build(t, authproviderPkg)
	for _, db := range []string{"isobox:pw@tcp(127.0.0.1:3306)/isobox", "postgres://isobox:pw@127.0.0.1/isobox", "isobox.db", "sqlite:"} {
		dir := t.TempDir()
		r := runBin(t, dir, ap, nil, append(freeArgs("http-addr", "grpc-addr", "admin-addr"), "--db", db)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--db") || !strings.Contains(r.stderr, "sqlite:") {
			t.Errorf("--db %q: exit %d, %q", db, r.code, r.stderr)
		}
		if strings.Contains(r.stderr, ":pw@") {
			t.Errorf("--db %q: the password is in the message: %q", db, r.stderr)
		}
		if e := entries(t, dir); len(e) > 0 {
			t.Errorf("--db %q created %q", db, e)
		}
	}
	// The explicit SQLite form works.
	dir := t.TempDir()
	p := testkit.Start(t, dir, ap, append(freeArgs("http-addr", "grpc-addr", "admin-addr"), "--db", "sqlite:"+filepath.Join(dir, "other.db")), "admin")
	if _, err := os.Stat(filepath.Join(dir, "other.db")); err != nil {
		t.Errorf("sqlite:PATH not used: %v\n%s", err, p.Logs())
	}
}
