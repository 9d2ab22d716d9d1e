package flagenv_test

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/flagenv"
)

func TestPrecedenceFlagOverEnvOverDefault(t *testing.T) {
	env := map[string]string{"SVC_HTTP_ADDR": "env:1", "SVC_DATA_DIR": "/env/data", "SVC_BAD": "x"}
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	addr := fs.String("http-addr", "def:1", "")
	dir := fs.String("data-dir", "data", "")
	other := fs.String("other", "keep", "")
	if err := flagenv.Parse(fs, "svc", []string{"--http-addr", "flag:1"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *addr != "flag:1" || *dir != "/env/data" || *other != "keep" {
		t.Fatalf("got %q %q %q", *addr, *dir, *other)
	}
}

func TestBadEnvValueIsAnError(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.Int("workers", 1, "")
	err := flagenv.Parse(fs, "svc", nil, func(k string) string {
		if k == "SVC_WORKERS" {
			return "many"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "SVC_WORKERS") {
		t.Fatalf("err = %v, want it to name SVC_WORKERS", err)
	}
}

func TestUsageNamesEnv(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.String("nats-url", "", "NATS `url`")
	var b bytes.Buffer
	flagenv.Usage(fs, "svc", &b)
	if !strings.Contains(b.String(), "--nats-url url") || !strings.Contains(b.String(), "env SVC_NATS_URL") {
		t.Fatalf("usage:\n%s", b.String())
	}
}
