package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/delivery"
)

// A rotation of the secrets key re-encrypts what is still under the old
// key and leaves what is under the new one, so a rotation interrupted
// half-way finishes when run again; a wrong old key changes nothing.
func TestRekeySecretsFinishesAnInterruptedRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	under := func(key []byte) *delivery.Secrets {
		s, err := delivery.NewSecrets(ctx, e.js, key, time.Hour, nil) // a fresh cache each time
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	names := []string{delivery.SecretName(portalID, "local.app.1", ""), delivery.SecretName(portalID, "", "hooktoken"), delivery.SecretName("bx.other", "local.app.1", "")}
	want := map[string]delivery.SecretInfo{}
	for _, n := range names[:2] {
		if _, err := under(oldKey).Get(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	rotated, err := under(oldKey).Rotate(ctx, names[1]) // a previous secret is stored too
	if err != nil {
		t.Fatal(err)
	}
	want[names[1]] = rotated
	if want[names[0]], err = under(oldKey).Get(ctx, names[0]); err != nil {
		t.Fatal(err)
	}

	if check, err := delivery.CheckSecretsKey(ctx, e.js, newKey); err != nil || check != (delivery.KeyCheck{Stored: 2, Opened: 0}) {
		t.Fatalf("check of the new key before the rotation: %+v, %v", check, err)
	}
	// A wrong old key: refused before anything changes.
	if n, err := delivery.RekeySecrets(ctx, e.js, newKey, bytes.Repeat([]byte{3}, 32)); !errors.Is(err, delivery.ErrSecretsKey) || n != 0 {
		t.Fatalf("rekey with a wrong old key: %d, %v; want ErrSecretsKey", n, err)
	}
	if check, _ := delivery.CheckSecretsKey(ctx, e.js, oldKey); check.Opened != 2 {
		t.Fatalf("after the refused rekey the old key opens %d of 2", check.Opened)
	}
	if n, err := delivery.RekeySecrets(ctx, e.js, newKey, oldKey); err != nil || n != 2 {
		t.Fatalf("rekey: %d, %v; want 2 re-encrypted", n, err)
	}
	// Interrupted: one more secret still under the old key beside the
	// two already under the new one.
	if want[names[2]], err = under(oldKey).Get(ctx, names[2]); err != nil {
		t.Fatal(err)
	}
	if n, err := delivery.RekeySecrets(ctx, e.js, newKey, oldKey); err != nil || n != 1 {
		t.Fatalf("rekey again: %d, %v; want 1 re-encrypted", n, err)
	}
	if n, err := delivery.RekeySecrets(ctx, e.js, newKey, oldKey); err != nil || n != 0 {
		t.Fatalf("rekey a third time: %d, %v; want nothing to do", n, err)
	}
	for _, n := range names {
		got, err := under(newKey).Get(ctx, n)
		if err != nil || got != want[n] {
			t.Errorf("%s under the new key: %+v, %v; want %+v", n, got, err, want[n])
		}
		if _, err := under(oldKey).Get(ctx, n); err == nil {
			t.Errorf("%s still opens under the old key", n)
		}
	}
	if check, err := delivery.CheckSecretsKey(ctx, e.js, newKey); err != nil || check != (delivery.KeyCheck{Stored: 3, Opened: 3}) {
		t.Errorf("check of the new key after the rotation: %+v, %v", check, err)
	}
}
