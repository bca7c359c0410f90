// Command replbench measures geocache's replication on loopback, with every
// inter-node link crossing a user-space TCP proxy (toxiproxy, used as a
// library) that can add one-way latency or cut the link.
//
//	cd bench && go run ./replbench            # all scenarios, ~3-4 minutes
//	go run ./replbench -h                     # flags
//
// Scenarios (-scenarios): visibility (time from Set's return in region A
// until the key is readable in regions B and C), throughput (sustained
// writes/s over one link and the sender's lag), memory (memory of the
// writing node while one region is down, then the time for that region to
// catch up), and, only when asked for (-scenarios large), large: how
// long small writes take to cross a bandwidth-limited link while 64 MiB
// values cross it too. See bench/README.md and docs/benchmarks-replication.md.
//
// Each scenario runs in a fresh child process (so that memory figures and
// GC state do not carry over from one scenario to the next); scenarios
// that need remote peers start one more child process that hosts them.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

var (
	flagScenarios = flag.String("scenarios", "visibility,throughput,memory", "scenarios to run, comma-separated: visibility, throughput, memory, large")

	// visibility
	flagLatencies   = flag.String("latencies", "0ms,40ms", "one-way latencies between regions for the visibility scenario (whole milliseconds)")
	flagRates       = flag.String("rates", "1000,50000", "write rates (writes/s) for the visibility scenario")
	flagVisDuration = flag.Duration("vis-duration", 10*time.Second, "writing time per visibility run")
	flagVisMaxBytes = flag.Int64("vis-maxbytes", 1<<30, "MaxBytes of each node in the visibility scenario (large, so nothing is evicted before it is read)")
	flagCalibrate   = flag.Bool("calibrate", true, "also measure the proxy's own one-way delay at each latency")
	flagVisDirect   = flag.Bool("vis-direct", false, "visibility without proxies (nodes dial each other directly; needs -latencies 0), to separate the proxy's share")
	flagVisDump     = flag.String("vis-dump", "", "write per-key latencies of each visibility run to <prefix>-<latency>-<rate>.csv")
	flagGrace       = flag.Duration("grace", 10*time.Second, "how long readers keep waiting for keys after the writer stops")

	// throughput
	flagTputDuration = flag.Duration("tput-duration", 10*time.Second, "writing time per throughput run")
	flagTputRates    = flag.String("tput-rates", "0,200000", "offered write rates (writes/s) of the throughput runs through the proxy; 0 = as fast as the writers can")
	flagTputDirect   = flag.Bool("tput-direct", true, "also run one unthrottled throughput run without the proxy (direct TCP)")
	flagTputMaxBytes = flag.Int64("tput-maxbytes", 64<<20, "MaxBytes (and ReplicationLogBytes) of each node in the throughput scenario")
	flagWriters      = flag.Int("writers", 2, "writer goroutines on node A in the throughput and memory scenarios")

	// memory
	flagDownDuration   = flag.Duration("down-duration", 60*time.Second, "how long A writes at full speed while region C is down")
	flagDownMode       = flag.String("down-mode", "close", "how region C goes down: close (node closed, reopened later as a new incarnation) or partition (its four proxies stopped, node kept running)")
	flagMemMaxBytes    = flag.Int64("mem-maxbytes", 64<<20, "MaxBytes of each node in the memory scenario")
	flagMemLogBytes    = flag.Int64("mem-logbytes", 64<<20, "ReplicationLogBytes of each node in the memory scenario")
	flagMemSample      = flag.Duration("mem-sample", 5*time.Second, "interval of the printed memory samples (peaks are tracked every 250 ms)")
	flagCatchupRate    = flag.Float64("catchup-rate", 0, "writes/s that A keeps making while C catches up (0: writes stop when C comes back)")
	flagCatchupTimeout = flag.Duration("catchup-timeout", 3*time.Minute, "give up waiting for C to catch up after this long")

	// internal
	flagOnly   = flag.String("only", "", "internal: run this one scenario in this process")
	flagRemote = flag.Bool("remote", false, "internal: host peer nodes, driven over stdin/stdout")
)

func main() {
	flag.Parse()
	var err error
	switch {
	case *flagRemote:
		err = serveRemote()
	case *flagOnly != "":
		err = runOne(*flagOnly)
	default:
		err = runAll()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replbench:", err)
		os.Exit(1)
	}
}

var scenarios = map[string]func() error{
	"visibility": runVisibility,
	"throughput": runThroughput,
	"memory":     runMemory,
	"large":      runLarge,
}

func runOne(name string) error {
	f, ok := scenarios[name]
	if !ok {
		return fmt.Errorf("unknown scenario %q", name)
	}
	return f()
}

// runAll prints the header and runs each selected scenario in a child
// process, streaming its output.
func runAll() error {
	var names []string
	for _, s := range strings.Split(*flagScenarios, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, ok := scenarios[s]; !ok {
			return fmt.Errorf("unknown scenario %q (want visibility, throughput, memory, large)", s)
		}
		names = append(names, s)
	}
	start := time.Now()
	printHeader()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for _, s := range names {
		fmt.Println()
		cmd := exec.Command(exe, append(append([]string{}, os.Args[1:]...), "-only="+s)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("scenario %s: %w", s, err)
		}
	}
	fmt.Println()
	fmt.Printf("finished: %s, total %s, load average %s\n", time.Now().UTC().Format(time.RFC3339), time.Since(start).Round(time.Second), loadavg())
	return nil
}

func printHeader() {
	fmt.Println("# replbench: geocache replication on loopback through toxiproxy")
	fmt.Println()
	fmt.Printf("command:   %s\n", strings.Join(os.Args, " "))
	fmt.Printf("date:      %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("go:        %s %s/%s, GOMAXPROCS %d, NumCPU %d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("cpu:       %s\n", cpuModel())
	fmt.Printf("load avg:  %s (1, 5, 15 min, before this run: other processes on the machine)\n", loadavg())
	wd, _ := os.Getwd()
	fmt.Printf("cwd:       %s\n", wd)
	fmt.Printf("geocache:  %s\n", gitDescribe())
	for _, v := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"} {
		if x, ok := os.LookupEnv(v); ok {
			fmt.Printf("env:       %s=%s\n", v, x)
		}
	}
	fmt.Printf("proxy:     github.com/Shopify/toxiproxy/v2 %s, in process, latency toxic on both streams of every proxy\n", toxiproxyVersion())
	var set []string
	flag.Visit(func(f *flag.Flag) { set = append(set, "-"+f.Name+"="+f.Value.String()) })
	if len(set) == 0 {
		set = append(set, "(all defaults)")
	}
	fmt.Printf("flags set: %s\n", strings.Join(set, " "))
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

func loadavg() string {
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

// gitDescribe names the geocache source this binary was built from, as far
// as the working directory's git repository tells (read-only commands).
func gitDescribe() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (no git repository here)"
	}
	st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", "..").Output()
	dirty := "no uncommitted changes to tracked files"
	if n := strings.Count(string(st), "\n"); n > 0 {
		dirty = fmt.Sprintf("%d tracked file(s) modified", n)
	}
	return fmt.Sprintf("git %s, %s", strings.TrimSpace(string(head)), dirty)
}
