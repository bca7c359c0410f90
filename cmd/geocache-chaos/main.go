// Command geocache-chaos runs a chaos test of `geocache serve` processes on
// this machine and checks the history against geocache's guarantees. It is
// a test tool, kept out of the geocache binary that runs in production
// (with the harness, its TCP proxies and its Redis client).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/geocache/geocache/internal/chaos"
)

const chaosUsage = `usage: geocache-chaos [flags]

Runs a chaos test on this machine: --regions × --nodes processes of the
geocache binary ('geocache serve', see --bin) on loopback, every replication link through its own
user-space TCP proxy, concurrent clients writing and reading, and faults
(partitions, latency spikes, kill -9, SIGSTOP, clock skew) chosen by --seed.
It then heals everything, waits until the nodes agree, dumps them and checks
the history: convergence (I1), no resurrected delete (I3), no lost Quorum
write (I4), no read after expiry (I5), no phantom value, monotonic clocks,
read-your-writes, that restarted nodes refill every key another
region holds (the last region runs with a small --max-memory and evicts),
that every counter (--counter-keys, incremented in every region at
once) ends at the sum of its acknowledged increments, and that every hash
(--hash-keys, fields written in every region at once) merges field by
field.
The links run over mutual TLS (a throwaway CA and one certificate per node
in OUT/certs; --tls=false for plaintext), and every node's replication port
is probed: it must complete a TLS 1.3 handshake with the run's certificates
and refuse plaintext, a client without a certificate and one of another CA.
The same seed replays the same schedule.

It writes report.json, summary.txt, history.json.gz (the record: every
operation, fault and the final dump; --recheck reads it) and the nodes' logs
into --out and prints the summary. Exit status: 0 if every check passed, 1 on a violation or an
error, 2 on a bad flag.

Example: go run ./cmd/geocache-chaos --duration 5m --seed 42

`

// chaosFlags are the settings of geocache-chaos.
type chaosFlags struct {
	cfg     chaos.Config
	out     string
	recheck string
	seed    int64
	set     bool // --seed given
}

