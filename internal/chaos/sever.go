package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// relays sit in front of the in-region ports of the nodes of regions
// that gossip (gossip over UDP and TCP, replication, and the client port
// that forwarding dials), so that one node can be severed from its region
// (FaultSever) while its clients and its links to other regions stay up.
// Each node announces its relays' addresses (--gossip-advertise-addr,
// --peer-announce-addr, --announce-addr), so everything another node of
// its region sends it crosses its relays; the harness's own clients and
// the other regions' proxies reach the node directly.
//
// A severed node's relays drop everything, and the other relays drop what
// the severed node sends them: a UDP packet by its source address (a node
// sends gossip from the socket it listens on), a TCP connection by the
// process that owns its source port (/proc/net/tcp and /proc/PID/fd: the
// nodes dial from ephemeral ports). Severing also closes every relayed
// connection to or from the node.
type relays struct {
	pids func() map[int]int // the running nodes' pids -> node index

	mu     sync.Mutex
	cut    map[int]bool // severed nodes (only true values)
	conns  map[*relayConn]struct{}
	closed bool

	byNode  []*nodeRelays // by node index; nil for nodes without relays
	gossipN map[string]int
	wg      sync.WaitGroup

	dropped atomic.Int64 // gossip packets dropped
}

// nodeRelays are one node's relays.
type nodeRelays struct {
	gossipTCP    net.Listener
	gossipUDP    *net.UDPConn
	repl, client net.Listener
}

// relayConn is one relayed TCP connection.
type relayConn struct {
	from, to int // node indexes; from is -1 if not a node's
	a, b     net.Conn
}

func newRelays(pids func() map[int]int) *relays {
	return &relays{pids: pids, cut: map[int]bool{}, conns: map[*relayConn]struct{}{}, gossipN: map[string]int{}}
}

// add starts the relays of node i in front of its gossip, replication and
// client addresses.
func (r *relays) add(i int, gossip, repl, client string) (_ *nodeRelays, err error) {
	nr := &nodeRelays{}
	defer func() {
		if err != nil {
			nr.close()
		}
	}()
	// memberlist listens for UDP and TCP on one port and announces one
	// address for both.
	if nr.gossipTCP, nr.gossipUDP, err = listenTCPUDP(); err != nil {
		return nil, err
	}
	if nr.repl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if nr.client, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	gossipAddr, err := net.ResolveUDPAddr("udp", gossip)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for len(r.byNode) <= i {
		r.byNode = append(r.byNode, nil)
	}
	r.byNode[i] = nr
	r.gossipN[gossipAddr.String()] = i
	r.mu.Unlock()
	r.wg.Go(func() { r.serveUDP(i, nr.gossipUDP, gossipAddr) })
	for _, p := range []struct {
		ln     net.Listener
		target string
	}{{nr.gossipTCP, gossip}, {nr.repl, repl}, {nr.client, client}} {
		r.wg.Go(func() { r.serveTCP(i, p.ln, p.target) })
	}
	return nr, nil
}

// listenTCPUDP listens on a loopback port for both TCP and UDP.
func listenTCPUDP() (net.Listener, *net.UDPConn, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ln.Addr().(*net.TCPAddr).Port})
		if err == nil {
			return ln, udp, nil
		}
		ln.Close()
	}
	return nil, nil, errors.New("chaos: no loopback port free for both TCP and UDP")
}

func (nr *nodeRelays) close() {
	for _, ln := range []net.Listener{nr.gossipTCP, nr.repl, nr.client} {
		if ln != nil {
			ln.Close()
		}
	}
	if nr.gossipUDP != nil {
		nr.gossipUDP.Close()
	}
}

// gossipAddr, replAddr and clientAddr are what node i announces.
func (nr *nodeRelays) gossipAddr() string { return nr.gossipTCP.Addr().String() }
func (nr *nodeRelays) replAddr() string   { return nr.repl.Addr().String() }
func (nr *nodeRelays) clientAddr() string { return nr.client.Addr().String() }

