// Command regionfailover measures how long a region of geocache serve
// processes takes to take a node's slots away from it: the time from the
// signal until no survivor's CLUSTER SLOTS names the node any more (from
// then on cluster-aware clients that load the map are sent to the slots'
// other owners). A node killed with SIGKILL must be found dead by gossip;
// one stopped with SIGTERM announces that it is leaving, then stops
// serving, drains and exits (the time to its exit is reported too). Each
// run starts a fresh region on loopback.
//
// With -warm-keys N it measures a join instead: N keys are written to the
// region, then one more node joins, and it reports the time from the new
// process's start until the others' maps give it slots (it owns none until
// it holds what the others hold) and the bytes it read meanwhile (rchar of
// /proc/PID/io: replication, gossip and all).
//
//	cd bench && go run ./regionfailover -bin /tmp/geocache -nodes 3 -warm-keys 1000000
//
// With -redirect -refill-keys N (3 nodes) it kills a node of a region
// holding N keys and reports when the two survivors hold every key.
//
// With -redirect the nodes run with --cluster-redirect, so each keeps only
// its own slots: the keys are written to every node (each keeps those of
// its slots; the others answer -MOVED), and the joining node takes only
// the slots it will own.
//
//	go build -o /tmp/geocache ./cmd/geocache
//	cd bench && go run ./regionfailover -bin /tmp/geocache -nodes 3 -runs 5
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// redirect runs the nodes with --cluster-redirect (-redirect).
var redirect bool

