package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isobox/isobox/internal/cmdline"
	"github.com/isobox/isobox/internal/oauth"
	"github.com/isobox/isobox/internal/portal"
	"github.com/isobox/isobox/internal/store"
)

// addPortalCommands adds `portal ...`. They work on the database directly
// (the same --db / --data-dir as the server), not through the admin API:
// an administrator sets a portal up before the first start, and approving
// a host must not depend on the server running. A running server sees the
// changes at once, except cached portal credentials (up to
// --portal-auth-cache-ttl after `portal remove`).
func addPortalCommands(cmds map[string]command) {
	cmds["portal"] = command{Summary: "manage portals: allow HOST, rebind, add, update, list, remove", Run: subcommands("portal", map[string]command{
		"allow":     {Summary: "approve a portal host for one registration at /oauth/register/ (--host, --expires, --licence-key-file, --permanent)", Run: portalAllow},
		"rebind":    {Summary: "let the next registration from a registered host take over its portal and apps, once (--host)", Run: portalRebind},
		"update":    {Summary: "move a portal to a new address (--id, --host, --scheme)", Run: portalUpdate},
		"disallow":  {Summary: "withdraw a host's approval (--host)", Run: portalDisallow},
		"allowlist": {Summary: "list approved hosts", Run: portalAllowlist},
		"add":       {Summary: "create portal credentials directly (--host, --scheme); prints them once", Run: portalAdd},
		"list":      {Summary: "list registered portals", Run: portalList},
		"remove":    {Summary: "delete a portal, its apps and their tokens (--id)", Run: portalRemove},
	})}
}

// openRegistry opens the configured database and the portal registry on it.
func openRegistry(ctx context.Context, c *config) (*portal.Registry, *oauth.Service, func(), error) {
	if err := checkCLIDatabase(c); err != nil {
		return nil, nil, nil, err
	}
	db, err := store.Open(ctx, c.dsn())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open database: %w", err)
	}
	svc, err := oauth.New(db, oauth.Config{TokenPrefix: c.TokenPrefix, PublicURL: c.PublicURL}, nil)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return portal.NewRegistry(db, svc, nil), svc, func() { db.Close() }, nil
}

func portalAllow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return approve(ctx, "portal allow", false, args, stdout, stderr)
}

func portalRebind(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return approve(ctx, "portal rebind", true, args, stdout, stderr)
}

// approve is `portal allow` and `portal rebind`: both record an approval
// for the next registration from a host; rebind's also lets it take over
// the portal registered there.
func approve(ctx context.Context, name string, rebind bool, args []string, stdout, stderr io.Writer) error {
	var host, note, key, keyFile string
	once, permanent, asJSON := true, false, false
	var expires time.Duration
	c, pos, err := parseCLI(name, args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&key, "licence-key", "", "also require the portal's licence key (LICENSE_KEY): the registration must be signed with it")
		fs.StringVar(&keyFile, "licence-key-file", "", "read --licence-key from this file (the portal's bitrix/license_key.php works: the key is taken from it)")
		fs.StringVar(&host, "host", "", "portal host as in its address bar (portal.example.local[:port])")
		fs.DurationVar(&expires, "expires", 0, "the approval lapses after this long (0 = never)")
		fs.StringVar(&note, "note", "", "a note for the allowlist")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		if !rebind {
			fs.BoolVar(&once, "once", true, "one-time enrollment (the default; kept for old scripts)")
			fs.BoolVar(&permanent, "permanent", false, "keep the approval after a registration: whoever reaches /oauth/register/ first may register the host whenever no portal is registered there (prints a warning)")
		}
	})
	if err != nil {
		return err
	}
	if host == "" && len(pos) == 1 {
		host = pos[0]
	}
	if host == "" {
		return cmdline.Usagef("%s: --host is required", name)
	}
	if !once && !permanent {
		return cmdline.Usagef("%s: --once=false: say --permanent for an approval that outlives a registration", name)
	}
	if keyFile != "" {
		if key, err = readLicenceKey(keyFile); err != nil {
			return err
		}
	}
	reg, _, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	a, err := reg.Allow(ctx, portal.Approval{Host: host, Permanent: permanent, Rebind: rebind, TTL: expires, Note: note, LicenceKey: key})
	if err != nil {
		return err
	}
	if permanent {
		fmt.Fprintf(stderr, "warning: the approval of %s is permanent: whenever no portal is registered on %s, the first caller that reaches /oauth/register/ registers it%s. Prefer a one-time approval (no --permanent).\n",
			a.Host, a.Host, map[bool]string{false: " (add --licence-key-file to require the portal's licence key)"}[a.Licence])
	}
	if asJSON {
		return printJSON(stdout, allowedJSON(a))
	}
	what := "registration"
	if rebind {
		what = "re-registration that takes over the portal registered there and its apps"
	}
	fmt.Fprintf(stdout, "approved %s for one %s%s%s%s\n", a.Host, what, map[bool]string{false: " (permanent)"}[a.Once],
		map[bool]string{true: " (licence key required)"}[a.Licence], expiresText(a.Expires))
	return nil
}

func portalUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var id, host, scheme string
	c, pos, err := parseCLI("portal update", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "the portal's client_id (bx.…)")
		fs.StringVar(&host, "host", "", "the portal's new host as in its address bar (portal.example.local[:port])")
		fs.StringVar(&scheme, "scheme", "", "http or https (empty = keep the current one), for client_endpoint")
	})
	if err != nil {
		return err
	}
	if id == "" && len(pos) == 1 {
		id = pos[0]
	}
	if id == "" || host == "" {
		return cmdline.Usagef("portal update: --id and --host are required")
	}
	reg, _, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	p, err := reg.Move(ctx, id, scheme, host)
	if err != nil {
		if errors.Is(err, oauth.ErrNotFound) {
			return fmt.Errorf("portal update: no portal %q", id)
		}
		return fmt.Errorf("portal update: %w", err)
	}
	fmt.Fprintf(stdout, "portal %s is now at %s (running servers use it within --portal-auth-cache-ttl)\n", p.ID, p.RedirectURI)
	return nil
}

// licenceKeyRe finds the key in the portal's bitrix/license_key.php
// (<? $LICENSE_KEY = "…"; ?>); a file holding just the key works too.
var licenceKeyRe = regexp.MustCompile(`\$LICENSE_KEY\s*=\s*["']([^"']+)["']`)

func readLicenceKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("licence key: %w", err)
	}
	if m := licenceKeyRe.FindSubmatch(b); m != nil {
		return string(m[1]), nil
	}
	key := strings.TrimSpace(string(b))
	if key == "" || strings.ContainsAny(key, "<>;\n") {
		return "", fmt.Errorf("licence key: %s holds neither a key nor $LICENSE_KEY = \"…\"", path)
	}
	return key, nil
}

func expiresText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " until " + t.UTC().Format(time.RFC3339)
}

type allowedOut struct {
	Host      string `json:"host"`
	Once      bool   `json:"once"`
	Rebind    bool   `json:"rebind,omitempty"`
	Licence   bool   `json:"licence_key_required"`
	Expires   string `json:"expires,omitempty"`
	Note      string `json:"note,omitempty"`
	CreatedAt string `json:"created_at"`
}

func allowedJSON(a portal.Allowed) allowedOut {
	o := allowedOut{Host: a.Host, Once: a.Once, Rebind: a.Rebind, Licence: a.Licence, Note: a.Note, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339)}
	if !a.Expires.IsZero() {
		o.Expires = a.Expires.UTC().Format(time.RFC3339)
	}
	return o
}

func portalDisallow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var host string
	c, pos, err := parseCLI("portal disallow", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&host, "host", "", "portal host")
	})
	if err != nil {
		return err
	}
	if host == "" && len(pos) == 1 {
		host = pos[0]
	}
	if host == "" {
		return cmdline.Usagef("portal disallow: --host is required")
	}
	reg, _, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := reg.Disallow(ctx, host); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("portal disallow: %s is not on the allowlist", host)
		}
		return err
	}
	fmt.Fprintf(stdout, "withdrew %s\n", portal.NormalizeHost(host))
	return nil
}

