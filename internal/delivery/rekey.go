package delivery

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// ErrSecretsKey reports stored signing secrets that the relay's secrets
// key (and the rotated-out key, when one is given) cannot decrypt.
var ErrSecretsKey = errors.New("delivery: signing secrets stored under another key")

// KeyCheck says how the stored signing secrets relate to a key.
type KeyCheck struct {
	// Stored is the number of stored secret sets.
	Stored int
	// Opened is how many of them the key decrypts.
	Opened int
}

// CheckSecretsKey reports how many stored signing secret sets key
// decrypts: none of several means the relay has another instance's key
// (or a lost one's replacement).
func CheckSecretsKey(ctx context.Context, js jetstream.JetStream, key []byte) (KeyCheck, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return KeyCheck{}, err
	}
	sets, err := storedSets(ctx, js)
	if err != nil {
		return KeyCheck{}, err
	}
	c := KeyCheck{Stored: len(sets)}
	for _, s := range sets {
		if _, err := openWith(aead, s.key, s.set.Current); err == nil {
			c.Opened++
		}
	}
	return c, nil
}

// RekeySecrets re-encrypts every stored signing secret under key, taking
// those still under old (the rotated-out relay-secrets.key) and leaving
// those already under key alone, so that a rotation interrupted half-way
// finishes when started again. It checks every entry before it changes
// any: when one decrypts under neither key it changes nothing and returns
// an error wrapping ErrSecretsKey. It returns how many entries it
// re-encrypted. No relay may write the bucket meanwhile (every instance
// is stopped); an entry changed concurrently anyway is read again.
func RekeySecrets(ctx context.Context, js jetstream.JetStream, key, old []byte) (int, error) {
	cur, err := newAEAD(key)
	if err != nil {
		return 0, err
	}
	prev, err := newAEAD(old)
	if err != nil {
		return 0, err
	}
	r := rekeyer{cur: cur, prev: prev}
	sets, err := storedSets(ctx, js)
	if err != nil {
		return 0, err
	}
	unreadable := 0
	for _, s := range sets {
		if _, _, err := r.reseal(s.key, s.set); err != nil {
			unreadable++
		}
	}
	if unreadable > 0 {
		return 0, fmt.Errorf("%w: %d of the %d stored signing secrets decrypt neither under the current key nor under the old one", ErrSecretsKey, unreadable, len(sets))
	}
	kv, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return 0, fmt.Errorf("delivery: secrets bucket: %w", err)
	}
	moved := 0
	for _, s := range sets {
		changed, err := r.rewrite(ctx, kv, s)
		if err != nil {
			return moved, err
		}
		if changed {
			moved++
		}
	}
	return moved, nil
}

// DiscardUnreadableSecrets deletes every stored signing secret set whose
// current secret key does not decrypt: what is left after the key was
// lost. The next delivery to each of their handlers makes a new secret.
// It returns how many it deleted.
func DiscardUnreadableSecrets(ctx context.Context, js jetstream.JetStream, key []byte) (int, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return 0, err
	}
	sets, err := storedSets(ctx, js)
	if err != nil {
		return 0, err
	}
	kv, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return 0, fmt.Errorf("delivery: secrets bucket: %w", err)
	}
	n := 0
	for _, s := range sets {
		if _, err := openWith(aead, s.key, s.set.Current); err == nil {
			continue
		}
		if err := kv.Delete(ctx, s.key, jetstream.LastRevision(s.rev)); err != nil {
			return n, fmt.Errorf("delivery: delete unreadable secret %s: %w", s.key, err)
		}
		n++
	}
	return n, nil
}

type rekeyer struct{ cur, prev cipher.AEAD }

// reseal returns st with every value under cur; changed says whether any
// was under prev.
func (r rekeyer) reseal(k string, st storedSet) (storedSet, bool, error) {
	changed := false
	one := func(sealed string) (string, error) {
		if sealed == "" {
			return "", nil
		}
		if _, err := openWith(r.cur, k, sealed); err == nil {
			return sealed, nil
		}
		plain, err := openWith(r.prev, k, sealed)
		if err != nil {
			return "", err
		}
		changed = true
		return sealWith(r.cur, k, plain), nil
	}
	var err error
	if st.Current, err = one(st.Current); err != nil {
		return st, false, err
	}
	if st.Previous, err = one(st.Previous); err != nil {
		return st, false, err
	}
	return st, changed, nil
}

// rewrite stores s under cur when it is not already, reading it again
// after a concurrent change.
func (r rekeyer) rewrite(ctx context.Context, kv jetstream.KeyValue, s storedEntry) (bool, error) {
	for range 3 {
		next, changed, err := r.reseal(s.key, s.set)
		if err != nil {
			return false, fmt.Errorf("%w: secret %s: %v", ErrSecretsKey, s.key, err)
		}
		if !changed {
			return false, nil
		}
		b, _ := json.Marshal(next)
		if _, err := kv.Update(ctx, s.key, b, s.rev); err == nil {
			return true, nil
		}
		e, err := kv.Get(ctx, s.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("delivery: re-read secret %s: %w", s.key, err)
		}
		s.rev = e.Revision()
		if err := json.Unmarshal(e.Value(), &s.set); err != nil {
			return false, fmt.Errorf("delivery: decode secret %s: %w", s.key, err)
		}
	}
	return false, fmt.Errorf("delivery: re-encrypt secret %s: changed concurrently three times", s.key)
}

type storedEntry struct {
	key string
	rev uint64
	set storedSet
}

// storedSets reads the latest value of every stored secret set.
func storedSets(ctx context.Context, js jetstream.JetStream) ([]storedEntry, error) {
	kv, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return nil, fmt.Errorf("delivery: secrets bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("delivery: list secrets: %w", err)
	}
	defer w.Stop()
	var out []storedEntry
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e == nil {
			return out, nil // every stored value seen
		}
		s := storedEntry{key: e.Key(), rev: e.Revision()}
		if err := json.Unmarshal(e.Value(), &s.set); err != nil {
			return nil, fmt.Errorf("delivery: decode secret %s: %w", e.Key(), err)
		}
		out = append(out, s)
	}
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("delivery: secrets key: %w", err)
	}
	return cipher.NewGCM(block)
}
