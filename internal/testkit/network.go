package testkit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultBufferSize is the capacity, in bytes, of each direction of a
// connection on a Network unless SetBufferSize changes it.
const DefaultBufferSize = 4 << 20

// Addr is the address of a node on a Network: its name, such as "us-east/1".
type Addr string

// Network returns "mem".
func (a Addr) Network() string { return "mem" }

// String returns the node name.
func (a Addr) String() string { return string(a) }

// Network is an in-memory network of named nodes for multi-node tests in
// one process, with faults injected in user space: per-direction latency,
// one-way cuts (partitions) and connection resets.
//
// A node listens with Listen and dials with the function Dialer returns;
// both hand out real net.Listener and net.Conn values, so code written
// against TCP runs on it unchanged.
//
// Each connection is two one-way byte streams. Bytes written in one
// direction reach the reader in order, after that direction's latency
// (measured from the Write; a latency change applies to bytes written after
// it). While a direction is cut its bytes wait, neither delivered nor lost,
// and flow again in order after Heal: a long cut looks like a stalled TCP
// connection, which protocols notice through their own deadlines. Each
// direction holds at most its buffer size of unread bytes; a Write blocks
// while the buffer is full, as TCP does.
//
// The network starts no goroutines: readers wait on timers for the delivery
// time of the next bytes, so it also runs inside a testing/synctest bubble,
// where latencies cost no real time. Create the Network inside the bubble.
//
// A Network is safe for concurrent use. Its zero value is not usable;
// create it with NewNetwork.
type Network struct {
	// mu guards the fields below. Lock order: conn.rmu or conn.wmu, then
	// Network.mu, then pair.mu.
	mu        sync.Mutex
	closed    bool
	wake      signal // network-level changes: dials, cuts, heals, Close
	bufSize   int
	nodes     map[string]bool
	links     map[link]linkState
	listeners map[string]*listener
	pairs     map[*pair]struct{} // connections not yet closed by both ends

	written   atomic.Int64
	delivered atomic.Int64
	lost      atomic.Int64
}

// link is one direction between two nodes.
type link struct{ from, to string }

// linkState is the fault state of one direction.
type linkState struct {
	latency  time.Duration
	cut      bool
	cutStart time.Time // when the current cut began; zero when not cut
	// cutGen counts the cuts of the link; bytes written during the current
	// cut carry its number, so that they are held even when they are due
	// at the very instant the cut began (zero latency; no time passes in a
	// synctest bubble between the Cut and the Write).
	cutGen uint64
}

// NetworkStats is a snapshot of a Network's counters. Written always
// equals Delivered + InFlight + Lost.
type NetworkStats struct {
	Conns     int   // connections open: dialed, and not reset or closed by both ends
	Written   int64 // bytes accepted by Write
	Delivered int64 // bytes returned by Read
	InFlight  int64 // bytes written and not yet read or lost; includes Held
	Held      int64 // bytes of InFlight held back by a cut
	Lost      int64 // bytes discarded by Reset, Close or a closed reader
}

// NewNetwork returns an empty network with no latency and no cuts.
func NewNetwork() *Network {
	return &Network{
		bufSize:   DefaultBufferSize,
		nodes:     map[string]bool{},
		links:     map[link]linkState{},
		listeners: map[string]*listener{},
		pairs:     map[*pair]struct{}{},
	}
}

// SetBufferSize sets the capacity in bytes of each direction of the
// connections dialed after it; size <= 0 means DefaultBufferSize.
func (n *Network) SetBufferSize(size int) {
	if size <= 0 {
		size = DefaultBufferSize
	}
	n.mu.Lock()
	n.bufSize = size
	n.mu.Unlock()
}

