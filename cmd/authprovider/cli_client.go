package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	adminv1 "github.com/isobox/isobox/api/isobox/admin/v1"
	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/oauth"
)

// addClientCommands adds `client ...` and `token ...`. They talk to the
// running server's admin API over gRPC (--grpc-addr) with the admin key
// from <data-dir>/admin.key.
func addClientCommands(cmds map[string]command) {
	cmds["client"] = command{Summary: "manage OAuth clients (REST apps): add, list, show, update, delete, rotate-secret", Run: subcommands("client", map[string]command{
		"add":           {Summary: "create a client; prints its id and secret once (--name --redirect-uri --scope --access-ttl --refresh-ttl --code-ttl --token-prefix)", Run: clientAdd},
		"list":          {Summary: "list clients (--kind app|portal, --portal ID)", Run: clientList},
		"show":          {Summary: "show one client: show ID", Run: clientShow},
		"update":        {Summary: "change a client's fields: update ID --name ... (only the flags given change)", Run: clientUpdate},
		"delete":        {Summary: "delete a client and revoke its tokens: delete ID", Run: clientDelete},
		"rotate-secret": {Summary: "give a client a new secret, printed once: rotate-secret ID", Run: clientRotate},
	})}
	cmds["token"] = command{Summary: "issue, list, introspect and revoke tokens", Run: subcommands("token", map[string]command{
		"issue":      {Summary: "issue a token pair for a client and user (--client --user --scope --param K=V --no-refresh); prints the /oauth/token/ JSON", Run: tokenIssue},
		"list":       {Summary: "list live tokens of a client and/or user (--client --user); shows signatures, never tokens", Run: tokenList},
		"introspect": {Summary: "RFC 7662 introspection: introspect TOKEN", Run: tokenIntrospect},
		"revoke":     {Summary: "revoke TOKEN and its refresh chain, or every token of --client [--user]", Run: tokenRevoke},
	})}
}

// clientJSON is how the CLI prints a client.
type clientJSON struct {
	ClientID    string `json:"client_id"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	RedirectURI string `json:"redirect_uri"`
	Scope       string `json:"scope"`
	Status      string `json:"status"`
	Active      bool   `json:"active"`
	Portal      string `json:"portal,omitempty"`
	Host        string `json:"host,omitempty"`
	TokenPrefix string `json:"token_prefix"`
	AccessTTL   int64  `json:"access_ttl"`
	RefreshTTL  int64  `json:"refresh_ttl"`
	CodeTTL     int64  `json:"code_ttl"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

func clientOut(c *adminv1.Client) clientJSON {
	return clientJSON{ClientID: c.ClientId, Name: c.Name, Kind: c.Kind, RedirectURI: c.RedirectUri, Scope: c.Scope, Status: c.Status,
		Active: c.Active, Portal: c.Portal, Host: c.Host, TokenPrefix: c.TokenPrefix, AccessTTL: c.AccessTtl, RefreshTTL: c.RefreshTtl,
		CodeTTL: c.CodeTtl, CreatedAt: time.Unix(c.CreatedAt, 0).UTC().Format(time.RFC3339), UpdatedAt: time.Unix(c.UpdatedAt, 0).UTC().Format(time.RFC3339)}
}

func printClient(w io.Writer, c *adminv1.Client) {
	ttl := func(n int64) string {
		if n == 0 {
			return "server default"
		}
		return (time.Duration(n) * time.Second).String()
	}
	prefix := c.TokenPrefix
	if prefix == "" {
		prefix = "server default"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\nname:\t%s\nkind:\t%s\nstatus:\t%s\nactive:\t%v\nscope:\t%s\nredirect_uri:\t%s\n",
		c.ClientId, c.Name, c.Kind, c.Status, c.Active, c.Scope, c.RedirectUri)
	if c.Portal != "" {
		fmt.Fprintf(tw, "portal:\t%s\n", c.Portal)
	}
	if c.Host != "" {
		fmt.Fprintf(tw, "host:\t%s\n", c.Host)
	}
	fmt.Fprintf(tw, "token_prefix:\t%s\naccess_ttl:\t%s\nrefresh_ttl:\t%s\ncode_ttl:\t%s\n", prefix, ttl(c.AccessTtl), ttl(c.RefreshTtl), ttl(c.CodeTtl))
	tw.Flush()
}

// clientFlags are the settable client fields shared by add and update.
type clientFlags struct {
	name, redirectURI, scope, status, prefix string
	accessTTL, refreshTTL, codeTTL           time.Duration
	active                                   bool
}

func (f *clientFlags) register(fs *flag.FlagSet, update bool) {
	fs.StringVar(&f.name, "name", "", "client name")
	fs.StringVar(&f.redirectURI, "redirect-uri", "", "redirect URI (the app's handler URL)")
	fs.StringVar(&f.scope, "scope", "", "comma-separated scope (crm,user,...)")
	fs.StringVar(&f.status, "status", "", "Bitrix app status: L (local, default), F, P, T, D, S")
	if update {
		fs.BoolVar(&f.active, "active", true, "whether the client may authenticate and its tokens are valid")
	}
	fs.StringVar(&f.prefix, "token-prefix", "", "prefix of this client's tokens (empty = the server's --token-prefix)")
	fs.DurationVar(&f.accessTTL, "access-ttl", 0, "this client's access token lifetime (0 = the server's --access-ttl)")
	fs.DurationVar(&f.refreshTTL, "refresh-ttl", 0, "this client's refresh token lifetime (0 = the server's --refresh-ttl)")
	fs.DurationVar(&f.codeTTL, "code-ttl", 0, "this client's authorization code lifetime (0 = the server's --code-ttl)")
}

func secondsOf(d time.Duration) int64 { return int64(d / time.Second) }

// admin dials the admin API and returns a client, the authenticated
// context and a closer.
func admin(ctx context.Context, c *config) (adminv1.AdminClient, context.Context, func(), error) {
	conn, actx, err := dialAdmin(ctx, c)
	if err != nil {
		return nil, nil, nil, err
	}
	actx, cancel := context.WithTimeout(actx, 30*time.Second)
	return adminv1.NewAdminClient(conn), actx, func() { cancel(); conn.Close() }, nil
}

func oneID(name string, pos []string) (string, error) {
	if len(pos) != 1 || pos[0] == "" {
		return "", cmdline.Usagef("%s: want exactly one client id", name)
	}
	return pos[0], nil
}

func clientAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	var id, kind string
	var asJSON bool
	c, pos, err := parseCLI("client add", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		f.register(fs, false)
		fs.StringVar(&id, "id", "", "client id (empty = generated, local.<uniqid>)")
		fs.StringVar(&kind, "kind", "", "app (default) or portal")
		fs.BoolVar(&asJSON, "json", false, `print {"client_id": ..., "client_secret": ...}`)
	})
	if err != nil {
		return err
	}
	if err := noArgs("client add", pos); err != nil {
		return err
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	resp, err := cl.CreateClient(actx, &adminv1.CreateClientRequest{ClientId: id, Name: f.name, RedirectUri: f.redirectURI, Scope: f.scope,
		Status: f.status, Kind: kind, TokenPrefix: f.prefix, AccessTtl: secondsOf(f.accessTTL), RefreshTtl: secondsOf(f.refreshTTL), CodeTtl: secondsOf(f.codeTTL)})
	if err != nil {
		return cliError(err)
	}
	return printSecret(stdout, asJSON, resp)
}

