package secret_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isobox/isobox/internal/secret"
)

func TestNewIsAlphanumericAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := secret.New(50)
		if len(s) != 50 {
			t.Fatalf("len = %d", len(s))
		}
		if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Fatalf("non-alphanumeric secret %q", s)
		}
		if seen[s] {
			t.Fatalf("duplicate secret %q", s)
		}
		seen[s] = true
	}
}

func TestMatches(t *testing.T) {
	h := secret.Hash("correct horse")
	if strings.Contains(h, "correct") || len(h) != 64 {
		t.Fatalf("hash %q", h)
	}
	if !secret.Matches("correct horse", h) || secret.Matches("correct hors", h) || secret.Matches("", h) {
		t.Fatal("Matches wrong")
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "k.key")
	s1, created, err := secret.LoadOrCreate(path, 32)
	if err != nil || !created || len(s1) != 32 {
		t.Fatalf("first: %q %v %v", s1, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st.Mode(), err)
	}
	s2, created, err := secret.LoadOrCreate(path, 32)
	if err != nil || created || s2 != s1 {
		t.Fatalf("second: %q %v %v", s2, created, err)
	}
	if _, err := secret.Create(path, 32); !errors.Is(err, secret.ErrExists) {
		t.Fatalf("Create over existing: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := secret.Read(empty); err == nil {
		t.Fatal("Read accepted an empty file")
	}
}
