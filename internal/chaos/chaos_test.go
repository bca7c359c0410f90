package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The binary is built once per test process (without -race: the race
// detector instruments the harness, not the servers).
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func geocacheBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the geocache binary and runs a cluster")
	}
	if b := os.Getenv("GEOCACHE_CHAOS_BIN"); b != "" {
		return b // a binary built beforehand (the work tree may be mid-edit)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "geocache-chaos-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "geocache")
		cmd := exec.Command(gobin, "build", "-o", binPath, "../../cmd/geocache")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runChaos runs cfg with the test's binary and directory and returns the
// report; a harness error fails the test.
func runChaos(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.Bin = geocacheBinary(t)
	cfg.Dir = t.TempDir()
	if d := os.Getenv("GEOCACHE_CHAOS_DIR"); d != "" {
		// Keep the logs, report and record of the run there.
		cfg.Dir = filepath.Join(d, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), cfg.Seed))
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Logf = func(format string, args ...any) { t.Logf(format, args...) }
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("seed %d: %v (node logs in %s)", cfg.Seed, err, cfg.Dir)
	}
	t.Logf("seed %d:\n%s", cfg.Seed, rep.Summary())
	if err := rep.WriteFiles(cfg.Dir); err != nil {
		t.Fatal(err)
	}
	again, err := Recheck(cfg.Dir)
	if err != nil {
		t.Fatalf("recheck: %v", err)
	}
	if again.Pass != rep.Pass || mixString(again.Counts) != mixString(rep.Counts) || mixString(again.Checked) != mixString(rep.Checked) {
		t.Errorf("the saved record checks differently: %v %v, then %v %v", rep.Counts, rep.Checked, again.Counts, again.Checked)
	}
	for _, ev := range rep.Events {
		if ev.Err != "" {
			t.Errorf("seed %d: injecting %s: %s", cfg.Seed, ev.Fault, ev.Err)
		}
	}
	checkTLS(t, cfg, rep)
	if cfg.CounterKeys >= 0 && (rep.Counters.Checked == 0 || rep.Counters.Incrs == 0) {
		t.Errorf("seed %d: the counter check examined nothing: %+v", cfg.Seed, rep.Counters)
	}
	if cfg.HashKeys >= 0 && (rep.Hashes.Nodes == 0 || rep.Hashes.HSets == 0) {
		t.Errorf("seed %d: the hash check examined nothing: %+v", cfg.Seed, rep.Hashes)
	}
	if rep.Ops.OwnVersions == 0 || rep.Ops.QuorumAcked == 0 || rep.Checked[CheckRYW] == 0 {
		t.Errorf("seed %d: the run checked little: %d own versions, %d Quorum writes acknowledged, %d reads checked for read-your-writes",
			cfg.Seed, rep.Ops.OwnVersions, rep.Ops.QuorumAcked, rep.Checked[CheckRYW])
	}
	return rep
}

// checkTLS checks that a run's links ran as configured: with TLS (the
// default), every node's replication port was probed and spoke mutual TLS
// only, and every process of every node (restarts included) said at start
// that it serves replication over TLS; with Config.Plaintext, none did.
func checkTLS(t *testing.T, cfg Config, rep *Report) {
	t.Helper()
	nodes := len(rep.Nodes)
	if rep.TLS != !cfg.Plaintext {
		t.Errorf("seed %d: Plaintext %v, but the report says TLS %v", cfg.Seed, cfg.Plaintext, rep.TLS)
	}
	if want := nodes; !cfg.Plaintext && (rep.Checked[CheckTLS] != want || rep.Counts[CheckTLS] != 0) {
		t.Errorf("seed %d: %d of %d nodes probed for TLS, %d failed:\n%s", cfg.Seed, rep.Checked[CheckTLS], want, rep.Counts[CheckTLS], rep.Summary())
	}
	if cfg.Plaintext && (rep.Checked[CheckTLS] != 0 || len(rep.TLSProbes) != 0) {
		t.Errorf("seed %d: a plaintext run probed TLS: %v", cfg.Seed, rep.TLSProbes)
	}
	for id := 1; id <= nodes; id++ {
		log := filepath.Join(cfg.Dir, fmt.Sprintf("node-%d.log", id))
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		starts, withTLS := 0, 0
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, "geocache serving") {
				starts++
				if servesTLS(line) {
					withTLS++
				}
			}
		}
		if starts == 0 || (!cfg.Plaintext && withTLS != starts) || (cfg.Plaintext && withTLS != 0) {
			t.Errorf("seed %d: node %d started %d time(s), %d with replication over TLS (Plaintext %v; see %s)", cfg.Seed, id, starts, withTLS, cfg.Plaintext, log)
		}
	}
}

// servesTLS reports whether a node's "geocache serving" log line, text or
// JSON, says it serves replication over TLS.
func servesTLS(line string) bool {
	return strings.Contains(line, "replication_tls=true") || strings.Contains(line, `"replication_tls":true`)
}

