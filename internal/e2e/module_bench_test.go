package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
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