func portalAllowlist(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, pos, err := parseCLI("portal allowlist", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if err := noArgs("portal allowlist", pos); err != nil {
		return err
	}
	reg, _, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	list, err := reg.Allowlist(ctx)
	if err != nil {
		return err
	}
	out := make([]allowedOut, 0, len(list))
	for _, a := range list {
		out = append(out, allowedJSON(a))
	}
	if asJSON {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tONCE\tREBIND\tLICENCE\tEXPIRES\tNOTE")
	for _, a := range out {
		fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%s\t%s\n", a.Host, a.Once, a.Rebind, a.Licence, a.Expires, a.Note)
	}
	return tw.Flush()
}

type portalOut struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	Host         string `json:"host"`
	RedirectURI  string `json:"redirect_uri"`
	MemberID     string `json:"member_id"`
	Active       bool   `json:"active"`
	Apps         int    `json:"apps"`
	CreatedAt    string `json:"created_at"`
}

func portalAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var host, scheme string
	var asJSON bool
	c, pos, err := parseCLI("portal add", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&host, "host", "", "portal host as in its address bar (portal.example.local[:port])")
		fs.StringVar(&scheme, "scheme", "https", "scheme the portal is opened with (http or https), for client_endpoint")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if host == "" && len(pos) == 1 {
		host = pos[0]
	}
	if host == "" {
		return cmdline.Usagef("portal add: --host is required")
	}
	if scheme != "http" && scheme != "https" {
		return fmt.Errorf("portal add: --scheme: want http or https, got %q", scheme)
	}
	reg, _, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	r, err := reg.Add(ctx, scheme+"://"+portal.NormalizeHost(host), "", "")
	if err != nil {
		return err
	}
	out := portalOut{ClientID: r.Client.ID, ClientSecret: r.Secret, Host: r.Client.Host, RedirectURI: r.Client.RedirectURI,
		MemberID: oauth.MemberID(r.Client.ID), Active: true, CreatedAt: r.Client.CreatedAt.UTC().Format(time.RFC3339)}
	if asJSON {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "portal %s created. Set these options on the portal (module rest), the secret is shown only now:\n", out.Host)
	fmt.Fprintf(stdout, "  service_client_id     = %s\n  service_client_secret = %s\n", out.ClientID, out.ClientSecret)
	return nil
}

func portalList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, pos, err := parseCLI("portal list", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if err := noArgs("portal list", pos); err != nil {
		return err
	}
	reg, svc, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	ps, err := reg.Portals(ctx)
	if err != nil {
		return err
	}
	out := make([]portalOut, 0, len(ps))
	for _, p := range ps {
		apps, err := svc.ListClients(ctx, oauth.KindApp, p.ID)
		if err != nil {
			return err
		}
		out = append(out, portalOut{ClientID: p.ID, Host: p.Host, RedirectURI: p.RedirectURI, MemberID: oauth.MemberID(p.ID),
			Active: p.Active, Apps: len(apps), CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339)})
	}
	if asJSON {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tHOST\tAPPS\tACTIVE\tCREATED")
	for _, p := range out {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\n", p.ClientID, p.Host, p.Apps, p.Active, p.CreatedAt)
	}
	return tw.Flush()
}

func portalRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var id string
	c, pos, err := parseCLI("portal remove", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "the portal's client_id (bx.…)")
	})
	if err != nil {
		return err
	}
	if id == "" && len(pos) == 1 {
		id = pos[0]
	}
	if id == "" {
		return cmdline.Usagef("portal remove: --id is required")
	}
	reg, _, closeDB, err := openRegistry(ctx, c)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := reg.Remove(ctx, id); err != nil {
		if errors.Is(err, oauth.ErrNotFound) {
			return fmt.Errorf("portal remove: no portal %q", id)
		}
		return err
	}
	fmt.Fprintf(stdout, "removed portal %s, its apps and their tokens\n", id)
	return nil
}
