package ports

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Free returns distinct loopback addresses that can be listened on, below
// the kernel's ephemeral range where the kernel says what it is.
func TestFree(t *testing.T) {
	addrs, err := Free(20)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		first, _ = strconv.Atoi(strings.Fields(string(b))[0])
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s returned twice", a)
		}
		seen[a] = true
		_, p, _ := net.SplitHostPort(a)
		if port, _ := strconv.Atoi(p); first > 2048 && port >= first {
			t.Errorf("%s is in the ephemeral range (from %d)", a, first)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s: %v", a, err)
			continue
		}
		ln.Close()
	}
}
