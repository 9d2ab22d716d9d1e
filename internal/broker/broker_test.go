package broker_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/isobox/isobox/internal/broker"
	"github.com/isobox/isobox/internal/testkit"
)

func open(t *testing.T, cfg broker.Config) (*broker.Broker, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return broker.Open(ctx, cfg, slog.New(slog.DiscardHandler))
}

// An encrypted store whose key is replaced or lost is refused at start
// instead of being recreated empty over the old files.
func TestEncryptedStoreNeedsItsKey(t *testing.T) {
	dir := t.TempDir()
	b, err := open(t, broker.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(b.Conn)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	key := filepath.Join(dir, broker.StoreKeyFile)
	if err := os.WriteFile(key, []byte("another-key-entirely-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, broker.Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "loaded 0 of the 1 streams") {
		t.Errorf("start with another key: %v", err)
	}
	os.Remove(key)
	if _, err := open(t, broker.Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("start with the key lost: %v", err)
	}
}

// An external server that admits one nkey: --nats-nkey-seed connects, no
// credentials are refused at once with a message naming the flags.
func TestExternalNkey(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "relay.nk")
	os.WriteFile(seedFile, seed, 0o600)
	srv := testkit.NATSWith(t, t.TempDir(), func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })

	b, err := open(t, broker.Config{URL: srv.ClientURL(), Auth: broker.ClientAuth{NkeySeedFile: seedFile}})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := open(t, broker.Config{URL: srv.ClientURL()}); err == nil || !strings.Contains(err.Error(), "--nats-nkey-seed") {
		t.Errorf("no credentials: %v", err)
	}
	for _, bad := range []broker.ClientAuth{
		{NkeySeedFile: seedFile, User: "u", Password: "p"},
		{User: "u"},
		{TLSCertFile: seedFile},
		{CredsFile: filepath.Join(t.TempDir(), "absent.creds")},
	} {
		if _, err := open(t, broker.Config{URL: srv.ClientURL(), Auth: bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Rotating the store key: rename it to nats-store.key.old and start; the
// store is re-encrypted with a new key, the old file removed, nothing lost.
func TestStoreKeyRotation(t *testing.T) {
	dir := t.TempDir()
	b, err := open(t, broker.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	js, _ := jetstream.New(b.Conn)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	key := filepath.Join(dir, broker.StoreKeyFile)
	before, _ := os.ReadFile(key)
	if err := os.Rename(key, key+".old"); err != nil {
		t.Fatal(err)
	}
	if b, err = open(t, broker.Config{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	js, _ = jetstream.New(b.Conn)
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.GetMsg(ctx, 1); err != nil || string(m.Data) != "kept" {
		t.Fatalf("message after rotation: %v", err)
	}
	b.Close()
	after, _ := os.ReadFile(key)
	if _, err := os.Stat(key + ".old"); !os.IsNotExist(err) || len(after) == 0 || string(after) == string(before) {
		t.Fatalf("after rotation: old file %v, new key changed %v", err, string(after) != string(before))
	}
	// Only the new key opens it now.
	if b, err = open(t, broker.Config{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	b.Close()
}
