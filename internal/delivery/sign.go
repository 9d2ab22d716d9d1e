package delivery

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
)

// SecretPrefix starts every signing secret (the Standard Webhooks format:
// "whsec_" + base64 of the key bytes).
const SecretPrefix = "whsec_"

// Sign returns the webhook-signature header value: "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" for each key, space-separated (several keys while
// a secret is being rotated).
func Sign(id string, ts int64, body []byte, keys ...[]byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(strconv.FormatInt(ts, 10)))
		mac.Write([]byte{'.'})
		mac.Write(body)
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// Verify checks a delivery as a handler would: one of the signatures in
// header must match secret (the "whsec_..." string) and the timestamp must
// be within tolerance of now. It is the reference for docs/delivery.md.
func Verify(secret, id, timestamp string, body []byte, header string, now time.Time, tolerance time.Duration) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return fmt.Errorf("delivery: bad secret: %w", err)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("delivery: bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("delivery: timestamp outside tolerance")
	}
	want := Sign(id, ts, body, key)
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("delivery: no matching signature")
}

// SecretName names the signing secret of an app (per portal and
// client_id) or of an outgoing webhook (per portal and application
// token). Keyed by the portal too, so that a portal can never obtain a
// signature that verifies under another portal's secret (issue 11,
// finding 4).
func SecretName(portal, clientID, applicationToken string) string {
	if clientID != "" {
		return "app:" + portal + "/" + clientID
	}
	return "webhook:" + portal + "/" + applicationToken
}

// legacyName is the name relays before issue 11 gave the secret name
// (keyed by client_id or application token alone).
func legacyName(name string) (string, bool) {
	kind, rest, ok := strings.Cut(name, ":")
	if !ok {
		return "", false
	}
	_, id, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	return kind + ":" + id, true
}

// Secrets keeps signing secrets in a JetStream KV bucket, encrypted with
// AES-256-GCM under a key that lives only in the relay's data directory:
// whoever can read the broker (an external cluster's operators, its disk,
// its backups) cannot sign. Decrypted secrets are cached in memory.
type Secrets struct {
	kv      jetstream.KeyValue
	aead    cipher.AEAD
	overlap time.Duration
	clock   Clock

	mu    sync.Mutex
	cache map[string]cachedSet
}

// secretCacheTTL bounds how long a decrypted secret is used without
// reading the bucket again: a rotation made by another relay instance
// reaches this one's signatures within it (the rotated-out key keeps
// signing for the overlap meanwhile, so handlers verify throughout).
const secretCacheTTL = 30 * time.Second

type cachedSet struct {
	set    *secretSet
	loaded time.Time
}

type secretSet struct {
	Current       []byte
	Previous      []byte
	PreviousUntil int64 // unix seconds
}

type storedSet struct {
	Current       string `json:"current"`
	Previous      string `json:"previous,omitempty"`
	PreviousUntil int64  `json:"previous_until,omitempty"`
}

// NewSecrets opens the secret store. key is 32 bytes.
func NewSecrets(ctx context.Context, js jetstream.JetStream, key []byte, overlap time.Duration, clock Clock) (*Secrets, error) {
	kv, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		return nil, fmt.Errorf("delivery: secrets bucket: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = systemClock{}
	}
	return &Secrets{kv: kv, aead: aead, overlap: overlap, clock: clock, cache: map[string]cachedSet{}}, nil
}

func kvKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:20])
}

func (s *Secrets) seal(k string, plain []byte) string { return sealWith(s.aead, k, plain) }

func (s *Secrets) open(k, sealed string) ([]byte, error) { return openWith(s.aead, k, sealed) }

// sealWith encrypts plain for bucket key k (bound as associated data):
// base64 of nonce followed by the AES-GCM ciphertext.
func sealWith(aead cipher.AEAD, k string, plain []byte) string {
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(k)))
}

func openWith(aead cipher.AEAD, k, sealed string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return nil, errors.New("delivery: corrupt secret")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(k))
	if err != nil {
		return nil, errors.New("delivery: secret does not decrypt (wrong relay-secrets.key?)")
	}
	return plain, nil
}

func (s *Secrets) load(ctx context.Context, name string) (*secretSet, uint64, error) {
	k := kvKey(name)
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("delivery: load secret: %w", err)
	}
	var st storedSet
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, fmt.Errorf("delivery: decode secret: %w", err)
	}
	set := &secretSet{PreviousUntil: st.PreviousUntil}
	if set.Current, err = s.open(k, st.Current); err != nil {
		return nil, 0, err
	}
	if st.Previous != "" {
		if set.Previous, err = s.open(k, st.Previous); err != nil {
			return nil, 0, err
		}
	}
	return set, e.Revision(), nil
}

