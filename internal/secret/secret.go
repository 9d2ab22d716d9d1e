// Package secret makes and checks the high-entropy secrets isobox hands out
// (admin keys, service keys, portal keys, client secrets) and the files that
// carry them. Secrets are stored only as hashes: they are random enough that
// a fast hash (SHA-256) is as strong as a slow one, and verifying costs
// microseconds on the hot path. Comparisons run in constant time.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// alphabet is the alphabet of generated secrets: letters and digits only, as
// Bitrix's own client secrets (Random::getString(n, true)), so they survive
// any URL or form encoding unchanged.
const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// New returns a random string of n letters and digits (≈5.95 bits each).
func New(n int) string {
	b := make([]byte, n)
	// Rejection sampling keeps the distribution uniform: 62 does not divide 256.
	buf := make([]byte, n*2)
	i := 0
	for i < n {
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("secret: crypto/rand failed: %v", err)) // never happens on Linux
		}
		for _, c := range buf {
			if c < 248 && i < n {
				b[i] = alphabet[int(c)%len(alphabet)]
				i++
			}
		}
	}
	return string(b)
}

// Hash returns the hex SHA-256 of s: what is stored in place of a secret.
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether s hashes to hash.
func Matches(s, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(s)), []byte(hash)) == 1
}

// ErrExists is returned by Create when the file is already there.
var ErrExists = errors.New("secret: file exists")

// Create writes a fresh secret of n characters to path with mode 0600,
// refusing to overwrite an existing file, and returns the secret.
func Create(path string, n int) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("secret: create dir for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", ErrExists
	}
	if err != nil {
		return "", fmt.Errorf("secret: create %s: %w", path, err)
	}
	s := New(n)
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("secret: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("secret: sync %s: %w", path, err)
	}
	return s, f.Close()
}

// Read returns the secret stored in path, without surrounding white space.
func Read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("secret: read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret: %s is empty", path)
	}
	return s, nil
}

// LoadOrCreate reads the secret in path, creating it (n characters, 0600)
// if the file does not exist yet. created says which happened.
func LoadOrCreate(path string, n int) (s string, created bool, err error) {
	s, err = Create(path, n)
	if err == nil {
		return s, true, nil
	}
	if !errors.Is(err, ErrExists) {
		return "", false, err
	}
	s, err = Read(path)
	return s, false, err
}
