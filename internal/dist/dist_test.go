package dist_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/dist"
)

// fakeRelease builds a tiny static Go program as both services' binaries
// (the real ones take minutes; the install test in scripts/ uses those).
func fakeRelease(t *testing.T) dist.Options {
	t.Helper()
	out := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\nfunc main() { println(\"isobox\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module fake\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := dist.BinaryPath(out, "amd64", "authprovider")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	other := dist.BinaryPath(out, "amd64", "eventrelay")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dist.Options{Version: "1.2.3", Commit: "abc", Date: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC),
		Root: root, Out: out, Arches: []string{"amd64"}}
}

func TestBuildMakesEveryArtefactAndSums(t *testing.T) {
	o := fakeRelease(t)
	made, err := dist.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"packages/isobox-authprovider_1.2.3-1_amd64.deb", "packages/isobox-eventrelay-1.2.3-1.x86_64.rpm",
		"images/isobox-authprovider_1.2.3_linux_amd64.tar", "isobox.connector-1.2.3.tar.gz",
		"isobox-1.2.3-offline.tar.gz", "SHA256SUMS",
	} {
		if !slices.Contains(made, want) {
			t.Errorf("Build made %v, no %s", made, want)
		}
	}
	// SHA256SUMS covers every artefact, and each sum is right.
	sums := readSums(t, filepath.Join(o.Out, "SHA256SUMS"))
	if len(sums) != len(made)-1 {
		t.Errorf("SHA256SUMS lists %d files, want %d", len(sums), len(made)-1)
	}
	for name, sum := range sums {
		if got := fileSum(t, filepath.Join(o.Out, name)); got != sum {
			t.Errorf("%s: SHA256SUMS says %s, file is %s", name, sum, got)
		}
	}

	// The module unpacks into /bitrix/modules/: one top directory isobox.connector/,
	// version.php stamped.
	mod := readTarGz(t, filepath.Join(o.Out, "isobox.connector-1.2.3.tar.gz"))
	for name := range mod {
		if !strings.HasPrefix(name, "isobox.connector/") {
			t.Errorf("module archive entry %q outside isobox.connector/", name)
		}
	}
	if v := mod["isobox.connector/install/version.php"]; !strings.Contains(v, "'VERSION' => '1.2.3'") || !strings.Contains(v, "'2026-12-03 14:00:00'") {
		t.Errorf("version.php not stamped:\n%s", v)
	}
	if _, ok := mod["isobox.connector/include.php"]; !ok {
		t.Error("module archive has no include.php")
	}

	// The bundle carries everything under isobox-1.2.3/ with its own correct SHA256SUMS.
	bundle := readTarGz(t, filepath.Join(o.Out, "isobox-1.2.3-offline.tar.gz"))
	inner := parseSums(t, bundle["isobox-1.2.3/SHA256SUMS"])
	for _, want := range []string{"INSTALL.md", "docs/operations.md", "docker-compose.yml", "deploy/nats.conf",
		"packages/isobox-authprovider_1.2.3-1_amd64.deb", "bin/linux_amd64/eventrelay", "isobox.connector-1.2.3.tar.gz"} {
		body, ok := bundle["isobox-1.2.3/"+want]
		if !ok {
			t.Errorf("bundle has no %s", want)
			continue
		}
		if inner[want] != sha256Hex(body) {
			t.Errorf("bundle SHA256SUMS for %s = %q, content is %s", want, inner[want], sha256Hex(body))
		}
	}
	if !strings.Contains(bundle["isobox-1.2.3/INSTALL.md"], "isobox/authprovider:1.2.3") ||
		!strings.Contains(bundle["isobox-1.2.3/INSTALL.md"], "docs/install.ru.md") {
		t.Error("INSTALL.md does not name the image tag and the Russian guide")
	}

	// The image loads as isobox/authprovider:1.2.3 and carries the binary.
	img := filepath.Join(o.Out, "images/isobox-authprovider_1.2.3_linux_amd64.tar")
	if err := dist.CheckImage(img, "authprovider", "1.2.3", "amd64", dist.BinaryPath(o.Out, "amd64", "authprovider")); err != nil {
		t.Fatal(err)
	}
	if err := dist.CheckImage(img, "authprovider", "9.9.9", "amd64", dist.BinaryPath(o.Out, "amd64", "authprovider")); err == nil {
		t.Error("CheckImage accepted the wrong tag")
	}
	if err := dist.CheckImage(img, "eventrelay", "1.2.3", "amd64", dist.BinaryPath(o.Out, "amd64", "authprovider")); err == nil {
		t.Error("CheckImage accepted the other service's image")
	}

	// Same inputs, same bytes: a second build is identical.
	o2 := o
	o2.Out = t.TempDir()
	for _, svc := range dist.Services() {
		b, _ := os.ReadFile(dist.BinaryPath(o.Out, "amd64", svc))
		os.MkdirAll(filepath.Dir(dist.BinaryPath(o2.Out, "amd64", svc)), 0o755)
		os.WriteFile(dist.BinaryPath(o2.Out, "amd64", svc), b, 0o755)
	}
	if _, err := dist.Build(context.Background(), o2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"isobox.connector-1.2.3.tar.gz", "images/isobox-authprovider_1.2.3_linux_amd64.tar", "packages/isobox-authprovider_1.2.3-1_amd64.deb"} {
		if fileSum(t, filepath.Join(o.Out, name)) != fileSum(t, filepath.Join(o2.Out, name)) {
			t.Errorf("%s differs between two builds of the same input", name)
		}
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	o := fakeRelease(t)
	for _, v := range []string{"", "v1.2.3", "1.2", "1.2.3 ", "latest"} {
		o.Version = v
		if _, err := dist.Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "x.y.z") {
			t.Errorf("version %q: err = %v, want one naming x.y.z", v, err)
		}
	}
	o.Version = "1.2.3"
	o.Arches = []string{"arm64"} // no arm64 binary built
	if _, err := dist.Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "make dist-bin") {
		t.Errorf("missing binary: err = %v, want one saying to run make dist-bin", err)
	}
	o.Arches = []string{"amd64"}
	// A non-Go, non-static file in place of a binary is refused.
	if err := os.WriteFile(dist.BinaryPath(o.Out, "amd64", "eventrelay"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := dist.Build(context.Background(), o); err == nil {
		t.Error("Build packaged a shell script as eventrelay")
	}
}

// TestServiceBinariesDoNotLinkTheBuilder: nfpm and go-containerregistry stay
// in the release builder.
func TestServiceBinariesDoNotLinkTheBuilder(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../../cmd/authprovider", "../../cmd/eventrelay").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, bad := range []string{"github.com/goreleaser/", "github.com/google/go-containerregistry", "github.com/isobox/isobox/internal/dist"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("a service binary depends on %s", bad)
		}
	}
}

func readSums(t *testing.T, path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseSums(t, string(b))
}

func parseSums(t *testing.T, s string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("bad SHA256SUMS line %q", sc.Text())
		}
		m[name] = sum
	}
	if len(m) == 0 {
		t.Fatal("empty SHA256SUMS")
	}
	return m
}

func fileSum(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(string(b))
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func readTarGz(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	m := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		m[h.Name] = string(b)
	}
}
