// Command regionfailover measures how long a region of geocache serve
// processes takes to drop a node killed with SIGKILL from its slot map:
// the time from the kill until every survivor's CLUSTER INFO counts one
// node fewer (from then on CLUSTER SLOTS sends cluster-aware clients to the
// slots' other owners). It also times a SIGTERM (the node announces its
// leave). Each run starts a fresh region on loopback.
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

func main() {
	bin := flag.String("bin", "", "geocache binary (required)")
	nodes := flag.Int("nodes", 3, "nodes in the region")
	runs := flag.Int("runs", 5, "runs of each kind")
	flag.Parse()
	if *bin == "" || *nodes < 2 {
		flag.Usage()
		os.Exit(2)
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		var ds []time.Duration
		for r := range *runs {
			d, err := run(*bin, *nodes, sig)
			if err != nil {
				log.Fatalf("run %d (%v): %v", r+1, sig, err)
			}
			ds = append(ds, d)
			fmt.Printf("%-8v run %d: survivors' maps without the node after %v\n", sig, r+1, d.Round(time.Millisecond))
		}
		slices.Sort(ds)
		fmt.Printf("%-8v %d nodes, %d runs: min %v, median %v, max %v\n\n", sig, *nodes, *runs,
			ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
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
// returns the time until every survivor's map has n-1 members.
func run(bin string, n int, sig syscall.Signal) (time.Duration, error) {
	addrs := freePorts(3 * n)
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	for i := range n {
		args := []string{"serve", "--region", "eu", "--node", fmt.Sprint(i + 1), "--addr", addrs[3*i],
			"--peer-addr", addrs[3*i+1], "--gossip-addr", addrs[3*i+2], "--log-level", "warn"}
		if i > 0 {
			args = append(args, "--join", addrs[2])
		}
		c := exec.Command(bin, args...)
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			return 0, err
		}
		cmds = append(cmds, c)
		if err := waitKnown(addrs[3*i], i+1, time.Minute); err != nil {
			return 0, fmt.Errorf("node %d: %w", i+1, err)
		}
	}
	for i := range n {
		if err := waitKnown(addrs[3*i], n, time.Minute); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	cmds[1].Process.Signal(sig)
	for i := range n {
		if i == 1 {
			continue
		}
		if err := waitKnown(addrs[3*i], n-1, time.Minute); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// waitKnown polls CLUSTER INFO at addr every 5 ms until it counts want
// nodes.
func waitKnown(addr string, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	needle := fmt.Sprintf("cluster_known_nodes:%d\r\n", want)
	for time.Now().Before(deadline) {
		if info, err := clusterInfo(addr); err == nil && strings.Contains(info, needle) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s: not %d nodes within %v", addr, want, limit)
}

func clusterInfo(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n")); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("reply %q: %v", head, err)
	}
	var size int
	fmt.Sscanf(head[1:], "%d", &size)
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}
