package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/geocache/geocache"
)

// Scenario 1: visibility latency.
//
// Three regions of one node each (A, B, C) in this process, every link
// through a proxy with the configured one-way latency. A writer on A makes
// Sets of unique 16-byte keys with 100-byte values at a fixed rate and
// records, in a preallocated slice, the time each Set returned. On B and on
// C a reader walks the same keys in order and records when each first
// becomes visible there (Lookup finds it); a stream applies in order, so
// walking in order loses nothing. Visibility latency = seen - sent.
//
// How the readers wait without distorting the measurement: a reader that
// finds its next key absent blocks on a channel that is signalled whenever
// its node writes on a replication connection it accepted. The receiving
// side writes an Ack right after it has applied a whole Ops frame, so the
// reader wakes (a channel wake-up, microseconds) just after the keys become
// visible, and confirms with Lookup. It also rechecks every 5 ms in case
// that signal is ever missed. Two cheaper designs were rejected: a spinning
// reader keeps both Ps of a 2-core machine busy, and then the Go scheduler
// polls the network only from sysmon (up to ~10 ms late), which would
// inflate exactly what is measured; a reader that sleeps between polls is
// at the mercy of Go's timer granularity, ~1.08 ms on this kernel for any
// sleep under 1 ms.

// sigListener wraps a node's replication listener: every Write on an
// accepted connection signals sig (non-blocking, coalesced).
type sigListener struct {
	net.Listener
	sig chan struct{}
}

func (l sigListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sigConn{Conn: c, sig: l.sig}, nil
}

type sigConn struct {
	net.Conn
	sig chan struct{}
}

func (c *sigConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	select {
	case c.sig <- struct{}{}:
	default:
	}
	return n, err
}

type localNode struct {
	name  string
	addr  string // real replication address
	node  *geocache.Node
	sig   chan struct{}
	peers map[string]string // peer name -> address this node dials (the proxy)
}

// localCluster is a set of single-node regions in this process, fully
// meshed through proxies.
// tweakConfig, if set, adjusts each node's Config in newLocalCluster
// (a scenario runs in a process of its own, so it may set it).
var tweakConfig func(*geocache.Config)

type localCluster struct {
	pn    *proxyNet
	nodes []*localNode
}

func newLocalCluster(names []string, oneWay time.Duration, maxBytes int64, useTLS bool) (*localCluster, error) {
	c := &localCluster{pn: newProxyNet()}
	tlsSpecs := make([]*tlsSpec, len(names))
	if useTLS {
		var err error
		if tlsSpecs, err = newBenchTLS(len(names)); err != nil {
			return nil, err
		}
	}
	lns := make([]net.Listener, len(names))
	for i, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.close()
			return nil, err
		}
		lns[i] = ln
		c.nodes = append(c.nodes, &localNode{name: name, addr: ln.Addr().String(), sig: make(chan struct{}, 1), peers: map[string]string{}})
	}
	for _, from := range c.nodes {
		for _, to := range c.nodes {
			if from == to {
				continue
			}
			if *flagVisDirect {
				from.peers[to.name] = to.addr
				continue
			}
			addr, err := c.pn.add(from.name+"->"+to.name, to.addr, oneWay)
			if err != nil {
				c.close()
				return nil, err
			}
			from.peers[to.name] = addr
		}
	}
	for i, n := range c.nodes {
		var peers []string
		for _, to := range c.nodes {
			if to != n {
				peers = append(peers, n.peers[to.name])
			}
		}
		cfg := geocache.MultiRegion("region-"+strings.ToLower(n.name), uint32(i+1), n.addr, peers...)
		cfg.NodeName = n.name
		cfg.Listener = sigListener{Listener: lns[i], sig: n.sig}
		cfg.MaxBytes = maxBytes
		if tweakConfig != nil {
			tweakConfig(&cfg)
		}
		if tlsSpecs[i] != nil {
			tc, err := tlsSpecs[i].config()
			if err != nil {
				c.close()
				return nil, err
			}
			cfg.TLS = tc
		}
		node, err := geocache.Open(cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		n.node = node
	}
	return c, nil
}

func (c *localCluster) close() {
	for _, n := range c.nodes {
		if n.node != nil {
			n.node.Close()
		}
	}
	c.pn.close()
}

// waitReady waits until every link is connected and has measured its RTT
// (the first Ping goes out 1 s after a link comes up).
func (c *localCluster) waitReady(timeout time.Duration) error {
	return waitFor(timeout, "every link connected with a measured RTT", func() bool {
		for _, n := range c.nodes {
			for _, p := range n.node.Stats().Peers {
				if !p.Connected || p.RTT == 0 {
					return false
				}
			}
		}
		return true
	})
}

