package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/geocache/geocache/internal/ports"
)

// The demo's last step: a region of three geocache serve processes (this
// very binary) that find each other by gossip and share Redis Cluster's
// slots, each keeping only its own (--cluster-redirect); one is killed with
// SIGKILL, as a crashed machine would be, and comes back.

// demoRegionNodes is the size of the demo's region of several nodes.
const demoRegionNodes = 3

// demoRegionKeys is how many keys the tour writes into that region.
const demoRegionKeys = 100

// regionProc is one geocache serve process of the demo's region.
type regionProc struct {
	name                   string
	args                   []string
	addr, peerAddr, gossip string
	cmd                    *exec.Cmd
	exited                 chan struct{}
	logs                   *tailBuffer
}

func (rp *regionProc) start(exe string) error {
	cmd := exec.Command(exe, rp.args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) { // the user's GEOCACHE_ settings are not the demo's
			cmd.Env = append(cmd.Env, kv)
		}
	}
	rp.logs = &tailBuffer{}
	cmd.Stdout, cmd.Stderr = rp.logs, rp.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", rp.name, err)
	}
	rp.cmd, rp.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(rp.exited)
	}()
	return nil
}

// stop ends the process (SIGTERM, then SIGKILL after a while) and waits.
func (rp *regionProc) stop() {
	if rp.cmd == nil {
		return
	}
	rp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-rp.exited:
	case <-time.After(15 * time.Second):
		rp.cmd.Process.Kill()
		<-rp.exited
	}
}

// demoRegion runs step 8 of the tour.
func demoRegion(ctx context.Context, p printer) (err error) {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("the demo's region runs this binary: %w", err)
	}
	// Below the ephemeral range: the killed node comes back on its ports.
	addrs, err := ports.Free(3 * demoRegionNodes)
	if err != nil {
		return err
	}
	procs := make([]*regionProc, demoRegionNodes)
	defer func() {
		for _, rp := range procs {
			if rp != nil {
				rp.stop()
			}
		}
	}()
	for i := range procs {
		rp := &regionProc{name: fmt.Sprint("eu-central-", i+1), addr: addrs[3*i], peerAddr: addrs[3*i+1], gossip: addrs[3*i+2]}
		rp.args = []string{"serve", "--region", "eu-central", "--node", fmt.Sprint(11 + i), "--name", rp.name,
			"--addr", rp.addr, "--peer-addr", rp.peerAddr, "--gossip-addr", rp.gossip, "--log-level", "error",
			"--cluster-redirect"} // each node keeps only its own slots
		if i > 0 {
			rp.args = append(rp.args, "--join", procs[0].gossip)
		}
		procs[i] = rp
		if err := rp.start(exe); err != nil {
			return err
		}
		// Its gossip is up once it answers: the next one can join it.
		if err := waitFor(ctx, rp, func() bool { _, err := demoCall(rp.addr, "CLUSTER", "MYID"); return err == nil }); err != nil {
			return err
		}
	}
	for _, rp := range procs {
		if err := waitFor(ctx, rp, func() bool { return len(primaries(rp.addr)) == demoRegionNodes }); err != nil {
			return fmt.Errorf("%s did not see every node serving: %w", rp.name, err)
		}
	}
	shares := primaries(procs[0].addr)
	for _, rp := range procs {
		p("   %-12s redis %-16s primary of %5d slots", rp.name, rp.addr, shares[rp.addr])
	}

	// As a cluster client would: each key to its slot's owners (a node
	// answers -MOVED for the others).
	for _, rp := range procs {
		if err := demoLoad(rp.addr); err != nil {
			return err
		}
	}
	// Two copies of each key in all: each on its slot's two owners.
	if err := waitFor(ctx, procs[0], func() bool { return heldInAll(procs) == 2*demoRegionKeys }); err != nil {
		return fmt.Errorf("the region did not hold each key twice: %w", err)
	}
	p("   %d keys written as a cluster client writes them; each node keeps only its slots (2 copies of each key):", demoRegionKeys)
	for _, rp := range procs {
		p("   %-12s keeps %3d of the %d keys", rp.name, held(rp.addr), demoRegionKeys)
	}

	lost := procs[1]
	survivors := []*regionProc{procs[0], procs[2]}
	lost.cmd.Process.Kill()
	killed := time.Now()
	<-lost.exited
	for _, rp := range survivors {
		if err := waitFor(ctx, rp, func() bool { _, in := primaries(rp.addr)[lost.addr]; return !in }); err != nil {
			return fmt.Errorf("%s still routes to the killed node: %w", rp.name, err)
		}
	}
	p("   kill -9 %s: the survivors' slot maps dropped it %s later", lost.name, ms(time.Since(killed)))
	// The survivors own its slots now: each fills those it lacked from the
	// other (meanwhile it sends their commands there with -ASK).
	for _, rp := range survivors {
		if err := waitFor(ctx, rp, func() bool { return served(rp.addr) == demoRegionKeys }); err != nil {
			return fmt.Errorf("%s did not take the killed node's share: %w", rp.name, err)
		}
	}
	p("   the survivors took its share from each other, serving every key %s after the kill:", ms(time.Since(killed)))
	shares = primaries(procs[0].addr)
	for _, rp := range survivors {
		p("   %-12s primary of %5d slots, serves %d of %d keys", rp.name, shares[rp.addr], served(rp.addr), demoRegionKeys)
	}

	if err := lost.start(exe); err != nil {
		return err
	}
	restarted := time.Now()
	for _, rp := range procs {
		if err := waitFor(ctx, rp, func() bool { _, in := primaries(rp.addr)[lost.addr]; return in }); err != nil {
			return fmt.Errorf("%s did not give the restarted node its slots: %w", rp.name, err)
		}
	}
	took := time.Since(restarted)
	p("   %s restarted: it joined, took its share, and got its slots back %s after its start, holding %d keys", lost.name, ms(took), held(lost.addr))
	// The others forget the slots it took back.
	if err := waitFor(ctx, procs[0], func() bool { return heldInAll(procs) == 2*demoRegionKeys }); err != nil {
		return fmt.Errorf("the others did not forget the slots it took back: %w", err)
	}
	p("   the others forgot its share again: %s", keptList(procs))
	return nil
}

