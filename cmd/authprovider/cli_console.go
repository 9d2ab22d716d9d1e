package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/isobox/isobox/internal/console"
	"github.com/isobox/isobox/internal/store"
)

// addConsoleCommands adds `console user ...` and `audit export`. They work
// on the database directly, as `portal ...` does: the first console user
// is created before anyone can log in.
func addConsoleCommands(cmds map[string]command) {
	cmds["console"] = command{Summary: "manage web console users", Run: subcommands("console", map[string]command{
		"user": {Summary: "add, list or remove console users", Run: subcommands("console user", map[string]command{
			"add":    {Summary: "create a user or set its role and password (--name, --role admin|viewer; password from stdin)", Run: consoleUserAdd},
			"list":   {Summary: "list console users", Run: consoleUserList},
			"remove": {Summary: "delete a console user and end its sessions (--name)", Run: consoleUserRemove},
		})},
	})}
	cmds["audit"] = command{Summary: "export the audit log", Run: subcommands("audit", map[string]command{
		"export": {Summary: "print the audit log as JSON lines, oldest first (--since 24h|RFC3339)", Run: auditExport},
	})}
}

func openDB(ctx context.Context, c *config) (*store.DB, error) {
	if err := checkCLIDatabase(c); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, c.dsn())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// cliActor names who ran a CLI command, for the audit log.
func cliActor(getenv func(string) string) string {
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if v := getenv(k); v != "" {
			return v
		}
	}
	return "unknown"
}

// readPassword reads the new password: from the terminal twice without
// echo, or the first line of stdin when it is not a terminal (scripts:
// `printf '%s\n' "$PW" | authprovider console user add ...`). Never argv.
func readPassword(stderr io.Writer) (string, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(stderr, "password: ")
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "again: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func consoleUserAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name, role string
	c, _, err := parseCLI("console user add", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "user name (letters, digits, . _ @ -)")
		fs.StringVar(&role, "role", console.RoleViewer, "admin (may change things) or viewer (may only look)")
	})
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("console user add: --name is required")
	}
	if role != console.RoleAdmin && role != console.RoleViewer {
		return fmt.Errorf("console user add: --role %q: want admin or viewer", role)
	}
	pw, err := readPassword(stderr)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	created, err := console.NewUsers(db).Put(ctx, name, role, pw)
	if err != nil {
		return err
	}
	action, verb := "user.update", "updated (its sessions ended)"
	if created {
		action, verb = "user.create", "created"
	}
	if err := console.NewAudit(db).Record(ctx, console.Entry{Source: console.SourceCLI, Actor: cliActor(os.Getenv), Action: action, Target: name, Detail: "role=" + role}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "console user %s %s, role %s\n", name, verb, role)
	return nil
}

func consoleUserList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	c, _, err := parseCLI("console user list", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	us, err := console.NewUsers(db).List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if us == nil {
			us = []console.User{}
		}
		return printJSON(stdout, us)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func consoleUserRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name string
	c, _, err := parseCLI("console user remove", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "user name")
	})
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("console user remove: --name is required")
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := console.NewUsers(db).Delete(ctx, name); err != nil {
		return err
	}
	if err := console.NewAudit(db).Record(ctx, console.Entry{Source: console.SourceCLI, Actor: cliActor(os.Getenv), Action: "user.delete", Target: name}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "console user %s removed\n", name)
	return nil
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var since string
	c, _, err := parseCLI("audit export", args, stdout, stderr, viaDB, func(fs *flag.FlagSet) {
		fs.StringVar(&since, "since", "", "only entries since: a duration ago (24h) or an RFC 3339 time; default all")
	})
	if err != nil {
		return err
	}
	var f console.AuditFilter
	if since != "" {
		if d, err := time.ParseDuration(since); err == nil {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, since); err == nil {
			f.Since = t
		} else {
			return fmt.Errorf("audit export: --since %q: want a duration or an RFC 3339 time", since)
		}
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = console.NewAudit(db).Export(ctx, stdout, f)
	return err
}
