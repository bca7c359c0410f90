package chaos

import (
	"bufio"
	"net"
	"os"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// fakeNode is the ports of a node behind relays: a TCP echo server and a
// UDP socket on the same port (as memberlist's gossip), a TCP echo server
// for replication and one for clients.
type fakeNode struct {
	gossipTCP, repl, client net.Listener
	udp                     *net.UDPConn
}

func startFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	n := &fakeNode{}
	var err error
	if n.gossipTCP, n.udp, err = listenTCPUDP(); err != nil {
		t.Fatal(err)
	}
	if n.repl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if n.client, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{n.gossipTCP, n.repl, n.client} {
		testkit.Echo(t, ln)
	}
	t.Cleanup(func() { n.udp.Close() })
	return n
}

func (n *fakeNode) gossipAddr() string { return n.gossipTCP.Addr().String() }

// echo sends a line on c and reports whether it came back.
func echo(c net.Conn, line string) bool {
	c.SetDeadline(time.Now().Add(10 * time.Second)) // only catches a hang
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return false
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && got == line+"\n"
}

// The relays tell which node a connection comes from by the process that
// owns its source port (here: this test's process, taken as node 0), and
// which node a gossip packet comes from by its source address. Severing a
// node drops its connections and packets both ways, to and from it, and
// healing it lets them through again.
func TestRelaysSeverOneNode(t *testing.T) {
	n0, n1 := startFakeNode(t), startFakeNode(t)
	r := newRelays(func() map[int]int { return map[int]int{os.Getpid(): 0} })
	defer r.close()
	var relays []*nodeRelays
	for i, n := range []*fakeNode{n0, n1} {
		nr, err := r.add(i, n.gossipAddr(), n.repl.Addr().String(), n.client.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, nr)
	}

	dial := func(addr string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	to1 := dial(relays[1].replAddr())
	if !echo(to1, "before") {
		t.Fatal("a relayed connection does not carry data")
	}
	r.mu.Lock()
	var from []int
	for rc := range r.conns {
		from = append(from, rc.from)
	}
	r.mu.Unlock()
	if len(from) != 1 || from[0] != 0 {
		t.Fatalf("relayed connections from nodes %v; want one from node 0 (this process)", from)
	}

	// Node 0 (this process) severed: its connection to node 1 is closed,
	// a new one is refused, and so is one to node 0's own relays.
	r.sever(0, true)
	if echo(to1, "during") {
		t.Error("a connection from the severed node still carries data")
	}
	if echo(dial(relays[1].clientAddr()), "during") {
		t.Error("a new connection from the severed node was relayed")
	}
	if echo(dial(relays[0].gossipAddr()), "during") {
		t.Error("a new connection to the severed node was relayed")
	}
	// Gossip packets: from node 0's gossip socket to node 1's relay.
	send := func(msg string) {
		t.Helper()
		if _, err := n0.udp.WriteToUDP([]byte(msg), relays[1].gossipUDP.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	send("lost")
	testkit.Eventually(t, "the packet dropped", func() bool { return r.dropped.Load() == 1 })

	r.sever(0, false)
	if !echo(dial(relays[1].replAddr()), "after") {
		t.Error("a connection after the heal was not relayed")
	}
	send("delivered")
	buf := make([]byte, 64)
	n1.udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := n1.udp.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "delivered" {
		t.Errorf("first gossip packet node 1 received: %q, %v; want the one sent after the heal", buf[:n], err)
	}

	// Node 1 (the target) severed: nothing reaches it, from any source.
	r.sever(1, true)
	if echo(dial(relays[1].gossipAddr()), "during") {
		t.Error("a connection to a severed node was relayed")
	}
	r.sever(1, false)
	if !echo(dial(relays[1].gossipAddr()), "after") {
		t.Error("a connection after the heal was not relayed")
	}
}

// A connection whose source is no node's process is relayed while no node
// is severed, and refused while one is: only nodes dial the relays, so a
// source not found may be the severed node's.
func TestRelaysUnknownSource(t *testing.T) {
	n0 := startFakeNode(t)
	r := newRelays(func() map[int]int { return nil })
	defer r.close()
	nr, err := r.add(0, n0.gossipAddr(), n0.repl.Addr().String(), n0.client.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", nr.clientAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	before := dial()
	if !echo(before, "x") {
		t.Fatal("a connection from no node was not relayed")
	}
	r.sever(1, true) // another node
	if echo(before, "y") {
		t.Error("a connection from no node still relayed after a sever began")
	}
	if echo(dial(), "z") {
		t.Error("a connection from no node relayed while a node is severed")
	}
	r.sever(1, false)
	if !echo(dial(), "w") {
		t.Error("a connection from no node not relayed after the heal")
	}
}