func main() {
	bin := flag.String("bin", "", "geocache binary (required)")
	nodes := flag.Int("nodes", 3, "nodes in the region")
	runs := flag.Int("runs", 5, "runs of each kind")
	warmKeys := flag.Int("warm-keys", 0, "measure a join into a region holding this many keys instead of failovers")
	valueSize := flag.Int("value-size", 64, "bytes per value with -warm-keys and -refill-keys")
	refillKeys := flag.Int("refill-keys", 0, "with -redirect: measure how the survivors of a kill refill the slots they gain, in a region holding this many keys")
	flag.BoolVar(&redirect, "redirect", false, "run the nodes with --cluster-redirect: each keeps only its own slots")
	flag.Parse()
	if *bin == "" || *nodes < 2 {
		flag.Usage()
		os.Exit(2)
	}
	if *warmKeys > 0 {
		if err := warmJoin(*bin, *nodes, *warmKeys, *valueSize); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *refillKeys > 0 {
		if !redirect || *nodes != 3 {
			log.Fatal("-refill-keys needs -redirect (without it every node holds every key and a kill refills nothing) and -nodes 3 (two survivors, each then owning every slot)")
		}
		if err := refill(*bin, *nodes, *refillKeys, *valueSize); err != nil {
			log.Fatal(err)
		}
		return
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		var ds, exits []time.Duration
		for r := range *runs {
			d, exit, err := run(*bin, *nodes, sig)
			if err != nil {
				log.Fatalf("run %d (%v): %v", r+1, sig, err)
			}
			ds, exits = append(ds, d), append(exits, exit)
			fmt.Printf("%-8v run %d: survivors' maps without the node after %v (process gone after %v)\n", sig, r+1, d.Round(time.Millisecond), exit.Round(time.Millisecond))
		}
		fmt.Printf("%-8v %d nodes, %d runs: slots moved: %s; process gone: %s\n\n", sig, *nodes, *runs, summary(ds), summary(exits))
	}
}

func summary(ds []time.Duration) string {
	slices.Sort(ds)
	return fmt.Sprintf("min %v, median %v, max %v",
		ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

func freePorts(n int) []string {
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// run starts a region of n nodes, stops the second one with sig, and
// returns the time until no survivor's CLUSTER SLOTS names it and the time
// until its process was gone.
func run(bin string, n int, sig syscall.Signal) (moved, exited time.Duration, err error) {
	r, err := startRegion(bin, n)
	defer r.stop()
	if err != nil {
		return 0, 0, err
	}
	gone := make(chan time.Duration, 1)
	start := time.Now()
	victim := r.nodes[1]
	victim.cmd.Process.Signal(sig)
	go func() {
		victim.cmd.Wait()
		gone <- time.Since(start)
	}()
	for _, nd := range r.nodes {
		if nd == victim {
			continue
		}
		if err := waitSlots(nd.addr, victim.id, false); err != nil {
			return 0, 0, err
		}
	}
	moved = time.Since(start)
	exited = <-gone
	r.nodes = slices.Delete(r.nodes, 1, 2)
	return moved, exited, nil
}

// startRegion starts a region of n nodes and waits until every node
// serves. The region is returned to stop even on error.
func startRegion(bin string, n int) (*region, error) {
	r := &region{bin: bin}
	for range n {
		if err := r.add(); err != nil {
			return r, err
		}
	}
	return r, r.allServing()
}

// region is a region of geocache serve processes on loopback.
type region struct {
	bin   string
	nodes []*node
}

type node struct {
	cmd    *exec.Cmd
	addr   string // RESP
	gossip string // gossip
	id     string // CLUSTER MYID
}

// add starts one more node, joining the first, and waits until it answers.
func (r *region) add() error {
	addrs := freePorts(3)
	i := len(r.nodes)
	args := []string{"serve", "--region", "eu", "--node", fmt.Sprint(i + 1), "--addr", addrs[0],
		"--peer-addr", addrs[1], "--gossip-addr", addrs[2], "--log-level", "warn", "--max-memory", "2GB"}
	if redirect {
		args = append(args, "--cluster-redirect")
	}
	if i > 0 {
		args = append(args, "--join", r.nodes[0].gossip)
	}
	c := exec.Command(r.bin, args...)
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return err
	}
	nd := &node{cmd: c, addr: addrs[0], gossip: addrs[2]}
	r.nodes = append(r.nodes, nd)
	// Answering means its gossip is up: the next one can join.
	id, err := clusterStrings(nd.addr, "MYID", time.Minute)
	if err != nil {
		return fmt.Errorf("node %d: %w", i+1, err)
	}
	nd.id = id[0]
	return nil
}

// allServing waits until every node's map gives every node slots.
func (r *region) allServing() error {
	for _, a := range r.nodes {
		for _, b := range r.nodes {
			if err := waitSlots(a.addr, b.id, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *region) stop() {
	for _, nd := range r.nodes {
		nd.cmd.Process.Kill()
		nd.cmd.Wait()
	}
}

// warmJoin fills a region of n nodes with keys, starts one more node and
// reports how long it took to own slots and how much it read.
func warmJoin(bin string, n, keys, valueSize int) error {
	r, err := startRegion(bin, n)
	defer r.stop()
	if err != nil {
		return err
	}
	loadStart := time.Now()
	if redirect {
		// Each node takes the keys of its slots and answers -MOVED to
		// the others; DBSIZE counts a node's primary slots, so the sum
		// over the nodes is every key once.
		for _, nd := range r.nodes {
			if err := load(nd.addr, keys, valueSize); err != nil {
				return err
			}
		}
		if err := waitTotal(r.nodes, keys); err != nil {
			return err
		}
	} else {
		if err := load(r.nodes[0].addr, keys, valueSize); err != nil {
			return err
		}
		for _, nd := range r.nodes {
			if err := waitDBSize(nd.addr, keys); err != nil {
				return err
			}
		}
	}
	fmt.Printf("region of %d nodes: %d keys of %d-byte values written and on their owners in %v\n", n, keys, valueSize, time.Since(loadStart).Round(time.Millisecond))
	start := time.Now()
	if err := r.add(); err != nil {
		return err
	}
	joined := r.nodes[len(r.nodes)-1]
	for _, nd := range r.nodes[:n] {
		if err := waitSlots(nd.addr, joined.id, true); err != nil {
			return err
		}
	}
	warm := time.Since(start)
	read, err := rchar(joined.cmd.Process.Pid)
	if err != nil {
		return err
	}
	size, err := heldKeys(joined.addr)
	if err != nil {
		return err
	}
	fmt.Printf("joining node: owns slots %v after its start, holding %d keys; read %.1f MB (%.0f bytes per key)\n",
		warm.Round(time.Millisecond), size, float64(read)/1e6, float64(read)/float64(keys))
	return nil
}

// refill fills a region of 3 nodes that keep only their own slots (2
// copies), kills one, and reports how long the two survivors, which then
// own every slot, take to hold every key (INFO keyspace) and what they
// read meanwhile.
func refill(bin string, n, keys, valueSize int) error {
	r, err := startRegion(bin, n)
	defer r.stop()
	if err != nil {
		return err
	}
	for _, nd := range r.nodes {
		if err := load(nd.addr, keys, valueSize); err != nil {
			return err
		}
	}
	if err := waitTotal(r.nodes, keys); err != nil {
		return err
	}
	victim, survivors := r.nodes[1], slices.Delete(slices.Clone(r.nodes), 1, 2)
	before := map[*node]int64{}
	for _, nd := range survivors {
		read, err := rchar(nd.cmd.Process.Pid)
		if err != nil {
			return err
		}
		before[nd] = read
		h, _ := heldKeys(nd.addr)
		fmt.Printf("%s holds %d of %d keys before the kill\n", nd.addr, h, keys)
	}
	start := time.Now()
	victim.cmd.Process.Kill()
	victim.cmd.Wait()
	r.nodes = survivors
	for _, nd := range survivors {
		if err := waitSlots(nd.addr, victim.id, false); err != nil {
			return err
		}
	}
	moved := time.Since(start)
	for _, nd := range survivors {
		deadline := time.Now().Add(5 * time.Minute)
		for {
			if h, err := heldKeys(nd.addr); err == nil && h == keys {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not hold %d keys after 5 minutes", nd.addr, keys)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	full := time.Since(start)
	fmt.Printf("kill -9: survivors' maps without the node after %v; every survivor holds all %d keys after %v\n",
		moved.Round(time.Millisecond), keys, full.Round(time.Millisecond))
	for _, nd := range survivors {
		after, err := rchar(nd.cmd.Process.Pid)
		if err != nil {
			return err
		}
		fmt.Printf("%s read %.1f MB meanwhile (replication, gossip and the bench's polls)\n", nd.addr, float64(after-before[nd])/1e6)
	}
	return nil
}

// load writes keys keys of valueSize bytes to addr, pipelined.
func load(addr string, keys, valueSize int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	value := strings.Repeat("v", valueSize)
	br := bufio.NewReaderSize(c, 64<<10)
	const batch = 1000
	for first := 0; first < keys; first += batch {
		var buf []byte
		last := min(first+batch, keys)
		for i := first; i < last; i++ {
			key := fmt.Sprint("key:", i)
			buf = fmt.Appendf(buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value)
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
		for i := first; i < last; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if line != "+OK\r\n" && !(redirect && strings.HasPrefix(line, "-MOVED ")) {
				return fmt.Errorf("SET: %q", line)
			}
		}
	}
	return nil
}

func dbSize(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$6\r\nDBSIZE\r\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	var n int
	if _, err := fmt.Sscanf(line, ":%d", &n); err != nil {
		return 0, fmt.Errorf("DBSIZE: %q", line)
	}
	return n, nil
}

func waitDBSize(addr string, want int) error {
	deadline := time.Now().Add(5 * time.Minute)
	var n int
	var err error
	for time.Now().Before(deadline) {
		if n, err = dbSize(addr); err == nil && n == want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %d keys (%v), not %d, after 5 minutes", addr, n, err, want)
}

// waitTotal waits until the nodes' DBSIZEs (each its primary slots' keys,
// with --cluster-redirect) add up to want.
func waitTotal(nodes []*node, want int) error {
	deadline := time.Now().Add(5 * time.Minute)
	total := 0
	for time.Now().Before(deadline) {
		total = 0
		for _, nd := range nodes {
			n, err := dbSize(nd.addr)
			if err != nil {
				return err
			}
			total += n
		}
		if total == want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the nodes' primary slots hold %d keys, not %d, after 5 minutes", total, want)
}

// heldKeys returns the keys addr holds (INFO keyspace: all its entries,
// whatever slots they are in).
func heldKeys(addr string) (int, error) {
	strs, err := call(addr, "INFO", "keyspace")
	if err != nil || len(strs) != 1 {
		return 0, fmt.Errorf("INFO keyspace: %v %q", err, strs)
	}
	_, rest, ok := strings.Cut(strs[0], "db0:keys=")
	if !ok {
		return 0, nil
	}
	var n int
	fmt.Sscanf(rest, "%d", &n)
	return n, nil
}

// rchar returns the bytes process pid read through system calls.
func rchar(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			var n int64
			_, err := fmt.Sscanf(v, "%d", &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no rchar in /proc/%d/io", pid)
}

// waitSlots polls CLUSTER SLOTS at addr every 5 ms (for a minute at most)
// until it names the node id, or no longer names it.
func waitSlots(addr, id string, named bool) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if strs, err := clusterStrings(addr, "SLOTS", time.Second); err == nil && slices.Contains(strs, id) == named {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s: CLUSTER SLOTS naming %s is not %v after a minute", addr, id, named)
}

// clusterStrings sends CLUSTER sub to addr, retrying until limit while it
// cannot connect, and returns every bulk string of the reply, in order.
func clusterStrings(addr, sub string, limit time.Duration) ([]string, error) {
	deadline := time.Now().Add(limit)
	for {
		strs, err := clusterOnce(addr, sub)
		if err == nil || time.Now().After(deadline) {
			return strs, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clusterOnce(addr, sub string) ([]string, error) { return call(addr, "CLUSTER", sub) }

// call sends one command to addr and returns every bulk string of its
// reply, in order.
func call(addr string, args ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	req := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		req = fmt.Appendf(req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	var strs []string
	err = readValue(bufio.NewReader(c), &strs)
	return strs, err
}

// readValue reads one RESP2 value and appends its bulk strings to strs.
func readValue(br *bufio.Reader, strs *[]string) error {
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return fmt.Errorf("empty reply line")
	}
	var n int
	switch line[0] {
	case '*':
		fmt.Sscanf(line[1:], "%d", &n)
		for range n {
			if err := readValue(br, strs); err != nil {
				return err
			}
		}
	case '$':
		fmt.Sscanf(line[1:], "%d", &n)
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		*strs = append(*strs, string(buf[:n]))
	case '-':
		return fmt.Errorf("%s", line[1:])
	}
	return nil
}
