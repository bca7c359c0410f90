// Command respbench runs the same redis-benchmark against redis-server, a
// single `geocache serve` node, and a geocache node with a second region
// attached and replicating, all on loopback, and compares throughput and
// latency.
//
//	cd bench && go run ./respbench        # everything: ~2-3 minutes on 2 cores
//	go run ./respbench -h                 # flags
//
// It installs redis-server and redis-benchmark with apt-get if they are
// missing, builds geocache from this repository, starts every server on a
// free loopback port, runs
//
//	redis-benchmark -c 50 -d 64 -r 100000 -t set,get -n N -P P --csv
//
// for -P 1 and -P 16 against each, -runs times with the servers
// interleaved (a fresh server for every run), and prints medians, spreads
// and the goals. Every process it started is stopped on exit, on error and
// on Ctrl-C, and its temporary directory is removed. See bench/README.md
// and docs/benchmarks-server.md.
//
// Standard library only (and bench/internal/rclient): no module dependencies.
package main

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/geocache/geocache/bench/internal/benchkit"
	"github.com/geocache/geocache/bench/internal/rclient"
)

// Server kinds, in the -servers flag and the output.
const (
	kRedis = "redis"       // redis-server, persistence off, maxmemory + allkeys-lru
	kGeo   = "geocache"    // one geocache serve node
	kGeo2  = "geocache-2r" // region a of two geocache serve nodes (a, b) replicating to each other; a is benchmarked
)

var kindDesc = map[string]string{
	kRedis: "redis-server --save \"\" --appendonly no --maxmemory <M>mb --maxmemory-policy allkeys-lru",
	kGeo:   "geocache serve --max-memory <M>MB (single node, no replication listener)",
	kGeo2:  "geocache serve region a + region b replicating both ways; the benchmark talks to a only",
}

// tests are the redis-benchmark tests run (-t), in its output order.
var tests = []string{"SET", "GET"}

type config struct {
	n, nPipelined    int
	pipelines        []int
	clients, size    int
	keyspace         int
	runs             int
	maxMemoryMB      int
	warmup           int
	servers          []string
	keep, noInstall  bool
	repo             string
	runTimeout       time.Duration
	geocacheLogLevel string
}

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "respbench:", err)
		return 2
	}
	if err := ensureRedis(cfg.noInstall); err != nil {
		fmt.Fprintln(os.Stderr, "respbench:", err)
		return 1
	}
	sup, err := newSupervisor(cfg.keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "respbench:", err)
		return 1
	}
	defer sup.shutdown()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "\nrespbench: received %v: stopping every process it started\n", sig)
		sup.shutdown()
		os.Exit(130)
	}()

	b := &bench{cfg: cfg, sup: sup, results: map[cellKey][]*sample{}, findings: map[string]int{}}
	if err := b.prepare(); err != nil {
		fmt.Fprintln(os.Stderr, "respbench:", err)
		return 1
	}
	b.header()
	b.runAll()
	if sup.isClosed() {
		select {} // interrupted: the signal handler stops everything and exits
	}
	b.report()
	if b.failures > 0 {
		fmt.Printf("\nrespbench: %d failure(s), see above\n", b.failures)
		return 1
	}
	return 0
}

