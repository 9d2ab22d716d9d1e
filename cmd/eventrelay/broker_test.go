package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/push"
	"github.com/isobox/isobox/internal/secret"
	"github.com/isobox/isobox/internal/testkit"
)

// Issue 11, finding 3: "NATS is open". These tests run the real binary
// against its embedded server and against a real external one.

// bareStack is a relay without authprovider (ingest with the service key
// still works; deliveries wait for tokens).
func bareStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{dir: t.TempDir()}
	s.data = filepath.Join(s.dir, "data")
	s.erBin = testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	s.portalID = "local.portal"
	return s
}

// embeddedNATSURL reads the embedded server's client URL from the relay's
// log.
func embeddedNATSURL(t *testing.T, relay *testkit.Proc) string {
	t.Helper()
	for _, line := range strings.Split(relay.Logs(), "\n") {
		var rec struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "embedded NATS server started" {
			return rec.URL
		}
	}
	t.Fatalf("no embedded NATS url in the log:\n%s", relay.Logs())
	return ""
}

// relayNATS connects to the relay's embedded server with the client nkey
// from the data directory, as an operator's tool would.
func relayNATS(t *testing.T, s *stack, url string) *nats.Conn {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(s.data, "nats-client.nk"))
	if err != nil {
		t.Fatalf("client nkey from the data dir: %v", err)
	}
	nc, err := nats.Connect(url, opt, nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect with the data dir's nkey: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func assertMode0600(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, st.Mode().Perm())
	}
}

// storeContains reports whether any file under dir contains b.
func storeContains(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, b) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// The embedded server refuses clients without the credentials generated
// into the data directory, accepts the ones with them, listens on loopback
// only, and stores events encrypted (application_token is not in the
// files in clear).
func TestEmbeddedNATSRequiresCredentials(t *testing.T) {
	s := bareStack(t)
	relay := s.startRelay(t)
	url := embeddedNATSURL(t, relay)
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Errorf("embedded server at %s, want loopback", url)
	}

	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an unauthenticated client connected to the embedded NATS server")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("unauthenticated connect: %v, want an authorization error", err)
	}
	// A user/password guess is refused too.
	if nc, err := nats.Connect(url, nats.UserInfo("eventrelay", "eventrelay"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a guessed user/password connected")
	}

	s.ingest(t, relay, "service", eventItem("http://127.0.0.1:1/hook", "", "ONCRMDEALADD", 1))
	nc := relayNATS(t, s, url)
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), events.StreamIn)
	if err != nil || st.CachedInfo().State.Msgs != 1 {
		t.Fatalf("stream %s with the data dir's credentials: %v", events.StreamIn, err)
	}
	for _, f := range []string{"nats-client.nk", "nats-store.key"} {
		assertMode0600(t, filepath.Join(s.data, f))
	}
	if storeContains(t, filepath.Join(s.data, "nats"), []byte("apptoken-ONCRMDEALADD")) {
		t.Error("application_token is stored in clear in the JetStream files")
	}

	// A non-loopback address for the embedded server is refused at start.
	out, err := exec.Command(s.erBin, append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"),
		"--data-dir", t.TempDir(), "--nats-listen", "0.0.0.0:0")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback") {
		t.Errorf("--nats-listen 0.0.0.0:0: %v\n%s", err, out)
	}
}

// Whoever reaches the broker cannot make themselves relay admin: the
// admin key hash is not read from the broker's meta bucket.
func TestRelayAdminKeyIsNotTakenFromTheBroker(t *testing.T) {
	s := bareStack(t)
	relay := s.startRelay(t)
	nc := relayNATS(t, s, embeddedNATSURL(t, relay))
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, events.BucketMeta)
	if err != nil {
		t.Fatal(err)
	}
	attacker := "attacker-chosen-admin-key-0123456789abcdefghij"
	if _, err := kv.Put(ctx, "admin_key_sha256", []byte(secret.Hash(attacker))); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := relay.Stop(sctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	relay = s.startRelay(t)

	keyFile := filepath.Join(t.TempDir(), "attacker.key")
	os.WriteFile(keyFile, []byte(attacker+"\n"), 0o600)
	out, err := exec.Command(s.erBin, "handlers", "list", "--grpc-addr", relay.Addr("grpc"), "--admin-key-file", keyFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unauthenticated") {
		t.Errorf("the key planted in the broker was accepted: %v\n%s", err, out)
	}
	// The key in the data directory still works.
	runCLI(t, s, relay, "handlers", "list")
}

