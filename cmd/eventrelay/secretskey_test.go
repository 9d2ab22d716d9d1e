package main_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/delivery"
	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/secret"
)

// relaySecretsAEAD is the cipher the signing secrets are stored with, as
// docs/delivery.md describes it: AES-256-GCM under the SHA-256 of
// relay-secrets.key's text, the bucket key as associated data.
func relaySecretsAEAD(t *testing.T, keyText string) cipher.AEAD {
	t.Helper()
	sum := sha256.Sum256([]byte(keyText))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// storedSecrets reads every sealed value (current and previous) of the
// signing secrets bucket, by bucket key.
func storedSecrets(t *testing.T, js jetstream.JetStream) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatalf("signing secrets bucket: %v", err)
	}
	out := map[string][]string{}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Current, Previous string }
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			t.Fatalf("stored secret %s: %v", k, err)
		}
		out[k] = append(out[k], st.Current)
		if st.Previous != "" {
			out[k] = append(out[k], st.Previous)
		}
	}
	return out
}

func openSealed(aead cipher.AEAD, bucketKey, sealed string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return nil, err
	}
	return aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(bucketKey))
}

// The operator rotates relay-secrets.key in place: stop the relay, rename
// the key to relay-secrets.key.old, start. The handlers keep verifying
// under the secrets they were given, the old key file is gone, and what
// the broker holds no longer opens under the old key.
func TestRelaySecretsKeyRotationKeepsTheSigningSecrets(t *testing.T) {
	s := startAuthprovider(t)
	app := s.addApp(t)
	relayArgs := []string{"--auth-grpc-addr", s.ap.Addr("grpc"), "--retry-schedule", "10ms"}
	relay := s.startRelay(t, relayArgs...)
	h := newHandler(t)
	s.ingest(t, relay, "portal", eventItem(h.URL+"/app", app, "ONCRMDEALADD", 1))
	before := h.next(t)
	// The handler was given this secret (secrets get), and a webhook's
	// secret is mid-rotation, so that a previous secret is stored too.
	given := strings.TrimSpace(runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--client-id", app))
	runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--application-token", "apptoken-ONTASKADD")
	webhook := runCLI(t, s, relay, "secrets", "rotate", "--portal", s.portalID, "--application-token", "apptoken-ONTASKADD")
	if !strings.Contains(webhook, "previous") {
		t.Fatalf("secrets rotate printed no previous secret: %q", webhook)
	}
	verify := func(what string, got hit) {
		t.Helper()
		if err := delivery.Verify(given, got.header.Get("webhook-id"), got.header.Get("webhook-timestamp"), got.body,
			got.header.Get("webhook-signature"), time.Now(), time.Minute); err != nil {
			t.Errorf("%s: the delivery does not verify under the secret the handler was given: %v", what, err)
		}
	}
	verify("before the rotation", before)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := relay.Stop(ctx); err != nil {
		t.Fatalf("stop the relay: %v", err)
	}
	keyPath := filepath.Join(s.data, "relay-secrets.key")
	oldKey, err := secret.Read(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyPath, keyPath+".old"); err != nil {
		t.Fatal(err)
	}

	relay = s.startRelay(t, relayArgs...)
	if !strings.Contains(relay.Logs(), "relay secrets key rotated") {
		t.Errorf("no rotation line in the log:\n%s", relay.Logs())
	}
	if _, err := os.Stat(keyPath + ".old"); !os.IsNotExist(err) {
		t.Errorf("relay-secrets.key.old after the rotation: %v, want it removed", err)
	}
	assertMode0600(t, keyPath)
	newKey, err := secret.Read(keyPath)
	if err != nil || newKey == oldKey {
		t.Fatalf("relay-secrets.key after the rotation: %v (same as the old one: %v)", err, newKey == oldKey)
	}
	s.ingest(t, relay, "portal", eventItem(h.URL+"/app", app, "ONCRMDEALADD", 2))
	verify("after the rotation", h.next(t))
	if got := strings.TrimSpace(runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--client-id", app)); got != given {
		t.Errorf("secrets get after the rotation: %q, want %q", got, given)
	}
	if got := runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--application-token", "apptoken-ONTASKADD"); got != webhook {
		t.Errorf("webhook secrets after the rotation:\n%s\nwant\n%s", got, webhook)
	}

	// What the broker holds: every value opens under the new key, none
	// under the old one, and the handler's secret is among them.
	js, err := jetstream.New(relayNATS(t, s, embeddedNATSURL(t, relay)))
	if err != nil {
		t.Fatal(err)
	}
	oldAEAD, newAEAD := relaySecretsAEAD(t, oldKey), relaySecretsAEAD(t, newKey)
	found, values := false, 0
	for k, sealed := range storedSecrets(t, js) {
		for _, v := range sealed {
			values++
			if _, err := openSealed(oldAEAD, k, v); err == nil {
				t.Errorf("stored secret %s still decrypts under the old key", k)
			}
			plain, err := openSealed(newAEAD, k, v)
			if err != nil {
				t.Errorf("stored secret %s does not decrypt under the new key: %v", k, err)
			}
			if delivery.SecretPrefix+base64.StdEncoding.EncodeToString(plain) == given {
				found = true
			}
		}
	}
	if values < 3 || !found {
		t.Errorf("the broker holds %d sealed secrets (want the app's and the webhook's two), the handler's among them: %v", values, found)
	}
}

