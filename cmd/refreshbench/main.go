// Command refreshbench measures refresh_token grants per second on the
// production shape: two real authprovider processes on one MariaDB server
// with durable commits, the load split over both. In the same run it
// measures the baselines: the same load on one instance, and the same
// client loop against a no-op HTTP handler in a process of its own (the
// ceiling of the load generator and loopback on this machine).
//
//	refreshbench -mariadb 'root@tcp(127.0.0.1:33512)/' -grants 20000 -runs 2
//
// Each of -workers clients refreshes its own chain (rest.authorize for
// its own portal user, then refresh after refresh with the token the last
// answer gave) over a keep-alive connection, form POSTs to /oauth/token/
// as CRest and b24jssdk send them. Worker w goes to instance w mod n. Every
// answer must be 200 with a new refresh token, or the run fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/isobox/isobox/internal/faults"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-serve-noop" {
		if err := serveNoop(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "refreshbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "refreshbench:", err)
		os.Exit(1)
	}
}

func run() error {
	mariadb := flag.String("mariadb", os.Getenv("ISOBOX_BENCH_MARIADB"), "DSN of a MariaDB server with durable commits the tool may create a database on (go-sql-driver form, as scripts/mariadb.sh start prints)")
	workers := flag.Int("workers", 64, "concurrent clients, each refreshing its own chain")
	grants := flag.Int("grants", 20000, "refresh grants per measurement")
	runs := flag.Int("runs", 2, "rounds of (no-op, two instances, one instance)")
	dir := flag.String("dir", "", "work directory (binary, logs); empty = a new temporary directory, removed after a successful run")
	flag.Parse()
	if *mariadb == "" {
		return errors.New("-mariadb (or ISOBOX_BENCH_MARIADB) is required: start one with ISOBOX_MARIADB_PORT=... scripts/mariadb.sh start")
	}
	if *workers < 2 || *grants < *workers || *runs < 1 {
		return errors.New("-workers must be at least 2, -grants at least -workers, -runs at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()

	version, err := faults.DurableCommits(ctx, *mariadb)
	if err != nil {
		return err
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "isobox-refreshbench-"); err != nil {
			return err
		}
	}
	dsn, err := faults.FreshDatabase(ctx, *mariadb)
	if err != nil {
		return err
	}
	bin, err := faults.BuildAuthprovider(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}
	// No relay: nothing here calls rest.event.call, and an unreachable
	// relay does not make authprovider unready.
	ap, err := faults.StartAuthproviders(ctx, bin, work, dsn, 2, func(int) string { return "http://127.0.0.1:9" }, nil)
	if ap != nil {
		defer ap.Close()
	}
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, filepath.Join(work, "logs"))
	}
	noop, stopNoop, err := startNoop(ctx)
	if err != nil {
		return err
	}
	defer stopNoop()

	tr := &http.Transport{MaxIdleConns: 2 * *workers, MaxIdleConnsPerHost: 2 * *workers, DisableCompression: true}
	pc := &faults.PortalClient{HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}, URLs: ap.URLs, ID: ap.PortalID, Secret: ap.PortalSecret}
	app, err := pc.AddApp(ctx, 0)
	if err != nil {
		return err
	}
	chains := make([]string, *workers)
	for w := range chains {
		tok, err := pc.Authorize(ctx, w%len(ap.URLs), app, w+1)
		if err != nil {
			return err
		}
		chains[w] = tok.RefreshToken
	}
	fmt.Printf("refreshbench: %s, %d CPUs, MariaDB %s (innodb_flush_log_at_trx_commit=1), %d workers, %d grants per measurement\n",
		runtime.Version(), runtime.NumCPU(), version, *workers, *grants)
	refresh := func(urls []string) func(w int) error {
		return func(w int) error {
			status, b, err := pc.Post(ctx, urls[w%len(urls)]+"/oauth/token/", faults.RefreshForm(app, chains[w]))
			if err != nil {
				return err
			}
			var tok faults.Tokens
			if status != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.RefreshToken == "" {
				return fmt.Errorf("refresh on %s: %d %s", urls[w%len(urls)], status, b)
			}
			chains[w] = tok.RefreshToken
			return nil
		}
	}
	noopCall := func(w int) error {
		status, _, err := pc.Post(ctx, noop+"/oauth/token/", faults.RefreshForm(app, chains[w]))
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("no-op handler answered %d", status)
		}
		return err
	}
	for r := range *runs {
		for _, m := range []struct {
			name string
			do   func(int) error
		}{
			{"no-op handler (ceiling)", noopCall},
			{"refresh, 2 instances", refresh(ap.URLs)},
			{"refresh, 1 instance", refresh(ap.URLs[:1])},
		} {
			res, err := measure(*workers, *grants, m.do)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", r+1, m.name, err)
			}
			fmt.Printf("refreshbench: run %d  %-24s %8.0f req/s  p50 %6.1f ms  p99 %6.1f ms  (%d in %v; load average %s → %s)\n",
				r+1, m.name, res.rate, ms(res.p50), ms(res.p99), res.n, res.elapsed.Round(time.Millisecond), res.loadBefore, res.loadAfter)
		}
	}
	if c := ap.Crashes(); len(c) > 0 {
		return fmt.Errorf("instances exited by themselves: %v", c)
	}
	if *dir == "" {
		ap.Close()
		os.RemoveAll(work)
	}
	return nil
}

type result struct {
	n                     int
	elapsed               time.Duration
	rate                  float64
	p50, p99              time.Duration
	loadBefore, loadAfter string
}

// measure runs n calls of do over workers goroutines (worker w calls
// do(w) one call after another) and returns the rate and latencies.
func measure(workers, n int, do func(w int) error) (result, error) {
	res := result{loadBefore: loadAverage()}
	var next atomic.Int64
	lat := make([][]time.Duration, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := do(w); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.loadAfter = loadAverage()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res.n = len(all)
	res.rate = float64(len(all)) / res.elapsed.Seconds()
	res.p50, res.p99 = all[(len(all)-1)/2], all[(len(all)-1)*99/100]
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAverage is the 1-minute load average, or "?" off Linux.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// startNoop runs this binary again as the no-op handler, in a process of
// its own as the authprovider instances are, and returns its base URL.
func startNoop(ctx context.Context) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(self, "-serve-noop", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "http://" + addr, stop, nil
		}
		select {
		case <-ctx.Done():
			stop()
			return "", nil, fmt.Errorf("no-op handler not listening on %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serveNoop answers every request with 200 {} after reading its form, as
// the ceiling of the client loop.
func serveNoop(addr string) error {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	})}
	return srv.ListenAndServe()
}
