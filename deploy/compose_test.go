package deploy

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/isobox/isobox/internal/testkit"
)

func load(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("isobox", true) })
}

var testEnv = map[string]string{"ISOBOX_VERSION": "1.2.3", "MARIADB_PASSWORD": "pw", "NATS_RELAY_PASSWORD": "rp", "NATS_CLUSTER_PASSWORD": "cp"}

// The production compose file loads with the compose-spec loader and has
// the shape docs/reliability.md describes.
func TestComposeFile(t *testing.T) {
	p, err := load(t, testEnv)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	want := []string{"authprovider-1", "authprovider-2", "eventrelay-1", "eventrelay-2", "mariadb", "nats-1", "nats-2", "nats-3"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	internal := map[uint32]bool{4222: true, 6222: true, 8222: true, 3306: true, 9090: true, 9091: true}
	loopback := map[uint32]bool{8081: true, 8091: true, 8895: true}
	natsVersion := goModVersion(t, "github.com/nats-io/nats-server/v2")
	for name, s := range p.Services {
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
		}
		for _, port := range s.Ports {
			if internal[port.Target] {
				t.Errorf("%s publishes internal port %d", name, port.Target)
			}
			if loopback[port.Target] && port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes admin port %d on %q, want 127.0.0.1", name, port.Target, port.HostIP)
			}
		}
		svc, _, _ := strings.Cut(name, "-")
		switch svc {
		case "authprovider", "eventrelay":
			if img := "isobox/" + svc + ":1.2.3"; s.Image != img {
				t.Errorf("%s: image %q, want %q", name, s.Image, img)
			}
			if hc := s.HealthCheck.Test; len(hc) != 3 || hc[0] != "CMD" || hc[1] != "/usr/local/bin/"+svc || hc[2] != "health" {
				t.Errorf("%s: healthcheck %v, want the binary's health subcommand (the image has no shell)", name, hc)
			}
		case "nats":
			if s.Image != "nats:"+strings.TrimPrefix(natsVersion, "v")+"-alpine" {
				t.Errorf("%s: image %q; want the nats-server version of go.mod (%s), which the fault harness tests", name, s.Image, natsVersion)
			}
			var data []string
			for _, v := range s.Volumes {
				if v.Target == "/data" {
					data = append(data, v.Source)
				}
			}
			if !slices.Equal(data, []string{name}) {
				t.Errorf("%s: store volumes %v, want its own volume %q", name, data, name)
			}
		}
	}
	for _, name := range []string{"eventrelay-1", "eventrelay-2"} {
		env := p.Services[name].Environment
		for k, want := range map[string]string{"EVENTRELAY_STREAM_REPLICAS": "3", "EVENTRELAY_PUSH_REPLICAS": "3",
			"EVENTRELAY_NATS_URL": "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "EVENTRELAY_AUTH_GRPC_ADDR": "authprovider:9090"} {
			if v := env[k]; v == nil || *v != want {
				t.Errorf("%s: %s = %q, want %q", name, k, deref(v), want)
			}
		}
		if _, ok := env["EVENTRELAY_ALLOW_SINGLE_REPLICA"]; ok {
			t.Errorf("%s sets EVENTRELAY_ALLOW_SINGLE_REPLICA", name)
		}
	}
	for _, name := range []string{"authprovider-1", "authprovider-2"} {
		if v := p.Services[name].Environment["AUTHPROVIDER_DB"]; v == nil || !strings.HasPrefix(*v, "mysql://") {
			t.Errorf("%s: AUTHPROVIDER_DB %q, want MariaDB", name, deref(v))
		}
	}
	// Both instances of a service answer to one name, so that each peer
	// fails over between them; the second starts after the first made the
	// shared keys.
	for svc, alias := range map[string]string{"authprovider": "authprovider", "eventrelay": "eventrelay"} {
		for _, n := range []string{"-1", "-2"} {
			nw := p.Services[svc+n].Networks["default"]
			if nw == nil || !slices.Contains(nw.Aliases, alias) {
				t.Errorf("%s%s: no network alias %q", svc, n, alias)
			}
		}
		if d, ok := p.Services[svc+"-2"].DependsOn[svc+"-1"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s-2 does not wait for %s-1 to be healthy", svc, svc)
		}
	}
	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		if d, ok := p.Services["eventrelay-1"].DependsOn[n]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("eventrelay-1 does not wait for %s to be healthy", n)
		}
	}
}

// Without the image version the file refuses to load, naming it.
func TestComposeNeedsVersion(t *testing.T) {
	env := maps.Clone(testEnv)
	delete(env, "ISOBOX_VERSION")
	_, err := load(t, env)
	if err == nil || !strings.Contains(err.Error(), "ISOBOX_VERSION") {
		t.Fatalf("load without ISOBOX_VERSION: %v; want an error naming it", err)
	}
}

// Every AUTHPROVIDER_*/EVENTRELAY_* setting in the file is a setting the
// binary has (a typo would be silently ignored by the service).
func TestComposeSettingsExist(t *testing.T) {
	p, err := load(t, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"authprovider", "eventrelay"} {
		bin := testkit.Build(t, "github.com/isobox/isobox/cmd/"+svc)
		help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
		for _, n := range []string{"-1", "-2"} {
			for k := range p.Services[svc+n].Environment {
				if !strings.Contains(string(help), "env "+k+"\n") {
					t.Errorf("%s%s: %s is no setting of %s (serve --help)", svc, n, k, svc)
				}
			}
		}
	}
}

// deploy/nats.conf, which every node reads: JetStream fsyncs each message
// and the routes (from each node's environment) name the three nodes.
func TestNATSConfig(t *testing.T) {
	b, err := os.ReadFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !regexp.MustCompile(`(?m)^\s*sync_interval:\s*always\s*$`).MatchString(conf) {
		t.Error("nats.conf: jetstream sync_interval is not always")
	}
	if !regexp.MustCompile(`(?m)^\s*routes:\s*\$NATS_ROUTES\s*$`).MatchString(conf) {
		t.Error("nats.conf: the routes are not $NATS_ROUTES")
	}
	p, err := load(t, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"nats-1", "nats-2", "nats-3"} {
		routes := deref(p.Services[node].Environment["NATS_ROUTES"])
		for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
			if !strings.Contains(routes, "@"+n+":6222") {
				t.Errorf("%s: NATS_ROUTES %q has no route to %s", node, routes, n)
			}
		}
		if deref(p.Services[node].Environment["NATS_NAME"]) != node {
			t.Errorf("%s: NATS_NAME is not its name", node)
		}
	}
	for _, name := range []string{"eventrelay-1", "eventrelay-2"} {
		env := p.Services[name].Environment
		if deref(env["EVENTRELAY_NATS_USER"]) != "eventrelay" || deref(env["EVENTRELAY_NATS_PASSWORD"]) != "rp" {
			t.Errorf("%s does not connect as nats.conf's user eventrelay with NATS_RELAY_PASSWORD", name)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// goModVersion reads a module's version from the repository's go.mod.
func goModVersion(t *testing.T, mod string) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mod) + `\s+(v\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("go.mod has no %s", mod)
	}
	return m[1]
}