// held returns the keys the node at addr keeps (INFO keyspace), -1 if it
// does not answer.
func held(addr string) int {
	info, err := demoCall(addr, "INFO", "keyspace")
	if err != nil {
		return -1
	}
	_, rest, ok := strings.Cut(info, "db0:keys=")
	if !ok {
		return 0
	}
	k, _, _ := strings.Cut(rest, ",")
	n, _ := strconv.Atoi(k)
	return n
}

// heldInAll returns the keys the nodes keep, added up.
func heldInAll(procs []*regionProc) int {
	total := 0
	for _, rp := range procs {
		total += held(rp.addr)
	}
	return total
}

// keptList says how many keys each node keeps.
func keptList(procs []*regionProc) string {
	var parts []string
	for _, rp := range procs {
		parts = append(parts, fmt.Sprintf("%s keeps %d", rp.name, held(rp.addr)))
	}
	return strings.Join(parts, ", ")
}

// served returns how many of the demo's keys the node at addr answers a
// GET for itself (not -MOVED, not -ASK).
func served(addr string) int {
	n := 0
	for i := range demoRegionKeys {
		if _, err := demoCall(addr, "GET", fmt.Sprint("user:", i)); err == nil {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, rp exits (its last log lines are in
// the error) or stepTimeout passes.
func waitFor(ctx context.Context, rp *regionProc, cond func() bool) error {
	wait, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	err := poll(wait, 5*time.Millisecond, func() bool {
		select {
		case <-rp.exited:
			return true
		default:
		}
		return cond()
	})
	select {
	case <-rp.exited:
		return fmt.Errorf("%s exited: %s", rp.name, rp.logs.String())
	default:
	}
	return err
}

// primaries returns, from addr's CLUSTER NODES, how many slots each node
// (by Redis address) is the primary of; nil if addr does not answer.
func primaries(addr string) map[string]int {
	text, err := demoCall(addr, "CLUSTER", "NODES")
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		node, _, _ := strings.Cut(f[1], "@")
		slots := 0
		for _, r := range f[8:] {
			first, last, found := strings.Cut(r, "-")
			a, _ := strconv.Atoi(first)
			b := a
			if found {
				b, _ = strconv.Atoi(last)
			}
			slots += b - a + 1
		}
		if slots > 0 {
			out[node] = slots
		}
	}
	return out
}

// demoLoad writes the region's keys to addr in one pipeline.
func demoLoad(addr string) error {
	c, err := net.DialTimeout("tcp", addr, stepTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(stepTimeout))
	var req []byte
	for i := range demoRegionKeys {
		req = appendCommand(req, "SET", fmt.Sprint("user:", i), fmt.Sprint("profile ", i))
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	for range demoRegionKeys {
		if _, err := readReply(br); err != nil && !strings.HasPrefix(err.Error(), "MOVED ") {
			return err
		}
	}
	return nil
}

// demoCall sends one command to addr and returns its reply as text: a
// simple string, an integer or a bulk string; an error reply, a nil bulk
// string (errNil) or a failure to connect is an error.
func demoCall(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(appendCommand(nil, args...)); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

var errNil = errors.New("nil reply")

func appendCommand(dst []byte, args ...string) []byte {
	dst = fmt.Appendf(dst, "*%d\r\n", len(args))
	for _, a := range args {
		dst = fmt.Appendf(dst, "$%d\r\n%s\r\n", len(a), a)
	}
	return dst
}

func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("reply %q", line)
		}
		if n < 0 {
			return "", errNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// tailBuffer keeps the last 4 KiB written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4096 {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-4096:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
