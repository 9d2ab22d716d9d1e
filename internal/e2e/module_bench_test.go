package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isobox/isobox/internal/testkit"
)

// BenchmarkModuleTokenCheck measures a REST call's token check on the
// stand-in portal with the real PHP and the real authprovider: "cached" is
// the module's path within cache_ttl, "roundtrip" (cache_ttl 0) is one
// validation call per REST call, and "core-cached" is the baseline in the
// same run: the core's own validator answering from its StorageCache, with
// the same post-checks. The figure is ns/check, measured inside PHP
// (process start excluded).
func BenchmarkModuleTokenCheck(b *testing.B) {
	root := moduleRoot(b)
	_, _, _, _, env := moduleEnv(b, moduleAppByCLI)
	script := filepath.Join(root, "bitrix-module", "tests", "bench", "tokencheck.php")
	for _, c := range []struct{ name, ttl, mode string }{{"core-cached", "5", "core"}, {"cached", "5", ""}, {"roundtrip", "0", ""}} {
		b.Run(c.name, func(b *testing.B) {
			cmd := exec.Command("php", script)
			cmd.Env = os.Environ()
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.Env = append(cmd.Env, "ISOBOX_BENCH_N="+strconv.Itoa(b.N), "ISOBOX_BENCH_TTL="+c.ttl, "ISOBOX_BENCH_MODE="+c.mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("php %s: %v", script, err)
			}
			var r struct {
				N  int   `json:"n"`
				NS int64 `json:"ns"`
			}
			if err := json.Unmarshal(out, &r); err != nil || r.N != b.N {
				b.Fatalf("bench output %q: %v", out, err)
			}
			b.ReportMetric(float64(r.NS)/float64(r.N), "ns/check")
		})
	}
}

// BenchmarkModuleEventSend measures what a portal hit that fires 10 events
// spends handing them over (after the response, in Sender's background
// job, but in the same PHP worker): "module" is the module's provider, one
// ingest call to the real eventrelay, which stores the batch durably in
// JetStream before answering and delivers later; "direct" is the baseline of
// the handbook's demo provider, one POST per handler straight to a loopback
// handler, once answering at once and once taking 50 ms (a slow app).
// The figure is ns/hit, measured inside PHP.
func BenchmarkModuleEventSend(b *testing.B) {
	root := moduleRoot(b)
	dir, ap, _, _, env := moduleEnv(b, moduleAppByPortal)
	er := moduleStartRelay(b, dir, testkit.Build(b, "github.com/isobox/isobox/cmd/eventrelay"), ap)
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/slow") {
			time.Sleep(50 * time.Millisecond) // the slow app being simulated
		}
	}))
	b.Cleanup(h.Close)
	env["ISOBOX_E2E_RELAY_URL"] = "http://" + er.Addr("http")
	script := filepath.Join(root, "bitrix-module", "tests", "bench", "events.php")
	for _, c := range []struct{ name, mode, handler string }{
		{"direct-fast-app", "direct", "/fast"},
		{"direct-slow-app", "direct", "/slow"},
		{"module-slow-app", "module", "/slow"},
	} {
		b.Run(c.name, func(b *testing.B) {
			cmd := exec.Command("php", script)
			cmd.Env = os.Environ()
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.Env = append(cmd.Env, "ISOBOX_BENCH_N="+strconv.Itoa(b.N), "ISOBOX_BENCH_EVENTS=10",
				"ISOBOX_BENCH_MODE="+c.mode, "ISOBOX_E2E_HANDLER="+h.URL+c.handler)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("php %s: %v", script, err)
			}
			var r struct {
				N  int   `json:"n"`
				NS int64 `json:"ns"`
			}
			if err := json.Unmarshal(out, &r); err != nil || r.N != b.N {
				b.Fatalf("bench output %q: %v", out, err)
			}
			b.ReportMetric(float64(r.NS)/float64(r.N), "ns/hit")
		})
	}
}
