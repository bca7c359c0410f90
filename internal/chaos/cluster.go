package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/geocache/geocache/internal/netsim"
	"github.com/geocache/geocache/internal/ports"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// incarnation is one process of a node, from its start to its stop (real
// times in ns; Stop 0 while it runs).
type incarnation struct {
	Offset      time.Duration `json:"offset_ns"`
	Start, Stop int64         // ns
	How         string        // how it stopped: kill, term, final, crash
	ExitCode    int           // of the process (-1: killed by a signal)
}

// node is one geocache serve process, restarted with the same flags and
// ports.
type node struct {
	idx, region int
	id          uint32
	addr        string // RESP
	peerAddr    string
	gossipAddr  string      // with Config.Gossip
	relay       *nodeRelays // with Config.Gossip: what its region reaches it through
	peers       []string    // proxies to every other node (of the other regions, with Config.Gossip)
	log         *os.File

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	expected bool          // the harness stopped it
	starting bool          // started, not yet ready: an exit is a failed start, not a crash
	paused   bool
	incs     []incarnation
	crashes  []string // exits the harness did not cause
}

// cluster is the nodes and the proxies between them.
type cluster struct {
	cfg     Config
	clock   *runClock
	nodes   []*node
	srv     *toxiproxy.ApiServer
	proxies map[[2]int]*toxiproxy.Proxy // [from node, to node]
	certs   *runCerts                   // nil: plaintext links
	relays  *relays                     // with Config.Gossip

	mu    sync.Mutex
	cuts  map[[2]int]int // proxy -> how many faults cut it
	spawn chan func()    // runs on one locked OS thread: see spawner
	done  chan struct{}
}

// runClock gives real times in ns that never step back (wall time at the
// start plus monotonic time since), comparable with the nodes' clocks.
type runClock struct {
	start time.Time
	base  int64
}

func newRunClock() *runClock {
	now := time.Now()
	return &runClock{start: now, base: now.UnixNano()}
}

func (c *runClock) now() int64 { return c.base + int64(time.Since(c.start)) }

// wallStep returns how far the wall clock has moved from this clock since
// the start: the nodes version by the wall clock (following its steps),
// the checks judge by this one, so a step shows in versions and expiries.
func (c *runClock) wallStep() time.Duration {
	now := time.Now()
	return time.Duration(now.UnixNano() - (c.base + int64(now.Sub(c.start))))
}

// since is the time of t since the start of the run.
func (c *runClock) since(t int64) time.Duration { return time.Duration(t - c.base) }

