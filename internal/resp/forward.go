package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/geocache/geocache"
)

// Forwarding (Config.Forward): a node that keeps only its own slots
// (geocache.GossipConfig.SlotsOnly) serves clients that are not
// cluster-aware too. A command whose keys are all in one slot this node
// does not own goes to that slot's primary; one on a slot this node has
// just gained and is still filling (Node.ColdSlot) goes, after ASKING, to
// the co-owner that held it. The owner's reply is copied to the client
// byte for byte, in the client's protocol. MGET, MSET, DEL, UNLINK, EXISTS
// and TOUCH over several slots are split by owner (the keys kept here run
// here) and their replies merged in order; any other command over several
// slots is refused with -CROSSSLOT, unless this node keeps them all.
// Transactions and WATCH run here only: a queued command or a watched key
// this node does not keep is refused (the transaction is doomed).
//
// How: the forwarded commands of one read are queued per owner as the
// read is executed (a placeholder marks their place among the replies),
// and go out just before the replies are written (flush): one batch per
// owner, all owners at once, then their replies are spliced in order. A
// client pipelining 16 commands pays one round trip to each owner per
// read, not one per command; its commands to one owner run in their order
// (a protocol or acknowledgement change between them goes inline).
//
// The batches go on one shared connection per owner (forward_mux.go),
// where the batches of all clients are coalesced; a batch whose writes
// wait for other regions' acknowledgements (QUORUM, ALL) takes a
// connection of the owner's pool instead (at most fwdMaxConns, taken in
// the order of the owners' addresses so that two clients never wait for
// each other's, peeked before use). Every connection is authenticated with
// this server's own password (the members of a region share it), named
// geocache-forward, and told GEOCACHE REDIRECT, so that the owner answers
// as a Redis Cluster node (-MOVED or -ASK, never forwarding again): a
// forwarded command travels at most one hop, plus one more when the owner
// sends it on because the map moved meanwhile. A batch's replies have a
// deadline (fwdTimeout from when they are awaited, one second more per
// MiB of a large value, plus the acknowledgement timeout of a client
// waiting for QUORUM or ALL), and are bounded (fwdReplyLimit; their large
// values reserved from MaxClientBuffer until written): a batch over the
// bounds fails alone. A batch that surely never went out is answered, for
// each of its commands, "-TRYAGAIN forwarding to <addr> failed: ..."
// (clients retry it); one that failed after it may have been sent, "-ERR
// forwarding to <addr> failed after the command was sent (it may have
// run): ...".

const (
	fwdMaxConns    = 32              // pooled connections per owner
	fwdDialTimeout = 2 * time.Second // bound on opening a pooled connection
	fwdTimeout     = 5 * time.Second // bound on one exchange, beyond the acknowledgement wait
	fwdReplyFloor  = 256 << 20       // the least bound on one batch's replies
	fwdMaxDepth    = 32              // nesting of a reply the forwarder reads
)

// fwdMode is what a connection's replies depend on besides the command:
// the protocol, and the acknowledgement level of writes.
type fwdMode struct {
	proto      int
	ack        geocache.Ack
	ackTimeout time.Duration
}

// appendModeChange appends the requests that take a connection from mode
// from to mode to, and returns how many it appended (their replies are
// skipped).
func appendModeChange(dst []byte, from, to fwdMode) ([]byte, int) {
	n := 0
	if from.proto != to.proto {
		dst = appendRequest(dst, "HELLO", strconv.Itoa(to.proto))
		n++
	}
	if from.ack != to.ack || from.ackTimeout != to.ackTimeout {
		dst = appendRequest(dst, "GEOCACHE", "ACK", to.ack.String(), strconv.FormatInt(to.ackTimeout.Milliseconds(), 10))
		n++
	}
	return dst, n
}

// forwarder holds the server's pools of connections to the other members.
type forwarder struct {
	s      *Server
	mu     sync.Mutex
	closed bool
	pools  map[string]*fwdPool   // by owner address
	muxes  map[string]*fwdMux    // by owner address (forward_mux.go)
	open   map[*fwdConn]struct{} // every connection, idle or in use, for close
	wg     sync.WaitGroup        // the shared connections' goroutines
}

