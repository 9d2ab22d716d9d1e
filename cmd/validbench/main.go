// Command validbench measures token validation the way the portal drives
// it: POSTs to authprovider's rest.check (drop-in) and to the module's
// validation API (/v1/token/validate on the admin address), with wrk, next
// to a no-op Go handler on loopback measured in the same run (the ceiling
// of this machine with this load generator).
//
// It starts the real authprovider binary on a fresh MariaDB database,
// creates a portal (`authprovider portal add`), a local app and a token
// through the protocol itself, then runs wrk (2 threads, --latency) for
// each target and concurrency and prints a Markdown table.
//
// With --tls every target, the no-op ceiling included, is served over TLS
// with a certificate from `authprovider tls init` (wrk keeps its
// connections, so this is the cost of TLS records, not of handshakes).
//
//	go build -o bin/authprovider ./cmd/authprovider
//	go run ./cmd/validbench --authprovider bin/authprovider --mariadb "$(scripts/mariadb.sh start)" [--tls]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "validbench:", err)
		os.Exit(1)
	}
}

type target struct {
	name    string
	url     string
	body    string
	headers map[string]string
}

type result struct {
	rps      float64
	p50, p99 time.Duration
}

func run() error {
	bin := flag.String("authprovider", "bin/authprovider", "authprovider binary")
	maria := flag.String("mariadb", os.Getenv("ISOBOX_TEST_MARIADB"), "MariaDB server DSN without a database (go-sql-driver form); a database is created and dropped")
	dur := flag.Duration("duration", 10*time.Second, "wrk duration per run")
	conns := flag.String("connections", "10,100", "wrk connection counts")
	rounds := flag.Int("rounds", 3, "rounds per concurrency; targets alternate within a round and the median of each is reported (the machine is shared)")
	useTLS := flag.Bool("tls", false, "serve every target, the no-op ceiling included, over TLS (certificate from `authprovider tls init`)")
	flag.Parse()
	if *maria == "" {
		return errors.New("--mariadb (or ISOBOX_TEST_MARIADB) is required: the figures are with MariaDB behind the check")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (apt-get install wrk)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dsn, drop, err := createDB(*maria)
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "validbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	common := []string{"--data-dir", filepath.Join(dir, "data"), "--db", dsn, "--log-level", "warn"}
	scheme, client := "http", http.DefaultClient
	var noopCert *tls.Certificate
	if *useTLS {
		tdir := filepath.Join(dir, "tls")
		if out, err := exec.Command(*bin, "tls", "init", "--hosts", "bench.isobox.lan", "--dir", tdir, "--name", "bench").CombinedOutput(); err != nil {
			return fmt.Errorf("tls init: %v: %s", err, out)
		}
		crt, key := filepath.Join(tdir, "bench.crt"), filepath.Join(tdir, "bench.key")
		common = append(common, "--tls-cert-file", crt, "--tls-key-file", key)
		pair, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			return err
		}
		noopCert = &pair
		caPEM, err := os.ReadFile(filepath.Join(tdir, "ca.crt"))
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		scheme = "https"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	}

	// The CLI commands take the data dir and database, not the server's log level.
	out, err := exec.Command(*bin, append([]string{"portal", "add", "--host", "portal.bench.local", "--scheme", "http", "--json"}, common[:4]...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("portal add: %v: %s", err, out)
	}
	var portal struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &portal); err != nil {
		return fmt.Errorf("portal add output %q: %w", out, err)
	}

	httpAddr, adminAddr := freeAddr(), freeAddr()
	srv := exec.CommandContext(ctx, *bin, append([]string{"--http-addr", httpAddr, "--grpc-addr", freeAddr(), "--admin-addr", adminAddr}, common...)...)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	base := scheme + "://" + httpAddr
	if err := waitUp(client, base+"/rest/x"); err != nil {
		return err
	}
	// A second instance on the same database whose cache never answers:
	// every check is a MariaDB read (the portal itself caches rest.check
	// answers for an hour, so most checks it makes are first sightings).
	coldHTTP, coldAdmin := freeAddr(), freeAddr()
	cold := exec.CommandContext(ctx, *bin, append([]string{"--http-addr", coldHTTP, "--grpc-addr", freeAddr(), "--admin-addr", coldAdmin,
		"--token-cache-ttl", "1ns"}, common...)...)
	cold.Stderr = os.Stderr
	if err := cold.Start(); err != nil {
		return err
	}
	defer func() { cold.Process.Kill(); cold.Wait() }()
	if err := waitUp(client, scheme+"://"+coldHTTP+"/rest/x"); err != nil {
		return err
	}

	creds := url.Values{"client_id": {portal.ClientID}, "client_secret": {portal.ClientSecret}, "client_redirect_uri": {"http://portal.bench.local"}}
	call := func(method string, p url.Values) (map[string]any, error) {
		for k, v := range creds {
			p[k] = v
		}
		resp, err := client.PostForm(base+"/rest/"+method, p)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			return nil, err
		}
		r, ok := m["result"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: %v", method, m)
		}
		return r, nil
	}
	app, err := call("application.add", url.Values{"TITLE": {"bench"}, "SCOPE": {"crm,user"}})
	if err != nil {
		return err
	}
	tok, err := call("rest.authorize", url.Values{"CLIENT_ID": {app["client_id"].(string)}, "PARAMS[LOCAL_USER]": {"1"}})
	if err != nil {
		return err
	}
	token := tok["access_token"].(string)

	// The ceiling: a trivial handler in this process, on loopback.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// A fair ceiling: the answer rest.check gives (same headers, same body
	// size, captured below) and authprovider's server settings (its
	// default listener timeouts, TLS 1.2+ with the same certificate); the
	// limits' per-connection and per-request work stays on the measured
	// side.
	var noopHeader http.Header
	var noopBody []byte
	noop := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		for k, v := range noopHeader {
			h[k] = v
		}
		w.Write(noopBody)
	}), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	defer noop.Close()

	check := url.Values{"TOKEN": {token}}
	for k, v := range creds {
		check[k] = v
	}
	check.Set("member_id", "0")
	validate, _ := json.Marshal(map[string]string{"access_token": token, "scope": "crm"})
	targets := []target{
		{"no-op Go handler (ceiling)", scheme + "://" + lis.Addr().String() + "/", check.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"rest.check (drop-in)", base + "/rest/rest.check", check.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"/v1/token/validate (module)", scheme + "://" + adminAddr + "/v1/token/validate", string(validate), map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer " + portal.ClientID + ":" + portal.ClientSecret}},
		{"rest.check, no cache (MariaDB reads)", scheme + "://" + coldHTTP + "/rest/rest.check", check.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"/v1/token/validate, no cache (MariaDB reads)", scheme + "://" + coldAdmin + "/v1/token/validate", string(validate), map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer " + portal.ClientID + ":" + portal.ClientSecret}},
	}
	// Sanity: each target answers 200 with what it should.
	for _, tg := range targets[1:] {
		req, _ := http.NewRequest(http.MethodPost, tg.url, strings.NewReader(tg.body))
		for k, v := range tg.headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), app["client_id"].(string)) {
			return fmt.Errorf("%s: %d %s", tg.name, resp.StatusCode, b)
		}
		if noopBody == nil {
			noopBody, noopHeader = b, http.Header{}
			for _, k := range []string{"Content-Type", "X-Content-Type-Options", "Cache-Control", "Pragma"} {
				noopHeader[k] = resp.Header.Values(k)
			}
		}
	}
	if noopCert != nil {
		noop.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*noopCert}, NextProtos: []string{"h2", "http/1.1"}}
		go noop.ServeTLS(lis, "", "")
	} else {
		go noop.Serve(lis)
	}

	var cs []int
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--connections: %w", err)
		}
		cs = append(cs, n)
	}
	fmt.Printf("| target | conns | req/s | p50 | p99 | req/s ÷ ceiling | p99 ÷ ceiling p99 |\n|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		runs := make([][]result, len(targets))
		for round := 0; round < *rounds; round++ {
			for i := range targets {
				// Rotate the order so no target always runs first after a pause.
				j := (i + round) % len(targets)
				r, err := runWrk(dir, targets[j], c, *dur)
				if err != nil {
					return fmt.Errorf("%s: %w", targets[j].name, err)
				}
				runs[j] = append(runs[j], r)
			}
		}
		ceiling := median(runs[0])
		for i, tg := range targets {
			r := median(runs[i])
			fmt.Printf("| %s | %d | %.0f | %s | %s | %.2f | %.2f |\n", tg.name, c, r.rps, fmtDur(r.p50), fmtDur(r.p99),
				r.rps/ceiling.rps, float64(r.p99)/float64(ceiling.p99))
		}
	}
	return nil
}