// Listen makes addr a node that accepts connections. addr is any name
// unique among the open listeners. It fails with an error wrapping
// syscall.EADDRINUSE if addr is taken, or net.ErrClosed after Close.
// Closing the listener frees the name (a restarted node may listen again);
// connections it accepted stay open, and dialed connections it had not yet
// accepted are reset.
func (n *Network) Listen(addr string) (net.Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, &net.OpError{Op: "listen", Net: "mem", Addr: Addr(addr), Err: net.ErrClosed}
	}
	if _, ok := n.listeners[addr]; ok {
		return nil, &net.OpError{Op: "listen", Net: "mem", Addr: Addr(addr), Err: syscall.EADDRINUSE}
	}
	l := &listener{n: n, addr: addr}
	n.listeners[addr] = l
	n.nodes[addr] = true
	return l, nil
}

// Dialer returns a dial function for node from, of the shape replication
// code takes. A dial to an address nobody listens on fails at once with an
// error wrapping syscall.ECONNREFUSED. A connection takes one round trip
// (the latencies of both directions) to set up. While either direction
// between from and addr is cut, a dial waits: it connects if the cut heals
// in time, and otherwise fails when ctx is done, with an error for which
// errors.Is(err, context.DeadlineExceeded) and errors.Is(err,
// os.ErrDeadlineExceeded) hold and Timeout() is true if ctx's deadline
// passed, or wrapping context.Canceled if ctx was canceled. After Close it
// fails with net.ErrClosed.
func (n *Network) Dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.nodes[from] = true
	n.mu.Unlock()
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return n.dial(ctx, from, addr)
	}
}

func (n *Network) dial(ctx context.Context, from, to string) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "mem", Source: Addr(from), Addr: Addr(to), Err: err}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var ready time.Time // when the handshake completes; zero until it starts
	for {
		if n.closed {
			return nil, opErr(net.ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = dialTimeout{}
			}
			return nil, opErr(err)
		}
		l := n.listeners[to]
		if l == nil {
			return nil, opErr(syscall.ECONNREFUSED)
		}
		fwd, back := n.links[link{from, to}], n.links[link{to, from}]
		if fwd.cut || back.cut {
			block(&n.mu, n.wake.wait(), time.Time{}, ctx.Done())
			continue
		}
		if ready.IsZero() {
			ready = time.Now().Add(fwd.latency + back.latency)
		}
		if time.Now().Before(ready) {
			block(&n.mu, n.wake.wait(), ready, ctx.Done())
			continue
		}
		p := n.newPairLocked(from, to)
		l.queue = append(l.queue, &p.ends[1])
		n.wake.broadcast()
		return &p.ends[0], nil
	}
}

// dialTimeout is the error of a dial whose context deadline passed. Like
// the net package's, it is a timeout and matches context.DeadlineExceeded;
// it also matches os.ErrDeadlineExceeded.
type dialTimeout struct{}

func (dialTimeout) Error() string   { return "i/o timeout" }
func (dialTimeout) Timeout() bool   { return true }
func (dialTimeout) Temporary() bool { return true }
func (dialTimeout) Is(target error) bool {
	return target == context.DeadlineExceeded || target == os.ErrDeadlineExceeded
}

// SetLatency sets the one-way latency of bytes sent from node from to node
// to, on existing and new connections. It applies to bytes written after
// the call; bytes never overtake earlier bytes, so lowering the latency
// takes effect once the bytes already in flight have arrived. It panics if
// oneWay is negative.
func (n *Network) SetLatency(from, to string, oneWay time.Duration) {
	if oneWay < 0 {
		panic("testkit: negative latency")
	}
	n.update(from, to, func(st *linkState) { st.latency = oneWay })
}

// Cut partitions the direction from -> to: bytes sent that way are held
// back (neither delivered nor lost) until Heal, new dials between the two
// nodes wait (see Dialer), and the other direction keeps flowing. Bytes
// that had already arrived before the cut can still be read. Cutting a cut
// direction does nothing.
func (n *Network) Cut(from, to string) {
	now := time.Now()
	n.update(from, to, func(st *linkState) {
		if !st.cut {
			st.cut, st.cutStart = true, now
			st.cutGen++
		}
	})
}

// Heal ends a cut of the direction from -> to: the bytes it held are
// delivered in order (at once if their latency has passed) and waiting
// dials proceed.
func (n *Network) Heal(from, to string) {
	n.update(from, to, func(st *linkState) { st.cut, st.cutStart = false, time.Time{} })
}

