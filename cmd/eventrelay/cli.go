package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
	"github.com/isobox/isobox/internal/certs"
	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/secret"
)

// addCLICommands adds the subcommands that talk to a running relay's admin
// API (gRPC on --grpc-addr, with the key in <data-dir>/relay-admin.key).
func addCLICommands(cmds map[string]command) {
	cmds["deliveries"] = command{Summary: "list, show and replay deliveries", Run: subcommands("deliveries", map[string]command{
		"list":   {Summary: "list recent deliveries (--app, --handler, --event, --status, --limit)", Run: deliveriesList},
		"show":   {Summary: "show one delivery (ID)", Run: deliveriesShow},
		"replay": {Summary: "send one delivery again (ID)", Run: deliveriesReplay},
	})}
	cmds["handlers"] = command{Summary: "list, pause and resume handlers", Run: subcommands("handlers", map[string]command{
		"list":   {Summary: "list handlers with queue, dead letters and circuit state", Run: handlersList},
		"pause":  {Summary: "stop delivering to a handler (KEY); its events wait", Run: handlersPause},
		"resume": {Summary: "deliver to a handler again (KEY)", Run: handlersResume},
	})}
	cmds["dlq"] = command{Summary: "list and replay dead letters", Run: subcommands("dlq", map[string]command{
		"list":   {Summary: "list dead letters, newest first (--app, --handler, --event, --limit)", Run: dlqList},
		"replay": {Summary: "replay dead letters (--handler KEY, --since 2h|RFC3339; all of them after a confirmation on the terminal, or --yes)", Run: dlqReplay},
	})}
	cmds["audit"] = command{Summary: "list or export the relay's audit log (changes made through its admin API)", Run: subcommands("audit", map[string]command{
		"list":   {Summary: "list audit entries, newest first (--since, --actor, --limit)", Run: auditList},
		"export": {Summary: "write the audit log as JSON lines, oldest first (--since, --after-seq)", Run: auditExport},
	})}
	cmds["stats"] = command{Summary: "show the relay's counters", Run: statsCmd}
	cmds["secrets"] = command{Summary: "show or rotate a signing secret", Run: subcommands("secrets", map[string]command{
		"get":    {Summary: "print the signing secret of an app (--client-id) or webhook (--application-token)", Run: secretsGet},
		"rotate": {Summary: "make a new signing secret current; the old one signs too during the overlap", Run: secretsRotate},
	})}
}

// subcommands dispatches `eventrelay name sub ...` to subs.
func subcommands(name string, subs map[string]command) cmdline.RunFunc {
	return cmdline.Group("eventrelay", name, subs)
}

// cli is a parsed CLI invocation: where the relay is, how to print, the
// positional arguments.
type cli struct {
	grpcAddr, dataDir, keyFile string
	caFile                     string
	json                       bool
	args                       []string
	stdout                     io.Writer
}

// cliShared are the server settings a CLI command reads, like the server,
// from its command line, the environment and the relay's --config file:
// those that find the relay. A command's own flags come from its command
// line only.
var cliShared = []string{"grpc-addr", "data-dir", "admin-key-file"}

