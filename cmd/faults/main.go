// Command faults is the fault harness (`make faults`): it builds isobox's
// production shape from real processes on loopback — a 3-node NATS
// JetStream cluster built from the nats-server version in go.mod, two
// authprovider instances on MariaDB, two eventrelay instances — runs each
// failure scenario under a load of events, token checks, refresh grants and
// push publishes with their subscribers, and ends with the line
//
//	faults: S scenarios, A acked, L lost, D duplicated, U ms longest unavailability
//
// It exits non-zero when an invariant broke (an acknowledged event lost, a
// process exiting by itself, a scenario that could not be repaired).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/isobox/isobox/internal/faults"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

func run() error {
	mariadb := flag.String("mariadb", os.Getenv("ISOBOX_FAULTS_MARIADB"), "DSN of a MariaDB server the harness may create a database on (go-sql-driver form, as scripts/mariadb.sh start prints)")
	dir := flag.String("dir", "", "work directory (binaries, stores, logs); empty = a new temporary directory, removed after a successful run")
	only := flag.String("scenarios", "", "comma-separated scenario names to run (default all)")
	short := flag.Bool("short", false, "run the short subset the test command runs")
	before := flag.Duration("before", 5*time.Second, "load before each failure")
	after := flag.Duration("after", 5*time.Second, "load after each repair")
	down := flag.Duration("down", 5*time.Second, "how long a killed process stays down")
	drain := flag.Duration("drain", 90*time.Second, "how long to wait after each scenario for the acknowledged events and push messages to arrive")
	late := flag.Duration("late", 0, "when events are still missing after -drain, keep watching this much longer and report how many arrived late (0 = off)")
	repeat := flag.Int("repeat", 1, "run the chosen scenarios this many times (to reproduce a rare outcome)")
	timeout := flag.Duration("timeout", 20*time.Minute, "bound on the whole run")
	storeSize := flag.Int64("store-size", 1<<30, "bytes of the tmpfs each NATS node's store gets, for the disk-full scenarios (needs root); 0 = stores on the work directory, no disk-full scenarios")
	flag.Parse()
	if *mariadb == "" {
		return errors.New("--mariadb (or ISOBOX_FAULTS_MARIADB) is required: start one with ISOBOX_MARIADB_PORT=... scripts/mariadb.sh start (make faults does)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "isobox-faults-")
		if err != nil {
			return err
		}
		work = d
	}
	dsn, err := faults.FreshDatabase(ctx, *mariadb)
	if err != nil {
		return err
	}
	if *storeSize > 0 && os.Geteuid() != 0 {
		return fmt.Errorf("the disk-full scenarios mount a tmpfs per NATS store: run as root, or pass -store-size 0 to leave them out")
	}
	scenarios := faults.All()
	if *storeSize > 0 {
		scenarios = append(scenarios, faults.DiskFull(0), faults.DiskFull(0, 1, 2))
	}
	if *short {
		scenarios = faults.Short()
	} else if port := os.Getenv("ISOBOX_MARIADB_PORT"); port != "" && port != "33306" {
		// The harness's own server (make faults): it may be restarted;
		// never the test command's shared one (33306).
		scenarios = append(scenarios, faults.MariaDBRestart(func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, "scripts/mariadb.sh", "restart").CombinedOutput()
			if err != nil {
				return fmt.Errorf("scripts/mariadb.sh restart: %v\n%s", err, out)
			}
			return nil
		}))
	}
	if *only != "" {
		var pick []faults.Scenario
		for _, sc := range scenarios {
			if strings.Contains(","+*only+",", ","+sc.Name+",") {
				pick = append(pick, sc)
			}
		}
		if len(pick) == 0 {
			var names []string
			for _, sc := range scenarios {
				names = append(names, sc.Name)
			}
			return fmt.Errorf("-scenarios %q names none of: %s", *only, strings.Join(names, ", "))
		}
		scenarios = pick
	}
	if *repeat < 1 {
		return errors.New("-repeat must be at least 1")
	}
	once := scenarios
	for range *repeat - 1 {
		scenarios = append(scenarios, once...)
	}
	fmt.Printf("faults: building into %s\n", work)
	bins, err := faults.Build(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}
	topo, err := faults.StartTopology(ctx, bins, work, dsn, faults.Shape{StoreSize: *storeSize})
	if topo != nil {
		defer topo.Close()
	}
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, filepath.Join(work, "logs"))
	}
	fmt.Printf("faults: topology up (3 NATS nodes, 2 authprovider, 2 eventrelay); logs in %s\n", filepath.Join(work, "logs"))
	sum, err := faults.Run(ctx, topo, scenarios, faults.Options{Before: *before, After: *after, Down: *down, Drain: *drain, Late: *late, Progress: os.Stdout})
	fmt.Println(sum.AuthLine())
	fmt.Println(sum.PushLine())
	fmt.Println(sum.Line())
	if err != nil {
		return err
	}
	if !sum.OK() {
		return fmt.Errorf("an invariant broke; logs in %s", filepath.Join(work, "logs"))
	}
	if *dir == "" {
		topo.Close()
		os.RemoveAll(work)
	}
	return nil
}
