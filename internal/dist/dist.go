// Package dist assembles isobox's release artefacts from the static
// binaries `make dist-bin` built: .deb and .rpm packages per service (nfpm),
// docker-loadable image tarballs (go-containerregistry, no Docker daemon),
// the PHP module archive, the offline bundle and SHA256SUMS. It needs no
// network and no distro tooling, and only the release builder
// (cmd/isobox-dist) imports it: the service binaries do not carry nfpm or
// go-containerregistry.
package dist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Services returns the two binaries every release packages.
func Services() []string { return []string{"authprovider", "eventrelay"} }

// Options say what to build and from where.
type Options struct {
	Version string    // x.y.z, optionally -prerelease
	Commit  string    // source commit, recorded in image labels
	Date    time.Time // build (commit) date: every file's mtime, for reproducible output
	Root    string    // repository root: bitrix-module/, docs/, docker-compose.yml, deploy/
	Out     string    // dist directory; binaries already in Out/bin/linux_<arch>/<service>
	Arches  []string  // GOARCH values: amd64, arm64
}

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$`)

// Validate reports the first thing wrong with o, saying what to change.
func (o Options) Validate() error {
	if !versionRE.MatchString(o.Version) {
		return fmt.Errorf("version %q: want x.y.z or x.y.z-pre (digits first, no leading v), e.g. 1.2.3", o.Version)
	}
	if o.Date.IsZero() {
		return fmt.Errorf("date is empty: pass the commit date (RFC 3339)")
	}
	if len(o.Arches) == 0 {
		return fmt.Errorf("no architecture: pass amd64, arm64 or both")
	}
	for _, a := range o.Arches {
		if rpmArch(a) == "" {
			return fmt.Errorf("architecture %q: want amd64 or arm64", a)
		}
	}
	return nil
}

// rpmArch returns rpm's name of a GOARCH (deb uses GOARCH's own), "" for
// an architecture isobox does not release.
func rpmArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return ""
}

// BinaryPath is where `make dist-bin` puts a service's binary for arch.
func BinaryPath(out, arch, service string) string {
	return filepath.Join(out, "bin", "linux_"+arch, service)
}

// Build writes every artefact into o.Out and returns their paths relative
// to it, SHA256SUMS last.
func Build(ctx context.Context, o Options) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var made []string
	for _, arch := range o.Arches {
		for _, svc := range Services() {
			p := BinaryPath(o.Out, arch, svc)
			if err := CheckStatic(p, arch); err != nil {
				return nil, err
			}
			made = append(made, rel(o.Out, p))
		}
	}
	for _, arch := range o.Arches {
		for _, svc := range Services() {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for _, format := range []string{"deb", "rpm"} {
				p, err := Package(o, svc, arch, format)
				if err != nil {
					return nil, err
				}
				made = append(made, rel(o.Out, p))
			}
			p, err := Image(o, svc, arch)
			if err != nil {
				return nil, err
			}
			made = append(made, rel(o.Out, p))
		}
	}
	mod, err := ModuleArchive(o)
	if err != nil {
		return nil, err
	}
	made = append(made, rel(o.Out, mod))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bundle, err := Bundle(o, made)
	if err != nil {
		return nil, err
	}
	made = append(made, rel(o.Out, bundle))
	if err := WriteSums(o.Out, made); err != nil {
		return nil, err
	}
	return append(made, SumsFile), nil
}

func rel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// mkdirFor creates the parent directory of path.
func mkdirFor(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	return nil
}