func parseFlags() (config, error) {
	var c config
	var pipes, servers string
	flag.IntVar(&c.n, "n", 200000, "requests per test (-n of redis-benchmark) at -P 1")
	flag.IntVar(&c.nPipelined, "n-pipelined", 1000000, "requests per test at -P greater than 1 (pipelined runs are ~5x faster)")
	flag.StringVar(&pipes, "pipelines", "1,16", "comma-separated -P values")
	flag.IntVar(&c.clients, "c", 50, "parallel connections (-c)")
	flag.IntVar(&c.size, "d", 64, "value size in bytes (-d)")
	flag.IntVar(&c.keyspace, "r", 100000, "random keys in the keyspace (-r)")
	flag.IntVar(&c.runs, "runs", 3, "runs of every case, interleaving the servers; medians are reported")
	flag.IntVar(&c.maxMemoryMB, "maxmemory-mb", 256, "memory budget of every server in MiB (redis maxmemory, geocache --max-memory)")
	flag.IntVar(&c.warmup, "warmup", 20000, "requests per test of an unrecorded -P 16 redis-benchmark run after each server start (0: none)")
	flag.StringVar(&servers, "servers", kRedis+","+kGeo+","+kGeo2, "servers to run: "+kRedis+", "+kGeo+", "+kGeo2)
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (binary and server logs)")
	flag.BoolVar(&c.noInstall, "no-install", false, "fail instead of installing redis with apt-get when it is missing")
	flag.StringVar(&c.repo, "repo", "", "root of the geocache repository (default: found from the working directory)")
	flag.DurationVar(&c.runTimeout, "run-timeout", 3*time.Minute, "kill a redis-benchmark run that takes longer")
	flag.StringVar(&c.geocacheLogLevel, "geocache-log-level", "info", "geocache serve --log-level")
	flag.Parse()
	if flag.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	for p := range strings.SplitSeq(pipes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return c, fmt.Errorf("-pipelines: bad value %q", p)
		}
		c.pipelines = append(c.pipelines, n)
	}
	for s := range strings.SplitSeq(servers, ",") {
		s = strings.TrimSpace(s)
		if _, ok := kindDesc[s]; !ok {
			return c, fmt.Errorf("-servers: unknown server %q", s)
		}
		c.servers = append(c.servers, s)
	}
	if c.runs < 1 || c.n < 1 || c.nPipelined < 1 || c.clients < 1 || c.size < 1 || c.keyspace < 1 || c.maxMemoryMB < 1 {
		return c, errors.New("-runs, -n, -n-pipelined, -c, -d, -r and -maxmemory-mb must be at least 1")
	}
	return c, nil
}

// ensureRedis installs redis-server and redis-tools with apt-get when
// redis-server or redis-benchmark is not on PATH.
func ensureRedis(noInstall bool) error {
	missing := missingRedis()
	if len(missing) == 0 {
		return nil
	}
	what := strings.Join(missing, " and ")
	if noInstall {
		return fmt.Errorf("%s not on PATH (and -no-install): install Redis >= 6.2 (Debian: apt-get install redis-server redis-tools)", what)
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("%s not on PATH and apt-get is not available: install Redis >= 6.2 (redis-server and redis-benchmark) yourself and retry", what)
	}
	var prefix []string
	if os.Geteuid() != 0 {
		sudo, err := exec.LookPath("sudo")
		if err != nil {
			return fmt.Errorf("%s not on PATH; installing needs root and sudo is not available: run as root 'apt-get update && apt-get install -y redis-server redis-tools' and retry", what)
		}
		prefix = []string{sudo}
	}
	fmt.Printf("respbench: %s not on PATH; running: %sapt-get update && %sapt-get install -y redis-server redis-tools\n",
		what, strings.Join(append(prefix, ""), " "), strings.Join(append(prefix, ""), " "))
	for _, args := range [][]string{{"update"}, {"install", "-y", "redis-server", "redis-tools"}} {
		argv := append(append(slices.Clone(prefix), apt), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s failed: %w; install redis-server and redis-tools yourself and retry", strings.Join(argv, " "), err)
		}
	}
	if missing := missingRedis(); len(missing) > 0 {
		return fmt.Errorf("%s still not on PATH after apt-get install", strings.Join(missing, " and "))
	}
	fmt.Println("respbench: installed redis-server and redis-tools. (The Debian package may have started a system redis-server on port 6379; respbench does not use or stop it.)")
	return nil
}