func parseCLI(name string, args []string, stdout, stderr io.Writer, extra func(fs *flag.FlagSet)) (*cli, error) {
	c := &cli{stdout: stdout}
	// The server's declarations give --grpc-addr and --data-dir their
	// defaults and help text.
	var cfg config
	server := flag.NewFlagSet("eventrelay", flag.ContinueOnError)
	cfg.register(server)
	fs := flag.NewFlagSet("eventrelay "+name, flag.ContinueOnError)
	for _, n := range []string{"grpc-addr", "data-dir"} {
		f := server.Lookup(n)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	fs.StringVar(&c.keyFile, "admin-key-file", "", "relay admin key file; empty = <data-dir>/relay-admin.key")
	fs.StringVar(&c.caFile, "tls-ca-file", "", "PEM CA certificates that verify the relay's certificate; set when the relay serves TLS (--tls-cert-file)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	if extra != nil {
		extra(fs)
	}
	p, err := cmdline.Parse(fs, args, cmdline.Options{Prog: "eventrelay", Shared: cliShared, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	c.grpcAddr, c.dataDir, c.args = cfg.GRPCAddr, cfg.DataDir, p.Args
	return c, nil
}

// noArgs refuses positional arguments of a command that takes none.
func (c *cli) noArgs(name string) error {
	if len(c.args) > 0 {
		return cmdline.Usagef("%s: unexpected argument %q", name, c.args[0])
	}
	return nil
}

// connect dials the relay's gRPC API; the returned context carries the
// admin key and who runs the command.
func (c *cli) connect(ctx context.Context) (*grpc.ClientConn, context.Context, func(), error) {
	path := c.keyFile
	if path == "" {
		path = relayAdminKeyPath(c.dataDir)
	}
	key, err := secret.Read(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the relay admin key: %w (give the relay's --data-dir or --admin-key-file, or its --config, e.g. --config /etc/isobox/eventrelay.conf)", err)
	}
	creds := insecure.NewCredentials()
	if c.caFile != "" {
		roots, err := certs.LoadCAs(c.caFile)
		if err != nil {
			return nil, nil, nil, err
		}
		creds = credentials.NewTLS(certs.ClientConfig(roots, nil))
	}
	conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(explainUnreachable(c.grpcAddr, path)))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to %s: %w", c.grpcAddr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	// Who runs the command, for the relay's audit log.
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key, sourceMD, "cli", actorMD, cliActor())
	return conn, ctx, func() { cancel(); conn.Close() }, nil
}

// dial connects to the relay's admin API (Relay).
func (c *cli) dial(ctx context.Context) (relayv1.RelayClient, context.Context, func(), error) {
	conn, ctx, done, err := c.connect(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return relayv1.NewRelayClient(conn), ctx, done, nil
}

// dialOps connects to the relay's RelayOps API.
func (c *cli) dialOps(ctx context.Context) (relayv1.RelayOpsClient, context.Context, func(), error) {
	conn, ctx, done, err := c.connect(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return relayv1.NewRelayOpsClient(conn), ctx, done, nil
}

// explainUnreachable turns the errors an administrator meets first — the
// relay not running, a wrong address, a key from another installation —
// into sentences that name the address or file and say what to do.
func explainUnreachable(addr, keyFile string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		switch status.Code(err) {
		case codes.Unavailable:
			return fmt.Errorf("unavailable: eventrelay's gRPC API at %s is not reachable: is the relay running? (give its --grpc-addr, or its --config; detail: %s)", addr, status.Convert(err).Message())
		case codes.Unauthenticated:
			return fmt.Errorf("unauthenticated: eventrelay at %s refused the admin key in %s: it belongs to another installation; give the relay's --data-dir, --admin-key-file or --config", addr, keyFile)
		case codes.DeadlineExceeded:
			return fmt.Errorf("eventrelay at %s did not answer in time: %w", addr, err)
		}
		return err
	}
}

func cliError(err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", strings.ToLower(st.Code().String()), st.Message())
	}
	return err
}

func (c *cli) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	// protojson varies its white space on purpose; scripts get a stable
	// layout.
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", out.Bytes())
	return err
}

func (c *cli) one(name string) (string, error) {
	if len(c.args) != 1 {
		return "", cmdline.Usagef("%s: exactly one argument expected", name)
	}
	return c.args[0], nil
}

func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func deliveriesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	req := &relayv1.ListDeliveriesRequest{}
	return listDeliveries(ctx, "deliveries list", req, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&req.Status, "status", "", "pending, retrying, delivered or dead")
	}, "ID\tEVENT\tSTATUS\tATTEMPTS\tHANDLER\tUPDATED\tLAST ERROR", func(d *relayv1.Delivery) []any {
		return []any{d.Id, d.Event, d.Status, d.Attempts, d.Handler, msTime(d.UpdatedMs), d.LastError}
	})
}

