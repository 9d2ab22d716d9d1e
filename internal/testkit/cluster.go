package testkit

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a NATS cluster with JetStream running in the test process:
// every node on loopback with fixed ports chosen at start, so that a node
// can be stopped and started again on the same ports and store (a node
// crash and restart).
type Cluster struct {
	t       testing.TB
	name    string
	dir     string
	clients []int // client port per node
	routes  []int // route port per node
	servers []*server.Server
}

// NATSCluster starts an n-node JetStream cluster storing in t.TempDir() and
// waits until JetStream has a meta leader. It is shut down when the test
// ends.
func NATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: "isobox-test", dir: t.TempDir(), servers: make([]*server.Server, n)}
	for range n {
		c.clients = append(c.clients, freePort(t))
		c.routes = append(c.routes, freePort(t))
	}
	for i := range n {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.Stop(i)
		}
	})
	c.WaitJetStream()
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts node i (again) on its ports and store directory.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if c.servers[i] != nil {
		c.t.Fatalf("testkit: cluster node %d is running", i)
	}
	var routes []string
	for j, p := range c.routes {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
		}
	}
	opts := &server.Options{
		ServerName: fmt.Sprintf("n%d", i+1),
		Host:       "127.0.0.1",
		Port:       c.clients[i],
		JetStream:  true,
		StoreDir:   filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)),
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: true,
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: c.routes[i],
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatalf("testkit: cluster node %d: %v", i, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		c.t.Fatalf("testkit: cluster node %d not ready after 30s", i)
	}
	c.servers[i] = srv
}

// Stop shuts node i down (its store stays for Start).
func (c *Cluster) Stop(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

// Server returns node i, nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server { return c.servers[i] }

// URL is every node's client URL, comma-separated, as a NATS client takes it.
func (c *Cluster) URL() string {
	var out []string
	for _, p := range c.clients {
		out = append(out, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(out, ",")
}

// NodeURL is node i's client URL.
func (c *Cluster) NodeURL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.clients[i]) }

// WaitJetStream waits (up to 30s) until every running node sees a
// JetStream meta leader and all running nodes as its peers.
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		running, current, peers := 0, 0, 0
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			running++
			if s.JetStreamIsCurrent() {
				current++
			}
			if s.JetStreamIsLeader() {
				peers = len(s.JetStreamClusterPeers())
			}
		}
		if current == running && peers >= running {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testkit: JetStream cluster not ready after 30s (%d of %d nodes current, leader sees %d peers)", current, running, peers)
		}
		time.Sleep(50 * time.Millisecond) // polling a black box (the cluster's election) with a deadline
	}
}
