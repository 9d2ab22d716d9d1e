package dist

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/isobox/isobox/packaging"
)

// SumsFile lists the SHA-256 of every artefact, in `sha256sum -c` format.
const SumsFile = "SHA256SUMS"

// ModuleDir is the PHP module's directory: the archive's top directory, so
// that it unpacks into /bitrix/modules/.
const ModuleDir = "isobox.connector"

// ModuleArchiveFile is the module archive's name.
func ModuleArchiveFile(version string) string { return ModuleDir + "-" + version + ".tar.gz" }

// BundleFile is the offline bundle's name; its top directory is isobox-<version>/.
func BundleFile(version string) string { return "isobox-" + version + "-offline.tar.gz" }

var moduleVersionRE = regexp.MustCompile(`('VERSION'\s*=>\s*')[^']*(')`)
var moduleDateRE = regexp.MustCompile(`('VERSION_DATE'\s*=>\s*')[^']*(')`)

// ModuleArchive writes isobox.connector-<version>.tar.gz from
// Root/bitrix-module/isobox.connector, with install/version.php stamped
// with the release's version and date (Bitrix compares these on update).
func ModuleArchive(o Options) (string, error) {
	src := filepath.Join(o.Root, "bitrix-module", ModuleDir)
	out := filepath.Join(o.Out, ModuleArchiveFile(o.Version))
	a, err := createArchive(out, o)
	if err != nil {
		return "", err
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		name := filepath.ToSlash(filepath.Join(ModuleDir, r))
		if d.IsDir() {
			return a.dir(name)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("module: %s is not a regular file", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if r == filepath.Join("install", "version.php") {
			if b, err = stampModuleVersion(b, o); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return a.file(name, 0o644, bytes.NewReader(b), int64(len(b)))
	})
	if err != nil {
		a.abort()
		return "", fmt.Errorf("module archive: %w", err)
	}
	return out, a.close()
}

func stampModuleVersion(b []byte, o Options) ([]byte, error) {
	if !moduleVersionRE.Match(b) || !moduleDateRE.Match(b) {
		return nil, fmt.Errorf("no 'VERSION' => '...' and 'VERSION_DATE' => '...' to stamp")
	}
	b = moduleVersionRE.ReplaceAll(b, []byte("${1}"+o.Version+"${2}"))
	return moduleDateRE.ReplaceAll(b, []byte("${1}"+o.Date.UTC().Format("2006-01-02 15:04:05")+"${2}")), nil
}

// Bundle writes isobox-<version>-offline.tar.gz: the artefacts (paths
// relative to Out), INSTALL.md, docs/, docker-compose.yml and deploy/ from
// Root, and a SHA256SUMS of all of them, under isobox-<version>/.
func Bundle(o Options, artefacts []string) (string, error) {
	top := "isobox-" + o.Version
	out := filepath.Join(o.Out, BundleFile(o.Version))
	a, err := createArchive(out, o)
	if err != nil {
		return "", err
	}
	if err := writeBundle(a, o, top, artefacts); err != nil {
		a.abort()
		return "", fmt.Errorf("bundle: %w", err)
	}
	return out, a.close()
}

func writeBundle(a *archive, o Options, top string, artefacts []string) error {
	var sums []string
	add := func(name, src string) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		h := sha256.New()
		if err := a.file(top+"/"+name, int64(fi.Mode().Perm()&0o755|0o644), io.TeeReader(f, h), fi.Size()); err != nil {
			return err
		}
		sums = append(sums, hex.EncodeToString(h.Sum(nil))+"  "+name)
		return nil
	}
	if err := a.dir(top); err != nil {
		return err
	}
	install, err := fs.ReadFile(packaging.Files, "INSTALL.md")
	if err != nil {
		return err
	}
	install = bytes.ReplaceAll(install, []byte("@VERSION@"), []byte(o.Version))
	if err := a.file(top+"/INSTALL.md", 0o644, bytes.NewReader(install), int64(len(install))); err != nil {
		return err
	}
	sums = append(sums, sha256Hex(install)+"  INSTALL.md")
	for _, name := range artefacts {
		if err := add(name, filepath.Join(o.Out, name)); err != nil {
			return err
		}
	}
	for _, tree := range []string{"docs", "deploy", "docker-compose.yml"} {
		root := filepath.Join(o.Root, tree)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(o.Root, p)
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			return add(filepath.ToSlash(r), p)
		})
		if err != nil {
			return err
		}
	}
	sort.Slice(sums, func(i, j int) bool { return sums[i][66:] < sums[j][66:] })
	list := []byte(strings.Join(sums, "\n") + "\n")
	return a.file(top+"/"+SumsFile, 0o644, bytes.NewReader(list), int64(len(list)))
}

// WriteSums writes Out/SHA256SUMS for the artefacts (paths relative to Out).
func WriteSums(out string, artefacts []string) error {
	var b strings.Builder
	for _, name := range artefacts {
		sum, err := sha256File(filepath.Join(out, name))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, name)
	}
	return os.WriteFile(filepath.Join(out, SumsFile), []byte(b.String()), 0o644)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256Reader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return sha256Reader(f)
}

// archive is a .tar.gz being written with fixed mtimes and root ownership,
// so two builds of one commit are byte-identical.
type archive struct {
	o    Options
	path string
	f    *os.File
	gz   *gzip.Writer
	tw   *tar.Writer
}

func createArchive(path string, o Options) (*archive, error) {
	if err := mkdirFor(path); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	gz := gzip.NewWriter(f)
	return &archive{o: o, path: path, f: f, gz: gz, tw: tar.NewWriter(gz)}, nil
}

func (a *archive) dir(name string) error {
	return a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimSuffix(name, "/") + "/",
		Mode: 0o755, ModTime: a.o.Date.UTC(), Format: tar.FormatPAX})
}

func (a *archive) file(name string, mode int64, r io.Reader, size int64) error {
	if err := a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size,
		ModTime: a.o.Date.UTC(), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := io.Copy(a.tw, r)
	return err
}

func (a *archive) close() error {
	err := a.tw.Close()
	if e := a.gz.Close(); err == nil {
		err = e
	}
	if e := a.f.Close(); err == nil {
		err = e
	}
	if err != nil {
		os.Remove(a.path)
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	return nil
}

func (a *archive) abort() {
	a.f.Close()
	os.Remove(a.path)
}