func (c *localCluster) printRTTs(oneWay time.Duration) {
	var parts []string
	for _, n := range c.nodes {
		st := n.node.Stats()
		for _, to := range c.nodes {
			if to == n {
				continue
			}
			if p, ok := peerByAddr(st, n.peers[to.name]); ok {
				parts = append(parts, fmt.Sprintf("%s->%s %s", n.name, to.name, ms(p.RTT)))
			}
		}
	}
	fmt.Printf("  link RTT from Ping/Pong (ms; expect ~%s = 2 x one-way): %s\n", ms(2*oneWay), strings.Join(parts, ", "))
}

// visRun is one visibility run's result.
type visRun struct {
	tls      bool
	oneWay   time.Duration
	rate     float64 // target
	achieved float64
	n        int
	per      map[string]dist
	missing  map[string]int
	lagAfter map[string]uint64
	cpu      string // CPU of this process (3 nodes, proxies, writer, readers) while writing and reading
	runq     string // time its threads waited for a CPU, as a share of the wall time
}

func (c *localCluster) visibility(oneWay time.Duration, rate float64, dur time.Duration, tag byte) (visRun, error) {
	writer, readers := c.nodes[0], c.nodes[1:]
	n := int(rate * dur.Seconds())
	keys := make([]string, n)
	buf := make([]byte, 0, 32)
	for i := range keys {
		keys[i] = key16(buf, tag, 0, i)
	}
	val := make([]byte, 100)
	sent := make([]int64, n)
	seen := make([][]int64, len(readers))
	for i := range seen {
		seen[i] = make([]int64, n)
	}
	base := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for ri, r := range readers {
		for len(r.sig) > 0 {
			<-r.sig
		}
		wg.Go(func() { readInOrder(r.node, r.sig, keys, seen[ri], base, stop) })
	}
	ctx := context.Background()
	var setErr error
	proc0 := readProc()
	start := time.Now()
	err := paced(rate, n, func(i int) bool {
		if setErr = writer.node.Set(ctx, keys[i], val); setErr != nil {
			return false
		}
		sent[i] = int64(time.Since(base))
		return true
	})
	if err != nil {
		close(stop)
		wg.Wait()
		return visRun{}, fmt.Errorf("%w: %v", err, setErr)
	}
	span := time.Duration(sent[n-1]) - start.Sub(base)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(*flagGrace):
		close(stop)
		<-done
	}
	proc1 := readProc()
	cpu, runq := proc1.CPU-proc0.CPU, proc1.RunqWait-proc0.RunqWait
	wall := time.Since(start)
	if *flagVisDump != "" {
		if err := dumpVis(fmt.Sprintf("%s-%v-%.0f.csv", *flagVisDump, oneWay, rate), readers, sent, seen); err != nil {
			return visRun{}, err
		}
	}
	res := visRun{oneWay: oneWay, rate: rate, n: n, achieved: float64(n) / span.Seconds(),
		per: map[string]dist{}, missing: map[string]int{}, lagAfter: map[string]uint64{}, cpu: cpuPct(cpu, wall), runq: perSec(runq, wall)}
	st := writer.node.Stats()
	for ri, r := range readers {
		ds := make([]time.Duration, 0, n)
		for i := range n {
			if seen[ri][i] == 0 {
				res.missing[r.name]++
				continue
			}
			ds = append(ds, time.Duration(seen[ri][i]-sent[i]))
		}
		res.per[r.name] = summarize(ds)
		if p, ok := peerByAddr(st, writer.peers[r.name]); ok {
			res.lagAfter[r.name] = p.Lag
		}
	}
	return res, nil
}

// readInOrder walks keys in order on node, recording in seen the time (since
// base) each is first found. It blocks on sig between attempts (see the
// comment at the top of this file) and returns when every key was seen or
// stop is closed.
func readInOrder(node *geocache.Node, sig <-chan struct{}, keys []string, seen []int64, base time.Time, stop <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i := 0; i < len(keys); {
		if _, err := node.Lookup(keys[i]); err == nil {
			seen[i] = int64(time.Since(base))
			i++
			continue
		}
		t.Reset(5 * time.Millisecond)
		select {
		case <-sig:
		case <-t.C:
		case <-stop:
			return
		}
	}
}

