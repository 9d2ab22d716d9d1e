// Command isobox-dist assembles isobox's release from the static binaries
// `make dist-bin` put in dist/bin: .deb and .rpm packages, docker-loadable
// image tarballs, the PHP module archive, the offline bundle and
// SHA256SUMS. `make dist VERSION=x.y.z` runs it; it needs no network, no
// Docker daemon and no distro packaging tools.
//
//	isobox-dist build -version 1.2.3 -commit abc123 -date 2026-12-03T14:00:00Z [-arch amd64,arm64] [-out dist] [-root .]
//	isobox-dist check-image -service authprovider -version 1.2.3 -arch amd64 -binary dist/bin/linux_amd64/authprovider FILE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/isobox/isobox/internal/dist"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "isobox-dist:", err)
		os.Exit(2)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "isobox-dist:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = "usage: isobox-dist build -version X.Y.Z -commit C -date RFC3339 [-arch amd64,arm64] [-out dist] [-root .]\n" +
	"       isobox-dist check-image -service S -version X.Y.Z -arch A -binary FILE IMAGE.tar"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{"no command"}
	}
	switch args[0] {
	case "build":
		return build(ctx, args[1:], stdout, stderr)
	case "check-image":
		return checkImage(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var o dist.Options
	var date, arches string
	fs.StringVar(&o.Version, "version", "", "release version, x.y.z")
	fs.StringVar(&o.Commit, "commit", "", "source commit (image label)")
	fs.StringVar(&date, "date", "", "commit date, RFC 3339: every file's mtime")
	fs.StringVar(&arches, "arch", "amd64,arm64", "comma-separated GOARCH values")
	fs.StringVar(&o.Out, "out", "dist", "dist directory (binaries in <out>/bin/linux_<arch>/)")
	fs.StringVar(&o.Root, "root", ".", "repository root")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("build: unexpected argument %q", fs.Arg(0))}
	}
	if date != "" {
		t, err := time.Parse(time.RFC3339, date)
		if err != nil {
			return usageError{fmt.Sprintf("-date %q: want RFC 3339, e.g. 2026-12-03T14:00:00Z", date)}
		}
		o.Date = t
	}
	o.Arches = strings.Split(arches, ",")
	if err := o.Validate(); err != nil {
		return usageError{err.Error()}
	}
	made, err := dist.Build(ctx, o)
	if err != nil {
		return err
	}
	for _, p := range made {
		fmt.Fprintf(stdout, "%s/%s\n", o.Out, p)
	}
	return nil
}

func checkImage(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-image", flag.ContinueOnError)
	var service, version, arch, binary string
	fs.StringVar(&service, "service", "", "authprovider or eventrelay")
	fs.StringVar(&version, "version", "", "release version the tag carries")
	fs.StringVar(&arch, "arch", "amd64", "GOARCH the image is for")
	fs.StringVar(&binary, "binary", "", "the static binary the image must carry")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 || service == "" || version == "" || binary == "" {
		return usageError{"check-image: want -service, -version, -binary and one image tarball"}
	}
	if err := dist.CheckImage(fs.Arg(0), service, version, arch, binary); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s loads, runs %s/%s as %s\n", fs.Arg(0), dist.ImageRef(service, version), dist.ImageBinDir, service, dist.ImageUser)
	return nil
}