type fwdPool struct {
	addr  string
	slots chan struct{} // one token per connection open
	idle  chan *fwdConn
}

// fwdConn is a connection to an owner: pooled, or shared (forward_mux.go).
type fwdConn struct {
	addr string
	nc   net.Conn
	rd   *bufio.Reader
	mode fwdMode // set on it
}

var errFwdClosed = errors.New("server closing")

func newForwarder(s *Server) *forwarder {
	return &forwarder{s: s, pools: map[string]*fwdPool{}, muxes: map[string]*fwdMux{}, open: map[*fwdConn]struct{}{}}
}

// pool returns the pool of key, nil once the forwarder is closed. Pools of
// addresses no longer in the region's map are dropped as new ones come,
// so that they stay bounded by the members.
func (f *forwarder) pool(addr string) *fwdPool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	p := f.pools[addr]
	if p == nil {
		if len(f.pools) >= 16 || len(f.muxes) >= 16 {
			f.dropStaleLocked()
		}
		p = &fwdPool{addr: addr, slots: make(chan struct{}, fwdMaxConns), idle: make(chan *fwdConn, fwdMaxConns)}
		f.pools[addr] = p
	}
	return p
}

// dropStaleLocked closes the idle connections of the pools whose address is
// no longer a member's, and forgets those pools (connections in use are
// closed as they come back: put).
func (f *forwarder) dropStaleLocked() {
	m, _ := f.s.node.SlotMap()
	live := map[string]bool{}
	if m != nil {
		for _, mb := range m.Members() {
			live[mb.Addr] = true
		}
	}
	for addr, m := range f.muxes {
		if !live[addr] {
			delete(f.muxes, addr)
			close(m.stop)
		}
	}
	for addr, p := range f.pools {
		if live[addr] {
			continue
		}
		delete(f.pools, addr)
		for {
			select {
			case fc := <-p.idle:
				delete(f.open, fc)
				fc.nc.Close()
				<-p.slots
				continue
			default:
			}
			break
		}
	}
}

// get returns a connection of addr's pool: an idle one, a new one if the
// pool has room, or the first one freed before deadline.
func (f *forwarder) get(addr string, deadline time.Time) (*fwdPool, *fwdConn, error) {
	p := f.pool(addr)
	if p == nil {
		return nil, nil, errFwdClosed
	}
	for {
		select {
		case fc := <-p.idle:
			if f.alive(fc) {
				return p, fc, nil
			}
			f.put(p, fc, false)
			continue
		default:
		}
		break
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case fc := <-p.idle:
		if !f.alive(fc) {
			f.put(p, fc, false)
			return nil, nil, errors.New("pooled connection closed by the owner")
		}
		return p, fc, nil
	case p.slots <- struct{}{}:
		fc, err := f.dial(addr, deadline)
		if err != nil {
			<-p.slots
			return nil, nil, err
		}
		return p, fc, nil
	case <-t.C:
		return nil, nil, fmt.Errorf("all %d connections busy", fwdMaxConns)
	case <-f.s.ctx.Done():
		return nil, nil, errFwdClosed
	}
}

// put returns a connection to its pool, or closes it if the exchange on it
// failed (its replies may be out of step) or the forwarder is closed.
func (f *forwarder) put(p *fwdPool, fc *fwdConn, ok bool) {
	f.mu.Lock()
	keep := ok && !f.closed && f.pools[p.addr] == p
	if !keep {
		delete(f.open, fc)
	}
	f.mu.Unlock()
	if keep {
		select {
		case p.idle <- fc:
			return
		default: // cannot happen: idle holds every token's connection
		}
		f.mu.Lock()
		delete(f.open, fc)
		f.mu.Unlock()
	}
	fc.nc.Close()
	<-p.slots
}

// alive reports whether an idle pooled connection is still open: the
// owner may have closed it meanwhile (its idle timeout, a restart), and a
// request written to it would fail after it was sent. One peek at the
// socket (a system call) finds nothing (EAGAIN) on a live one.
func (f *forwarder) alive(fc *fwdConn) bool {
	if fc.rd.Buffered() > 0 {
		return false // bytes nobody asked for: out of step
	}
	sc, ok := fc.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN
		return true
	})
	return alive
}

