package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/cmdline"
)

// cliActor names the person running a CLI command, for the relay's audit
// log: the OS user, or "cli" when it cannot be told.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return "cli"
}

// exportLine is one line of `eventrelay audit export`: the web console's
// audit entry with the service that recorded it.
type exportLine struct {
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	Source  string    `json:"source"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Seq     uint64    `json:"seq"`
}

func lineOf(e *relayv1.AuditEntry) exportLine {
	return exportLine{ID: e.Id, At: time.UnixMilli(e.AtMs).UTC(), Service: "eventrelay", Source: e.Source, Actor: e.Actor, Action: e.Action,
		Target: e.Target, Detail: e.Detail, Remote: e.Remote, Seq: e.Seq}
}

// sinceFlag reads --since: a duration back from now (2h) or an RFC 3339
// time; empty = no bound.
func sinceFlag(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, cmdline.Usagef("--since %q: give a duration (2h) or an RFC 3339 time", v)
	}
	return t, nil
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// auditCall is the prologue of the audit commands: their flags (--since
// and extra), no arguments, a RelayOps connection (ctx carries its key).
type auditCall struct {
	c     *cli
	since int64 // unix ms, 0 = none
	ops   relayv1.RelayOpsClient
	done  func()
}

func startAudit(ctx context.Context, name string, args []string, stdout, stderr io.Writer, extra func(fs *flag.FlagSet)) (*auditCall, context.Context, error) {
	var since string
	c, err := parseCLI(name, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&since, "since", "", "only entries since then: a duration back (24h) or an RFC 3339 time")
		extra(fs)
	})
	if err != nil {
		return nil, nil, err
	}
	if err := c.noArgs(name); err != nil {
		return nil, nil, err
	}
	t, err := sinceFlag(since)
	if err != nil {
		return nil, nil, err
	}
	ops, ctx, done, err := c.dialOps(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &auditCall{c: c, since: msOf(t), ops: ops, done: done}, ctx, nil
}

func auditList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var actor string
	var limit int
	a, ctx, err := startAudit(ctx, "audit list", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&actor, "actor", "", "only this actor's entries")
		fs.IntVar(&limit, "limit", 200, "at most this many (max 10000)")
	})
	if err != nil {
		return err
	}
	defer a.done()
	resp, err := a.ops.ListAudit(ctx, &relayv1.ListAuditRequest{Limit: int32(limit), Actor: actor, SinceMs: a.since})
	if err != nil {
		return cliError(err)
	}
	if a.c.json {
		return a.c.printJSON(resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tSOURCE\tACTOR\tACTION\tTARGET\tREMOTE\tDETAIL")
	for _, e := range resp.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", msTime(e.AtMs), e.Source, e.Actor, e.Action, e.Target, e.Remote, e.Detail)
	}
	return tw.Flush()
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var after uint64
	a, ctx, err := startAudit(ctx, "audit export", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.Uint64Var(&after, "after-seq", 0, "only entries after this position (the seq of the last line of an earlier export)")
	})
	if err != nil {
		return err
	}
	defer a.done()
	stream, err := a.ops.ExportAudit(ctx, &relayv1.ExportAuditRequest{SinceMs: a.since, AfterSeq: after})
	if err != nil {
		return cliError(err)
	}
	enc := json.NewEncoder(stdout)
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return cliError(err)
		}
		if err := enc.Encode(lineOf(e)); err != nil {
			return err
		}
	}
}
