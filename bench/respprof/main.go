// Command respprof says where a request's CPU time goes in `geocache
// serve` and in `redis-server` under redis-benchmark, and what
// replication costs the origin of a write.
//
//	cd bench && go run ./respprof                               # redis and geocache, the four cases, perf profiles
//	go run ./respprof -servers geocache,geocache+1r,geocache+2r -cases set1,set16 -perf=false -repeat 3
//	                                                            # origin CPU per million SET with 0, 1, 2 remote regions
//	go run ./respprof -servers geocache -pprof /tmp/prof        # Go CPU and allocation profiles, in process
//
// For every server kind (rotated every -repeat) it starts a fresh server on
// loopback, runs an unrecorded warm-up, then for every case one
//
//	redis-benchmark -c 50 -d 64 -r 100000 -t <test> -P <p> -n <N> --csv
//
// and measures the CPU time the server processes used (from /proc) over
// the run — and, for a write with remote regions, until the origin reports
// no replication lag — so it can print CPU microseconds per request, which
// other load on the machine does not change much (unlike requests per
// second). With -perf it samples the benchmarked process with `perf record`
// and puts every sample in a category by its call stack (classify.go):
// syscalls, scheduler and netpoll, parsing, store, value copies, reply
// encoding, clock reads, metrics, ... The table gives each category in CPU
// microseconds per request.
//
// With -pprof DIR the geocache origin runs inside respprof itself, with the
// same configuration as `geocache serve --max-memory 256MB`, and each case
// writes DIR/<kind>-<case>.cpu.pprof and .allocs.pprof (allocations during
// the case only) and prints allocations per request.
//
// Every process it starts is in its own process group, killed if respprof
// dies, and stopped at the end. See bench/README.md.
package main

import (
	"bytes"
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/geocache/geocache/bench/internal/benchkit"
	"github.com/geocache/geocache/bench/internal/rclient"
)

type benchCase struct {
	name string // set1, get16, ...
	test string // SET, GET
	p    int
}

func parseCase(s string) (benchCase, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, t := range []string{"set", "get"} {
		if rest, ok := strings.CutPrefix(s, t); ok {
			p, err := strconv.Atoi(rest)
			if err == nil && p >= 1 {
				return benchCase{name: s, test: strings.ToUpper(t), p: p}, nil
			}
		}
	}
	return benchCase{}, fmt.Errorf("bad case %q: want set<P> or get<P>, e.g. set1, get16", s)
}

func (c benchCase) String() string { return fmt.Sprintf("%s -P %d", c.test, c.p) }

type config struct {
	servers                    []string
	cases                      []benchCase
	n, nPipelined              int
	clients, size, keyspace    int
	warmup, repeat, freq, syms int
	maxMemoryMB                int
	perf                       bool
	pprofDir, bin, repo, out   string
	logLevel                   string
}

// Server kinds.
const (
	kRedis = "redis"
	kGeo   = "geocache"
)

// others are the binaries of -other, by kind name: each runs as a single
// node, like geocache.
var others = map[string]string{}

// regionsOf returns the remote regions of a geocache kind: geocache+<n>r.
func regionsOf(kind string) (int, bool) {
	if _, ok := others[kind]; ok || kind == kGeo {
		return 0, true
	}
	rest, ok := strings.CutPrefix(kind, kGeo+"+")
	if !ok || !strings.HasSuffix(rest, "r") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "r"))
	return n, err == nil && n >= 1 && n <= 8
}

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "analyze" {
		return analyzeFiles(os.Args[2:])
	}
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "respprof:", err)
		return 2
	}
	r := &runner{cfg: cfg, results: map[resultKey]*result{}}
	defer r.cleanup()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nrespprof: interrupted: stopping every process it started")
		r.cleanup()
		os.Exit(130)
	}()
	if err := r.prepare(); err != nil {
		fmt.Fprintln(os.Stderr, "respprof:", err)
		return 1
	}
	if err := r.runAll(); err != nil {
		fmt.Fprintln(os.Stderr, "respprof:", err)
		return 1
	}
	r.report()
	return 0
}