// HealAll ends every cut. Latencies stay.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for l, st := range n.links {
		if st.cut {
			st.cut, st.cutStart = false, time.Time{}
			n.setLinkLocked(l, st)
		}
	}
}

// Isolate cuts both directions between node and every other node the
// network knows: every name that has listened, had a Dialer, or been
// passed to SetLatency, Cut or Heal. Nodes that appear later are not cut.
func (n *Network) Isolate(node string) {
	n.forPeers(node, func(other string) {
		n.Cut(node, other)
		n.Cut(other, node)
	})
}

// Rejoin undoes Isolate: it heals both directions between node and every
// other node the network knows.
func (n *Network) Rejoin(node string) {
	n.forPeers(node, func(other string) {
		n.Heal(node, other)
		n.Heal(other, node)
	})
}

func (n *Network) forPeers(node string, f func(other string)) {
	n.mu.Lock()
	var others []string
	for other := range n.nodes {
		if other != node {
			others = append(others, other)
		}
	}
	n.mu.Unlock()
	for _, other := range others {
		f(other)
	}
}

// update applies f to the state of the direction from -> to and pushes the
// result to the open connections that carry it.
func (n *Network) update(from, to string, f func(*linkState)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[from], n.nodes[to] = true, true
	l := link{from, to}
	st := n.links[l]
	f(&st)
	n.setLinkLocked(l, st)
}

func (n *Network) setLinkLocked(l link, st linkState) {
	n.links[l] = st
	for p := range n.pairs {
		p.mu.Lock()
		for i := range p.dirs {
			if s := &p.dirs[i]; s.from == l.from && s.to == l.to {
				s.linkState = st
				s.rwake.broadcast()
			}
		}
		p.mu.Unlock()
	}
	n.wake.broadcast()
}

// Reset drops every connection between nodes a and b, whoever dialed: the
// bytes in flight both ways are lost, and every later Read or Write on
// either end fails with an error wrapping syscall.ECONNRESET (Close still
// succeeds). New dials work as before.
func (n *Network) Reset(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p := range n.pairs {
		from, to := p.dirs[0].from, p.dirs[0].to
		if from == a && to == b || from == b && to == a {
			p.mu.Lock()
			p.resetLocked()
			p.mu.Unlock()
			delete(n.pairs, p)
		}
	}
}

// Close closes every listener and connection, losing the bytes in flight,
// and wakes every blocked call: they return errors wrapping net.ErrClosed,
// as do later calls. The network starts no goroutines, so none outlive
// Close. Close is idempotent and returns nil.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	for _, l := range n.listeners {
		l.closed = true
		l.queue = nil
	}
	clear(n.listeners)
	for p := range n.pairs {
		p.mu.Lock()
		p.closed = [2]bool{true, true}
		p.dropLocked()
		p.mu.Unlock()
	}
	clear(n.pairs)
	n.wake.broadcast()
	return nil
}

// Stats returns a snapshot of the network's counters.
func (n *Network) Stats() NetworkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := NetworkStats{
		Conns:     len(n.pairs),
		Written:   n.written.Load(),
		Delivered: n.delivered.Load(),
		Lost:      n.lost.Load(),
	}
	for p := range n.pairs {
		p.mu.Lock()
		for i := range p.dirs {
			s := &p.dirs[i]
			st.InFlight += int64(s.buffered)
			if s.cut {
				for _, c := range s.q[s.head:] {
					if s.heldLocked(c.at, c.gen) {
						st.Held += int64(len(c.b))
					}
				}
			}
		}
		p.mu.Unlock()
	}
	return st
}

func (n *Network) newPairLocked(from, to string) *pair {
	p := &pair{n: n}
	p.dirs[0] = stream{from: from, to: to, limit: n.bufSize, linkState: n.links[link{from, to}]}
	p.dirs[1] = stream{from: to, to: from, limit: n.bufSize, linkState: n.links[link{to, from}]}
	p.ends[0] = conn{p: p, i: 0}
	p.ends[1] = conn{p: p, i: 1}
	n.pairs[p] = struct{}{}
	return p
}

