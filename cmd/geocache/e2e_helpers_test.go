package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Helpers of the end-to-end tests that run the real geocache binary: build
// it, start `geocache serve` processes on free loopback ports, talk to them
// with go-redis, and make sure no process outlives its test.

// e2eHang is the deadline of every wait in the end-to-end tests: it only
// catches a hang. A loaded machine may take seconds for what an idle one
// does in milliseconds, and no test may fail for that.
const e2eHang = time.Minute

// e2eBuild is the geocache binary shared by the tests that are using it.
var e2eBuild struct {
	mu    sync.Mutex
	dir   string // temporary directory holding the binary
	path  string
	users int // tests holding the binary; the last one to end removes it
}

// e2eBinary returns the path of a geocache binary built from this package
// (without -race, whatever the test binary was built with). Tests running
// at the same time share one build; when the last of them ends, its
// directory is removed. It skips t only if there is no go command.
func e2eBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the geocache binary with")
	}
	e2eBuild.mu.Lock()
	defer e2eBuild.mu.Unlock()
	if e2eBuild.users == 0 {
		dir, err := os.MkdirTemp("", "geocache-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "geocache")
		cmd := exec.Command(gobin, "build", "-o", path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("go build: %v\n%s", err, out)
		}
		e2eBuild.dir, e2eBuild.path = dir, path
	}
	e2eBuild.users++
	t.Cleanup(func() {
		e2eBuild.mu.Lock()
		defer e2eBuild.mu.Unlock()
		if e2eBuild.users--; e2eBuild.users == 0 {
			os.RemoveAll(e2eBuild.dir)
			e2eBuild.dir, e2eBuild.path = "", ""
		}
	})
	return e2eBuild.path
}

// e2eFreeAddrs returns n distinct loopback addresses that were free a
// moment ago (all n are held open together, so they differ).
func e2eFreeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// errE2EAddrInUse is returned by e2eNode.start when the process could not
// bind one of its addresses: someone took the port between e2eFreeAddrs
// and the start.
var errE2EAddrInUse = errors.New("address already in use")

// e2eNode is one `geocache serve` process, restartable with the same flags.
type e2eNode struct {
	t              *testing.T
	name           string // region, for messages
	bin            string
	args           []string // after "serve"
	env            []string // added to the environment
	password       string   // what clients AUTH with
	addr, peerAddr string
	logs           *syncBuffer // stdout and stderr of every run, in order

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
}

// newE2ENode returns a node that is not started yet. It logs the node's
// output when t fails.
func newE2ENode(t *testing.T, bin, name, addr, peerAddr string, args ...string) *e2eNode {
	n := &e2eNode{
		t: t, name: name, bin: bin, addr: addr, peerAddr: peerAddr, logs: &syncBuffer{},
		args: append([]string{"--addr", addr, "--peer-addr", peerAddr, "--log-format", "json"}, args...),
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of %s (%s):\n%s", n.name, n.addr, n.logs.String())
		}
	})
	return n
}

// start runs a new process with the node's flags and waits until it
// serves. The process is killed and waited for when the test ends.
func (n *e2eNode) start() error {
	n.t.Helper()
	mark := len(n.logs.String())
	fmt.Fprintf(n.logs, "=== start: geocache serve %s\n", strings.Join(n.args, " "))
	cmd := exec.Command(n.bin, append([]string{"serve"}, n.args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) { // the test's environment must not configure the node
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, n.env...)
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	n.t.Cleanup(func() {
		cmd.Process.Kill() // also ends a SIGSTOPped process
		<-exited
	})

	deadline := time.Now().Add(e2eHang)
	for {
		out := n.logs.String()[mark:]
		if e2eLogHas(out, "geocache serving") {
			return nil
		}
		select {
		case <-exited:
			if strings.Contains(out, "address already in use") {
				return errE2EAddrInUse
			}
			return fmt.Errorf("%s exited before serving: %v", n.name, cmd.ProcessState)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no \"geocache serving\" log record within %v", n.name, e2eHang)
		}
	}
}

// e2eLogHas reports whether logs hold a JSON record whose msg is msg.
func e2eLogHas(logs, msg string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ Msg string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == msg {
			return true
		}
	}
	return false
}

// running reports whether the last process started has not exited.
func (n *e2eNode) running() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *e2eNode) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("%s: send %v: %v", n.name, sig, err)
	}
}

// pause stops the process with SIGSTOP and waits until every one of its
// threads is stopped (kill returns before they are, and a thread running
// at that moment could still answer a peer).
func (n *e2eNode) pause() {
	n.t.Helper()
	n.signal(syscall.SIGSTOP)
	dir := fmt.Sprintf("/proc/%d/task", n.cmd.Process.Pid)
	if _, err := os.Stat(dir); err != nil {
		time.Sleep(200 * time.Millisecond) // no procfs: give the signal time
		return
	}
	e2eEventually(n.t, e2eHang, n.name+" stopped", func() error {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, task := range tasks {
			stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			if err != nil {
				return err
			}
			// pid (comm) state ...: comm may hold spaces, so look after
			// the last ')'.
			i := strings.LastIndexByte(string(stat), ')')
			if state := strings.Fields(string(stat[i+1:])); len(state) == 0 || (state[0] != "T" && state[0] != "t") {
				return fmt.Errorf("thread %s is in state %v", task.Name(), state)
			}
		}
		return nil
	})
}