func parseFlags() (config, error) {
	var c config
	var servers, cases string
	flag.StringVar(&servers, "servers", "redis,geocache", "server kinds: redis, geocache, geocache+<n>r (a geocache origin with n remote regions, all replicating to each other)")
	flag.StringVar(&cases, "cases", "set1,get1,set16,get16", "redis-benchmark cases: <test><P>, test set or get, P the pipeline depth")
	flag.IntVar(&c.n, "n", 200000, "requests per case at -P 1")
	flag.IntVar(&c.nPipelined, "n-pipelined", 1000000, "requests per case at -P greater than 1")
	flag.IntVar(&c.clients, "c", 50, "parallel connections (-c)")
	flag.IntVar(&c.size, "d", 64, "value size (-d)")
	flag.IntVar(&c.keyspace, "r", 100000, "random keys (-r)")
	flag.IntVar(&c.warmup, "warmup", 20000, "requests per test of an unrecorded -P 16 set,get warm-up after each start (0: none)")
	flag.IntVar(&c.repeat, "repeat", 1, "runs of every kind, interleaved (the order rotates every run); figures are summed over runs, medians printed per run")
	flag.IntVar(&c.maxMemoryMB, "maxmemory-mb", 256, "memory budget of every server in MiB")
	flag.BoolVar(&c.perf, "perf", true, "sample the benchmarked process with perf record and print where its time goes")
	flag.IntVar(&c.freq, "freq", 1999, "perf sampling frequency, Hz (Redis, unwound with dwarf, gets a quarter of it)")
	flag.IntVar(&c.syms, "symbols", 0, "print the n heaviest leaf symbols of every category (to check the rules)")
	flag.StringVar(&c.pprofDir, "pprof", "", "run the geocache origin in process and write Go CPU and allocation profiles into this directory (no perf)")
	flag.StringVar(&c.bin, "bin", "", "geocache binary to run (default: built from the repository)")
	var other string
	flag.StringVar(&other, "other", "", "more binaries that take `geocache serve`'s flags, as name=path,...: each is a server kind of that name run as a single node (e.g. the binary before a change, or bench/respmodel)")
	flag.StringVar(&c.repo, "repo", "", "root of the geocache repository (default: found from the working directory)")
	flag.StringVar(&c.out, "out", "", "keep perf recordings and server logs in this directory (default: a temporary one, removed)")
	flag.StringVar(&c.logLevel, "geocache-log-level", "warn", "geocache serve --log-level")
	flag.Parse()
	if flag.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	for o := range strings.SplitSeq(other, ",") {
		if o == "" {
			continue
		}
		name, path, ok := strings.Cut(o, "=")
		if !ok || name == kRedis || name == kGeo || strings.HasPrefix(name, kGeo+"+") {
			return c, fmt.Errorf("-other: bad entry %q: want name=path, name not redis or geocache", o)
		}
		others[name] = path
	}
	for s := range strings.SplitSeq(servers, ",") {
		s = strings.TrimSpace(s)
		if _, ok := regionsOf(s); !ok && s != kRedis {
			return c, fmt.Errorf("-servers: unknown kind %q", s)
		}
		if s == kRedis && c.pprofDir != "" {
			return c, errors.New("-pprof profiles geocache in process: leave redis out of -servers")
		}
		c.servers = append(c.servers, s)
	}
	for s := range strings.SplitSeq(cases, ",") {
		bc, err := parseCase(s)
		if err != nil {
			return c, err
		}
		c.cases = append(c.cases, bc)
	}
	if c.pprofDir != "" {
		c.perf = false
		runtime.MemProfileRate = 16 << 10 // finer than the default 512 KiB: requests allocate little
	}
	if c.repeat < 1 || c.n < 1 || c.nPipelined < 1 || c.clients < 1 || c.size < 1 || c.keyspace < 1 || c.freq < 1 {
		return c, errors.New("-repeat, -n, -n-pipelined, -c, -d, -r and -freq must be at least 1")
	}
	return c, nil
}

type resultKey struct {
	kind string
	cs   string
}

