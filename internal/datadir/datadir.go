// Package datadir prepares a service's data directory at start: it is
// created when absent (said loudly, since a mistyped --data-dir would
// otherwise silently come with new keys), and checked to be a readable,
// writable directory before anything opens a store in it, so that a wrong
// owner or mode fails at once with the path and the reason.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Prepare makes sure dir is a directory this process can list and write,
// creating it (0700) when absent. It returns the absolute path and whether
// it was created.
func Prepare(dir string) (abs string, created bool, err error) {
	abs, err = filepath.Abs(dir)
	if err != nil {
		return dir, false, fmt.Errorf("data dir %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return abs, false, fmt.Errorf("data dir %s: cannot create it: %w (create it for the service's user, or give another --data-dir)", abs, errors.Unwrap(err))
		}
		created = true
	case err != nil:
		return abs, false, fmt.Errorf("data dir %s: %w (check the directories above it, or give another --data-dir)", abs, errors.Unwrap(err))
	case !st.IsDir():
		return abs, false, fmt.Errorf("data dir %s is not a directory (give a directory as --data-dir)", abs)
	}
	if _, err := os.ReadDir(abs); err != nil {
		return abs, created, fmt.Errorf("data dir %s is not readable: %w (give it to the service's user: chown/chmod, or another --data-dir)", abs, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(abs, ".write-check-*")
	if err != nil {
		return abs, created, fmt.Errorf("data dir %s is not writable: %w (give it to the service's user: chown/chmod, or another --data-dir)", abs, errors.Unwrap(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return abs, created, nil
}