// listener is a net.Listener on a Network. Its fields are guarded by n.mu.
type listener struct {
	n      *Network
	addr   string
	closed bool
	queue  []*conn // dialed, not yet accepted
}

// Accept waits for a dial to the listener's address. After Close it
// returns an error wrapping net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	n := l.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		if l.closed {
			return nil, &net.OpError{Op: "accept", Net: "mem", Addr: Addr(l.addr), Err: net.ErrClosed}
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			return c, nil
		}
		block(&n.mu, n.wake.wait(), time.Time{}, nil)
	}
}

// Close stops the listener; see Network.Listen.
func (l *listener) Close() error {
	n := l.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if l.closed {
		return &net.OpError{Op: "close", Net: "mem", Addr: Addr(l.addr), Err: net.ErrClosed}
	}
	l.closed = true
	if n.listeners[l.addr] == l {
		delete(n.listeners, l.addr)
	}
	for _, c := range l.queue {
		c.p.mu.Lock()
		c.p.resetLocked()
		c.p.mu.Unlock()
		delete(n.pairs, c.p)
	}
	l.queue = nil
	n.wake.broadcast()
	return nil
}

// Addr returns the listener's node name.
func (l *listener) Addr() net.Addr { return Addr(l.addr) }

// pair is one connection: two streams and the two ends that use them.
// End i writes dirs[i] and reads dirs[1-i]; end 0 is the dialer.
type pair struct {
	n    *Network
	ends [2]conn

	// mu guards the fields below.
	mu     sync.Mutex
	dirs   [2]stream
	closed [2]bool // end i was closed by its user or by Network.Close
	reset  bool
}

// stream is one direction of a connection: a queue of chunks, each
// readable from its delivery time unless a cut holds it.
type stream struct {
	from, to  string
	linkState         // copy of the link's state
	limit     int     // capacity in bytes
	q         []chunk // q[head:] are unread, delivery times ascending
	head      int
	buffered  int       // unread bytes in q
	last      time.Time // delivery time of the newest chunk or FIN
	fin       bool      // the writer closed; EOF follows the last chunk
	finAt     time.Time // delivery time of the FIN
	finGen    uint64    // the cut the FIN was sent during, 0 if none
	gone      bool      // the reader closed: writes are discarded
	rdl, wdl  time.Time // read and write deadlines, zero for none
	rwake     signal    // the reader may proceed: data, FIN, heal, deadline, close
	wwake     signal    // the writer may proceed: space, deadline, close
}

type chunk struct {
	b   []byte
	at  time.Time // delivery time
	gen uint64    // the cut it was written during (linkState.cutGen), 0 if none
}

// heldLocked reports whether the current cut holds bytes due at at and
// written during cut gen (0: not during a cut). A cut holds the bytes due
// after it began and those written while it lasts, so bytes that arrived
// before it stay readable.
func (s *stream) heldLocked(at time.Time, gen uint64) bool {
	return s.cut && (at.After(s.cutStart) || gen == s.cutGen)
}

// deliveredLocked reports whether bytes due at at, written during cut gen,
// have reached the reader by now: their latency has passed and no cut
// holds them.
func (s *stream) deliveredLocked(at time.Time, gen uint64, now time.Time) bool {
	return !now.Before(at) && !s.heldLocked(at, gen)
}

// nextLocked returns when the reader should look again for bytes due at
// at: their delivery time, or zero if a cut holds them (Heal wakes it).
func (s *stream) nextLocked(at time.Time, gen uint64) time.Time {
	if s.heldLocked(at, gen) {
		return time.Time{}
	}
	return at
}

// genLocked is the cut number that bytes written now carry.
func (s *stream) genLocked() uint64 {
	if s.cut {
		return s.cutGen
	}
	return 0
}