// listDeliveries runs a listing command: the filter flags common to every
// listing plus extra, one ListDeliveries call, then JSON or a table with
// the given header and one row per delivery.
func listDeliveries(ctx context.Context, name string, req *relayv1.ListDeliveriesRequest, args []string, stdout, stderr io.Writer,
	extra func(fs *flag.FlagSet), header string, row func(d *relayv1.Delivery) []any) error {
	var limit int
	c, err := parseCLI(name, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&req.App, "app", "", "app client_id")
		fs.StringVar(&req.Handler, "handler", "", "handler key")
		fs.StringVar(&req.Event, "event", "", "event name")
		if extra != nil {
			extra(fs)
		}
		fs.IntVar(&limit, "limit", 100, "at most this many")
	})
	if err != nil {
		return err
	}
	if err := c.noArgs(name); err != nil {
		return err
	}
	req.Limit = int32(limit)
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := rc.ListDeliveries(ctx, req)
	if err != nil {
		return cliError(err)
	}
	if c.json {
		return c.printJSON(resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, d := range resp.Deliveries {
		cols := row(d)
		for k, v := range cols {
			sep := "\t"
			if k == len(cols)-1 {
				sep = "\n"
			}
			fmt.Fprint(tw, v, sep)
		}
	}
	return tw.Flush()
}

func deliveriesShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseCLI("deliveries show", args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	id, err := c.one("deliveries show")
	if err != nil {
		return err
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	d, err := rc.GetDelivery(ctx, &relayv1.GetDeliveryRequest{Id: id})
	if err != nil {
		return cliError(err)
	}
	if c.json {
		return c.printJSON(d)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{{"id", d.Id}, {"event", d.Event}, {"status", d.Status}, {"attempts", fmt.Sprint(d.Attempts)},
		{"url", d.Url}, {"handler", d.Handler}, {"client_id", d.ClientId}, {"portal", d.Portal}, {"last_status", fmt.Sprint(d.LastStatus)},
		{"last_error", d.LastError}, {"last_latency", fmt.Sprintf("%dms", d.LastLatencyMs)}, {"created", msTime(d.CreatedMs)},
		{"updated", msTime(d.UpdatedMs)}, {"next_attempt", msTime(d.NextAttemptMs)}} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.History) > 0 {
		fmt.Fprintln(stdout, "\nattempts:")
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, a := range d.History {
			fmt.Fprintf(tw, "  %s\t%d\t%dms\t%s\n", msTime(a.AtMs), a.Status, a.LatencyMs, a.Error)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(d.Payload) > 0 {
		fmt.Fprintln(stdout, "\npayload (without the auth block):")
		for _, f := range d.Payload {
			fmt.Fprintf(stdout, "  %s = %s\n", f.Key, f.Value)
		}
	}
	return nil
}

func printReplay(c *cli, r *relayv1.ReplayResponse) error {
	if c.json {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.stdout, "replayed %d\n", r.Replayed)
	return nil
}

func deliveriesReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseCLI("deliveries replay", args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	id, err := c.one("deliveries replay")
	if err != nil {
		return err
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	r, err := rc.ReplayDelivery(ctx, &relayv1.ReplayDeliveryRequest{Id: id})
	if err != nil {
		return cliError(err)
	}
	return printReplay(c, r)
}

func dlqList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return listDeliveries(ctx, "dlq list", &relayv1.ListDeliveriesRequest{Status: "dead"}, args, stdout, stderr, nil,
		"ID\tEVENT\tATTEMPTS\tHANDLER\tURL\tDEAD SINCE\tLAST ERROR", func(d *relayv1.Delivery) []any {
			return []any{d.Id, d.Event, d.Attempts, d.Handler, d.Url, msTime(d.UpdatedMs), d.LastError}
		})
}

// errReplayAll refuses a replay of every dead letter that was not
// confirmed with --yes.
var errReplayAll = errors.New("dlq replay")

func dlqReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var handler, since string
	var yes bool
	c, err := parseCLI("dlq replay", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&handler, "handler", "", "only this handler's dead letters")
		fs.StringVar(&since, "since", "", "only those dead-lettered since: a duration ago (2h) or an RFC 3339 time")
		fs.BoolVar(&yes, "yes", false, "replay every dead letter of every handler without asking (needed when neither --handler nor --since is given and stdin is not a terminal)")
	})
	if err != nil {
		return err
	}
	if err := c.noArgs("dlq replay"); err != nil {
		return err
	}
	req := &relayv1.ReplayDeadLettersRequest{Handler: handler}
	if since != "" {
		if d, err := time.ParseDuration(since); err == nil {
			req.Since = time.Now().Add(-d).Unix()
		} else if t, err := time.Parse(time.RFC3339, since); err == nil {
			req.Since = t.Unix()
		} else {
			return cmdline.Usagef("dlq replay: --since %q: want a duration or an RFC 3339 time", since)
		}
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	if handler == "" && since == "" && !yes {
		// Everything at once is rarely meant: a handler that is still down
		// would dead-letter it all again. Say how much it would be.
		st, err := rc.Stats(ctx, &relayv1.StatsRequest{})
		if err != nil {
			return cliError(err)
		}
		if st.Dead == 0 {
			return printReplay(c, &relayv1.ReplayResponse{})
		}
		ok, asked, err := confirm(stderr, fmt.Sprintf("Replay all %d dead letters of every handler? [y/N] ", st.Dead))
		if err != nil {
			return err
		}
		if !asked {
			return fmt.Errorf("%w: this would replay all %d dead letters of every handler; narrow it with --handler KEY or --since, "+
				"or confirm with --yes (`eventrelay dlq list` shows them)", errReplayAll, st.Dead)
		}
		if !ok {
			return fmt.Errorf("%w: not confirmed, nothing replayed", errReplayAll)
		}
	}
	r, err := rc.ReplayDeadLetters(ctx, req)
	if err != nil {
		return cliError(err)
	}
	return printReplay(c, r)
}

// confirm asks a yes/no question on the terminal; asked is false when
// stdin is not a terminal (a script must say --yes).
func confirm(stderr io.Writer, question string) (ok, asked bool, err error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return false, false, nil
	}
	fmt.Fprint(stderr, question)
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, true, fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes", "д", "да":
		return true, true, nil
	}
	return false, true, nil
}