// dial opens a connection to an owner and prepares it: authenticated with
// this server's password, named, answering as a Redis Cluster node
// (GEOCACHE REDIRECT), in RESP2 and with writes acknowledged LOCAL (the
// batches set what they need). Close closes it even while it is prepared.
func (f *forwarder) dial(addr string, deadline time.Time) (*fwdConn, error) {
	d := net.Dialer{Deadline: deadline, Timeout: fwdDialTimeout}
	nc, err := d.DialContext(f.s.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	fc := &fwdConn{addr: addr, nc: nc, rd: bufio.NewReaderSize(nc, 16<<10), mode: fwdMode{proto: 2, ack: geocache.Local, ackTimeout: DefaultAckTimeout}}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		nc.Close()
		return nil, errFwdClosed
	}
	f.open[fc] = struct{}{}
	f.mu.Unlock()
	var req []byte
	n := 0
	if pass := f.s.fwdPass.Load(); pass != nil {
		req = appendRequest(req, "AUTH", *pass)
		n++
	}
	req = appendRequest(req, "CLIENT", "SETNAME", "geocache-forward")
	req = appendRequest(req, "GEOCACHE", "REDIRECT")
	n += 2
	hs := time.Now().Add(fwdDialTimeout)
	if deadline.Before(hs) {
		hs = deadline
	}
	nc.SetDeadline(hs)
	limit := fwdLimit{left: fwdReplyFloor}
	err = fc.exchange(req, n, func(i int, reply []byte) error {
		if len(reply) > 0 && reply[0] == '-' {
			return fmt.Errorf("handshake refused: %s", trimCRLF(reply[1:]))
		}
		return nil
	}, &limit)
	if err != nil {
		f.mu.Lock()
		delete(f.open, fc)
		f.mu.Unlock()
		nc.Close()
		return nil, err
	}
	return fc, nil
}

// exchange writes req, then reads n replies, handing each to each (whose
// slice is valid until the next one). limit bounds the replies' bytes.
func (fc *fwdConn) exchange(req []byte, n int, each func(i int, reply []byte) error, limit *fwdLimit) error {
	if _, err := fc.nc.Write(req); err != nil {
		return err
	}
	var buf []byte
	for i := range n {
		var err error
		buf, err = readRawReply(fc.rd, buf[:0], limit, 0)
		if err != nil {
			return err
		}
		if err := each(i, buf); err != nil {
			return err
		}
	}
	return nil
}

// close closes every connection; exchanges in progress fail at once. The
// shared connections' goroutines end (wait waits for them).
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	for fc := range f.open {
		fc.nc.Close()
	}
	f.mu.Unlock()
}

func (f *forwarder) wait() { f.wg.Wait() }

// forget drops a closed connection from the set close closes.
func (f *forwarder) forget(fc *fwdConn) {
	f.mu.Lock()
	delete(f.open, fc)
	f.mu.Unlock()
}