// result sums one (kind, case) over the runs.
type result struct {
	runs      int
	requests  float64
	wall      time.Duration
	originCPU time.Duration   // the benchmarked process
	otherCPU  time.Duration   // the remote regions
	perRun    []float64       // origin CPU µs per request, per run
	rps       []float64       // per run
	p50, p99  []float64       // per run, ms
	prof      *profile        // weights in CPU seconds of the origin
	allocs    []float64       // per run, allocations per request (-pprof)
	bytes     []float64       // per run, bytes allocated per request (-pprof)
	notes     map[string]bool // drain results and the like
}

type runner struct {
	cfg      config
	tmp      string
	bin      string
	ports    benchkit.Ports
	start    time.Time
	results  map[resultKey]*result
	redisVer string

	mu    sync.Mutex
	procs []*exec.Cmd
	done  bool
}

func (r *runner) prepare() error {
	r.start = time.Now()
	r.ports = benchkit.Ports{}
	var err error
	if r.cfg.out != "" {
		r.tmp = r.cfg.out
		err = os.MkdirAll(r.tmp, 0o755)
	} else {
		r.tmp, err = os.MkdirTemp("", "respprof-")
	}
	if err != nil {
		return err
	}
	for _, b := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not on PATH: install Redis >= 6.2 (Debian: apt-get install redis-server redis-tools)", b)
		}
	}
	if r.cfg.perf {
		if _, err := exec.LookPath("perf"); err != nil {
			return errors.New("perf not on PATH (Debian: apt-get install linux-perf), or run with -perf=false")
		}
	}
	if r.cfg.pprofDir != "" {
		if err := os.MkdirAll(r.cfg.pprofDir, 0o755); err != nil {
			return err
		}
	}
	r.redisVer = strings.TrimSpace(cmdOutput("redis-server", "--version"))
	r.bin = r.cfg.bin
	if r.bin == "" {
		repo := r.cfg.repo
		if repo == "" {
			if repo, err = benchkit.FindRepo(); err != nil {
				return err
			}
		}
		r.bin = filepath.Join(r.tmp, "geocache")
		cmd := exec.Command("go", "build", "-o", r.bin, "./cmd/geocache")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/geocache in %s: %v\n%s", repo, err, out)
		}
	}
	fmt.Printf("respprof  %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: nproc=%d, %s/%s, %s; %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), r.redisVer)
	fmt.Printf("geocache: %s\n", r.bin)
	fmt.Printf("benchmark: redis-benchmark -h 127.0.0.1 -p <port> -c %d -d %d -r %d -t <test> -P <P> -n <N> --csv; N = %d at -P 1, %d above\n",
		r.cfg.clients, r.cfg.size, r.cfg.keyspace, r.cfg.n, r.cfg.nPipelined)
	fmt.Printf("load average at start: %s\n\n", benchkit.Loadavg())
	return nil
}

func (r *runner) cleanup() {
	r.mu.Lock()
	procs := r.procs
	r.procs = nil
	done := r.done
	r.done = true
	r.mu.Unlock()
	for _, p := range procs {
		stopProc(p)
	}
	if !done && r.cfg.out == "" && r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
}

// startProc runs argv in its own process group, killed if respprof dies.
func (r *runner) startProc(logPath string, argv ...string) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	r.mu.Lock()
	r.procs = append(r.procs, cmd)
	r.mu.Unlock()
	return cmd, nil
}

func stopProc(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (r *runner) forget(cmds ...*exec.Cmd) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = slices.DeleteFunc(r.procs, func(c *exec.Cmd) bool { return slices.Contains(cmds, c) })
}

// instance is one started server kind. addrs[0] is benchmarked; pids[0] is
// its process (respprof's own with -pprof).
type instance struct {
	kind    string
	regions int
	cmds    []*exec.Cmd
	pids    []int
	addrs   []string
	inproc  *inprocServer
}

