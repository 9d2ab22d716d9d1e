package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/isobox/isobox/internal/secret"
)

// Topology is the production shape on loopback: three nats-server
// processes in one JetStream cluster, two authprovider instances on one
// MariaDB database, two eventrelay instances on the cluster (R3 by
// default), every one a real process that a scenario may kill.
type Topology struct {
	dir    string
	mounts []string // tmpfs mounts made for the stores, unmounted by Close
	// Stores are the NATS nodes' store directories (tmpfs mounts when
	// Shape.StoreSize is set), in node order.
	Stores     []string
	routeProxy map[[2]int]*proxy // route from node [0] to node [1]
	NATS       []*proc
	Auth       []*proc
	// Relays and RelayURLs (ingest base URLs) are in the same order.
	Relays    []*proc
	RelayURLs []string
	// PublishURLs are the relays' push publish base URLs (/bitrix/pub/),
	// in the order of Relays; PushKey is their pull signature key, which
	// signs channels and (--push-publish-signature) publishes.
	PublishURLs []string
	PushKey     string
	// AuthURLs are the authprovider instances' Bitrix-facing base URLs
	// (/rest/, /oauth/token/), in the order of Auth.
	AuthURLs []string
	// The portal the load generator sends events as.
	PortalID, PortalSecret string
}

// Binaries are the programs the topology runs.
type Binaries struct{ NATSServer, Authprovider, Eventrelay string }

// Build compiles nats-server (the github.com/nats-io/nats-server/v2 version
// in go.mod), authprovider and eventrelay into dir.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{
		NATSServer:   filepath.Join(dir, "nats-server"),
		Authprovider: filepath.Join(dir, "authprovider"),
		Eventrelay:   filepath.Join(dir, "eventrelay"),
	}
	for bin, pkg := range map[string]string{
		b.NATSServer:   "github.com/nats-io/nats-server/v2",
		b.Authprovider: authproviderPkg,
		b.Eventrelay:   "github.com/isobox/isobox/cmd/eventrelay",
	} {
		if err := build(ctx, bin, pkg); err != nil {
			return b, err
		}
	}
	return b, nil
}

const authproviderPkg = "github.com/isobox/isobox/cmd/authprovider"

// BuildAuthprovider compiles authprovider alone into dir.
func BuildAuthprovider(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "authprovider")
	return bin, build(ctx, bin, authproviderPkg)
}

