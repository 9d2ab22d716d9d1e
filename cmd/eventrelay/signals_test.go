package main_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/isobox/isobox/internal/testkit"
)

// runCLIErr runs an eventrelay subcommand that may fail.
func runCLIErr(s *stack, relay *testkit.Proc, args ...string) (string, error) {
	out, err := exec.Command(s.erBin, append(args, "--grpc-addr", relay.Addr("grpc"), "--data-dir", s.data)...).CombinedOutput()
	return string(out), err
}

// runCLITerminal runs the CLI with a pseudo-terminal as its stdin and
// stdout (script(1) from util-linux), typing input into it.
func runCLITerminal(s *stack, relay *testkit.Proc, input string, args ...string) (string, error) {
	argv := append([]string{s.erBin}, append(args, "--grpc-addr", relay.Addr("grpc"), "--data-dir", s.data)...)
	for i, a := range argv {
		argv[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command("script", "--quiet", "--return", "--command", strings.Join(argv, " "), "/dev/null")
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitLog polls a black-box binary's log for want (there is no other
// signal to wait on).
func waitLog(t *testing.T, p *testkit.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %s:\n%s", want, p.Logs())
		}
		<-time.After(20 * time.Millisecond)
	}
}

// A handler that is completely down is visible without the console: a log
// line for the dead letter and for the circuit, gauges on /metrics, `dlq
// list`; a replay of everything asks for --yes. The Grafana dashboard and
// the alert rules in deploy/ name only metrics the real binaries export.
func TestSignalsForOperators(t *testing.T) {
	s := startAuthprovider(t)
	app := s.addApp(t)
	relay := s.startRelay(t, "--auth-grpc-addr", s.ap.Addr("grpc"), "--retry-schedule", "10ms",
		"--breaker-failures", "2", "--breaker-cooldown", "200ms")
	h := newHandler(t, 500, 500)
	id := s.ingest(t, relay, "portal", eventItem(h.URL+"/app", app, "ONCRMDEALADD", 1))[0]
	h.next(t)
	h.next(t)
	waitLog(t, relay, `"msg":"delivery: dead-lettered"`)
	waitLog(t, relay, `"msg":"delivery: circuit opened`)
	if logs := relay.Logs(); !strings.Contains(logs, `"id":"`+id+`"`) || !strings.Contains(logs, `"last_status":500`) {
		t.Errorf("dead-letter log line lacks the id or the status:\n%s", logs)
	}

	_, relayMetrics := getBody(t, "http://"+relay.Addr("admin")+"/metrics")
	for _, want := range []string{"isobox_relay_dead_letters 1", "isobox_relay_handler_circuit_open{handler=", "isobox_relay_queue_depth{handler=",
		"isobox_relay_handler_paused{handler=", `isobox_relay_handler_info{client_id="` + app + `"`} {
		if !strings.Contains(relayMetrics, want) {
			t.Errorf("relay /metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`isobox_relay_handler_dead_letters\{handler="[0-9a-f]+"\} 1`).MatchString(relayMetrics) {
		t.Errorf("relay /metrics lacks the handler's dead letter")
	}

	// deliveries show has the attempts and the payload.
	if out := runCLI(t, s, relay, "deliveries", "show", id); !strings.Contains(out, "attempts:") || !strings.Contains(out, "data[FIELDS][ID] = 1") ||
		strings.Contains(out, "auth[access_token]") {
		t.Errorf("deliveries show: %s", out)
	}

	// dlq list shows it; replaying everything needs --yes.
	if out := runCLI(t, s, relay, "dlq", "list"); !strings.Contains(out, id) || !strings.Contains(out, "HTTP 500") {
		t.Errorf("dlq list: %s", out)
	}
	out, err := runCLIErr(s, relay, "dlq", "replay")
	if err == nil || !strings.Contains(out, "all 1 dead letters") || !strings.Contains(out, "--yes") {
		t.Fatalf("dlq replay without a filter: %v\n%s", err, out)
	}
	if out := runCLI(t, s, relay, "dlq", "list", "--json"); !strings.Contains(out, id) {
		t.Fatalf("the refused replay replayed: %s", out)
	}
	// On a terminal it asks: anything but yes replays nothing, yes
	// replays them (the terminal is a real pty, made by script(1)).
	if out, err := runCLITerminal(s, relay, "n\n", "dlq", "replay"); err == nil || !strings.Contains(out, "Replay all 1 dead letters of every handler? [y/N]") ||
		!strings.Contains(out, "not confirmed") {
		t.Fatalf("dlq replay on a terminal, answered n: %v\n%s", err, out)
	}
	if out := runCLI(t, s, relay, "dlq", "list", "--json"); !strings.Contains(out, id) {
		t.Fatalf("the declined replay replayed: %s", out)
	}
	if out, err := runCLITerminal(s, relay, "yes\n", "dlq", "replay"); err != nil || !strings.Contains(out, "replayed 1") {
		t.Fatalf("dlq replay on a terminal, answered yes: %v\n%s", err, out)
	}
	h.next(t) // the probe after the cooldown, answered 200
	waitLog(t, relay, `"msg":"delivery: circuit closed; the probe succeeded"`)

	// authprovider counts /rest/ calls by method and status; unknown
	// methods share one label value.
	for _, m := range []string{"rest.check", "no.such.method"} {
		resp, err := http.PostForm("http://"+s.ap.Addr("http")+"/rest/"+m, url.Values{"client_id": {s.portalID}, "client_secret": {"wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.PostForm("http://"+s.ap.Addr("http")+"/oauth/token/", url.Values{"grant_type": {"refresh_token"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, apMetrics := getBody(t, "http://"+s.ap.Addr("admin")+"/metrics")
	for _, want := range []string{`isobox_rest_calls_total{code="401",method="rest.check"} 1`, `isobox_rest_calls_total{code="404",method="other"} 1`} {
		if !strings.Contains(apMetrics, want) {
			t.Errorf("authprovider /metrics lacks %s", want)
		}
	}

	exported := seriesNames(relayMetrics + apMetrics)
	exported["up"] = true // Prometheus's own
	for _, name := range deployedMetrics(t) {
		if !exported[name] {
			t.Errorf("deploy/ uses %s, which neither binary exports", name)
		}
	}
}

// seriesNames are the metric names of a /metrics text.
func seriesNames(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return out
}

var metricName = regexp.MustCompile(`\b(isobox_[a-z0-9_]+|up)\b`)

// deployedMetrics checks the structure of the dashboard and the alert rules
// and returns every metric name their expressions use.
func deployedMetrics(t *testing.T) []string {
	t.Helper()
	var exprs []string
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "isobox-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 10 {
		t.Errorf("dashboard: title %q, uid %q, %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}

	b, err = os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "isobox-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("rule group %q: no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || seen[r.Alert]:
				t.Errorf("rule %q: missing or duplicate name", r.Alert)
			case r.Expr == "":
				t.Errorf("rule %s: no expr", r.Alert)
			case r.Annotations["summary"] == "":
				t.Errorf("rule %s: no summary", r.Alert)
			}
			seen[r.Alert] = true
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("rule %s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if len(seen) < 5 {
		t.Errorf("only %d alert rules", len(seen))
	}

	var names []string
	for _, e := range exprs {
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
			t.Errorf("unbalanced expression %q", e)
		}
		for _, m := range metricName.FindAllString(e, -1) {
			if m == "up" && !strings.Contains(e, "up{") {
				continue
			}
			names = append(names, m)
		}
	}
	return names
}