func (s *Secrets) store(ctx context.Context, name string, set *secretSet, rev uint64, create bool) error {
	k := kvKey(name)
	st := storedSet{Current: s.seal(k, set.Current), PreviousUntil: set.PreviousUntil}
	if set.Previous != nil {
		st.Previous = s.seal(k, set.Previous)
	}
	b, _ := json.Marshal(st)
	var err error
	if create {
		_, err = s.kv.Create(ctx, k, b)
	} else {
		_, err = s.kv.Update(ctx, k, b, rev)
	}
	return err
}

func newKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// get returns the set for name, creating a secret on first use.
func (s *Secrets) get(ctx context.Context, name string) (*secretSet, error) {
	now := s.clock.Now()
	s.mu.Lock()
	c, ok := s.cache[name]
	s.mu.Unlock()
	if ok && now.Sub(c.loaded) < secretCacheTTL && !now.Before(c.loaded) {
		return c.set, nil
	}
	for range 3 {
		set, _, err := s.load(ctx, name)
		if err != nil {
			return nil, err
		}
		if set == nil {
			if set, err = s.adoptLegacy(ctx, name); err != nil {
				return nil, err
			}
		}
		if set == nil {
			set = &secretSet{Current: newKey()}
			if err := s.store(ctx, name, set, 0, true); err != nil {
				continue // created concurrently: load it
			}
		}
		s.mu.Lock()
		s.cache[name] = cachedSet{set: set, loaded: now}
		s.mu.Unlock()
		return set, nil
	}
	return nil, fmt.Errorf("delivery: create secret for %s: conflict", name)
}

// adoptLegacy moves a secret stored under its pre-issue-11 name (without
// the portal) to name, so that handlers keep verifying after the upgrade,
// and deletes the old entry: the first portal to use it after the upgrade
// keeps it, every other portal gets a secret of its own. Only a delivery
// that authprovider built an auth block for signs, so that first portal
// is one the app is installed on. It returns nil when there is none.
func (s *Secrets) adoptLegacy(ctx context.Context, name string) (*secretSet, error) {
	old, ok := legacyName(name)
	if !ok {
		return nil, nil
	}
	set, rev, err := s.load(ctx, old)
	if err != nil || set == nil {
		return nil, err
	}
	if err := s.store(ctx, name, set, 0, true); err != nil {
		return nil, nil // created concurrently: the caller loads it
	}
	if err := s.kv.Delete(ctx, kvKey(old), jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("delivery: retire the old secret name: %w", err)
	}
	return set, nil
}

// Keys returns the keys to sign with for name: the current one, and the
// previous one while the rotation overlap lasts.
func (s *Secrets) Keys(ctx context.Context, name string) ([][]byte, error) {
	set, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{set.Current}
	if set.Previous != nil && s.clock.Now().Unix() < set.PreviousUntil {
		keys = append(keys, set.Previous)
	}
	return keys, nil
}

// SecretInfo is a secret as shown to operators.
type SecretInfo struct {
	Secret        string
	Previous      string
	PreviousUntil int64
}

func (set *secretSet) info(now time.Time) SecretInfo {
	si := SecretInfo{Secret: SecretPrefix + base64.StdEncoding.EncodeToString(set.Current)}
	if set.Previous != nil && now.Unix() < set.PreviousUntil {
		si.Previous = SecretPrefix + base64.StdEncoding.EncodeToString(set.Previous)
		si.PreviousUntil = set.PreviousUntil
	}
	return si
}

// Get returns name's secret, creating it if needed.
func (s *Secrets) Get(ctx context.Context, name string) (SecretInfo, error) {
	set, err := s.get(ctx, name)
	if err != nil {
		return SecretInfo{}, err
	}
	return set.info(s.clock.Now()), nil
}

// Rotate makes a fresh secret current; the old one keeps signing (as a
// second signature) for the overlap.
func (s *Secrets) Rotate(ctx context.Context, name string) (SecretInfo, error) {
	if _, err := s.get(ctx, name); err != nil {
		return SecretInfo{}, err
	}
	old, rev, err := s.load(ctx, name)
	if err != nil {
		return SecretInfo{}, err
	}
	now := s.clock.Now()
	set := &secretSet{Current: newKey(), Previous: old.Current, PreviousUntil: now.Add(s.overlap).Unix()}
	if err := s.store(ctx, name, set, rev, false); err != nil {
		return SecretInfo{}, fmt.Errorf("delivery: rotate secret: %w", err)
	}
	s.mu.Lock()
	s.cache[name] = cachedSet{set: set, loaded: now}
	s.mu.Unlock()
	return set.info(now), nil
}
