// Command lrubench runs geocache's lru engine side by side with peer Go caches
// in one process: throughput, allocations and hit ratio on a Zipf workload,
// hit ratio against an exact LRU, and memory per entry.
//
//	cd bench && go run ./lrubench            # everything, defaults
//	go run ./lrubench -h                     # flags
//
// See bench/README.md for what each number means.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

type options struct {
	duration   time.Duration
	rounds     int
	workloads  []workload
	procs      []int
	caches     []factory
	mem        bool
	hitCheck   bool
	capacity   int
	keys       int
	stream     int
	prefill    int
	ttl        time.Duration
	seed       int64
	memEntries int
}

func main() {
	var (
		o          options
		workloads  = flag.String("workloads", "read,90/10,50/50,aside", "comma-separated workloads: read, 90/10, 50/50, aside")
		procs      = flag.String("procs", "1,2", "comma-separated GOMAXPROCS values; each runs that many worker goroutines")
		caches     = flag.String("caches", "", "comma-separated caches (default all): "+strings.Join(factoryIDs(), ", "))
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the throughput runs to this file; samples carry a label cell=\"<cache> <workload> <prefill|measure>\" (go tool pprof -tagfocus='cell=^geocache-node read measure$')")
	)
	flag.DurationVar(&o.duration, "duration", time.Second, "measured time per cache per cell per round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per cell; caches are interleaved within a round and the median is reported")
	flag.BoolVar(&o.mem, "mem", true, "run the memory-per-entry measurement")
	flag.BoolVar(&o.hitCheck, "hitcheck", true, "run the cache-aside hit ratio check against an exact LRU (hashicorp simplelru)")
	flag.IntVar(&o.capacity, "capacity", 100_000, "cache capacity in entries for the throughput and hit ratio runs")
	flag.IntVar(&o.keys, "keys", 1_000_000, "distinct keys (Zipf imax = keys-1)")
	flag.IntVar(&o.stream, "stream", 1<<22, "length of the pre-generated Zipf key stream")
	flag.IntVar(&o.prefill, "prefill", 1_000_000, "Sets from the key stream before measuring (warm start)")
	flag.DurationVar(&o.ttl, "ttl", time.Hour, "TTL for every cache that supports expiry (long, so nothing expires)")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the Zipf key stream")
	flag.IntVar(&o.memEntries, "mem-entries", 1_000_000, "entries (and capacity) for the memory measurement")
	flag.Parse()

	var err error
	if o.workloads, err = parseWorkloads(*workloads); err == nil {
		if o.procs, err = parseProcs(*procs); err == nil {
			o.caches, err = parseCaches(*caches)
		}
	}
	if err == nil && (o.rounds < 1 || o.duration <= 0 || o.capacity < 1 || o.keys < 2 || o.stream <= o.prefill) {
		err = fmt.Errorf("need -rounds >= 1, -duration > 0, -capacity >= 1, -keys >= 2, -stream > -prefill")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lrubench:", err)
		os.Exit(2)
	}

	printHeader(o)
	load := startLoad()
	d := newData(o.keys, o.stream, o.seed)
	fmt.Printf("data: %d keys of %d bytes, Zipf stream of %d (s=%.2f v=%.0f), %d distinct keys in stream, values %d bytes shared\n\n",
		len(d.keys), len(d.keys[0]), len(d.stream), zipfS, zipfV, d.distinct, len(d.value))

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lrubench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "lrubench:", err)
			os.Exit(1)
		}
		defer f.Close()
	}
	for _, w := range o.workloads {
		for _, p := range o.procs {
			runCell(o, d, w, p)
		}
	}
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	runtime.GOMAXPROCS(runtime.NumCPU())

	if o.hitCheck && slices.ContainsFunc(o.workloads, func(w workload) bool { return w.aside }) {
		for _, p := range o.procs {
			runHitCheck(o, d, p)
		}
	}
	if o.mem {
		runtime.GOMAXPROCS(runtime.NumCPU())
		runMemory(o, d)
	}
	fmt.Printf("load average at end: %s; over the whole run %s\n", loadAvg(), load)
}

// loadAvg is printed because other work on the machine skews the numbers.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func factoryIDs() []string {
	ids := make([]string, len(factories))
	for i, f := range factories {
		ids[i] = f.id
	}
	return ids
}

func parseCaches(s string) ([]factory, error) {
	if s == "" {
		return factories, nil
	}
	var out []factory
	for _, id := range strings.Split(s, ",") {
		i := slices.IndexFunc(factories, func(f factory) bool { return f.id == strings.TrimSpace(id) })
		if i < 0 {
			return nil, fmt.Errorf("unknown cache %q (have %s)", id, strings.Join(factoryIDs(), ", "))
		}
		out = append(out, factories[i])
	}
	return out, nil
}

func parseProcs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad -procs value %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func printHeader(o options) {
	fmt.Printf("lrubench  %s\n", time.Now().Format(time.RFC3339))
	fmt.Printf("go: %s %s/%s, NumCPU=%d, cpu: %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Printf("args: %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("load average at start: %s\n", loadAvg())
	fmt.Printf("capacity=%d entries, ttl=%s (caches with expiry), duration=%s per cell, rounds=%d (median reported), prefill=%d Sets\n",
		o.capacity, o.ttl, o.duration, o.rounds, o.prefill)
	names := make([]string, len(o.caches))
	for i, c := range o.caches {
		names[i] = c.name
	}
	fmt.Printf("caches: %s\n", strings.Join(names, "; "))
	fmt.Println("cpu ns/op: this process's CPU time (all threads, GC included) per op; other load stretches ns/op far more than it; cpu x: its ratio to geocache's")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
