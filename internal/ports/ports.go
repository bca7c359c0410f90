// Package ports finds free loopback ports for the processes a harness
// starts and restarts (the chaos harness, the demo's region).
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Free returns n loopback addresses that were free a moment ago, on
// ports below the kernel's ephemeral range: a node keeps its ports across
// restarts, and while it is down an outgoing connection (whose local port
// comes from the ephemeral range, as do the ports of listeners on port 0)
// could otherwise take its port.
func Free(n int) ([]string, error) {
	lo, hi := 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if first, err := strconv.Atoi(f[0]); err == nil && first > 2048 {
				hi = first
				lo = max(1024, hi-12768)
			}
		}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("no free loopback port below the ephemeral range")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