func printSecret(w io.Writer, asJSON bool, resp *adminv1.CreateClientResponse) error {
	if asJSON {
		return printJSON(w, map[string]string{"client_id": resp.ClientId, "client_secret": resp.ClientSecret})
	}
	_, err := fmt.Fprintf(w, "client_id:     %s\nclient_secret: %s\n(the secret is shown only now; only its hash is stored)\n", resp.ClientId, resp.ClientSecret)
	return err
}

func clientList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var kind, portalID string
	var asJSON bool
	c, pos, err := parseCLI("client list", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fs.StringVar(&kind, "kind", "", "only this kind: app or portal")
		fs.StringVar(&portalID, "portal", "", "only apps of this portal (its client_id)")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if err := noArgs("client list", pos); err != nil {
		return err
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	resp, err := cl.ListClients(actx, &adminv1.ListClientsRequest{Kind: kind, Portal: portalID})
	if err != nil {
		return cliError(err)
	}
	if asJSON {
		out := make([]clientJSON, 0, len(resp.Clients))
		for _, x := range resp.Clients {
			out = append(out, clientOut(x))
		}
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tKIND\tSTATUS\tACTIVE\tSCOPE\tNAME")
	for _, x := range resp.Clients {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", x.ClientId, x.Kind, x.Status, x.Active, x.Scope, x.Name)
	}
	return tw.Flush()
}

func clientShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return withOneClient(ctx, "client show", "print JSON", args, stdout, stderr,
		func(ctx context.Context, cl adminv1.AdminClient, id string, asJSON bool) error {
			x, err := cl.GetClient(ctx, &adminv1.GetClientRequest{ClientId: id})
			if err != nil {
				return cliError(err)
			}
			if asJSON {
				return printJSON(stdout, clientOut(x))
			}
			printClient(stdout, x)
			return nil
		})
}

// withOneClient parses the flags of a command that takes exactly one
// client id and --json, dials the admin API and calls run with the
// authenticated context.
func withOneClient(ctx context.Context, name, jsonUsage string, args []string, stdout, stderr io.Writer,
	run func(ctx context.Context, cl adminv1.AdminClient, id string, asJSON bool) error) error {
	var asJSON bool
	c, pos, err := parseCLI(name, args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, jsonUsage)
	})
	if err != nil {
		return err
	}
	id, err := oneID(name, pos)
	if err != nil {
		return err
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	return run(actx, cl, id, asJSON)
}

func clientUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	var asJSON bool
	var fset *flag.FlagSet
	c, p, err := parseCLIFlags("client update", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fset = fs
		f.register(fs, true)
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	id, err := oneID("client update", p.Args)
	if err != nil {
		return err
	}
	req := &adminv1.UpdateClientRequest{ClientId: id}
	n := 0
	fset.VisitAll(func(fl *flag.Flag) {
		if !p.Given(fl.Name) {
			return
		}
		n++
		switch fl.Name {
		case "name":
			req.Name = &f.name
		case "redirect-uri":
			req.RedirectUri = &f.redirectURI
		case "scope":
			req.Scope = &f.scope
		case "status":
			req.Status = &f.status
		case "token-prefix":
			req.TokenPrefix = &f.prefix
		case "active":
			req.Active = &f.active
		case "access-ttl":
			v := secondsOf(f.accessTTL)
			req.AccessTtl = &v
		case "refresh-ttl":
			v := secondsOf(f.refreshTTL)
			req.RefreshTtl = &v
		case "code-ttl":
			v := secondsOf(f.codeTTL)
			req.CodeTtl = &v
		default:
			n--
		}
	})
	if n == 0 {
		return cmdline.Usagef("client update: nothing to change (give --name, --scope, --active=false, ...)")
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	x, err := cl.UpdateClient(actx, req)
	if err != nil {
		return cliError(err)
	}
	if asJSON {
		return printJSON(stdout, clientOut(x))
	}
	printClient(stdout, x)
	return nil
}

func clientDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return withOneClient(ctx, "client delete", "print JSON", args, stdout, stderr,
		func(ctx context.Context, cl adminv1.AdminClient, id string, asJSON bool) error {
			if _, err := cl.DeleteClient(ctx, &adminv1.DeleteClientRequest{ClientId: id}); err != nil {
				return cliError(err)
			}
			if asJSON {
				return printJSON(stdout, map[string]any{"client_id": id, "deleted": true})
			}
			_, err := fmt.Fprintf(stdout, "deleted %s (its tokens are revoked)\n", id)
			return err
		})
}

func clientRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return withOneClient(ctx, "client rotate-secret", `print {"client_id": ..., "client_secret": ...}`, args, stdout, stderr,
		func(ctx context.Context, cl adminv1.AdminClient, id string, asJSON bool) error {
			resp, err := cl.RotateSecret(ctx, &adminv1.RotateSecretRequest{ClientId: id})
			if err != nil {
				return cliError(err)
			}
			return printSecret(stdout, asJSON, resp)
		})
}

// paramFlag collects repeated --param KEY=VALUE.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }
func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	p[k] = v
	return nil
}

func tokenIssue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var clientID, scope, portalID string
	var user int64
	var noRefresh, asJSON bool
	params := paramFlag{}
	c, pos, err := parseCLI("token issue", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fs.StringVar(&clientID, "client", "", "client_id (required)")
		fs.Int64Var(&user, "user", 0, "portal user id the token acts as")
		fs.StringVar(&scope, "scope", "", "comma-separated scope; empty = the client's whole scope")
		fs.StringVar(&portalID, "portal", "", "portal client_id the token is for (empty = the app's portal)")
		fs.Var(params, "param", "token parameter KEY=VALUE (repeatable), e.g. --param LOCAL_USER=1")
		fs.BoolVar(&noRefresh, "no-refresh", false, "issue an access token only")
		fs.BoolVar(&asJSON, "json", false, "print the /oauth/token/ JSON")
	})
	if err != nil {
		return err
	}
	if clientID == "" && len(pos) == 1 {
		clientID = pos[0]
	}
	if clientID == "" {
		return cmdline.Usagef("token issue: --client is required")
	}
	if _, ok := params["LOCAL_USER"]; !ok && user > 0 {
		params["LOCAL_USER"] = fmt.Sprint(user) // what the portal puts in every token
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	t, err := cl.IssueToken(actx, &adminv1.IssueTokenRequest{ClientId: clientID, UserId: user, Scope: scope, Parameters: params, Portal: portalID, NoRefresh: noRefresh})
	if err != nil {
		return cliError(err)
	}
	out := oauth.TokenResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expires: t.Expires, ExpiresIn: t.ExpiresIn,
		Scope: t.Scope, Domain: t.Domain, ServerEndpoint: t.ServerEndpoint, ClientEndpoint: t.ClientEndpoint, MemberID: t.MemberId,
		Status: t.Status, UserID: t.UserId}
	if asJSON {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "access_token:\t%s\n", out.AccessToken)
	if out.RefreshToken != "" {
		fmt.Fprintf(tw, "refresh_token:\t%s\n", out.RefreshToken)
	}
	fmt.Fprintf(tw, "expires:\t%s (in %ds)\nscope:\t%s\nserver_endpoint:\t%s\n", time.Unix(out.Expires, 0).UTC().Format(time.RFC3339), out.ExpiresIn, out.Scope, out.ServerEndpoint)
	return tw.Flush()
}