func parseChaosFlags(args []string) (chaosFlags, *flag.FlagSet, error) {
	var f chaosFlags
	fs := flag.NewFlagSet("geocache-chaos", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int64Var(&f.seed, "seed", 0, "seed of the schedule and the clients (default: from the time; printed)")
	fs.DurationVar(&f.cfg.Duration, "duration", time.Minute, "how long clients write and faults are injected (healing and checks come after)")
	fs.IntVar(&f.cfg.Regions, "regions", 3, "number of regions")
	f.cfg.NodesPerRegion = 1
	fs.Func("nodes", "nodes per region (default 1), or one number per region, comma-separated (3,1,2: regions of different sizes, --regions taken from it)", func(s string) error {
		var sizes []int
		for part := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil || n < 1 || n > 5 {
				return fmt.Errorf("%q: a number of nodes from 1 to 5", part)
			}
			sizes = append(sizes, n)
		}
		if len(sizes) == 1 {
			f.cfg.NodesPerRegion, f.cfg.RegionSizes = sizes[0], nil
		} else {
			f.cfg.RegionSizes = sizes
		}
		return nil
	})
	fs.BoolVar(&f.cfg.SlotOwned, "slot-owned", false, "with --gossip, run the nodes with --cluster-forward: each keeps only its own slots and forwards the others' commands to their owners")
	fs.BoolVar(&f.cfg.Gossip, "gossip", false, "make the nodes of each region a region of several nodes joined by gossip (--gossip-addr, --join), linked directly inside the region (off: they peer through proxies, as regions do)")
	fs.IntVar(&f.cfg.WritersPerNode, "writers", 2, "writer clients per node")
	fs.DurationVar(&f.cfg.Latency, "latency", 10*time.Millisecond, "one-way latency between regions (0: none)")
	fs.DurationVar(&f.cfg.ThinkTime, "think", 10*time.Millisecond, "mean pause of a writer between operations")
	fs.DurationVar(&f.cfg.MaxOffset, "max-offset", 400*time.Millisecond, "largest injected clock offset (at most 400ms)")
	fs.DurationVar(&f.cfg.ConvergeTimeout, "converge-timeout", 30*time.Second, "how long to wait for convergence after healing")
	fs.DurationVar(&f.cfg.TombstoneHorizon, "tombstone-horizon", 3*time.Second, "the nodes' --tombstone-horizon; the longer cuts outlast the default (0: the nodes' default, 1h)")
	fs.StringVar(&f.cfg.SmallRegionMemory, "small-region-memory", chaos.DefaultSmallRegionMemory, "--max-memory of the last region's nodes, so that it evicts heavily (none: every node keeps everything)")
	fs.Float64Var(&f.cfg.AllFraction, "all", 0.05, "share of writes acknowledged at level ALL (0: none)")
	fs.Float64Var(&f.cfg.WaitFraction, "wait", 0.05, "share of Local writes followed by WAIT <regions-1> 1000 (0: none)")
	fs.Float64Var(&f.cfg.LargeFraction, "large", 0.02, "share of SETs with a value of 300 KiB to 1 MiB, which crosses regions in parts (0: none)")
	fs.IntVar(&f.cfg.HashKeys, "hash-keys", 2, "hash keys every writer writes and deletes fields of (HSET, HDEL, a tenth of its operations), checked after the heal for convergence, phantom values and lost fields (0: none)")
	fs.IntVar(&f.cfg.CounterKeys, "counter-keys", 4, "counter keys every writer increments (INCR/INCRBY/DECR/DECRBY, a tenth of its operations), checked after the heal against the sum of the acknowledged increments (0: none)")
	faults := fs.String("faults", strings.Join(chaos.AllFaults, ","), "fault kinds to inject, comma-separated, or none")
	fs.StringVar(&f.out, "out", "", "directory for report.json, summary.txt and the node logs (default: a new temporary directory)")
	tlsOn := fs.Bool("tls", true, "run the replication links over mutual TLS 1.3 with a throwaway CA and one certificate per node in OUT/certs, and check that every node's replication port speaks nothing else (--tls=false: plaintext links)")
	fs.StringVar(&f.cfg.Bin, "bin", "", "geocache binary to run the nodes with (default: geocache beside this binary, else on PATH, else built from this module with go build)")
	fs.StringVar(&f.recheck, "recheck", "", "check the record of an earlier run in this directory again (history.json.gz) instead of running; writes recheck.json there")
	if err := fs.Parse(args); err != nil {
		return f, fs, err
	}
	if fs.NArg() > 0 {
		return f, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	regionsSet := false
	fs.Visit(func(fl *flag.Flag) {
		f.set = f.set || fl.Name == "seed"
		regionsSet = regionsSet || fl.Name == "regions"
	})
	if regionsSet && len(f.cfg.RegionSizes) > 0 && f.cfg.Regions != len(f.cfg.RegionSizes) {
		return f, fs, fmt.Errorf("--regions %d and --nodes with %d sizes", f.cfg.Regions, len(f.cfg.RegionSizes))
	}
	f.cfg.Plaintext = !*tlsOn
	switch *faults {
	case "none":
		f.cfg.Schedule = &chaos.Schedule{}
	default:
		for k := range strings.SplitSeq(*faults, ",") {
			if k = strings.TrimSpace(k); k != "" {
				f.cfg.Faults = append(f.cfg.Faults, k)
			}
		}
	}
	if f.cfg.Latency == 0 {
		f.cfg.Latency = -1 // the package's "none"
	}
	if f.cfg.SmallRegionMemory == "none" {
		f.cfg.SmallRegionMemory = ""
	}
	if f.cfg.AllFraction == 0 {
		f.cfg.AllFraction = -1
	}
	if f.cfg.WaitFraction == 0 {
		f.cfg.WaitFraction = -1
	}
	if f.cfg.LargeFraction == 0 {
		f.cfg.LargeFraction = -1
	}
	if f.cfg.CounterKeys == 0 {
		f.cfg.CounterKeys = -1 // the package's "none"
	}
	if f.cfg.HashKeys == 0 {
		f.cfg.HashKeys = -1
	}
	if f.cfg.ThinkTime == 0 {
		f.cfg.ThinkTime = -1
	}
	if f.cfg.TombstoneHorizon == 0 {
		f.cfg.TombstoneHorizon = -1 // the package's "node default"
	}
	return f, fs, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs geocache-chaos and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, fs, err := parseChaosFlags(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, chaosUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "geocache-chaos: %v\nRun 'geocache-chaos -h' for the flags.\n", err)
		return 2
	}
	if f.recheck != "" {
		rep, err := chaos.Recheck(f.recheck)
		if err != nil {
			fmt.Fprintf(stderr, "geocache-chaos: %v\n", err)
			return 1
		}
		fmt.Fprint(stdout, rep.Summary())
		js, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(filepath.Join(f.recheck, "recheck.json"), js, 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "geocache-chaos: %v\n", err)
		}
		if !rep.Pass {
			return 1
		}
		return 0
	}
	if !f.set {
		f.seed = time.Now().UnixNano() % 1_000_000_000
	}
	f.cfg.Seed = f.seed
	if f.out == "" {
		if f.out, err = os.MkdirTemp("", fmt.Sprintf("geocache-chaos-%d-", f.seed)); err != nil {
			fmt.Fprintf(stderr, "geocache-chaos: %v\n", err)
			return 1
		}
	} else if err := os.MkdirAll(f.out, 0o755); err != nil {
		fmt.Fprintf(stderr, "geocache-chaos: %v\n", err)
		return 1
	}
	f.cfg.Dir = f.out
	if f.cfg.Bin == "" {
		if f.cfg.Bin, err = findServer(f.out); err != nil {
			fmt.Fprintf(stderr, "geocache-chaos: %v (use --bin)\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "geocache-chaos: seed %d (replay with --seed %d); output in %s\n", f.seed, f.seed, f.out)
	logf, err := os.Create(filepath.Join(f.out, "chaos.log"))
	if err != nil {
		fmt.Fprintf(stderr, "geocache-chaos: %v\n", err)
		return 1
	}
	defer logf.Close()
	f.cfg.Logf = func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		fmt.Fprintf(logf, "%s %s\n", time.Now().Format("15:04:05.000"), line)
		if !strings.Contains(line, "\n") && strings.HasPrefix(line, "chaos: ") {
			fmt.Fprintln(stderr, line)
		}
	}
	rep, err := chaos.Run(ctx, f.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "geocache-chaos: seed %d: %v\n", f.seed, err)
		return 1
	}
	if err := rep.WriteFiles(f.out); err != nil {
		fmt.Fprintf(stderr, "geocache-chaos: %v\n", err)
	}
	fmt.Fprint(stdout, rep.Summary())
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(f.out, "report.json"))
	if !rep.Pass {
		return 1
	}
	return 0
}

// findServer returns the geocache binary to run the nodes with: the one
// beside this binary, else the one on PATH, else one built from this
// module's source into dir (as when run with go run from the repository).
func findServer(dir string) (string, error) {
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "geocache"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("geocache"); err == nil {
		return p, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no geocache binary beside this one or on PATH, and no go command to build one")
	}
	p := filepath.Join(dir, "geocache")
	if out, err := exec.Command(gobin, "build", "-o", p, "github.com/geocache/geocache/cmd/geocache").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build geocache: %v\n%s", err, out)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}