// appendRequest appends a command in RESP's request form.
func appendRequest[T string | []byte](dst []byte, args ...T) []byte {
	dst = appendArray(dst, len(args))
	for _, a := range args {
		dst = appendPrefix(dst, '$', int64(len(a)))
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

func trimCRLF(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}

// errReplyLimit: a reply too large to follow; the connection is dropped.
// errBatchOver: a batch's replies went over its limits and were dropped
// past that point, the connection still in step: the batch alone fails.
var (
	errReplyLimit = errors.New("replies over the forwarding limit")
	errBatchOver  = errors.New("replies over the forwarding limit (or the server's client buffer budget)")
)

// fwdLimit bounds the replies read for one batch: left bytes in all, and
// the large values among them are reserved from the server's
// MaxClientBuffer (held counts them; the connection releases them once
// written).
//
// Once over the limits (over), the rest of the batch's replies are still
// parsed, to keep the connection in step, but dropped: the batch alone
// fails. A large value also moves the read deadline (grow), one second
// for every MiB, so that a value arriving at 1 MiB/s is never cut.
type fwdLimit struct {
	left int
	s    *Server
	held int
	over bool
	nc   net.Conn // whose read deadline a large value moves; nil: none
}

// grow gives n more bytes their time on the connection.
func (l *fwdLimit) grow(n int64) {
	if l.nc != nil && n >= streamAt {
		l.nc.SetReadDeadline(time.Now().Add(fwdTimeout + time.Duration(n>>20)*time.Second))
	}
}

// take counts n bytes of a reply, false if they are over the limits.
func (l *fwdLimit) take(n int64) bool {
	if l.over || n > int64(l.left) {
		return false
	}
	if l.s != nil && n >= streamAt {
		if !l.s.reserveBuf(int(n), l.s.cfg.MaxClientBuffer) {
			return false
		}
		l.held += int(n)
	}
	l.left -= int(n)
	return true
}

// readRawReply appends one whole RESP2 or RESP3 reply read from rd to dst, as
// it came. limit bounds what it reads; depth is the nesting so far.
func readRawReply(rd *bufio.Reader, dst []byte, limit *fwdLimit, depth int) ([]byte, error) {
	if depth > fwdMaxDepth {
		return dst, errors.New("reply nested too deep")
	}
	start := len(dst)
	dst, err := readLine(rd, dst, limit)
	if err != nil {
		return dst, err
	}
	line := dst[start : len(dst)-2]
	if len(line) == 0 {
		return dst, errors.New("empty reply line")
	}
	kind := line[0]
	n, ok := int64(0), true
	if kind != '+' && kind != '-' && kind != ',' && kind != '#' && kind != '_' && kind != '(' {
		n, ok = parseInt(line[1:])
	}
	if limit.over {
		dst = dst[:start] // dropped: only the stream's step matters
	}
	switch kind {
	case '+', '-', ',', '#', '_', '(':
		return dst, nil
	case ':':
		if !ok {
			return dst, fmt.Errorf("bad integer %q", line)
		}
		return dst, nil
	case '$', '=', '!':
		if !ok || n < -1 {
			return dst, fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return dst, nil
		}
		if n > 1<<31 { // larger than any request or value: not followed
			return dst, errReplyLimit
		}
		limit.grow(n)
		if limit.over || n > int64(limit.left) || !limit.take(n+2) {
			limit.over = true
			dst = dst[:min(start, len(dst))]
			if _, err := rd.Discard(int(n + 2)); err != nil {
				return dst, err
			}
			return dst, nil
		}
		at := len(dst)
		dst = append(dst, make([]byte, n+2)...)
		if _, err := io.ReadFull(rd, dst[at:]); err != nil {
			return dst, err
		}
		return dst, nil
	case '*', '~', '>', '%', '|':
		if !ok || n < -1 {
			return dst, fmt.Errorf("bad aggregate length %q", line)
		}
		if n > int64(limit.left)/2 { // each element takes 3 bytes at least
			return dst, errReplyLimit // more than the batch could hold: the stream is not followed
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		for range n {
			if dst, err = readRawReply(rd, dst, limit, depth+1); err != nil {
				return dst, err
			}
		}
		if kind == '|' { // an attribute precedes the reply it describes
			return readRawReply(rd, dst, limit, depth+1)
		}
		return dst, nil
	}
	return dst, fmt.Errorf("unknown reply type %q", line[0])
}

// readLine appends one line, CRLF included, counting it against limit.
func readLine(rd *bufio.Reader, dst []byte, limit *fwdLimit) ([]byte, error) {
	for {
		b, err := rd.ReadSlice('\n')
		if len(b) > limit.left {
			return dst, errReplyLimit
		}
		if !limit.over {
			limit.left -= len(b)
		}
		dst = append(dst, b...)
		switch {
		case err == nil:
			if len(dst) < 2 || dst[len(dst)-2] != '\r' {
				return dst, errors.New("reply line not ended by CRLF")
			}
			return dst, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return dst, err
		}
	}
}

// fwdReplyLimit bounds the bytes of the replies of one batch.
func (s *Server) fwdReplyLimit() int {
	return max(fwdReplyFloor, 2*s.cfg.MaxBulkBytes)
}