func build(ctx context.Context, bin, pkg string) error {
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("faults: go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// Shape adjusts the topology.
type Shape struct {
	// StoreSize, when set, puts each NATS node's JetStream store on a tmpfs
	// of this many bytes of its own (needs root), so that a scenario can
	// fill the disk (DiskFull). Close unmounts them.
	StoreSize int64
}

// StartTopology starts every process under dir (logs in dir/logs) and
// returns once all are ready. mariaDB is the DSN (mysql://...) of an empty
// database for authprovider. A non-nil topology is returned even with an
// error: Close it (it stops what started and unmounts what was mounted).
func StartTopology(ctx context.Context, bins Binaries, dir, mariaDB string, shape Shape) (*Topology, error) {
	t := &Topology{dir: dir}
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return nil, err
	}
	for i := range 3 {
		store := filepath.Join(dir, fmt.Sprintf("nats%d", i+1))
		if err := os.MkdirAll(store, 0o700); err != nil {
			return t, err
		}
		if shape.StoreSize > 0 {
			out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", shape.StoreSize), "tmpfs", store).CombinedOutput()
			if err != nil {
				return t, fmt.Errorf("faults: mount a tmpfs store (run as root): %v: %s", err, out)
			}
			t.mounts = append(t.mounts, store)
		}
		t.Stores = append(t.Stores, store)
	}
	ports, err := freePorts(3*3 + 2*3 + 2*4)
	if err != nil {
		return nil, err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	var client, route, mon [3]int
	for i := range 3 {
		client[i], route[i], mon[i] = next(), next(), next()
	}
	var natsURLs []string
	for i := range 3 {
		natsURLs = append(natsURLs, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	// Every route goes through a proxy per ordered pair of nodes, so that a
	// scenario can cut one node off (a partition). The nodes advertise no
	// usable route address, so none connects to another directly.
	t.routeProxy = map[[2]int]*proxy{}
	for i := range 3 {
		for j := range 3 {
			if i != j {
				px, err := startProxy(addr(route[j]))
				if err != nil {
					return t, err
				}
				t.routeProxy[[2]int{i, j}] = px
			}
		}
	}
	// On a small tmpfs the server would derive a limit too small to place
	// the relay's streams (the push history reserves 1 GiB); with a larger
	// stated limit the disk itself fills first, which DiskFull needs.
	maxStore := ""
	if shape.StoreSize > 0 {
		maxStore = ", max_file_store: 16G"
	}
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, "nats://"+t.routeProxy[[2]int{i, j}].addr())
			}
		}
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: always%s }
cluster { name: isobox-faults, listen: 127.0.0.1:%d, advertise: "127.0.0.1:1", routes: [%s] }
`, i+1, client[i], mon[i], t.Stores[i], maxStore, route[i], strings.Join(routes, ", "))
		cf := filepath.Join(dir, fmt.Sprintf("nats%d.conf", i+1))
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		t.NATS = append(t.NATS, &proc{name: fmt.Sprintf("nats-%d", i+1), bin: bins.NATSServer, args: []string{"-c", cf},
			log: filepath.Join(logs, fmt.Sprintf("nats-%d.log", i+1)), ready: fmt.Sprintf("http://127.0.0.1:%d/healthz", mon[i])})
	}
	for _, p := range t.NATS {
		if err := p.start(); err != nil {
			return t, err
		}
	}
	for _, p := range t.NATS {
		if err := p.waitReady(ctx, 60*time.Second); err != nil {
			return t, err
		}
	}

	var erHTTP [2]int
	erAll := [2][4]int{}
	for i := range 2 {
		erAll[i] = [4]int{next(), next(), next(), next()}
		erHTTP[i] = erAll[i][0]
	}
	ap, err := StartAuthproviders(ctx, bins.Authprovider, dir, mariaDB, 2,
		func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", erHTTP[i]) }, ports[:6])
	if ap != nil {
		t.Auth, t.AuthURLs, t.PortalID, t.PortalSecret = ap.procs, ap.URLs, ap.PortalID, ap.PortalSecret
	}
	if err != nil {
		return t, err
	}
	apData := ap.dataDir
	// The relays share their keys through one data directory (several
	// hosts: the same files copied).
	erData := filepath.Join(dir, "eventrelay")
	if err := os.MkdirAll(erData, 0o700); err != nil {
		return t, err
	}
	if err := copyFile(filepath.Join(apData, "service.key"), filepath.Join(erData, "service.key")); err != nil {
		return t, err
	}
	for i := range 2 {
		p := erAll[i]
		t.Relays = append(t.Relays, &proc{name: fmt.Sprintf("eventrelay-%d", i+1), bin: bins.Eventrelay,
			args: []string{"--http-addr", addr(p[0]), "--publish-addr", addr(p[1]), "--grpc-addr", addr(p[2]), "--admin-addr", addr(p[3]),
				"--data-dir", erData, "--nats-url", strings.Join(natsURLs, ","), "--auth-grpc-addr", ap.grpcAddrs[i],
				"--retry-schedule", "500ms,1s,2s,5s,10s,20s,30s,60s", "--breaker-cooldown", "2s",
				"--push-publish-signature", "--push-poll-timeout", "10s"},
			log: filepath.Join(logs, fmt.Sprintf("eventrelay-%d.log", i+1)), ready: fmt.Sprintf("http://127.0.0.1:%d/readyz", p[3])})
		t.RelayURLs = append(t.RelayURLs, fmt.Sprintf("http://127.0.0.1:%d", p[0]))
		t.PublishURLs = append(t.PublishURLs, fmt.Sprintf("http://127.0.0.1:%d", p[1]))
	}
	for _, p := range t.Relays {
		if err := p.start(); err != nil {
			return t, err
		}
		if err := p.waitReady(ctx, 90*time.Second); err != nil {
			return t, err
		}
	}
	// The first relay made the push signature key; both read it.
	t.PushKey, err = secret.Read(filepath.Join(erData, "push-signature.key"))
	if err != nil {
		return t, fmt.Errorf("faults: push signature key: %w", err)
	}
	return t, nil
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

func (t *Topology) all() []*proc {
	return append(append(append([]*proc(nil), t.NATS...), t.Auth...), t.Relays...)
}

// Crashes returns (and forgets) the processes that exited without being
// told to.
func (t *Topology) Crashes() []string {
	var out []string
	for _, p := range t.all() {
		out = append(out, p.takeCrashes()...)
	}
	return out
}

// Close stops every process: the services first, then the cluster.
func (t *Topology) Close() {
	for _, p := range append(append([]*proc(nil), t.Relays...), t.Auth...) {
		p.stop(30 * time.Second)
	}
	for _, p := range t.NATS {
		p.stop(30 * time.Second)
	}
	for _, px := range t.routeProxy {
		px.close()
	}
	for _, m := range t.mounts {
		// Lazy: a process that did not stop still holds files there.
		exec.Command("umount", "-l", m).Run()
	}
	t.mounts = nil
}

// partition cuts (or heals) every route between node i and the others.
func (t *Topology) partition(i int, cut bool) {
	for pair, px := range t.routeProxy {
		if pair[0] == i || pair[1] == i {
			px.setCut(cut)
		}
	}
}