// median returns the median of each figure separately.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return result{
		rps: pick(func(r result) float64 { return r.rps }),
		p50: time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99: time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
	}
}

func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// runWrk runs wrk -t2 --latency with a Lua script that POSTs tg's body.
func runWrk(dir string, tg target, conns int, dur time.Duration) (result, error) {
	var lua strings.Builder
	lua.WriteString("wrk.method = \"POST\"\n")
	fmt.Fprintf(&lua, "wrk.body = %s\n", luaString(tg.body))
	for k, v := range tg.headers {
		fmt.Fprintf(&lua, "wrk.headers[%s] = %s\n", luaString(k), luaString(v))
	}
	script := filepath.Join(dir, "post.lua")
	if err := os.WriteFile(script, []byte(lua.String()), 0o600); err != nil {
		return result{}, err
	}
	out, err := exec.Command("wrk", "-t2", "-c", strconv.Itoa(conns), "-d", dur.String(), "--latency", "-s", script, tg.url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(string(out))
}

func luaString(s string) string { return strconv.Quote(s) }

var (
	reRPS  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50  = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	reP99  = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	reNon2 = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(out string) (result, error) {
	if m := reNon2.FindStringSubmatch(out); m != nil {
		return result{}, fmt.Errorf("%s non-2xx answers:\n%s", m[1], out)
	}
	m := reRPS.FindStringSubmatch(out)
	p50 := reP50.FindStringSubmatch(out)
	p99 := reP99.FindStringSubmatch(out)
	if m == nil || p50 == nil || p99 == nil {
		return result{}, fmt.Errorf("cannot parse wrk output:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	return result{rps: rps, p50: dur(p50[1], p50[2]), p99: dur(p99[1], p99[2])}, nil
}

func dur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	default:
		return time.Duration(f * float64(time.Second))
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUp(client *http.Client, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Post(u, "text/plain", nil); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not up after 30s", u)
}

// createDB creates a fresh database on the MariaDB server and returns
// authprovider's DSN for it and a function that drops it.
func createDB(server string) (string, func(), error) {
	cfg, err := mysql.ParseDSN(server)
	if err != nil {
		return "", nil, fmt.Errorf("--mariadb: %w", err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("validbench_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	cfg.DBName = name
	drop := func() { admin.Exec("DROP DATABASE " + name); admin.Close() }
	return "mysql://" + cfg.FormatDSN(), drop, nil
}
