package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	adminv1 "github.com/isobox/isobox/api/isobox/admin/v1"
	"github.com/isobox/isobox/internal/console"
	"github.com/isobox/isobox/internal/testkit"
)

// Console users are created with the CLI, the password read from stdin
// (there is no flag for it); the creation, and every change made through
// the admin API, is in the audit log, which `audit export` prints as JSON
// lines.
func TestConsoleUsersAndAudit(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/authprovider")
	runBin := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--data-dir", data)...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = []string{"USER=alice"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := runBin("correct horse battery\n", "console", "user", "add", "--name", "ann", "--role", "admin"); err != nil || !strings.Contains(out, "ann created") {
		t.Fatalf("user add: %v %s", err, out)
	}
	if out, err := runBin("", "console", "user", "add", "--name", "bob", "--password", "correct horse battery"); err == nil {
		t.Fatalf("a password on the command line was accepted: %s", out)
	}
	if out, err := runBin("short\n", "console", "user", "add", "--name", "bob"); err == nil || !strings.Contains(out, "at least 12") {
		t.Fatalf("short password: %v %s", err, out)
	}
	out, err := runBin("", "console", "user", "list", "--json")
	var users []console.User
	if err != nil || json.Unmarshal([]byte(out), &users) != nil || len(users) != 1 || users[0].Name != "ann" || users[0].Role != "admin" {
		t.Fatalf("user list: %v %s", err, out)
	}

	p := testkit.Start(t, dir, bin, []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, "http", "grpc", "admin")
	c := cli{t: t, dataDir: data, grpc: p.Addr("grpc")}
	var created map[string]string
	c.json(&created, "client", "add", "--name", "Audited app", "--scope", "crm", "--redirect-uri", "https://app.lan/cb")
	if _, err := c.run("client", "list"); err != nil { // a read: not audited
		t.Fatal(err)
	}
	// The audit log's address is the peer's, whatever a caller claims
	// (the finding: the first X-Forwarded-For was recorded). Through the
	// REST gateway, with a forged X-Forwarded-For and a forged gateway
	// metadata header:
	key, err := os.ReadFile(filepath.Join(data, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPatch, "http://"+p.Addr("admin")+"/v1/clients/"+created["client_id"], strings.NewReader(`{"name":"Renamed over REST"}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Grpc-Metadata-X-Isobox-Gateway-Peer", "guess 7.7.7.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH over REST: %d", resp.StatusCode)
	}
	// and over gRPC with the same metadata forged:
	conn, err := grpc.NewClient(p.Addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+strings.TrimSpace(string(key)),
		"x-forwarded-for", "8.8.8.8", "x-isobox-gateway-peer", "guess 9.9.9.9")
	name := "Renamed over gRPC"
	if _, err := adminv1.NewAdminClient(conn).UpdateClient(gctx, &adminv1.UpdateClientRequest{ClientId: created["client_id"], Name: &name}); err != nil {
		t.Fatal(err)
	}

	out, err = runBin("", "audit", "export")
	if err != nil {
		t.Fatalf("audit export: %v %s", err, out)
	}
	var got []console.Entry
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e console.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit export line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if len(got) != 4 {
		t.Fatalf("audit export = %s", out)
	}
	if e := got[0]; e.Source != "cli" || e.Actor != "alice" || e.Action != "user.create" || e.Target != "ann" {
		t.Errorf("first entry %+v", e)
	}
	if e := got[1]; e.Source != "admin-api" || e.Action != "app.create" || !strings.Contains(e.Target, created["client_id"]) || e.Remote == "" {
		t.Errorf("second entry %+v (client %s)", e, created["client_id"])
	}
	if e := got[2]; e.Action != "app.update" || e.Remote != "127.0.0.1 (REST gateway)" {
		t.Errorf("REST gateway entry %+v: want the HTTP peer", e)
	}
	if e := got[3]; e.Action != "app.update" || e.Remote != "127.0.0.1" {
		t.Errorf("gRPC entry %+v: want the gRPC peer", e)
	}
	if strings.Contains(out, created["client_secret"]) {
		t.Errorf("the audit log holds a client secret")
	}
}
