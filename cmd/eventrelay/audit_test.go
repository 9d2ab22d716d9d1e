package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
)

func (r *opsRelay) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(r.bin, append(args, "--grpc-addr", r.p.Addr("grpc"), "--data-dir", r.data)...).CombinedOutput()
	if err != nil {
		t.Fatalf("eventrelay %v: %v\n%s", args, err, out)
	}
	return string(out)
}

type auditLine struct {
	ID, Service, Source, Actor, Action, Target, Detail, Remote string
	At                                                         time.Time
	Seq                                                        uint64
}

// Every change through the relay's admin API is in its audit log — who,
// what, when, from where — whether it came from the CLI (the OS user),
// the REST gateway (the HTTP client) or the console (its user and the
// user's address); reads are not; the log is listed newest first and
// exported as JSON lines, oldest first.
func TestRelayAuditRecordsCLIRESTAndConsoleChanges(t *testing.T) {
	r := startOpsRelay(t, "audit-test-signature-key-0123456789")
	board := "0123456789abcdef0123456789abcdef"

	// REST: a test message.
	if code := r.call(t, r.key, "POST", "/v1/relay/push/test", map[string]any{"channel": board}, nil); code != 200 {
		t.Fatalf("test push: %d", code)
	}
	// CLI: a dead-letter replay and a signing secret rotation.
	r.cli(t, "dlq", "replay", "--yes")
	r.cli(t, "secrets", "rotate", "--portal", "bx.portal1", "--client-id", "local.app1")
	// The console: its user and the user's address, over gRPC.
	conn, err := grpc.NewClient(r.p.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.key, "x-isobox-source", "console", "x-isobox-actor", "alice <b>", "x-isobox-remote", "10.1.2.3")
	if _, err := relayv1.NewRelayOpsClient(conn).SendTestPush(cctx, &relayv1.SendTestPushRequest{Channel: board, Text: "from the console"}); err != nil {
		t.Fatal(err)
	}
	// Reads change nothing and are not recorded; a refused call neither.
	r.call(t, r.key, "GET", "/v1/relay/settings", nil, nil)
	r.call(t, r.key, "GET", "/v1/relay/push/devices", nil, nil)
	r.call(t, "wrong", "POST", "/v1/relay/dlq/replay", map[string]any{}, nil)
	if code := r.call(t, "", "GET", "/v1/relay/audit", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("audit without key: %d", code)
	}

	var list struct {
		Entries []struct {
			Source, Actor, Action, Target, Detail, Remote string
			AtMs                                          string `json:"at_ms"`
		} `json:"entries"`
	}
	if code := r.call(t, r.key, "GET", "/v1/relay/audit", nil, &list); code != 200 || len(list.Entries) != 4 {
		t.Fatalf("audit: %d %+v; want 4 entries", code, list)
	}
	osUser := "cli"
	if u, err := user.Current(); err == nil && u.Username != "" {
		osUser = u.Username
	}
	want := [][4]string{ // newest first: source, actor, action, target
		{"console", "alice <b>", "push.test", board},
		{"cli", osUser, "signing-secret.rotate", "portal=bx.portal1 client_id=local.app1"},
		{"cli", osUser, "dlq.replay", "all handlers"},
		{"admin-api", "admin-key", "push.test", board},
	}
	for i, e := range list.Entries {
		if got := [4]string{e.Source, e.Actor, e.Action, e.Target}; got != want[i] {
			t.Errorf("entry %d: %v, want %v", i, got, want[i])
		}
		if e.AtMs == "" || e.AtMs == "0" {
			t.Errorf("entry %d has no time", i)
		}
	}
	if e := list.Entries[0]; e.Remote != "10.1.2.3 (console at 127.0.0.1)" || e.Detail != "1 subscribers" && e.Detail != "0 subscribers" {
		t.Errorf("console entry: remote %q detail %q", e.Remote, e.Detail)
	}
	if e := list.Entries[3]; e.Remote != "127.0.0.1 (REST gateway)" {
		t.Errorf("REST entry: remote %q", e.Remote)
	}
	if e := list.Entries[2]; e.Remote != "127.0.0.1" || e.Detail != "0 dead letters replayed" {
		t.Errorf("CLI entry: remote %q detail %q", e.Remote, e.Detail)
	}
	if !strings.HasPrefix(list.Entries[1].Detail, "previous signs until ") {
		t.Errorf("rotation detail %q", list.Entries[1].Detail)
	}
	var only struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if r.call(t, r.key, "GET", "/v1/relay/audit?actor=admin-key", nil, &only); len(only.Entries) != 1 {
		t.Errorf("actor filter: %d entries", len(only.Entries))
	}

	// Export: JSON lines, oldest first, resumable after a seq.
	var lines []auditLine
	sc := bufio.NewScanner(strings.NewReader(r.cli(t, "audit", "export")))
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 4 || lines[0].Action != "push.test" || lines[0].Source != "admin-api" || lines[3].Actor != "alice <b>" || lines[0].Service != "eventrelay" ||
		lines[0].At.IsZero() || lines[0].ID == "" || !(lines[0].Seq < lines[1].Seq && lines[1].Seq < lines[2].Seq && lines[2].Seq < lines[3].Seq) {
		t.Fatalf("export %+v", lines)
	}
	rest := strings.Count(r.cli(t, "audit", "export", "--after-seq", itoa(lines[1].Seq)), "\n")
	if rest != 2 {
		t.Errorf("export --after-seq %d: %d lines, want 2", lines[1].Seq, rest)
	}
	if out := r.cli(t, "audit", "list"); !strings.Contains(out, "signing-secret.rotate") || !strings.Contains(out, "ACTION") {
		t.Errorf("audit list:\n%s", out)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