// TestChaosShort is the chaos run of the test suite: a fixed schedule with
// every fault kind, then a random seed (GEOCACHE_CHAOS_SEED to replay one).
// It asserts the invariants, never timings.
func TestChaosShort(t *testing.T) {
	t.Run("fixed", func(t *testing.T) {
		rep := runChaos(t, Config{Seed: 1, Duration: 20 * time.Second, Schedule: FixedSchedule(), SmallRegionMemory: DefaultSmallRegionMemory})
		if !rep.Pass {
			t.Errorf("fixed schedule (seed 1): violations:\n%s", rep.Summary())
		}
		if got := len(rep.Events); got != len(FixedSchedule().Faults) {
			t.Errorf("%d faults injected, want %d", got, len(FixedSchedule().Faults))
		}
		// node 1 (region us) is killed at 8s, after the small region (ap)
		// has evicted: it must refill what eu holds
		if rep.Refill.Nodes == 0 || rep.Refill.Refilled == 0 {
			t.Errorf("the refill check examined nothing: %+v", rep.Refill)
		}
	})
	t.Run("random", func(t *testing.T) {
		seed := time.Now().UnixNano() % 1_000_000
		if s := os.Getenv("GEOCACHE_CHAOS_SEED"); s != "" {
			var err error
			if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
				t.Fatalf("GEOCACHE_CHAOS_SEED=%q: %v", s, err)
			}
		}
		t.Logf("random chaos seed %d (replay: GEOCACHE_CHAOS_SEED=%d go test ./internal/chaos -run TestChaosShort/random, or go run ./cmd/geocache-chaos --duration 20s --seed %d)", seed, seed, seed)
		fmt.Fprintf(os.Stderr, "chaos: TestChaosShort/random uses seed %d\n", seed)
		rep := runChaos(t, Config{Seed: seed, Duration: 20 * time.Second, SmallRegionMemory: DefaultSmallRegionMemory})
		if !rep.Pass {
			t.Errorf("random seed %d: violations (replay with GEOCACHE_CHAOS_SEED=%d):\n%s", seed, seed, rep.Summary())
		}
	})
}

// TestChaosCounters: every writer of every region increments the same
// counters at once (INCR, INCRBY, DECR, DECRBY, deltas of both signs),
// through a cut of one region and a kill; after the heal every ample
// node's value must be the sum of the acknowledged increments (within
// the ones of unknown outcome or lost with the killed process).
func TestChaosCounters(t *testing.T) {
	rep := runChaos(t, Config{Seed: 31, Duration: 10 * time.Second, CounterKeys: 4, CounterFraction: 0.3, Schedule: &Schedule{Faults: []Fault{
		{Kind: FaultIsolate, At: 2 * time.Second, For: 2 * time.Second, Region: 1},
		{Kind: FaultKill, At: 6 * time.Second, For: 2 * time.Second, Node: 2},
	}}})
	if !rep.Pass || rep.Counters.Checked != 12 || rep.Counters.Durable == 0 {
		t.Errorf("counters %+v; violations:\n%s", rep.Counters, rep.Summary())
	}
}

// TestChaosCatchesDataLoss checks that the checker fails a run in which a
// node loses data the system did not lose by itself: FLUSHALL on one node
// (not replicated) twice while its clients read their writes. It runs its
// links in plaintext (Config.Plaintext), the suite's one run without TLS.
//
// Which check sees the loss first depends on the machine's load: usually a
// client reading its write back (read-your-writes), on a slow machine the
// prober's keys (lost-probe) or a node left behind. The run must fail by
// one of the checks of lost data, and by none that a flush cannot cause.
func TestChaosCatchesDataLoss(t *testing.T) {
	rep := runChaos(t, Config{Seed: 7, Duration: 8 * time.Second, Plaintext: true, Schedule: &Schedule{Faults: []Fault{
		{Kind: FaultFlush, At: 3 * time.Second, Node: 0},
		{Kind: FaultFlush, At: 5 * time.Second, Node: 0},
	}}})
	loss := 0
	for _, k := range []string{CheckRYW, CheckLostProbe, CheckBehind, CheckLostWrite, CheckRefill, CheckConvergence} {
		loss += rep.Counts[k]
	}
	if rep.Pass || loss == 0 {
		t.Errorf("FLUSHALL on a node went unnoticed (%d violations of lost data):\n%s", loss, rep.Summary())
	}
	for _, k := range []string{CheckPhantom, CheckValueVersion, CheckHLC, CheckHLCClock, CheckCrash, CheckTLS, CheckExpiredRead} {
		if rep.Counts[k] != 0 {
			t.Errorf("%d %s violations, which a flush cannot cause:\n%s", rep.Counts[k], k, rep.Summary())
		}
	}
}

// TestChaosRegionOfThree: a region of three slot-owning nodes (gossip,
// --cluster-forward) and a region of one. One node of the three is cut
// from the other two (its clients and the other region still reach it),
// later another is killed: each side of the cut takes the other's slots,
// and after the heal the region is one again and has lost nothing.
func TestChaosRegionOfThree(t *testing.T) {
	s := time.Second
	rep := runChaos(t, Config{Seed: 41, Duration: 14 * s, RegionSizes: []int{3, 1}, Gossip: true, SlotOwned: true,
		Schedule: &Schedule{Faults: []Fault{
			{Kind: FaultSever, At: 3 * s, For: 4 * s, Node: 0},
			{Kind: FaultKill, At: 9 * s, For: 2 * s, Node: 1},
		}}})
	if !rep.Pass {
		t.Errorf("violations:\n%s", rep.Summary())
	}
	if rep.Checked[CheckRefill] == 0 || rep.Checked[CheckLostProbe] == 0 || rep.OwnerCompared == 0 {
		t.Errorf("the refill, lost-probe or owner convergence checks examined nothing: %v, %d (key, region) pairs of owners compared", rep.Checked, rep.OwnerCompared)
	}
}
