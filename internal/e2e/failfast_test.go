package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// serverArgs are the listeners of each service on free ports.
var serverArgs = map[string][]string{
	authproviderPkg: freeArgs("http-addr", "grpc-addr", "admin-addr"),
	eventrelayPkg:   freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"),
}

// TestBadDataDirFailsAtOnce: an unreadable data dir made eventrelay hang
// 30 s, ignore SIGTERM and then say "embedded server not ready after 30s".
// Now both services exit at once naming the path and the reason.
func TestBadDataDirFailsAtOnce(t *testing.T) {
	for _, pkg := range []string{authproviderPkg, eventrelayPkg} {
		bin := testkit.Build(t, pkg)
		dir := t.TempDir()
		file := filepath.Join(dir, "not-a-dir")
		os.WriteFile(file, []byte("x"), 0o600)
		r := runBin(t, dir, bin, nil, append(serverArgs[pkg], "--data-dir", file)...)
		if r.code != 1 || !strings.Contains(r.stderr, file) || !strings.Contains(r.stderr, "not a directory") {
			t.Errorf("%s --data-dir FILE: exit %d, %q", filepath.Base(pkg), r.code, r.stderr)
		}

		// A directory the service's user cannot write: run the service as
		// nobody (the tests run as root, which permissions do not stop).
		shared := t.TempDir()
		os.Chmod(filepath.Dir(shared), 0o755)
		os.Chmod(shared, 0o755)
		copyBin := filepath.Join(shared, filepath.Base(pkg))
		b, _ := os.ReadFile(bin)
		os.WriteFile(copyBin, b, 0o755)
		locked := filepath.Join(shared, "data")
		os.Mkdir(locked, 0o755) // owned by root: nobody may read, not write
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, copyBin, append(serverArgs[pkg], "--data-dir", locked)...)
		cmd.Dir = shared
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		} else {
			os.Chmod(locked, 0o500)
		}
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%s on an unwritable data dir did not exit:\n%s", filepath.Base(pkg), out)
		}
		if err == nil || !strings.Contains(string(out), locked) || !strings.Contains(string(out), "not writable") {
			t.Errorf("%s on an unwritable data dir: %v\n%s", filepath.Base(pkg), err, out)
		}
	}
}

// TestStartLogNamesServiceVersionDataDirAndDatabase, and a new data dir
// (a mistyped --data-dir comes with new keys) is said at warn level.
func TestStartLogNamesServiceVersionDataDirAndDatabase(t *testing.T) {
	for _, pkg := range []string{authproviderPkg, eventrelayPkg} {
		dir := t.TempDir()
		data := filepath.Join(dir, "typo")
		p := testkit.Start(t, dir, testkit.Build(t, pkg), append(serverArgs[pkg], "--data-dir", data), "admin")
		logs := p.Logs()
		want := []string{`"msg":"starting"`, `"service":"` + filepath.Base(pkg) + `"`, `"version":"dev"`, `"data_dir":"` + data + `"`,
			`"level":"WARN","msg":"created a new, empty data dir`}
		if pkg == authproviderPkg {
			want = append(want, `"database":"sqlite `+filepath.Join(data, "authprovider.db")+`"`)
		} else {
			want = append(want, `"nats":"embedded"`)
		}
		for _, w := range want {
			if !strings.Contains(logs, w) {
				t.Errorf("%s start log lacks %s:\n%s", filepath.Base(pkg), w, logs)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p.Stop(ctx)
		cancel()
		// The second start on the same dir is quiet about it.
		p = testkit.Start(t, dir, testkit.Build(t, pkg), append(serverArgs[pkg], "--data-dir", data), "admin")
		if strings.Contains(p.Logs(), "created a new") {
			t.Errorf("%s: second start says it created the data dir", filepath.Base(pkg))
		}
	}
}

// TestOlderBinaryRefusesNewerSchema: an old binary started on a database
// with a newer migration.
func TestOlderBinaryRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "data", "authprovider.db")
	db := testkit.OpenStore(t, "sqlite:"+dbPath)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES ('9000_next_release', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(context.Background(), "schema_migrated_by", "2.0.0"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := runBin(t, dir, testkit.Build(t, authproviderPkg), nil, serverArgs[authproviderPkg]...)
	if r.code != 1 || !strings.Contains(r.stderr, "9000_next_release") || !strings.Contains(r.stderr, "release 2.0.0") {
		t.Errorf("old binary on a newer schema: exit %d, %q", r.code, r.stderr)
	}
}