func (s *stream) pushLocked(b []byte, now time.Time) {
	at := now.Add(s.latency)
	if at.Before(s.last) {
		at = s.last // never overtake earlier bytes
	}
	s.last = at
	if s.head == len(s.q) {
		s.rwake.broadcast() // a new head: the reader's next wake-up changes
	}
	s.q = append(s.q, chunk{b: append([]byte(nil), b...), at: at, gen: s.genLocked()})
	s.buffered += len(b)
}

func (s *stream) readLocked(b []byte, now time.Time) int {
	n := 0
	for n < len(b) && s.head < len(s.q) {
		c := &s.q[s.head]
		if !s.deliveredLocked(c.at, c.gen, now) {
			break
		}
		k := copy(b[n:], c.b)
		n += k
		c.b = c.b[k:]
		if len(c.b) == 0 {
			s.popLocked()
		}
	}
	s.buffered -= n
	return n
}

func (s *stream) popLocked() {
	s.q[s.head] = chunk{}
	s.head++
	switch {
	case s.head == len(s.q):
		s.q, s.head = s.q[:0], 0
	case s.head >= 1024 && 2*s.head >= len(s.q):
		k := copy(s.q, s.q[s.head:])
		clear(s.q[k:])
		s.q, s.head = s.q[:k], 0
	}
}

// dropLocked discards the unread bytes and returns how many there were.
func (s *stream) dropLocked() int {
	n := s.buffered
	clear(s.q)
	s.q, s.head, s.buffered = nil, 0, 0
	return n
}

// dropLocked discards both directions' bytes and wakes every waiter.
func (p *pair) dropLocked() {
	for i := range p.dirs {
		s := &p.dirs[i]
		p.n.lost.Add(int64(s.dropLocked()))
		s.rwake.broadcast()
		s.wwake.broadcast()
	}
}

func (p *pair) resetLocked() {
	if p.reset {
		return
	}
	p.reset = true
	p.dropLocked()
}

// conn is one end of a pair.
type conn struct {
	p *pair
	i int

	// rmu and wmu serialize Reads and Writes, as the net package does for
	// TCP, so that concurrent Writes are not interleaved when one of them
	// waits for buffer space. Lock order: rmu or wmu, then pair.mu.
	rmu, wmu sync.Mutex
}

func (c *conn) tx() *stream { return &c.p.dirs[c.i] }
func (c *conn) rx() *stream { return &c.p.dirs[1-c.i] }

// LocalAddr returns the name of the node this end belongs to.
func (c *conn) LocalAddr() net.Addr { return Addr(c.p.dirs[c.i].from) }

// RemoteAddr returns the name of the node at the other end.
func (c *conn) RemoteAddr() net.Addr { return Addr(c.p.dirs[c.i].to) }

func (c *conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "mem", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// errLocked returns why this end can no longer be used, or nil.
func (c *conn) errLocked() error {
	switch {
	case c.p.closed[c.i]:
		return net.ErrClosed
	case c.p.reset:
		return syscall.ECONNRESET
	}
	return nil
}

// Read reads the bytes delivered so far, waiting for the first of them.
// After the other end closes it returns io.EOF once the bytes sent before
// the close are read. Errors wrap net.ErrClosed (this end closed),
// syscall.ECONNRESET (Reset) or os.ErrDeadlineExceeded (deadline; a
// net.Error with Timeout true).
func (c *conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	s := c.rx()
	for {
		if err := c.errLocked(); err != nil {
			return 0, c.opErr("read", err)
		}
		now := time.Now()
		if !s.rdl.IsZero() && !now.Before(s.rdl) {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			return 0, nil
		}
		if n := s.readLocked(b, now); n > 0 {
			p.n.delivered.Add(int64(n))
			s.wwake.broadcast()
			return n, nil
		}
		var next time.Time
		switch {
		case s.head < len(s.q):
			next = s.nextLocked(s.q[s.head].at, s.q[s.head].gen)
		case s.fin:
			if s.deliveredLocked(s.finAt, s.finGen, now) {
				return 0, io.EOF
			}
			next = s.nextLocked(s.finAt, s.finGen)
		}
		block(&p.mu, s.rwake.wait(), earliest(next, s.rdl), nil)
	}
}

// Write queues b for the other end, waiting while the direction's buffer
// is full. Concurrent Writes are not interleaved. Once the other end has closed, bytes are discarded until its
// close arrives here (after the latency, as with TCP), and then Write fails
// with an error wrapping syscall.EPIPE. Other errors wrap net.ErrClosed,
// syscall.ECONNRESET or os.ErrDeadlineExceeded, as for Read.
func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	s := c.tx()
	n := 0
	for {
		if err := c.errLocked(); err != nil {
			return n, c.opErr("write", err)
		}
		now := time.Now()
		if !s.wdl.IsZero() && !now.Before(s.wdl) {
			return n, c.opErr("write", os.ErrDeadlineExceeded)
		}
		if n == len(b) {
			return n, nil
		}
		if s.gone {
			if rx := c.rx(); rx.fin && rx.deliveredLocked(rx.finAt, rx.finGen, now) {
				return n, c.opErr("write", syscall.EPIPE)
			}
			p.n.written.Add(int64(len(b) - n))
			p.n.lost.Add(int64(len(b) - n))
			return len(b), nil
		}
		if free := s.limit - s.buffered; free > 0 {
			k := min(free, len(b)-n)
			s.pushLocked(b[n:n+k], now)
			p.n.written.Add(int64(k))
			n += k
			if n == len(b) {
				return n, nil
			}
			continue
		}
		block(&p.mu, s.wwake.wait(), s.wdl, nil)
	}
}