// startRelayFails runs the relay on s's data dir and returns what it
// printed; the start must fail.
func startRelayFails(t *testing.T, s *stack, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "--data-dir", s.data)
	out, err := exec.CommandContext(ctx, s.erBin, append(args, extra...)...).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the relay started (%v), want a refusal:\n%s", err, out)
	}
	return string(out)
}

// A relay-secrets.key.old that is not the key the secrets were stored with
// stops the start and changes nothing: with the right one in its place the
// rotation then goes through. A relay whose key opens none of the stored
// secrets (another instance's key not copied) does not start either;
// --discard-unreadable-signing-secrets is the way out of a lost key.
func TestRelaySecretsKeyRotationRefusesAWrongOldKey(t *testing.T) {
	s := bareStack(t)
	relay := s.startRelay(t)
	runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--client-id", "local.app.1")
	given := runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--application-token", "hooktoken")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := relay.Stop(ctx); err != nil {
		t.Fatalf("stop the relay: %v", err)
	}
	keyPath := filepath.Join(s.data, "relay-secrets.key")
	right, err := secret.Read(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	// Another key under the rotation name: refused, nothing changed.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath+".old", []byte(secret.New(64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startRelayFails(t, s)
	if !strings.Contains(out, "2 of the 2 stored signing secrets decrypt neither") || !strings.Contains(out, "relay-secrets.key.old is not the key") {
		t.Errorf("start with a wrong relay-secrets.key.old:\n%s", out)
	}
	// A key that is not the one the secrets were stored with, no rotation.
	wrong := secret.New(64)
	if err := os.WriteFile(keyPath, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(keyPath + ".old")
	out = startRelayFails(t, s)
	if !strings.Contains(out, "none of the 2 signing secrets in the broker decrypts under it") || !strings.Contains(out, "copy relay-secrets.key from the relay instance") {
		t.Errorf("start with another instance's relay-secrets.key:\n%s", out)
	}
	// The same without any key: the key the failed start made is removed.
	os.Remove(keyPath)
	out = startRelayFails(t, s)
	if !strings.Contains(out, "was missing") {
		t.Errorf("start without relay-secrets.key:\n%s", out)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Errorf("relay-secrets.key after the refused start: %v, want none", err)
	}

	// The right old key: rotated onto the key the operator left in place.
	if err := os.WriteFile(keyPath, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath+".old", []byte(right+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	relay = s.startRelay(t)
	if got := runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--application-token", "hooktoken"); got != given {
		t.Errorf("webhook secret after the rotation: %q, want %q", got, given)
	}
	if _, err := os.Stat(keyPath + ".old"); !os.IsNotExist(err) {
		t.Errorf("relay-secrets.key.old after the rotation: %v, want it removed", err)
	}

	// The key lost for good: the operator discards what it cannot read,
	// and the handler gets a new secret.
	if err := relay.Stop(ctx); err != nil {
		t.Fatalf("stop the relay: %v", err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	relay = s.startRelay(t, "--discard-unreadable-signing-secrets")
	if !strings.Contains(relay.Logs(), `"deleted":2`) {
		t.Errorf("no line about the 2 discarded secrets:\n%s", relay.Logs())
	}
	if got := runCLI(t, s, relay, "secrets", "get", "--portal", s.portalID, "--application-token", "hooktoken"); got == given || !strings.HasPrefix(got, delivery.SecretPrefix) {
		t.Errorf("webhook secret after discarding: %q, want a new one", got)
	}
}