func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var clientID string
	var user int64
	var asJSON bool
	c, pos, err := parseCLI("token list", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fs.StringVar(&clientID, "client", "", "client_id")
		fs.Int64Var(&user, "user", 0, "portal user id")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if err := noArgs("token list", pos); err != nil {
		return err
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	resp, err := cl.ListTokens(actx, &adminv1.ListTokensRequest{ClientId: clientID, UserId: user})
	if err != nil {
		return cliError(err)
	}
	type rec struct {
		Kind      string `json:"kind"`
		Signature string `json:"signature"`
		ClientID  string `json:"client_id"`
		UserID    int64  `json:"user_id"`
		Scope     string `json:"scope"`
		IssuedAt  int64  `json:"issued_at"`
		Expires   int64  `json:"expires"`
	}
	if asJSON {
		out := make([]rec, 0, len(resp.Tokens))
		for _, t := range resp.Tokens {
			out = append(out, rec{t.Kind, t.Signature, t.ClientId, t.UserId, t.Scope, t.IssuedAt, t.Expires})
		}
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSIGNATURE\tCLIENT_ID\tUSER\tSCOPE\tEXPIRES")
	for _, t := range resp.Tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.Kind, t.Signature, t.ClientId, t.UserId, t.Scope, time.Unix(t.Expires, 0).UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func tokenIntrospect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, pos, err := parseCLI("token introspect", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the RFC 7662 JSON")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cmdline.Usagef("token introspect: want exactly one token")
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	in, err := cl.Introspect(actx, &adminv1.IntrospectRequest{Token: pos[0]})
	if err != nil {
		return cliError(err)
	}
	if !in.Active {
		if asJSON {
			return printJSON(stdout, map[string]bool{"active": false})
		}
		_, err := fmt.Fprintln(stdout, "active: false")
		return err
	}
	out := map[string]any{"active": true, "scope": in.Scope, "client_id": in.ClientId, "token_type": in.TokenType, "exp": in.Exp,
		"iat": in.Iat, "sub": in.Sub, "user_id": in.UserId, "status": in.Status, "portal": in.Portal, "parameters": in.Parameters}
	if asJSON {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "active:\ttrue\ntoken_type:\t%s\nclient_id:\t%s\nuser_id:\t%d\nscope:\t%s\nstatus:\t%s\nexpires:\t%s\n",
		in.TokenType, in.ClientId, in.UserId, in.Scope, in.Status, time.Unix(in.Exp, 0).UTC().Format(time.RFC3339))
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var clientID string
	var user int64
	var asJSON bool
	c, pos, err := parseCLI("token revoke", args, stdout, stderr, viaAPI, func(fs *flag.FlagSet) {
		fs.StringVar(&clientID, "client", "", "revoke every token of this client_id (instead of one TOKEN)")
		fs.Int64Var(&user, "user", 0, "with --client: only this user's tokens")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if (clientID == "") == (len(pos) == 0) || len(pos) > 1 {
		return cmdline.Usagef("token revoke: give one TOKEN, or --client [--user]")
	}
	cl, actx, done, err := admin(ctx, c)
	if err != nil {
		return err
	}
	defer done()
	if clientID != "" {
		resp, err := cl.RevokeTokens(actx, &adminv1.RevokeTokensRequest{ClientId: clientID, UserId: user})
		if err != nil {
			return cliError(err)
		}
		if asJSON {
			return printJSON(stdout, map[string]int64{"revoked": resp.Revoked})
		}
		_, err = fmt.Fprintf(stdout, "revoked %d tokens\n", resp.Revoked)
		return err
	}
	if _, err := cl.Revoke(actx, &adminv1.RevokeRequest{Token: pos[0]}); err != nil {
		return cliError(err)
	}
	if asJSON {
		return printJSON(stdout, map[string]bool{"revoked": true})
	}
	_, err = fmt.Fprintln(stdout, "revoked (with its refresh chain, if the token was known)")
	return err
}