// Close closes this end. The other end reads the bytes already sent and
// then io.EOF; bytes sent to this end and not yet read are lost. A second
// Close returns an error wrapping net.ErrClosed.
func (c *conn) Close() error {
	p := c.p
	p.mu.Lock()
	if p.closed[c.i] {
		p.mu.Unlock()
		return c.opErr("close", net.ErrClosed)
	}
	p.closed[c.i] = true
	if !p.reset {
		tx, rx := c.tx(), c.rx()
		tx.fin = true
		tx.finAt, tx.finGen = time.Now().Add(tx.latency), tx.genLocked()
		if tx.finAt.Before(tx.last) {
			tx.finAt = tx.last
		}
		tx.rwake.broadcast()
		tx.wwake.broadcast()
		p.n.lost.Add(int64(rx.dropLocked()))
		rx.gone = true
		rx.rwake.broadcast()
		rx.wwake.broadcast()
	}
	done := p.reset || p.closed[1-c.i]
	p.mu.Unlock()
	if done {
		n := p.n
		n.mu.Lock()
		delete(n.pairs, p)
		n.mu.Unlock()
	}
	return nil
}

// SetDeadline sets the read and write deadlines; see net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed[c.i] {
		return c.opErr("set", net.ErrClosed)
	}
	c.rx().rdl = t
	c.rx().rwake.broadcast()
	c.tx().wdl = t
	c.tx().wwake.broadcast()
	return nil
}

// SetReadDeadline sets the read deadline, also for a Read in progress.
func (c *conn) SetReadDeadline(t time.Time) error {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed[c.i] {
		return c.opErr("set", net.ErrClosed)
	}
	c.rx().rdl = t
	c.rx().rwake.broadcast()
	return nil
}

// SetWriteDeadline sets the write deadline, also for a Write in progress.
func (c *conn) SetWriteDeadline(t time.Time) error {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed[c.i] {
		return c.opErr("set", net.ErrClosed)
	}
	c.tx().wdl = t
	c.tx().wwake.broadcast()
	return nil
}

// signal is a broadcast to the goroutines waiting on a condition; the lock
// that guards the condition guards the signal.
type signal struct {
	ch chan struct{} // nil until someone waits
}

// wait returns a channel that the next broadcast closes.
func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// block unlocks mu and waits until ch is closed, the time until passes
// (unless it is zero) or done is closed; then it locks mu again.
func block(mu *sync.Mutex, ch <-chan struct{}, until time.Time, done <-chan struct{}) {
	mu.Unlock()
	defer mu.Lock()
	var timeout <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-timeout:
	case <-done:
	}
}

// earliest returns the earlier of two times, where zero means never.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}