func addr(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

func (r *runner) startInstance(kind string, run int) (*instance, error) {
	in := &instance{kind: kind}
	mm := r.cfg.maxMemoryMB
	logPath := func(name string) string {
		return filepath.Join(r.tmp, fmt.Sprintf("run%d-%s.log", run+1, name))
	}
	if kind == kRedis {
		port, err := r.ports.Free()
		if err != nil {
			return in, err
		}
		cmd, err := r.startProc(logPath("redis"), "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--maxmemory", fmt.Sprintf("%dmb", mm), "--maxmemory-policy", "allkeys-lru",
			"--dir", r.tmp, "--dbfilename", fmt.Sprintf("dump-%d.rdb", port), "--daemonize", "no", "--logfile", "")
		if err != nil {
			return in, err
		}
		in.cmds, in.pids, in.addrs = []*exec.Cmd{cmd}, []int{cmd.Process.Pid}, []string{addr(port)}
		return in, r.waitUp(in)
	}
	n, _ := regionsOf(kind)
	in.regions = n
	resp := make([]int, n+1)
	peer := make([]int, n+1)
	for i := range resp {
		var err error
		if resp[i], err = r.ports.Free(); err != nil {
			return in, err
		}
		if n > 0 {
			if peer[i], err = r.ports.Free(); err != nil {
				return in, err
			}
		}
	}
	peersOf := func(i int) []string {
		var ps []string
		for j := range peer {
			if j != i {
				ps = append(ps, addr(peer[j]))
			}
		}
		return ps
	}
	for i := range resp {
		region := string(rune('a' + i))
		if _, other := others[kind]; i == 0 && r.cfg.pprofDir != "" && !other {
			s, err := startInproc(addr(resp[0]), regionPeerAddr(n, peer), region, peersOf(0), mm)
			if err != nil {
				return in, err
			}
			in.inproc = s
			in.pids, in.addrs = append(in.pids, os.Getpid()), append(in.addrs, addr(resp[0]))
			continue
		}
		bin := r.bin
		if p, ok := others[kind]; ok {
			bin = p
		}
		argv := []string{bin, "serve", "--addr", addr(resp[i]), "--max-memory", fmt.Sprintf("%dMB", mm), "--log-level", r.cfg.logLevel}
		if n == 0 {
			argv = append(argv, "--peer-addr", "")
		} else {
			argv = append(argv, "--region", region, "--node", strconv.Itoa(i+1), "--peer-addr", addr(peer[i]),
				"--peers", strings.Join(peersOf(i), ","))
		}
		cmd, err := r.startProc(logPath(kind+"-"+region), argv...)
		if err != nil {
			return in, err
		}
		in.cmds, in.pids, in.addrs = append(in.cmds, cmd), append(in.pids, cmd.Process.Pid), append(in.addrs, addr(resp[i]))
	}
	return in, r.waitUp(in)
}

func regionPeerAddr(n int, peer []int) string {
	if n == 0 {
		return ""
	}
	return addr(peer[0])
}

// waitUp waits for PING on every server and, with remote regions, for the
// origin's links to all of them.
func (r *runner) waitUp(in *instance) error {
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range in.addrs {
		for {
			if v, err := rclient.Command(a, "PING"); err == nil && v == "PONG" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s does not answer PING after 20 s", in.kind, a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for in.regions > 0 {
		s, err := rclient.Info(in.addrs[0], "replication")
		up := 0
		if err == nil {
			for i := range in.regions {
				if rclient.InfoFields(s, "peer"+strconv.Itoa(i))["state"] == "connected" {
					up++
				}
			}
		}
		if up == in.regions {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: origin not connected to its %d remote regions after 20 s:\n%s", in.kind, in.regions, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (r *runner) stopInstance(in *instance) {
	for _, c := range in.cmds {
		stopProc(c)
	}
	r.forget(in.cmds...)
	if in.inproc != nil {
		in.inproc.close()
	}
}

// drained waits until the origin reports no lag and no backlog toward any
// remote region.
func drained(in *instance) (time.Duration, error) {
	t0 := time.Now()
	for {
		s, err := rclient.Info(in.addrs[0], "replication")
		if err != nil {
			return 0, err
		}
		ok := true
		for i := range in.regions {
			f := rclient.InfoFields(s, "peer"+strconv.Itoa(i))
			if f["lag"] != "0" || f["backlog_bytes"] != "0" {
				ok = false
			}
		}
		if ok {
			return time.Since(t0), nil
		}
		if time.Since(t0) > 2*time.Minute {
			return 0, errors.New("replication lag not drained within 2 min")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *runner) runAll() error {
	c := r.cfg
	for run := range c.repeat {
		order := slices.Clone(c.servers)
		for i := range order {
			order[i] = c.servers[(i+run)%len(c.servers)]
		}
		fmt.Printf("== run %d/%d: %s (load average %s)\n", run+1, c.repeat, strings.Join(order, ", "), benchkit.Loadavg())
		for _, kind := range order {
			if err := r.runInstance(kind, run); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) n(p int) int {
	if p > 1 {
		return r.cfg.nPipelined
	}
	return r.cfg.n
}

func (r *runner) runInstance(kind string, run int) error {
	in, err := r.startInstance(kind, run)
	defer r.stopInstance(in)
	if err != nil {
		return err
	}
	if r.cfg.warmup > 0 {
		if _, _, err := r.benchmark(in, "set,get", 16, r.cfg.warmup); err != nil {
			return fmt.Errorf("%s warm-up: %w", kind, err)
		}
		if in.regions > 0 {
			if _, err := drained(in); err != nil {
				return err
			}
		}
	}
	for _, bc := range r.cfg.cases {
		if err := r.measure(in, bc, run); err != nil {
			return fmt.Errorf("%s %s: %w", kind, bc, err)
		}
	}
	return nil
}

func (r *runner) measure(in *instance, bc benchCase, run int) error {
	k := resultKey{in.kind, bc.name}
	res := r.results[k]
	if res == nil {
		res = &result{prof: newProfile(), notes: map[string]bool{}}
		r.results[k] = res
	}
	var rec *perfRecord
	perfPath := filepath.Join(r.tmp, fmt.Sprintf("run%d-%s-%s.perf.data", run+1, in.kind, bc.name))
	if r.cfg.perf {
		freq, dwarf := r.cfg.freq, in.kind == kRedis
		if dwarf {
			freq = max(r.cfg.freq/4, 1)
		}
		var err error
		if rec, err = startPerf(in.pids[:1], perfPath, freq, dwarf); err != nil {
			return err
		}
	}
	var pp *pprofCase
	if r.cfg.pprofDir != "" {
		var err error
		if pp, err = startPprof(filepath.Join(r.cfg.pprofDir, in.kind+"-"+bc.name)); err != nil {
			return err
		}
	}
	cpu0 := make([]time.Duration, len(in.pids))
	for i, pid := range in.pids {
		cpu0[i], _ = benchkit.CPUTime(pid)
	}
	t0 := time.Now()
	row, _, err := r.benchmark(in, strings.ToLower(bc.test), bc.p, r.n(bc.p))
	if err != nil {
		if rec != nil {
			rec.stop()
		}
		return err
	}
	if bc.test == "SET" && in.regions > 0 {
		d, err := drained(in)
		if err != nil {
			return err
		}
		res.notes[fmt.Sprintf("drained %.2f s after the run", d.Seconds())] = true
	}
	wall := time.Since(t0)
	cpu := make([]time.Duration, len(in.pids))
	for i, pid := range in.pids {
		c1, _ := benchkit.CPUTime(pid)
		cpu[i] = c1 - cpu0[i]
	}
	req := float64(r.n(bc.p))
	res.runs++
	res.requests += req
	res.wall += wall
	res.originCPU += cpu[0]
	for _, c := range cpu[1:] {
		res.otherCPU += c
	}
	res.perRun = append(res.perRun, float64(cpu[0].Microseconds())/req)
	res.rps = append(res.rps, row.rps)
	res.p50, res.p99 = append(res.p50, row.p50), append(res.p99, row.p99)
	var extra string
	if pp != nil {
		a, b, err := pp.stop(req)
		if err != nil {
			return err
		}
		res.allocs, res.bytes = append(res.allocs, a), append(res.bytes, b)
		extra = fmt.Sprintf(", %.2f allocs %.0f B per request", a, b)
	}
	if rec != nil {
		if err := rec.stop(); err != nil {
			return err
		}
		prof, err := analyze(perfPath, in.kind == kRedis)
		if err != nil {
			return err
		}
		if prof.total > 0 {
			res.prof.merge(prof, cpu[0].Seconds()/prof.total)
		}
		if r.cfg.out == "" {
			os.Remove(perfPath)
		}
	}
	var others []string
	for _, c := range cpu[1:] {
		others = append(others, fmt.Sprintf("%.2f", c.Seconds()/wall.Seconds()))
	}
	remote := ""
	if len(others) > 0 {
		remote = " remote " + strings.Join(others, "+")
	}
	fmt.Printf("  %-13s %-10s %9s rps p50 %6.3f p99 %6.3f ms | origin CPU %.2f cores, %5.2f µs/request%s%s | load %s\n",
		in.kind, bc, benchkit.Thousands(row.rps), row.p50, row.p99, cpu[0].Seconds()/wall.Seconds(),
		float64(cpu[0].Microseconds())/req, remote, extra, benchkit.Loadavg())
	return nil
}

// csvRow is one redis-benchmark CSV row.
type csvRow struct{ rps, p50, p99 float64 }

// benchmark runs redis-benchmark against the instance's first address.
func (r *runner) benchmark(in *instance, tests string, p, n int) (csvRow, string, error) {
	host, port, _ := net.SplitHostPort(in.addrs[0])
	argv := []string{"redis-benchmark", "-h", host, "-p", port, "-c", strconv.Itoa(r.cfg.clients), "-d", strconv.Itoa(r.cfg.size),
		"-r", strconv.Itoa(r.cfg.keyspace), "-t", tests, "-n", strconv.Itoa(n), "-P", strconv.Itoa(p), "--csv"}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return csvRow{}, "", fmt.Errorf("%s: %v\n%s%s", strings.Join(argv, " "), err, stdout.String(), stderr.String())
	}
	var row csvRow
	found := false
	for line := range strings.SplitSeq(stdout.String(), "\n") {
		f := strings.Split(strings.ReplaceAll(strings.TrimSpace(line), `"`, ""), ",")
		if len(f) < 7 || f[0] == "test" {
			continue
		}
		rps, err1 := strconv.ParseFloat(f[1], 64)
		p50, err2 := strconv.ParseFloat(f[4], 64)
		p99, err3 := strconv.ParseFloat(f[6], 64)
		if err1 == nil && err2 == nil && err3 == nil {
			row, found = csvRow{rps, p50, p99}, true
		}
	}
	if !found {
		return row, "", fmt.Errorf("%s: no CSV row:\n%s%s", strings.Join(argv, " "), stdout.String(), stderr.String())
	}
	return row, stderr.String(), nil
}

func (r *runner) report() {
	c := r.cfg
	fmt.Printf("\nload average at end: %s; total time %s\n", benchkit.Loadavg(), time.Since(r.start).Round(time.Second))
	for _, bc := range c.cases {
		fmt.Printf("\n== %s (-n %d): origin CPU per request, medians of %d run(s)\n", bc, r.n(bc.p), c.repeat)
		base := 0.0
		for _, kind := range c.servers {
			res := r.results[resultKey{kind, bc.name}]
			if res == nil {
				continue
			}
			us := benchkit.Median(res.perRun)
			rel := ""
			if kind == kGeo {
				base = us
			} else if _, ok := others[kind]; ok && base > 0 {
				rel = fmt.Sprintf(" = %.2fx %s", us/base, kGeo)
			} else if n, ok := regionsOf(kind); ok && n > 0 && base > 0 {
				rel = fmt.Sprintf(" = %.2fx the single node", us/base)
			}
			line := fmt.Sprintf("  %-13s %6.2f µs/request (runs %s)%s; %s rps (runs %s); p50 %.3f p99 %.3f ms",
				kind, us, floats(res.perRun, "%.2f"), rel, benchkit.Thousands(benchkit.Median(res.rps)), floats(res.rps, "%.0f"), benchkit.Median(res.p50), benchkit.Median(res.p99))
			if res.otherCPU > 0 {
				line += fmt.Sprintf("; remote regions %.2f µs/request", float64(res.otherCPU.Microseconds())/res.requests)
			}
			if len(res.allocs) > 0 {
				line += fmt.Sprintf("; %.2f allocs, %.0f B per request", benchkit.Median(res.allocs), benchkit.Median(res.bytes))
			}
			fmt.Println(line)
			if len(res.notes) > 0 {
				var notes []string
				for n := range res.notes {
					notes = append(notes, n)
				}
				sort.Strings(notes)
				fmt.Printf("  %-13s (%s)\n", "", strings.Join(notes, "; "))
			}
		}
		if !c.perf {
			continue
		}
		fmt.Printf("\n  where the origin's time goes, CPU µs per request (share)\n  %-46s", "category")
		for _, kind := range c.servers {
			fmt.Printf(" %16s", kind)
		}
		fmt.Println()
		for cat := range numCategories {
			any := false
			for _, kind := range c.servers {
				if res := r.results[resultKey{kind, bc.name}]; res != nil && res.prof.cats[cat] > 0 {
					any = true
				}
			}
			if !any {
				continue
			}
			fmt.Printf("  %-46s", cat)
			for _, kind := range c.servers {
				res := r.results[resultKey{kind, bc.name}]
				if res == nil || res.prof.total == 0 {
					fmt.Printf(" %16s", "-")
					continue
				}
				us := 1e6 * res.prof.cats[cat] / res.requests
				fmt.Printf(" %7.2f (%4.1f%%)", us, 100*res.prof.cats[cat]/res.prof.total)
			}
			fmt.Println()
		}
		fmt.Printf("  %-46s", "total (perf samples)")
		for _, kind := range c.servers {
			if res := r.results[resultKey{kind, bc.name}]; res != nil && res.prof.total > 0 {
				fmt.Printf(" %7.2f         ", 1e6*res.prof.total/res.requests)
			}
		}
		fmt.Println()
		for _, kind := range c.servers {
			res := r.results[resultKey{kind, bc.name}]
			if res == nil || res.prof.total == 0 {
				continue
			}
			if len(res.prof.repl) > 0 {
				fmt.Printf("\n  %s: replication, by outermost replication function / what it does (CPU µs per request, share of the origin)\n", kind)
				type kv struct {
					k string
					v float64
				}
				var all []kv
				for k, v := range res.prof.repl {
					all = append(all, kv{k, v})
				}
				sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
				for i, e := range all {
					if i >= 25 {
						break
					}
					fmt.Printf("    %7.3f (%4.1f%%)  %s\n", 1e6*e.v/res.requests, 100*e.v/res.prof.total, e.k)
				}
			}
			if c.syms > 0 {
				fmt.Printf("\n  %s: heaviest leaf symbols by category\n", kind)
				for cat := range numCategories {
					if top := res.prof.topSyms(cat, c.syms); len(top) > 0 {
						fmt.Printf("    %s: %s\n", cat, strings.Join(top, ", "))
					}
				}
			}
		}
	}
}

// analyzeFiles prints the categories and heaviest symbols of saved
// recordings (-out keeps them): respprof analyze [-redis] [-symbols n] file...
func analyzeFiles(args []string) int {
	fs := flag.NewFlagSet("analyze", flag.ExitOnError)
	redis := fs.Bool("redis", false, "the recordings are of redis-server")
	syms := fs.Int("symbols", 10, "heaviest leaf symbols per category")
	fs.Parse(args)
	for _, path := range fs.Args() {
		prof, err := analyze(path, *redis)
		if err != nil {
			fmt.Fprintln(os.Stderr, "respprof:", err)
			return 1
		}
		fmt.Printf("== %s\n", path)
		for cat := range numCategories {
			if prof.cats[cat] == 0 {
				continue
			}
			fmt.Printf("  %5.1f%%  %s: %s\n", 100*prof.cats[cat]/prof.total, cat, strings.Join(prof.topSyms(cat, *syms), ", "))
		}
		if len(prof.repl) > 0 {
			fmt.Println("  replication, by outermost replication function / what it does:")
			keys := make([]string, 0, len(prof.repl))
			for k := range prof.repl {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return prof.repl[keys[i]] > prof.repl[keys[j]] })
			for _, k := range keys {
				if share := 100 * prof.repl[k] / prof.total; share >= 0.1 {
					fmt.Printf("    %5.1f%%  %s\n", share, k)
				}
			}
		}
	}
	return 0
}

func floats(v []float64, f string) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf(f, x))
	}
	return strings.Join(s, ", ")
}

func cmdOutput(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}