func printHandlers(c *cli, hs []*relayv1.Handler) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tURL\tAPP\tPAUSED\tBREAKER\tPENDING\tDEAD\tDELIVERED\tFAILED\tP50\tP99")
	for _, h := range hs {
		app := h.ClientId
		if app == "" {
			app = "(webhook)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%d\t%d\t%d\t%d\t%.1fms\t%.1fms\n", h.Key, h.Url, app, h.Paused, h.Breaker, h.Pending, h.Dead,
			h.Delivered, h.FailedAttempts, h.P50Ms, h.P99Ms)
	}
	return tw.Flush()
}

func handlersList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseCLI("handlers list", args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	if err := c.noArgs("handlers list"); err != nil {
		return err
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	r, err := rc.ListHandlers(ctx, &relayv1.ListHandlersRequest{})
	if err != nil {
		return cliError(err)
	}
	if c.json {
		return c.printJSON(r)
	}
	return printHandlers(c, r.Handlers)
}

func handlersPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return setPaused(ctx, "handlers pause", true, args, stdout, stderr)
}

func handlersResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return setPaused(ctx, "handlers resume", false, args, stdout, stderr)
}

func setPaused(ctx context.Context, name string, pause bool, args []string, stdout, stderr io.Writer) error {
	c, err := parseCLI(name, args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	key, err := c.one(name)
	if err != nil {
		return err
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	call := rc.ResumeHandler
	if pause {
		call = rc.PauseHandler
	}
	h, err := call(ctx, &relayv1.HandlerRequest{Key: key})
	if err != nil {
		return cliError(err)
	}
	if c.json {
		return c.printJSON(h)
	}
	return printHandlers(c, []*relayv1.Handler{h})
}

func statsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseCLI("stats", args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	if err := c.noArgs("stats"); err != nil {
		return err
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	s, err := rc.Stats(ctx, &relayv1.StatsRequest{})
	if err != nil {
		return cliError(err)
	}
	if c.json {
		return c.printJSON(s)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, kv := range []struct {
		k string
		v int64
	}{{"ingested", s.Ingested}, {"delivered", s.Delivered}, {"retried", s.Retried}, {"dead_lettered", s.DeadLettered},
		{"duplicates", s.Duplicates}, {"handlers", s.Handlers}, {"pending", s.Pending}, {"dead", s.Dead}} {
		fmt.Fprintf(tw, "%s:\t%d\n", kv.k, kv.v)
	}
	return tw.Flush()
}

func secretsCmd(ctx context.Context, name string, rotate bool, args []string, stdout, stderr io.Writer) error {
	req := &relayv1.SigningSecretRequest{}
	c, err := parseCLI(name, args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&req.ClientId, "client-id", "", "app client_id")
		fs.StringVar(&req.ApplicationToken, "application-token", "", "outgoing webhook's application token")
		fs.StringVar(&req.Portal, "portal", "", "the portal's client_id (authprovider portal list): secrets are per portal and app")
	})
	if err != nil {
		return err
	}
	if err := c.noArgs(name); err != nil {
		return err
	}
	if (req.ClientId == "") == (req.ApplicationToken == "") {
		return cmdline.Usagef("%s: give --client-id or --application-token", name)
	}
	if req.Portal == "" {
		return errors.New(name + ": give --portal (the portal's client_id): secrets are per portal and app")
	}
	rc, ctx, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	call := rc.GetSigningSecret
	if rotate {
		call = rc.RotateSigningSecret
	}
	s, err := call(ctx, req)
	if err != nil {
		return cliError(err)
	}
	if c.json {
		return c.printJSON(s)
	}
	fmt.Fprintln(stdout, s.Secret)
	if s.Previous != "" {
		fmt.Fprintf(stdout, "previous (signs until %s): %s\n", time.Unix(s.PreviousUntil, 0).UTC().Format(time.RFC3339), s.Previous)
	}
	return nil
}

func secretsGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return secretsCmd(ctx, "secrets get", false, args, stdout, stderr)
}

func secretsRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return secretsCmd(ctx, "secrets rotate", true, args, stdout, stderr)
}
