package main_test

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/isobox/isobox/internal/events"
	"github.com/isobox/isobox/internal/testkit"
)

// relayStreams is every stream the relay keeps: its own, the KV buckets'
// and the push history.
var relayStreams = []string{
	events.StreamIn, events.StreamQueue, events.StreamDead, events.StreamLog,
	"KV_" + events.BucketHandlers, "KV_" + events.BucketSecrets, "KV_" + events.BucketMeta,
	"ISOBOX_PUSH", "KV_ISOBOX_PUSH_DEVICES",
}

func relayArgs(dir string, extra ...string) []string {
	return append(append(freeArgs("http-addr", "publish-addr", "grpc-addr", "admin-addr"), "--data-dir", dir), extra...)
}

func jsTo(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// replicasOf returns each relay stream's configured replicas and how many
// servers hold it (the leader and its current followers).
func replicasOf(t *testing.T, js jetstream.JetStream) (cfg, placed map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, placed = map[string]int{}, map[string]int{}
	for _, name := range relayStreams {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info := st.CachedInfo()
		cfg[name] = info.Config.Replicas
		if info.Cluster != nil {
			placed[name] = 1 + len(info.Cluster.Replicas)
		} else {
			placed[name] = 1
		}
	}
	return cfg, placed
}

// On a 3-node cluster every stream and bucket is R3 without any replica
// flag, held by all three servers, and the fan-out consumer with them.
func TestRelayOnClusterDefaultsToR3(t *testing.T) {
	cl := testkit.NATSCluster(t, 3)
	dir := t.TempDir()
	er := testkit.Start(t, dir, testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay"),
		relayArgs(dir, "--nats-url", cl.URL()), "http", "publish", "grpc", "admin")
	js := jsTo(t, cl.URL())
	cfg, placed := replicasOf(t, js)
	for _, name := range relayStreams {
		if cfg[name] != 3 || placed[name] != 3 {
			t.Errorf("stream %s: replicas %d, on %d servers; want 3 on 3", name, cfg[name], placed[name])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, events.StreamIn, events.ConsumerFanout)
	if err != nil {
		t.Fatal(err)
	}
	if ci := cons.CachedInfo(); ci.Cluster == nil || len(ci.Cluster.Replicas) != 2 {
		t.Errorf("fan-out consumer cluster info %+v; want a leader and 2 replicas", ci.Cluster)
	}
	if !strings.Contains(er.Logs(), `"replicas":3`) {
		t.Errorf("the start log does not say the replicas:\n%s", er.Logs())
	}
}

// A relay that ran R1 on the cluster (on purpose) and is started again
// with the defaults raises every existing stream, bucket and consumer to
// R3, and says so.
func TestRelayRaisesExistingStreamsToR3(t *testing.T) {
	cl := testkit.NATSCluster(t, 3)
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	dir := t.TempDir()
	er := testkit.Start(t, dir, bin, relayArgs(dir, "--nats-url", cl.URL(), "--stream-replicas", "1", "--push-replicas", "1", "--allow-single-replica"),
		"http", "publish", "grpc", "admin")
	js := jsTo(t, cl.URL())
	cfg, _ := replicasOf(t, js)
	for _, name := range relayStreams {
		if cfg[name] != 1 {
			t.Fatalf("stream %s: replicas %d with --stream-replicas 1; want 1", name, cfg[name])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := er.Stop(ctx); err != nil {
		t.Fatalf("stop: %v\n%s", err, er.Logs())
	}

	er = testkit.Start(t, dir, bin, relayArgs(dir, "--nats-url", cl.URL()), "http", "publish", "grpc", "admin")
	cfg, _ = replicasOf(t, js)
	for _, name := range relayStreams {
		if cfg[name] != 3 {
			t.Errorf("stream %s: replicas %d after a start with the defaults; want 3", name, cfg[name])
		}
	}
	if !strings.Contains(er.Logs(), "changing the replicas of an existing stream") {
		t.Errorf("no log line about the raised replicas:\n%s", er.Logs())
	}
	// Placement catches up after the update; the consumers follow the
	// stream's replicas.
	waitFor(t, ctx, "every stream and the fan-out consumer on 3 servers", func() bool {
		_, placed := replicasOf(t, js)
		for _, name := range relayStreams {
			if placed[name] != 3 {
				return false
			}
		}
		cons, err := js.Consumer(ctx, events.StreamIn, events.ConsumerFanout)
		if err != nil {
			return false
		}
		ci := cons.CachedInfo()
		return ci.Cluster != nil && len(ci.Cluster.Replicas) == 2
	})
}

// R1 on a cluster is refused at start with a message that says what to
// do; so are replicas the servers cannot hold.
func TestRelayRefusesSingleReplicaOnCluster(t *testing.T) {
	cl := testkit.NATSCluster(t, 3)
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-url", cl.URL(), "--stream-replicas", "1"}, "--allow-single-replica"},
		{[]string{"--nats-url", cl.URL(), "--push-replicas", "1"}, "--allow-single-replica"},
		{[]string{"--nats-url", cl.URL(), "--stream-replicas", "7"}, "replicas are 1 to 5"},
		{[]string{"--stream-replicas", "3", "--nats-sync-always=false"}, "needs a NATS cluster"},
	} {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, bin, relayArgs(dir, tc.args...)...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("eventrelay %v: %v\n%s\nwant a failed start saying %q", tc.args, err, out, tc.want)
		}
	}
}

// The embedded single server stays R1 (and starts without any flag).
func TestEmbeddedRelayStaysR1(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := l.Addr().String()
	l.Close()
	bin := testkit.Build(t, "github.com/isobox/isobox/cmd/eventrelay")
	er := testkit.Start(t, dir, bin, relayArgs(dir, "--nats-listen", natsAddr, "--nats-sync-always=false"), "http", "publish", "grpc", "admin")
	// The embedded server admits only the nkey in the data directory.
	nkey, err := nats.NkeyOptionFromSeed(filepath.Join(dir, "nats-client.nk"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := replicasOf(t, jsTo(t, "nats://"+natsAddr, nkey))
	for _, name := range relayStreams {
		if cfg[name] != 1 {
			t.Errorf("stream %s: replicas %d on the embedded server; want 1", name, cfg[name])
		}
	}

	// `eventrelay health`, the compose healthcheck: 0 for a ready relay,
	// non-zero for a listener that is not one.
	if out, err := exec.Command(bin, "health", "--url", "http://"+er.Addr("admin")+"/readyz").CombinedOutput(); err != nil || !strings.Contains(string(out), "ready") {
		t.Errorf("health of a ready relay: %v %s", err, out)
	}
	if out, err := exec.Command(bin, "health", "--url", "http://"+er.Addr("admin")+"/nothing-here").CombinedOutput(); err == nil {
		t.Errorf("health of a 404 URL succeeded: %s", out)
	}
}

// waitFor polls cond (state of a black-box cluster) until it holds or ctx
// ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