func runVisibility() error {
	lats, err := parseList(*flagLatencies, time.ParseDuration)
	if err != nil {
		return err
	}
	if *flagVisDirect && slices.ContainsFunc(lats, func(d time.Duration) bool { return d != 0 }) {
		return fmt.Errorf("-vis-direct (no proxies) needs -latencies 0")
	}
	rates, err := parseList(*flagRates, parseFloat)
	if err != nil {
		return err
	}
	fmt.Println("## Scenario 1: visibility latency (3 regions x 1 node, A writes, B and C read)")
	fmt.Println()
	fmt.Printf("Sets of unique 16-byte keys, 100-byte values, paced at each rate for %v; latency = time the key is first\n", *flagVisDuration)
	fmt.Println("found by Lookup on B (or C) minus the time Set returned on A (same process, monotonic clock).")
	fmt.Printf("Each node: MaxBytes %s MiB (nothing evicted). One fresh cluster per latency.\n", mib(*flagVisMaxBytes))
	if *flagVisDirect {
		fmt.Println("-vis-direct: NO proxies, the nodes dial each other directly.")
	}

	if *flagCalibrate {
		fmt.Println()
		fmt.Println("Proxy calibration: 8-byte messages through one proxy alone at 1000/s for 2 s, one-way delay (ms):")
		for _, lat := range lats {
			ds, err := calibrateProxy(lat, 1000, 2000)
			if err != nil {
				return fmt.Errorf("calibration at %v: %w", lat, err)
			}
			d := summarize(ds)
			fmt.Printf("  latency toxic %-5v  n %d  min %s  p50 %s  p99 %s  p99.9 %s  max %s\n", lat, d.n, ms(d.min), ms(d.p50), ms(d.p99), ms(d.p999), ms(d.max))
		}
	}

	modes, err := tlsModes()
	if err != nil {
		return err
	}
	var runs []visRun
	tags := "abcdefghijklmnopqrstuvwxyz"
	li := 0
	for _, lat := range lats {
		for _, useTLS := range modes {
			if err := visibilityAt(lat, useTLS, rates, tags, li, &runs); err != nil {
				return err
			}
			li++
		}
	}
	return printVisSummary(runs)
}

// visibilityAt runs every rate on a fresh cluster at one latency, with or
// without mutual TLS.
func visibilityAt(lat time.Duration, useTLS bool, rates []float64, tags string, li int, runs *[]visRun) error {
	fmt.Println()
	fmt.Printf("One-way latency %v%s:\n", lat, map[bool]string{true: ", links over mutual TLS 1.3", false: ""}[useTLS])
	c, err := newLocalCluster([]string{"A", "B", "C"}, lat, *flagVisMaxBytes, useTLS)
	if err != nil {
		return err
	}
	if err := c.waitReady(10*time.Second + 4*lat); err != nil {
		c.close()
		return err
	}
	c.printRTTs(lat)
	for ri, rate := range rates {
		r, err := c.visibility(lat, rate, *flagVisDuration, tags[(li*len(rates)+ri)%len(tags)])
		if err != nil {
			c.close()
			return err
		}
		r.tls = useTLS
		*runs = append(*runs, r)
		for _, name := range []string{"B", "C"} {
			d := r.per[name]
			fmt.Printf("  rate %6.0f/s (achieved %8.0f/s, %d writes)  A->%s  n %d  missing %d  min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms  (A's lag to %s after: %d)\n",
				r.rate, r.achieved, r.n, name, d.n, r.missing[name], ms(d.min), ms(d.p50), ms(d.p90), ms(d.p99), ms(d.p999), ms(d.max), name, r.lagAfter[name])
		}
		fmt.Printf("  rate %6.0f/s: process CPU while writing and reading %s (3 nodes, 6 proxies, writer, 2 readers; 200%% = both cores); run-queue wait of its threads %s\n",
			r.rate, r.cpu, r.runq)
		// Let the links go idle between runs.
		time.Sleep(500 * time.Millisecond)
	}
	c.printRTTs(lat)
	c.close()
	return nil
}

func printVisSummary(runs []visRun) error {
	fmt.Println()
	fmt.Println("Summary (ms; goal: p99 <= one-way + 2 ms at 1000 writes/s):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "one-way\tTLS\trate/s\tachieved/s\tB p50\tB p99\tB max\tC p50\tC p99\tC max\tmissing\tgoal\t")
	for _, r := range runs {
		b, cc := r.per["B"], r.per["C"]
		goal := "-"
		if r.rate == 1000 {
			bound := r.oneWay + 2*time.Millisecond
			if b.p99 <= bound && cc.p99 <= bound && r.missing["B"]+r.missing["C"] == 0 {
				goal = "met"
			} else {
				goal = "NOT met"
			}
		}
		fmt.Fprintf(tw, "%v\t%v\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", r.oneWay, r.tls, r.rate, r.achieved,
			ms(b.p50), ms(b.p99), ms(b.max), ms(cc.p50), ms(cc.p99), ms(cc.max), r.missing["B"]+r.missing["C"], goal)
	}
	return tw.Flush()
}

// dumpVis writes one CSV line per key: index, sent (ns since base), and the
// seen-minus-sent latency (ns) at each reader (empty if never seen).
func dumpVis(path string, readers []*localNode, sent []int64, seen [][]int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, "i,sent_ns")
	for _, r := range readers {
		fmt.Fprintf(w, ",%s_ns", r.name)
	}
	fmt.Fprintln(w)
	for i := range sent {
		fmt.Fprintf(w, "%d,%d", i, sent[i])
		for ri := range readers {
			if seen[ri][i] != 0 {
				fmt.Fprintf(w, ",%d", seen[ri][i]-sent[i])
			} else {
				fmt.Fprint(w, ",")
			}
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