func newCluster(cfg Config, clock *runClock, offsets []time.Duration) (_ *cluster, err error) {
	c := &cluster{
		cfg: cfg, clock: clock, proxies: map[[2]int]*toxiproxy.Proxy{}, cuts: map[[2]int]int{},
		spawn: make(chan func()), done: make(chan struct{}),
	}
	go c.spawner()
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	n := cfg.nodes()
	addrs, err := ports.Free(3 * n)
	if err != nil {
		return nil, err
	}
	c.srv = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	c.srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	for i := range n {
		nd := &node{idx: i, region: cfg.regionOf(i), id: uint32(i + 1), addr: addrs[3*i], peerAddr: addrs[3*i+1]}
		if cfg.Gossip {
			nd.gossipAddr = addrs[3*i+2]
		}
		c.nodes = append(c.nodes, nd)
	}
	if cfg.Gossip {
		c.relays = newRelays(c.pidsOf)
		for i, nd := range c.nodes {
			if nd.relay, err = c.relays.add(i, nd.gossipAddr, nd.peerAddr, nd.addr); err != nil {
				return nil, fmt.Errorf("chaos: relays of node %d: %w", nd.id, err)
			}
		}
	}
	if !cfg.Plaintext {
		var names []string
		for _, nd := range c.nodes {
			names = append(names, nodeCertName(nd.region, nd.id))
		}
		if c.certs, err = makeCerts(filepath.Join(cfg.Dir, certDir), names, time.Now()); err != nil {
			return nil, fmt.Errorf("chaos: certificates: %w", err)
		}
	}
	for i := range n {
		for j := range n {
			if i == j || cfg.Gossip && cfg.regionOf(i) == cfg.regionOf(j) {
				continue // gossip links the nodes of a region
			}
			p := toxiproxy.NewProxy(c.srv, fmt.Sprintf("%d-%d", i, j), "127.0.0.1:0", c.nodes[j].peerAddr)
			if err := p.Start(); err != nil {
				return nil, fmt.Errorf("start proxy %d->%d: %w", i, j, err)
			}
			c.proxies[[2]int{i, j}] = p
			c.nodes[i].peers = append(c.nodes[i].peers, p.Listen)
			if cfg.Latency > 0 && cfg.regionOf(i) != cfg.regionOf(j) {
				for _, stream := range []string{"upstream", "downstream"} {
					if err := addLatency(p, "wan-"+stream, stream, cfg.Latency); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	for i, nd := range c.nodes {
		f, err := os.OpenFile(filepath.Join(cfg.Dir, fmt.Sprintf("node-%d.log", nd.id)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		nd.log = f
		var off time.Duration
		if i < len(offsets) {
			off = offsets[i]
		}
		if err := c.start(nd, off); err != nil {
			return nil, err
		}
		if cfg.Gossip {
			// The next node of its region joins through it.
			if err := c.waitReady(nd, 15*time.Second); err != nil {
				return nil, err
			}
		}
	}
	for _, nd := range c.nodes {
		if err := c.waitReady(nd, 15*time.Second); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// spawner starts every process from one OS thread that lives as long as the
// cluster: Pdeathsig kills a child when the thread that started it exits,
// and the Go runtime may end threads; this one it never ends.
func (c *cluster) spawner() {
	runtime.LockOSThread()
	for {
		select {
		case f := <-c.spawn:
			f()
		case <-c.done:
			return
		}
	}
}

func addLatency(p *toxiproxy.Proxy, name, stream string, d time.Duration) error {
	js := fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"attributes":{"latency":%d}}`, name, stream, d.Milliseconds())
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		return fmt.Errorf("latency toxic %s on %s: %w", name, p.Name, err)
	}
	return nil
}

// testClockOffsetVar is geocache serve's test hook that skews a node's
// clock (cmd/geocache/testhooks.go): an environment variable, not a flag,
// so that the production binary shows no such option.
const testClockOffsetVar = "GEOCACHE_TEST_CLOCK_OFFSET"

// args returns nd's flags; join lists the gossip addresses of the other
// running nodes of its region (with Config.Gossip).
func (c *cluster) args(nd *node, join []string) []string {
	a := []string{"serve",
		"--region", regionName(nd.region), "--node", fmt.Sprint(nd.id),
		"--addr", nd.addr, "--peer-addr", nd.peerAddr,
		"--max-memory", c.cfg.maxMemory(nd.region), "--log-level", "info",
	}
	if len(nd.peers) > 0 {
		a = append(a, "--peers", strings.Join(nd.peers, ","))
	}
	if nd.gossipAddr != "" {
		a = append(a, "--gossip-addr", nd.gossipAddr)
		if nd.relay != nil {
			a = append(a, "--gossip-advertise-addr", nd.relay.gossipAddr(), "--peer-announce-addr", nd.relay.replAddr(), "--announce-addr", nd.relay.clientAddr())
		}
		if len(join) > 0 {
			a = append(a, "--join", strings.Join(join, ","))
		}
	}
	if c.cfg.SlotOwned {
		a = append(a, "--cluster-forward")
	}
	if h := c.cfg.TombstoneHorizon; h > 0 {
		a = append(a, "--tombstone-horizon", h.String())
	}
	if c.certs != nil {
		a = append(a, c.certs.args(nd.idx)...)
	}
	return a
}

// start starts a new incarnation of nd with the given clock offset.
func (c *cluster) start(nd *node, offset time.Duration) error {
	join := c.regionGossip(nd) // before nd.mu: it takes the others' locks
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return fmt.Errorf("node %d is already running", nd.id)
	}
	cmd := exec.Command(c.cfg.Bin, c.args(nd, join)...)
	// Always set, so that an offset in the harness's own environment does
	// not reach the nodes.
	hook := testClockOffsetVar + "=" + offset.String()
	cmd.Env = append(os.Environ(), hook)
	cmd.Stdout, cmd.Stderr = nd.log, nd.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(nd.log, "=== chaos: start %s %s %s\n", hook, c.cfg.Bin, strings.Join(cmd.Args[1:], " "))
	errc := make(chan error, 1)
	select {
	case c.spawn <- func() { errc <- cmd.Start() }:
	case <-c.done:
		return errors.New("cluster closed")
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("start node %d: %w", nd.id, err)
	}
	nd.cmd, nd.expected, nd.paused, nd.starting = cmd, false, false, true
	nd.exited = make(chan struct{})
	nd.incs = append(nd.incs, incarnation{Offset: offset, Start: c.clock.now()})
	inc := len(nd.incs) - 1
	exited := nd.exited
	go func() {
		err := cmd.Wait()
		nd.mu.Lock()
		defer nd.mu.Unlock()
		nd.incs[inc].ExitCode = cmd.ProcessState.ExitCode()
		switch {
		case nd.starting:
			nd.incs[inc].Stop, nd.incs[inc].How = c.clock.now(), "failed-start"
		case !nd.expected:
			msg := fmt.Sprintf("node %d (incarnation %d) exited on its own at %.1fs: %v", nd.id, inc, c.clock.since(c.clock.now()).Seconds(), err)
			nd.crashes = append(nd.crashes, msg)
			nd.incs[inc].Stop, nd.incs[inc].How = c.clock.now(), "crash"
		}
		nd.cmd = nil
		close(exited)
	}()
	return nil
}

// regionGossip returns the gossip addresses of the other running nodes of
// nd's region (none without Config.Gossip), those of their relays once
// the cluster has them: a node starts alone only when none of its region
// runs.
func (c *cluster) regionGossip(nd *node) []string {
	var out []string
	for _, o := range c.nodes {
		if o == nd || o.region != nd.region || o.gossipAddr == "" {
			continue
		}
		o.mu.Lock()
		running := o.cmd != nil
		o.mu.Unlock()
		switch {
		case running && o.relay != nil:
			out = append(out, o.relay.gossipAddr())
		case running:
			out = append(out, o.gossipAddr)
		}
	}
	return out
}

// waitReady waits until nd answers PING.
func (c *cluster) waitReady(nd *node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := ping(nd.addr); err == nil {
			nd.mu.Lock()
			nd.starting = false
			nd.mu.Unlock()
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("node %d did not answer on %s within %v: %w", nd.id, nd.addr, timeout, err)
		}
		nd.mu.Lock()
		exited := nd.cmd == nil
		nd.mu.Unlock()
		if exited {
			return fmt.Errorf("node %d exited while starting (see %s)", nd.id, nd.log.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", buf)
	}
	return nil
}

// stop stops nd's process with sig (SIGKILL or SIGTERM) and waits for it
// to exit (SIGKILL after 20s if SIGTERM did not do it). how is recorded.
func (c *cluster) stop(nd *node, sig syscall.Signal, how string) error {
	nd.mu.Lock()
	if nd.cmd == nil {
		nd.mu.Unlock()
		return fmt.Errorf("node %d is not running", nd.id)
	}
	nd.expected = true
	inc := &nd.incs[len(nd.incs)-1]
	inc.Stop, inc.How = c.clock.now(), how
	p, exited, paused := nd.cmd.Process, nd.exited, nd.paused
	nd.mu.Unlock()
	p.Signal(sig)
	if paused && sig != syscall.SIGKILL {
		p.Signal(syscall.SIGCONT)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		p.Kill()
		<-exited
		return fmt.Errorf("node %d did not exit within 20s of %v (killed)", nd.id, sig)
	}
	return nil
}

func (c *cluster) signal(nd *node, sig syscall.Signal) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return fmt.Errorf("node %d is not running", nd.id)
	}
	switch sig {
	case syscall.SIGSTOP:
		nd.paused = true
	case syscall.SIGCONT:
		nd.paused = false
	}
	return nd.cmd.Process.Signal(sig)
}

// running reports whether nd has a live process.
func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil
}

// offset is the clock offset of nd's current (or last) incarnation.
func (nd *node) offset() time.Duration {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.incs[len(nd.incs)-1].Offset
}

// links returns the proxies that carry bytes between the two sets of nodes
// (both directions of every connection between them).
func (c *cluster) linksBetween(a, b func(int) bool) [][2]int {
	var out [][2]int
	for k := range c.proxies {
		if (a(k[0]) && b(k[1])) || (b(k[0]) && a(k[1])) {
			out = append(out, k)
		}
	}
	return out
}

// cut cuts the proxies (netsim.Cut: connections reset, nothing passing,
// the proxies keeping their ports) until every fault that cut them uncuts
// them.
func (c *cluster) cut(keys [][2]int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, k := range keys {
		c.cuts[k]++
		if c.cuts[k] == 1 {
			if err := netsim.Cut(c.proxies[k]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (c *cluster) uncut(keys [][2]int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, k := range keys {
		if c.cuts[k] == 0 {
			continue
		}
		c.cuts[k]--
		if c.cuts[k] == 0 {
			if err := netsim.Uncut(c.proxies[k]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// spike adds latency named name to the given proxy streams.
func (c *cluster) spike(name string, streams []proxyStream, d time.Duration) error {
	for _, s := range streams {
		if err := addLatency(c.proxies[s.key], name+"-"+s.stream, s.stream, d); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) unspike(name string, streams []proxyStream) error {
	var errs []error
	for _, s := range streams {
		if err := c.proxies[s.key].Toxics.RemoveToxic(context.Background(), name+"-"+s.stream); err != nil {
			errs = append(errs, fmt.Errorf("remove %s from %v: %w", name, s.key, err))
		}
	}
	return errors.Join(errs...)
}

// proxyStream is one direction of one proxy.
type proxyStream struct {
	key    [2]int
	stream string // upstream: bytes from key[0] to key[1]; downstream: back
}

// streamsFrom returns the proxy streams that carry bytes from region a to
// region b: a's connections to b upstream, and b's connections to a
// downstream.
func (c *cluster) streamsFrom(a, b int) []proxyStream {
	var out []proxyStream
	for k := range c.proxies {
		ra, rb := c.cfg.regionOf(k[0]), c.cfg.regionOf(k[1])
		switch {
		case ra == a && rb == b:
			out = append(out, proxyStream{k, "upstream"})
		case ra == b && rb == a:
			out = append(out, proxyStream{k, "downstream"})
		}
	}
	return out
}

// close stops every process (SIGKILL after SIGCONT) and proxy and waits.
func (c *cluster) close() {
	for _, nd := range c.nodes {
		nd.mu.Lock()
		cmd, exited := nd.cmd, nd.exited
		if cmd != nil {
			nd.expected = true
			if inc := &nd.incs[len(nd.incs)-1]; inc.Stop == 0 {
				inc.Stop, inc.How = c.clock.now(), "final"
			}
		}
		nd.mu.Unlock()
		if cmd != nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-exited
		}
		if nd.log != nil {
			nd.log.Close()
		}
	}
	for _, p := range c.proxies {
		p.Stop()
	}
	if c.relays != nil {
		c.relays.close()
	}
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}