// kill ends the process with SIGKILL and waits for it.
func (n *e2eNode) kill() {
	n.t.Helper()
	n.cmd.Process.Kill()
	<-n.exited
}

// waitExit waits up to d for the process to exit and returns its exit
// code, or fails the test.
func (n *e2eNode) waitExit(d time.Duration) int {
	n.t.Helper()
	select {
	case <-n.exited:
		return n.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		n.t.Fatalf("%s still running %v later", n.name, d)
		return -1
	}
}

// e2eClientTimeout is the read and write timeout of e2eNode.client.
const e2eClientTimeout = e2eHang + 30*time.Second

// client returns a go-redis client of the node, closed when the test
// ends. It does not retry: every failure shows.
func (n *e2eNode) client() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: n.addr, Password: n.password,
		MaxRetries: -1,
		// Longer than e2eHang, the longest a command (GEOCACHE ACK ...) is
		// told to block.
		DialTimeout: e2eHang, ReadTimeout: e2eClientTimeout, WriteTimeout: e2eClientTimeout,
		PoolSize: 4,
	})
	n.t.Cleanup(func() { c.Close() })
	return c
}

// e2eCluster is one node per region: us (node 1), eu (2), ap (3), each
// with --peers set to the replication addresses of the other two.
type e2eCluster struct {
	nodes []*e2eNode
}

var e2eRegions = []string{"us", "eu", "ap"}

// startE2ECluster starts the three nodes on free loopback ports (picking
// new ports if one was taken meanwhile) and waits until every node is
// connected to the other two in both directions. configure, if not nil,
// adjusts each node before it starts (extra flags, environment, password).
func startE2ECluster(t *testing.T, configure func(i int, n *e2eNode)) *e2eCluster {
	t.Helper()
	bin := e2eBinary(t)
	for attempt := 1; ; attempt++ {
		addrs := e2eFreeAddrs(t, 2*len(e2eRegions))
		c := &e2eCluster{}
		for i, region := range e2eRegions {
			var peers []string
			for j := range e2eRegions {
				if j != i {
					peers = append(peers, addrs[2*j+1])
				}
			}
			n := newE2ENode(t, bin, region, addrs[2*i], addrs[2*i+1],
				"--region", region, "--node", fmt.Sprint(i+1), "--peers", strings.Join(peers, ","))
			if configure != nil {
				configure(i, n)
			}
			c.nodes = append(c.nodes, n)
		}
		var err error
		for _, n := range c.nodes {
			if err = n.start(); err != nil {
				break
			}
		}
		if err == nil {
			c.waitConnected(t)
			return c
		}
		for _, n := range c.nodes {
			if n.running() {
				n.kill()
			}
		}
		if !errors.Is(err, errE2EAddrInUse) || attempt == 5 {
			t.Fatalf("start cluster (attempt %d): %v", attempt, err)
		}
		t.Logf("a port was taken (attempt %d); picking new ones", attempt)
	}
}

// clients returns one go-redis client per node, in region order.
func (c *e2eCluster) clients() []*redis.Client {
	cs := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		cs[i] = n.client()
	}
	return cs
}

// waitConnected waits until every running node's links to and from every
// other node are up, as INFO replication shows them.
func (c *e2eCluster) waitConnected(t *testing.T) {
	t.Helper()
	want := len(c.nodes) - 1
	ctx := context.Background()
	for _, n := range c.nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.addr, Password: n.password, MaxRetries: -1})
		e2eEventually(t, e2eHang, n.name+" connected to every peer", func() error {
			info, err := cl.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			peers, origins := 0, 0
			for line := range strings.SplitSeq(info, "\r\n") {
				switch {
				case strings.HasPrefix(line, "peer") && strings.Contains(line, ",state=connected,"):
					peers++
				case strings.HasPrefix(line, "origin") && strings.Contains(line, ",state=connected,"):
					origins++
				}
			}
			if peers != want || origins != want {
				return fmt.Errorf("%d of %d outgoing and %d of %d incoming links connected:\n%s", peers, want, origins, want, info)
			}
			return nil
		})
		cl.Close()
	}
}

// e2eEventually calls f until it returns nil, every 10 ms for up to d,
// and fails the test with f's last error if it never does.
func e2eEventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// e2eAtLeast waits until count reaches n (what says what is counted).
func e2eAtLeast(t *testing.T, what string, count *atomic.Int64, n int64) {
	t.Helper()
	e2eEventually(t, e2eHang, what, func() error {
		if got := count.Load(); got < n {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
}
