package cmdline_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/cmdline"
)

func TestDispatchAndGroup(t *testing.T) {
	var got []string
	rec := func(name string) cmdline.RunFunc {
		return func(_ context.Context, args []string, _, _ io.Writer, _ func(string) string) error {
			got = append(got, name+":"+strings.Join(args, ","))
			return nil
		}
	}
	run := cmdline.Dispatch(rec("serve"), map[string]cmdline.Command{
		"client": {Summary: "manage clients", Run: cmdline.Group("prog", "client", map[string]cmdline.Command{
			"add":  {Summary: "add a client", Run: rec("add")},
			"list": {Summary: "list clients", Run: rec("list")},
		})},
	})
	ctx := context.Background()
	var stderr bytes.Buffer
	for _, args := range [][]string{{"--http-addr", "x"}, {}, {"client", "add", "--name", "n"}} {
		if err := run(ctx, args, io.Discard, &stderr, nil); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if want := "serve:--http-addr,x|serve:|add:--name,n"; strings.Join(got, "|") != want {
		t.Fatalf("ran %q, want %q", strings.Join(got, "|"), want)
	}
	if err := run(ctx, []string{"client"}, io.Discard, &stderr, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("bare group: %v, want ErrHelp", err)
	}
	if !strings.Contains(stderr.String(), "usage: prog client <command>") || !strings.Contains(stderr.String(), "add   add a client") {
		t.Fatalf("usage:\n%s", stderr.String())
	}
	if err := run(ctx, []string{"client", "nope"}, io.Discard, &stderr, nil); err == nil || errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), `unknown command "nope"`) {
		t.Fatalf("unknown subcommand: %v", err)
	}
}