// A store written by a relay that did not encrypt keeps working: it is
// encrypted in place on the first start with the store key.
func TestPlaintextStoreIsEncryptedOnStart(t *testing.T) {
	s := bareStack(t)
	marker := []byte("plaintext-marker-7f3c")
	old := testkit.NATSAt(t, filepath.Join(s.data, "nats"))
	nc, err := nats.Connect(old.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OLD", Subjects: []string{"old.x"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "old.x", marker); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	old.Shutdown()
	old.WaitForShutdown()
	if !storeContains(t, filepath.Join(s.data, "nats"), marker) {
		t.Fatal("test setup: the old store should hold the marker in clear")
	}

	relay := s.startRelay(t)
	js, _ = jetstream.New(relayNATS(t, s, embeddedNATSURL(t, relay)))
	st, err := js.Stream(ctx, "OLD")
	if err != nil {
		t.Fatalf("old stream after the start: %v", err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil || !bytes.Equal(m.Data, marker) {
		t.Fatalf("old message after the start: %v", err)
	}
	if storeContains(t, filepath.Join(s.data, "nats"), marker) {
		t.Error("the old store is still in clear after a start with encryption")
	}
}

// Against a real external server that requires a user and password over
// verified TLS: the relay connects with --nats-user, --nats-password-file
// and --nats-tls-ca-file and stores events there; a wrong password or an
// unverified server certificate stops the start with a clear message.
func TestRelayOnExternalNATSWithPasswordAndTLS(t *testing.T) {
	s := bareStack(t)
	certs := testkit.TLS(t)
	nsrv := testkit.NATSWith(t, t.TempDir(), func(o *server.Options) {
		o.Users = []*server.User{{Username: "relay", Password: "s3cret-relay-password"}}
		o.TLSConfig = certs.Config
		o.TLS = true
		o.TLSVerify = false
	})
	url := "tls://" + nsrv.Addr().String()
	pwFile := filepath.Join(t.TempDir(), "nats.password")
	os.WriteFile(pwFile, []byte("s3cret-relay-password\n"), 0o600)

	relay := s.startRelay(t, "--nats-url", url, "--nats-user", "relay", "--nats-password-file", pwFile, "--nats-tls-ca-file", certs.CAFile)
	s.ingest(t, relay, "service", eventItem("http://127.0.0.1:1/hook", "", "ONCRMDEALADD", 1))

	tlsOpt := nats.RootCAs(certs.CAFile)
	nc, err := nats.Connect(url, nats.UserInfo("relay", "s3cret-relay-password"), tlsOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if st, err := js.Stream(context.Background(), events.StreamIn); err != nil || st.CachedInfo().State.Msgs != 1 {
		t.Errorf("external stream %s: %v", events.StreamIn, err)
	}

	base := append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "--data-dir", t.TempDir(), "--nats-url", url)
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"wrong password": {[]string{"--nats-user", "relay", "--nats-password", "wrong", "--nats-tls-ca-file", certs.CAFile}, "--nats-password"},
		"no CA":          {[]string{"--nats-user", "relay", "--nats-password-file", pwFile}, "--nats-tls-ca-file"},
		"embedded creds": {[]string{"--nats-url", "", "--nats-user", "relay"}, "--nats-url"},
	} {
		cmd := exec.Command(s.erBin, append(append([]string{}, base...), c.args...)...)
		done := make(chan struct{})
		var out []byte
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s: the relay kept running", name)
			continue
		}
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v, want an exit naming %s:\n%s", name, err, c.want, out)
		}
	}
}

// deployNATS starts a real server from deploy/nats.conf as shipped, on
// one node: its cluster block (the last one) is cut, the client port and
// store moved into the test.
func deployNATS(t *testing.T, relayPassword string) *server.Server {
	t.Helper()
	b, err := os.ReadFile("../../deploy/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	i := strings.Index(conf, "\ncluster {")
	if i < 0 {
		t.Fatal("deploy/nats.conf: no cluster block")
	}
	conf = conf[:i]
	for old, repl := range map[string]string{"listen: 0.0.0.0:4222": "listen: 127.0.0.1:-1", "http: 127.0.0.1:8222": "", "store_dir: /data": "store_dir: " + strconv.Quote(t.TempDir())} {
		if !strings.Contains(conf, old) {
			t.Fatalf("deploy/nats.conf lacks %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(path, []byte(conf), 0o600)
	t.Setenv("NATS_NAME", "nats-test")
	t.Setenv("NATS_RELAY_PASSWORD", relayPassword)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("deploy/nats.conf: %v", err)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats from deploy/nats.conf not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// deploy/nats.conf refuses anonymous clients and confines the relay's
// user to the relay's subjects, which are enough for everything the
// relay does: ingest, delivery (consumers, acks, key-value buckets) and
// the push channel (stored messages, online queries).
func TestDeployNATSConfAuthorization(t *testing.T) {
	srv := deployNATS(t, "relay-pw-0123456789")
	if nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("deploy/nats.conf admits anonymous clients")
	}
	violations := make(chan error, 4)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("eventrelay", "relay-pw-0123456789"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync("$SYS.>"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("subscribe $SYS.>: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the relay's user may subscribe to $SYS.>")
	}

	s := startAuthprovider(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("relay-pw-0123456789\n"), 0o600)
	relay := s.startRelay(t, "--auth-grpc-addr", s.ap.Addr("grpc"), "--nats-url", srv.ClientURL(),
		"--nats-user", "eventrelay", "--nats-password-file", pw, "--retry-schedule", "10ms")
	h := newHandler(t, 500)
	s.ingest(t, relay, "service", eventItem(h.URL+"/hook", "", "ONTASKADD", 1))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(relay.Logs())
		}
	})
	h.next(t)
	if got := h.next(t); formValue(t, got.body, "event") != "ONTASKADD" {
		t.Errorf("retried delivery: %s", got.body)
	}

	key, err := secret.Read(filepath.Join(s.data, "push-signature.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := push.NewSigner(key, "sha1")
	ch := "5d41402abc4b2a76b9719d911017c592"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+relay.Addr("http")+"/bitrix/subws/?CHANNEL_ID="+signer.SignChannel(ch)+"&mid=00000000000000000000000000", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "history_reset") {
		t.Fatalf("first frame %q, %v", b, err)
	}
	resp, err := http.Post("http://"+relay.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+ch, "application/json", strings.NewReader(`{"module_id":"t","command":"c","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"command":"c"`) {
		t.Fatalf("pushed frame %q, %v", b, err)
	}
	if _, online := getBody(t, "http://"+relay.Addr("publish")+"/bitrix/pub/?CHANNEL_ID="+ch); !strings.Contains(online, `"subscribers":1`) {
		t.Errorf("online query: %s", online)
	}
	if strings.Contains(strings.ToLower(relay.Logs()), "permissions violation") {
		t.Errorf("the relay hit a permissions violation:\n%s", relay.Logs())
	}
}