func missingRedis() []string {
	var missing []string
	for _, b := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	return missing
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// cellKey names one measured cell: a server kind, a -P value and a test.
type cellKey struct {
	kind string
	p    int
	test string
}

// sample is one redis-benchmark CSV row.
type sample struct{ rps, avg, min, p50, p95, p99, max float64 }

type bench struct {
	cfg      config
	sup      *supervisor
	geocache string // built binary
	repo     string // root of the geocache repository
	ports    benchkit.Ports

	results  map[cellKey][]*sample // indexed by run; nil where a run failed
	findings map[string]int        // log lines worth a look, deduplicated, with counts
	failures int
	start    time.Time
}

func (b *bench) prepare() error {
	repo := b.cfg.repo
	if repo == "" {
		var err error
		if repo, err = benchkit.FindRepo(); err != nil {
			return err
		}
	}
	b.repo = repo
	b.geocache = filepath.Join(b.sup.tmp, "geocache")
	argv := []string{goTool(), "build", "-o", b.geocache, "./cmd/geocache"}
	fmt.Printf("respbench: building geocache: (cd %s && %s)\n", repo, strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("buildvcs")) {
		argv = slices.Insert(argv, 2, "-buildvcs=false")
		fmt.Printf("respbench: VCS stamping failed; retrying: %s\n", strings.Join(argv, " "))
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Dir = repo
		out, err = cmd.CombinedOutput()
	}
	if err != nil {
		return fmt.Errorf("go build of geocache failed: %v\n%s", err, out)
	}
	b.ports = benchkit.Ports{}
	return nil
}

func cmdOutput(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return fmt.Sprintf("(%s: %v) %s", strings.Join(argv, " "), err, s)
	}
	return s
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// idleCheck measures how many cores the machine keeps busy over d while
// respbench runs nothing.
func idleCheck(d time.Duration) string {
	b0, err0 := machineBusy()
	time.Sleep(d)
	b1, err1 := machineBusy()
	if err0 != nil || err1 != nil {
		return "? cores"
	}
	return fmt.Sprintf("%.2f cores", (b1-b0).Seconds()/d.Seconds())
}

func geocacheVersion(bin, repo string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "?"
	}
	rev, modified, t := "", "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			t = s.Value
		}
	}
	if rev == "" { // built with -buildvcs=false (GOFLAGS): ask git, read-only
		rev = cmdOutput("git", "-C", repo, "rev-parse", "--short=12", "HEAD")
		st := cmdOutput("git", "-C", repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
		s := "commit " + rev + " (from git; the binary has no VCS stamp)"
		if st != "" {
			s += fmt.Sprintf(" + uncommitted changes to %d tracked file(s)", len(strings.Split(st, "\n")))
		}
		return s + ", built with " + bi.GoVersion
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	s := fmt.Sprintf("commit %s (%s)", rev, t)
	if modified == "true" {
		s += " + uncommitted changes in the work tree"
	}
	return s + ", built with " + bi.GoVersion
}

func (b *bench) header() {
	b.start = time.Now()
	c := b.cfg
	fmt.Printf("\nrespbench  %s\n", b.start.UTC().Format(time.RFC3339))
	fmt.Printf("args: %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("machine: nproc=%d, cpu: %s, %s/%s\n", runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("go: %s\n", cmdOutput(goTool(), "version"))
	fmt.Printf("redis-server: %s\n", cmdOutput("redis-server", "--version"))
	fmt.Printf("redis-benchmark: %s\n", cmdOutput("redis-benchmark", "--version"))
	fmt.Printf("geocache: %s\n", geocacheVersion(b.geocache, b.repo))
	fmt.Printf("load average at start: %s; other processes used %s in the 3 s before the run\n", benchkit.Loadavg(), idleCheck(3*time.Second))
	fmt.Printf("benchmark: redis-benchmark -h 127.0.0.1 -p <port> -c %d -d %d -r %d -t set,get -n <N> -P <P> --csv\n", c.clients, c.size, c.keyspace)
	var ns []string
	for _, p := range c.pipelines {
		ns = append(ns, fmt.Sprintf("-P %d: N=%d", p, b.n(p)))
	}
	fmt.Printf("           %s; %d runs, servers interleaved (order rotates every run), a fresh server per run\n", strings.Join(ns, ", "), c.runs)
	if c.warmup > 0 {
		fmt.Printf("           after each start: unrecorded warm-up -P 16 -n %d, then the -P values in order on the same server\n", c.warmup)
	}
	fmt.Println("servers:")
	for _, k := range c.servers {
		fmt.Printf("  %-12s %s\n", k, strings.ReplaceAll(kindDesc[k], "<M>", strconv.Itoa(c.maxMemoryMB)))
	}
	fmt.Println("CPU columns: cores used during the redis-benchmark run (CPU seconds / wall seconds) by the server(s), by redis-benchmark, and by everything else on the machine")
	fmt.Println()
}

func (b *bench) n(p int) int {
	if p > 1 {
		return b.cfg.nPipelined
	}
	return b.cfg.n
}

// instance is one started server kind: one process, or two for kGeo2.
type instance struct {
	kind  string
	procs []*proc
	addrs []string // RESP address of each proc; addrs[0] is benchmarked
}

func (b *bench) startInstance(kind string, run int) (*instance, error) {
	in := &instance{kind: kind}
	mm := b.cfg.maxMemoryMB
	logPath := func(name string) string {
		return filepath.Join(b.sup.tmp, fmt.Sprintf("run%d-%s.log", run+1, name))
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	switch kind {
	case kRedis:
		port, err := b.ports.Free()
		if err != nil {
			return in, err
		}
		p, err := b.sup.start("redis-server :"+strconv.Itoa(port), logPath("redis"), nil, nil,
			"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--maxmemory", fmt.Sprintf("%dmb", mm), "--maxmemory-policy", "allkeys-lru",
			"--dir", b.sup.tmp, "--dbfilename", fmt.Sprintf("dump-%d.rdb", port),
			"--daemonize", "no", "--logfile", "")
		if err != nil {
			return in, err
		}
		in.procs, in.addrs = []*proc{p}, []string{addr(port)}
	case kGeo:
		port, err := b.ports.Free()
		if err != nil {
			return in, err
		}
		p, err := b.sup.start("geocache :"+strconv.Itoa(port), logPath("geocache"), nil, nil,
			b.geocache, "serve", "--addr", addr(port), "--peer-addr", "",
			"--max-memory", fmt.Sprintf("%dMB", mm), "--log-level", b.cfg.geocacheLogLevel)
		if err != nil {
			return in, err
		}
		in.procs, in.addrs = []*proc{p}, []string{addr(port)}
	case kGeo2:
		var ports [4]int
		for i := range ports {
			var err error
			if ports[i], err = b.ports.Free(); err != nil {
				return in, err
			}
		}
		for i, region := range []string{"a", "b"} {
			respPort, peerPort, otherPeer := ports[i], ports[2+i], ports[2+1-i]
			p, err := b.sup.start(fmt.Sprintf("geocache region %s :%d", region, respPort), logPath("geocache-2r-"+region), nil, nil,
				b.geocache, "serve", "--region", region, "--node", strconv.Itoa(i+1),
				"--addr", addr(respPort), "--peer-addr", addr(peerPort), "--peers", addr(otherPeer),
				"--max-memory", fmt.Sprintf("%dMB", mm), "--log-level", b.cfg.geocacheLogLevel)
			if err != nil {
				return in, err
			}
			in.procs, in.addrs = append(in.procs, p), append(in.addrs, addr(respPort))
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for i, p := range in.procs {
		for {
			if p.exited() {
				return in, fmt.Errorf("%s exited during start: %v\n%s", p.name, p.err, tail(p.logPath, 20))
			}
			if v, err := rclient.Command(in.addrs[i], "PING"); err == nil && v == "PONG" {
				break
			}
			if time.Now().After(deadline) {
				return in, fmt.Errorf("%s does not answer PING after 15 s\n%s", p.name, tail(p.logPath, 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if kind == kGeo2 {
		for {
			up := 0
			for _, a := range in.addrs {
				if s, err := rclient.Info(a, "replication"); err == nil && rclient.InfoFields(s, "peer0")["state"] == "connected" {
					up++
				}
			}
			if up == len(in.addrs) {
				break
			}
			if time.Now().After(deadline) {
				return in, fmt.Errorf("geocache regions a and b not connected to each other after 15 s\n%s\n%s",
					tail(in.procs[0].logPath, 20), tail(in.procs[1].logPath, 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return in, nil
}

// stopInstance stops the processes of in and records anything their logs
// or exit statuses say that deserves a look.
func (b *bench) stopInstance(in *instance) {
	for _, p := range in.procs {
		early, err := b.sup.stop(p, 20*time.Second)
		if early {
			b.failures++
			b.finding(fmt.Sprintf("%s: exited before it was stopped (crash?): %v", in.kind, err))
			fmt.Printf("  !! %s exited by itself: %v\n%s\n", p.name, err, tail(p.logPath, 30))
		} else if err != nil {
			b.failures++
			b.finding(fmt.Sprintf("%s: unclean stop: %v", in.kind, err))
			fmt.Printf("  !! %s: unclean stop: %v\n%s\n", p.name, err, tail(p.logPath, 30))
		}
		b.scanLog(in.kind, p.logPath)
	}
}

// scanLog records geocache WARN/ERROR lines and redis warning-level ('#')
// lines, without their timestamps.
func (b *bench) scanLog(kind, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case kind == kRedis:
			// '#' is Redis's warning level, which it also uses for its
			// start and stop banners: keep warnings and errors only.
			if _, msg, ok := strings.Cut(line, " # "); ok && (strings.Contains(msg, "WARNING") || strings.Contains(strings.ToLower(msg), "error")) {
				b.finding(kind + " log: " + msg)
			}
		case strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR"):
			if i := strings.Index(line, " level="); i >= 0 && strings.HasPrefix(line, "time=") {
				line = line[i+1:]
			}
			b.finding(kind + " log: " + line)
		case strings.Contains(line, "panic") || strings.Contains(line, "fatal error"):
			b.finding(kind + " log: " + line)
		}
	}
}

func (b *bench) finding(s string) {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	b.findings[s]++
}

func tail(path string, n int) string {
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "     | " + strings.Join(lines, "\n     | ")
}

// runResult is one redis-benchmark invocation.
type runResult struct {
	rows       map[string]*sample
	noise      []string // output lines that are not CSV rows (warnings; redis-benchmark 7 exits on a server error)
	wall       time.Duration
	clientCPU  time.Duration
	serverCPU  []time.Duration
	otherCores float64
}

func (b *bench) redisBenchmark(in *instance, p, n int, csvOut bool) (*runResult, error) {
	host, port, _ := net.SplitHostPort(in.addrs[0])
	argv := []string{"redis-benchmark", "-h", host, "-p", port,
		"-c", strconv.Itoa(b.cfg.clients), "-d", strconv.Itoa(b.cfg.size), "-r", strconv.Itoa(b.cfg.keyspace),
		"-t", "set,get", "-n", strconv.Itoa(n), "-P", strconv.Itoa(p)}
	if csvOut {
		argv = append(argv, "--csv")
	} else {
		argv = append(argv, "-q")
	}
	res := &runResult{rows: map[string]*sample{}}
	srv0 := make([]time.Duration, len(in.procs))
	for i, pr := range in.procs {
		srv0[i], _ = benchkit.CPUTime(pr.pid())
	}
	busy0, _ := machineBusy()
	var stdout, stderr bytes.Buffer
	t0 := time.Now()
	pr, err := b.sup.start("redis-benchmark", "", &stdout, &stderr, argv...)
	if err != nil {
		return nil, err
	}
	werr := b.sup.wait(pr, b.cfg.runTimeout)
	res.wall = time.Since(t0)
	busy1, _ := machineBusy()
	var ours time.Duration
	for i, p := range in.procs {
		t, _ := benchkit.CPUTime(p.pid())
		res.serverCPU = append(res.serverCPU, t-srv0[i])
		ours += t - srv0[i]
	}
	if st := pr.cmd.ProcessState; st != nil {
		res.clientCPU = st.UserTime() + st.SystemTime()
		ours += res.clientCPU
	}
	res.otherCores = max(0, (busy1-busy0-ours).Seconds()/res.wall.Seconds())
	for line := range strings.SplitSeq(stderr.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			res.noise = append(res.noise, "stderr: "+line)
		}
	}
	if csvOut {
		res.noise = append(res.noise, parseCSV(stdout.String(), res.rows)...)
	} else {
		for line := range strings.SplitSeq(stdout.String(), "\n") {
			// -q prints "SET: 123.45 requests per second, p50=..." lines, with \r progress before them
			if i := strings.LastIndexByte(line, '\r'); i >= 0 {
				line = line[i+1:]
			}
			if line = strings.TrimSpace(line); line != "" && !strings.Contains(line, "requests per second") {
				res.noise = append(res.noise, line)
			}
		}
	}
	if werr != nil {
		return res, fmt.Errorf("%s: %v; output:\n%s%s", strings.Join(argv, " "), werr, stdout.String(), stderr.String())
	}
	if csvOut {
		for _, t := range tests {
			if res.rows[t] == nil {
				return res, fmt.Errorf("%s: no %s row in the CSV output (redis-benchmark >= 6.2 is needed for latency columns):\n%s%s",
					strings.Join(argv, " "), t, stdout.String(), stderr.String())
			}
		}
	}
	return res, nil
}

// parseCSV reads redis-benchmark --csv output into rows and returns the
// lines that are not rows.
func parseCSV(out string, rows map[string]*sample) (noise []string) {
	var header []string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		r := csv.NewReader(strings.NewReader(line))
		r.LazyQuotes = true
		rec, err := r.Read()
		if err != nil {
			noise = append(noise, line)
			continue
		}
		if len(rec) > 0 && rec[0] == "test" {
			header = rec
			continue
		}
		if header == nil || len(rec) != len(header) {
			noise = append(noise, line)
			continue
		}
		s := &sample{}
		ok := true
		for i, col := range header {
			dst := map[string]*float64{"rps": &s.rps, "avg_latency_ms": &s.avg, "min_latency_ms": &s.min,
				"p50_latency_ms": &s.p50, "p95_latency_ms": &s.p95, "p99_latency_ms": &s.p99, "max_latency_ms": &s.max}[col]
			if dst == nil {
				continue
			}
			v, err := strconv.ParseFloat(rec[i], 64)
			if err != nil {
				ok = false
				break
			}
			*dst = v
		}
		if !ok || !slices.Contains(header, "p99_latency_ms") {
			noise = append(noise, line)
			continue
		}
		rows[strings.ToUpper(rec[0])] = s
	}
	return noise
}

func (b *bench) record(k cellKey, run int, s *sample) {
	if b.results[k] == nil {
		b.results[k] = make([]*sample, b.cfg.runs)
	}
	b.results[k][run] = s
}

func (b *bench) runAll() {
	c := b.cfg
	for run := range c.runs {
		order := slices.Clone(c.servers)
		for i := range order {
			order[i] = c.servers[(i+run)%len(c.servers)]
		}
		fmt.Printf("== run %d/%d: %s (load average %s)\n", run+1, c.runs, strings.Join(order, ", "), benchkit.Loadavg())
		for _, kind := range order {
			if b.sup.isClosed() {
				return
			}
			b.runInstance(kind, run)
		}
	}
	fmt.Printf("load average at end: %s; total time %s\n", benchkit.Loadavg(), time.Since(b.start).Round(time.Second))
}

func (b *bench) runInstance(kind string, run int) {
	in, err := b.startInstance(kind, run)
	defer b.stopInstance(in)
	if err != nil {
		b.failures++
		fmt.Printf("  !! %s: %v\n", kind, err)
		return
	}
	if b.cfg.warmup > 0 {
		res, err := b.redisBenchmark(in, 16, b.cfg.warmup, false)
		if err != nil {
			b.failures++
			fmt.Printf("  !! %s warm-up: %v\n", kind, err)
			return
		}
		b.noise(kind, "warm-up", res.noise)
	}
	for _, p := range b.cfg.pipelines {
		res, err := b.redisBenchmark(in, p, b.n(p), true)
		if err != nil {
			b.failures++
			fmt.Printf("  !! %s -P %d: %v\n", kind, p, err)
			if res != nil {
				b.noise(kind, fmt.Sprintf("-P %d", p), res.noise)
			}
			return
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "  %-11s -P %-2d", kind, p)
		for _, t := range tests {
			s := res.rows[t]
			b.record(cellKey{kind, p, t}, run, s)
			fmt.Fprintf(&sb, " | %s %9s rps p50 %6.3f p99 %6.3f ms", t, benchkit.Thousands(s.rps), s.p50, s.p99)
		}
		var cpus []string
		for _, d := range res.serverCPU {
			cpus = append(cpus, fmt.Sprintf("%.2f", d.Seconds()/res.wall.Seconds()))
		}
		fmt.Fprintf(&sb, " | %5.1f s, CPU server %s client %.2f other %.2f",
			res.wall.Seconds(), strings.Join(cpus, "+"), res.clientCPU.Seconds()/res.wall.Seconds(), res.otherCores)
		if kind == kGeo2 {
			fmt.Fprintf(&sb, " | %s", b.drain(in))
		}
		fmt.Println(sb.String())
		b.noise(kind, fmt.Sprintf("-P %d", p), res.noise)
	}
}

// drain waits until region a has no replication lag toward b, and
// compares the two regions' key counts.
func (b *bench) drain(in *instance) string {
	t0 := time.Now()
	for {
		s, err := rclient.Info(in.addrs[0], "replication")
		if err != nil {
			b.failures++
			return "INFO replication of a: " + err.Error()
		}
		f := rclient.InfoFields(s, "peer0")
		if f["lag"] == "0" && f["backlog_bytes"] == "0" {
			break
		}
		if time.Since(t0) > time.Minute {
			b.failures++
			b.finding(fmt.Sprintf("%s: replication lag not drained within 1 min", kGeo2))
			return fmt.Sprintf("!! not drained after 1 min: peer0 %v", f)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(t0)
	na, errA := rclient.Dbsize(in.addrs[0])
	nb, errB := rclient.Dbsize(in.addrs[1])
	if errA != nil || errB != nil {
		return fmt.Sprintf("lag 0 after %.2f s; DBSIZE: %v %v", d.Seconds(), errA, errB)
	}
	mark := ""
	if na != nb {
		mark = " !! differ"
		b.finding(fmt.Sprintf("%s: DBSIZE of a and b differ after the lag drained", kGeo2))
	}
	return fmt.Sprintf("lag 0 after %.2f s, DBSIZE a %d b %d%s", d.Seconds(), na, nb, mark)
}

func (b *bench) noise(kind, what string, lines []string) {
	for _, l := range lines {
		fmt.Printf("  !! %s %s: redis-benchmark said: %s\n", kind, what, l)
		b.finding(fmt.Sprintf("%s: redis-benchmark output: %s", kind, l))
	}
}

// stats of one cell over the runs that succeeded.
type stats struct {
	n                  int
	rps, rpsMin, rpsMx float64
	p50, p99           float64 // medians
}

func (b *bench) cell(k cellKey) (stats, bool) {
	var rps, p50, p99 []float64
	for _, s := range b.results[k] {
		if s != nil {
			rps, p50, p99 = append(rps, s.rps), append(p50, s.p50), append(p99, s.p99)
		}
	}
	if len(rps) == 0 {
		return stats{}, false
	}
	return stats{n: len(rps), rps: benchkit.Median(rps), rpsMin: slices.Min(rps), rpsMx: slices.Max(rps), p50: benchkit.Median(p50), p99: benchkit.Median(p99)}, true
}

// ratios returns a/b of the median rps and the per-run ratios (runs are
// interleaved, so run i of a and run i of b saw similar load).
func (b *bench) ratios(a, c cellKey) (float64, []float64, bool) {
	sa, ok1 := b.cell(a)
	sc, ok2 := b.cell(c)
	if !ok1 || !ok2 {
		return 0, nil, false
	}
	var per []float64
	for i := range b.cfg.runs {
		x, y := b.results[a][i], b.results[c][i]
		if x != nil && y != nil && y.rps > 0 {
			per = append(per, x.rps/y.rps)
		}
	}
	return sa.rps / sc.rps, per, true
}

func spanRatios(per []float64) string {
	if len(per) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f..%.2f", slices.Min(per), slices.Max(per))
}

type goal struct {
	name, measured string
	met            bool
}

func (b *bench) report() {
	c := b.cfg
	fmt.Printf("\n== results: median of %d runs; rps [min..max] and spread (max-min)/median; latency in ms, median of the runs' p50 and p99\n", c.runs)
	var goals []goal
	for _, p := range c.pipelines {
		for _, t := range tests {
			fmt.Printf("\n%s -P %d (-n %d)\n", t, p, b.n(p))
			fmt.Printf("  %-12s %10s  %-23s %7s %8s %8s %5s\n", "server", "rps", "[min..max]", "spread", "p50", "p99", "runs")
			for _, kind := range c.servers {
				s, ok := b.cell(cellKey{kind, p, t})
				if !ok {
					fmt.Printf("  %-12s no successful run\n", kind)
					continue
				}
				fmt.Printf("  %-12s %10s  %-23s %6.0f%% %8.3f %8.3f %5d\n", kind, benchkit.Thousands(s.rps),
					"["+benchkit.Thousands(s.rpsMin)+".."+benchkit.Thousands(s.rpsMx)+"]", 100*(s.rpsMx-s.rpsMin)/s.rps, s.p50, s.p99, s.n)
			}
			gk, rk, g2k := cellKey{kGeo, p, t}, cellKey{kRedis, p, t}, cellKey{kGeo2, p, t}
			if r, per, ok := b.ratios(gk, rk); ok {
				sg, _ := b.cell(gk)
				sr, _ := b.cell(rk)
				p99ok := sg.p99 <= sr.p99
				verdict := "no worse"
				if !p99ok {
					verdict = "WORSE"
				}
				fmt.Printf("  geocache / redis:       rps %.2fx (per run %s); p99 %.3f vs %.3f ms: %s\n", r, spanRatios(per), sg.p99, sr.p99, verdict)
				goals = append(goals, goal{
					name:     fmt.Sprintf("geocache >= 1.0x redis rps and p99 no worse, %s -P %d", t, p),
					measured: fmt.Sprintf("%.2fx (runs %s); p99 %.3f vs %.3f ms", r, spanRatios(per), sg.p99, sr.p99),
					met:      r >= 1.0 && p99ok,
				})
			}
			if r, per, ok := b.ratios(g2k, gk); ok {
				s2, _ := b.cell(g2k)
				sg, _ := b.cell(gk)
				fmt.Printf("  geocache-2r / geocache: rps %.2fx (per run %s); p99 %.3f vs %.3f ms\n", r, spanRatios(per), s2.p99, sg.p99)
				if t == "SET" {
					goals = append(goals, goal{
						name:     fmt.Sprintf("geocache-2r SET >= 0.9x geocache SET, -P %d", p),
						measured: fmt.Sprintf("%.2fx (runs %s)", r, spanRatios(per)),
						met:      r >= 0.9, // issue 12: one remote region costs the origin at most 10 % of its SET throughput
					})
				}
			}
		}
	}
	if len(goals) > 0 {
		fmt.Println("\n== goals")
		for _, g := range goals {
			m := "NOT MET"
			if g.met {
				m = "met"
			}
			fmt.Printf("  %-62s %-42s %s\n", g.name, g.measured, m)
		}
	}
	fmt.Println("\n== log and output findings (deduplicated, with counts)")
	if len(b.findings) == 0 {
		fmt.Println("  none")
	}
	keys := make([]string, 0, len(b.findings))
	for k := range b.findings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("  %3dx %s\n", b.findings[k], k)
	}
}
