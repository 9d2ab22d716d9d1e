package dist

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager

	"github.com/isobox/isobox/packaging"
)

// Installed paths, shared by the packages, the tests and the docs.
const (
	BinDir    = "/usr/bin"
	UnitDir   = "/usr/lib/systemd/system"
	ConfigDir = "/etc/isobox"
	StateRoot = "/var/lib/isobox"
)

// PackageName is a service's package (and systemd unit) name.
func PackageName(service string) string { return "isobox-" + service }

// PackageFiles are the files a service's package installs, sorted: what
// the install test compares `dpkg -c` and `rpm -qlp` with.
func PackageFiles(service string) []string {
	return []string{
		ConfigDir + "/" + service + ".conf",
		BinDir + "/" + service,
		UnitDir + "/" + PackageName(service) + ".service",
	}
}

// description is a package's summary line and description.
func description(service string) string {
	if service == "authprovider" {
		return "isobox OAuth 2.0 server for a boxed Bitrix24 portal\n" +
			"Drop-in for oauth.bitrix.info on a network without internet: mints and\n" +
			"checks the tokens REST apps use, with admin and validation APIs."
	}
	return "isobox event delivery and push server for a boxed Bitrix24 portal\n" +
		"Durable, signed delivery of portal events to apps and webhooks over NATS\n" +
		"JetStream, with retries, dead letters and replay; the portal's push server."
}

// Package builds the format ("deb" or "rpm") package of service for arch
// into o.Out/packages and returns its path.
func Package(o Options, service, arch, format string) (string, error) {
	scripts, err := os.MkdirTemp("", "isobox-dist-scripts-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(scripts)
	hooks := map[string]string{}
	for _, name := range []string{"postinstall", "preremove", "postremove"} {
		b, err := fs.ReadFile(packaging.Files, "scripts/"+name+".sh")
		if err != nil {
			return "", err
		}
		p := filepath.Join(scripts, name+".sh")
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("@SERVICE@"), []byte(service)), 0o755); err != nil {
			return "", err
		}
		hooks[name] = p
	}
	unit, err := embedded(scripts, "systemd/"+PackageName(service)+".service")
	if err != nil {
		return "", err
	}
	conf, err := embedded(scripts, "etc/"+service+".conf")
	if err != nil {
		return "", err
	}
	mtime := o.Date.UTC()
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        PackageName(service),
		Arch:        arch,
		Platform:    "linux",
		Version:     o.Version,
		Release:     "1",
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "isobox <isobox@localhost>",
		Vendor:      "isobox",
		Description: description(service),
		License:     "Proprietary",
		MTime:       mtime,
		Overridables: nfpm.Overridables{
			Depends: []string{"passwd"}, // Debian's package of useradd and groupadd
			Contents: files.Contents{
				{Source: BinaryPath(o.Out, arch, service), Destination: BinDir + "/" + service,
					FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: mtime}},
				{Source: unit, Destination: UnitDir + "/" + PackageName(service) + ".service",
					FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: mtime}},
				// Root writes it, the service's group reads it (postinstall sets the group):
				// it may hold a database password.
				{Source: conf, Destination: ConfigDir + "/" + service + ".conf", Type: files.TypeConfigNoReplace,
					FileInfo: &files.ContentFileInfo{Mode: 0o640, MTime: mtime}},
			},
			Scripts: nfpm.Scripts{
				PostInstall: hooks["postinstall"],
				PreRemove:   hooks["preremove"],
				PostRemove:  hooks["postremove"],
			},
			RPM: nfpm.RPM{Group: "System Environment/Daemons", Summary: strings.SplitN(description(service), "\n", 2)[0],
				BuildHost: "isobox-dist", Packager: "isobox"},
		},
	})
	if format == "rpm" {
		// useradd comes with a differently named package on each rpm
		// distribution (shadow-utils, shadow) and is always installed.
		info.Depends = nil
	}
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("%s %s: %w", format, service, err)
	}
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	out := filepath.Join(o.Out, "packages", pkgr.ConventionalFileName(info))
	if err := mkdirFor(out); err != nil {
		return "", err
	}
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("build %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, nil
}

// embedded copies an embedded packaging file into dir (nfpm reads paths).
func embedded(dir, name string) (string, error) {
	b, err := fs.ReadFile(packaging.Files, name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.Base(name))
	return p, os.WriteFile(p, b, 0o644)
}