// sever cuts node i from its region (or heals it, cut false): it also
// closes the relayed connections whose source was not found, which may be
// node i's.
func (r *relays) sever(i int, cut bool) {
	r.mu.Lock()
	if cut {
		r.cut[i] = true
	} else {
		delete(r.cut, i)
	}
	var doomed []*relayConn
	if cut {
		for rc := range r.conns {
			if rc.from == i || rc.to == i || rc.from < 0 {
				doomed = append(doomed, rc)
				delete(r.conns, rc)
			}
		}
	}
	r.mu.Unlock()
	for _, rc := range doomed {
		rc.a.Close()
		rc.b.Close()
	}
}

// severed reports whether traffic from node from (-1: a source not found)
// to node to is cut. Only nodes dial the relays, so a source not found
// (its process gone, or the lookup raced its socket) is refused while any
// node is severed: it may be the severed one.
func (r *relays) severed(from, to int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.severedLocked(from, to)
}

func (r *relays) severedLocked(from, to int) bool {
	return r.cut[to] || from >= 0 && r.cut[from] || from < 0 && len(r.cut) > 0
}

func (r *relays) serveUDP(to int, conn *net.UDPConn, target *net.UDPAddr) {
	buf := make([]byte, 64<<10)
	for {
		n, src, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		from, known := r.gossipN[src.String()]
		r.mu.Unlock()
		if !known {
			from = -1
		}
		if r.severed(from, to) {
			r.dropped.Add(1) // lost on the way
			continue
		}
		conn.WriteToUDP(buf[:n], target)
	}
}

func (r *relays) serveTCP(to int, ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r.wg.Go(func() { r.relay(c, to, target) })
	}
}

// relay copies one connection both ways until either side ends or the
// connection is severed.
func (r *relays) relay(c net.Conn, to int, target string) {
	from := r.source(c)
	if r.severed(from, to) {
		c.Close()
		return
	}
	u, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	rc := &relayConn{from: from, to: to, a: c, b: u}
	r.mu.Lock()
	ok := !r.closed && !r.severedLocked(from, to)
	if ok {
		r.conns[rc] = struct{}{}
	}
	r.mu.Unlock()
	if ok {
		done := make(chan struct{}, 2)
		r.wg.Go(func() { io.Copy(u, c); done <- struct{}{} })
		r.wg.Go(func() { io.Copy(c, u); done <- struct{}{} })
		<-done
	}
	c.Close()
	u.Close()
	r.mu.Lock()
	delete(r.conns, rc)
	r.mu.Unlock()
}

// source returns the index of the node whose process owns c's remote end,
// or -1.
func (r *relays) source(c net.Conn) int {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1
	}
	inode, err := socketInode(remote, local) // the remote end's socket
	if err != nil {
		return -1
	}
	link := "socket:[" + inode + "]"
	for pid, i := range r.pids() {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == link {
				return i
			}
		}
	}
	return -1
}

// socketInode returns the inode of the IPv4 TCP socket bound to bound
// whose peer is peer, from /proc/net/tcp.
func socketInode(bound, peer *net.TCPAddr) (string, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := procAddr(bound) + " " + procAddr(peer)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(fs) >= 10 && fs[1]+" "+fs[2] == want {
			return fs[9], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no socket %s", want)
}

// procAddr is a's form in /proc/net/tcp: the IPv4 address as a host-order
// (little-endian here) hex word, the port in hex.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		return ""
	}
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
}

// close stops every relay and connection and waits for their goroutines.
func (r *relays) close() {
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = map[*relayConn]struct{}{}
	nodes := r.byNode
	r.mu.Unlock()
	for _, nr := range nodes {
		if nr != nil {
			nr.close()
		}
	}
	for rc := range conns {
		rc.a.Close()
		rc.b.Close()
	}
	r.wg.Wait()
}

// pidsOf is relays.pids for a cluster: the running nodes' pids.
func (c *cluster) pidsOf() map[int]int {
	out := map[int]int{}
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil && nd.cmd.Process != nil {
			out[nd.cmd.Process.Pid] = nd.idx
		}
		nd.mu.Unlock()
	}
	return out
}
