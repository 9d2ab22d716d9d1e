// Package version holds the build's version, commit and date, stamped at
// link time:
//
//	go build -ldflags "-X github.com/isobox/isobox/internal/version.Version=1.2.3 \
//	  -X github.com/isobox/isobox/internal/version.Commit=$(git rev-parse HEAD) \
//	  -X github.com/isobox/isobox/internal/version.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// An unstamped build (go build, go run, tests) reports "dev".
package version

import (
	"fmt"
	"runtime"
)

// Set by the linker (-X); they must stay plain string variables.
var (
	// Version is the release, without a leading "v" ("1.2.3"); "dev" when
	// not stamped.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
	// Date is the build time, RFC 3339 in UTC.
	Date = "unknown"
)

// String is the one line `prog version` and `prog --version` print.
func String(prog string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s/%s)", prog, Version, Commit, Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
