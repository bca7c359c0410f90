package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geocache/geocache"
)

const (
	readBufSize = 8 << 10  // a connection's read buffer at rest
	flushAt     = 64 << 10 // replies are written out once this many bytes wait
	outKeep     = 64 << 10 // a reply buffer grown past this is dropped after a flush
	sideBufSize = 4 << 10  // bytes read ahead while a client is blocked in WAIT
	// pipeBufMax is the largest read buffer a pipeline grows (pipeline.go);
	// only a single larger request grows it further.
	pipeBufMax = 64 << 10
	// streamAt is the size from which a stored value is written to the
	// socket from its own bytes, in writeChunk pieces, rather than copied
	// into out (replyValue).
	streamAt   = 256 << 10
	writeChunk = 1 << 20
)

// conn is one client connection. Its goroutine (serve) owns everything but
// the fields under mu, which CLIENT LIST reads from other connections.
type conn struct {
	s       *Server
	nc      net.Conn
	id      int64
	created time.Time
	// killed is set by CLIENT KILL: the connection is gone for the
	// clients' commands (CLIENT LIST, CLIENT KILL), as a freed client is
	// in Redis, while its goroutine finishes leaving.
	killed atomic.Bool

	rd   *reader
	buf  []byte // bytes read; buf[r:w] are not consumed yet
	r, w int
	rerr error // the read error that ends the connection, once seen
	side []byte

	out   []byte // replies not yet written
	werr  error  // the first write error; the connection ends
	resp3 bool
	quit  bool
	// big are the large values of the replies in out, each to go out
	// after out[:at] (replyValue).
	big []bigValue

	sess         *geocache.Session
	authed       bool      // AUTH succeeded, or no password was set when the connection began (needAuth)
	authSince    time.Time // when the authentication timeout started: the connection, or its last RESET
	unauthUsed   int       // bytes received before authenticating
	authFails    int       // failed AUTH attempts (guard.go)
	certVerified bool
	ackTimeout   time.Duration

	held     int       // bytes of buf beyond readBufSize, taken from MaxClientBuffer
	lastRead time.Time // when the last read brought bytes: the batch's one clock reading
	reqStart time.Time // when the first byte of the incomplete request at buf[r:w] arrived; zero if none
	deadline deadlineKind
	pipe     pipeSize // the read buffer's size for the client's pipeline (pipeline.go)

	// Deadlines armed on nc (deadline.go); zero: none.
	rdl, wdl time.Time
	// lazyWrite: a write that times out on an early deadline can be
	// retried (not over TLS, whose writes cannot be resumed after a
	// timeout).
	lazyWrite bool
	lastFlush time.Time // when replies were last written; kept only with an IdleTimeout

	// tick is where the next command's timing starts (latency.go): when
	// its batch was read, or when the previous command ended.
	tick time.Duration

	// Raw reads (rawread.go): raw is the socket's RawConn (plain TCP
	// only); inRaw is set while batches run inside a raw read; rawLeave
	// ends the raw read before a command that must not run inside it
	// (left unconsumed), keepTick keeps the batch's timing for it; ended
	// says the connection must close once the raw read returns.
	raw                              syscall.RawConn
	rawFn                            func(fd uintptr) bool // rawStep, bound once
	rawState                         atomic.Int32          // rawOut, rawIn or rawClosed
	skipped                          atomic.Bool           // a read was skipped and not verified since (verifyRawReads)
	inRaw, rawLeave, keepTick, ended bool

	lastActive atomic.Int64 // Unix ns of the last read
	proto      atomic.Int32 // 2 or 3: resp3 for other goroutines (CLIENT LIST)

	// ps is the connection's pub/sub state (pubsub_cmds.go), nil until it
	// first subscribes; while ps.q is set, flush queues the replies for
	// the writer goroutine instead of writing them.
	ps *pubsubState

	// Transactions (multi.go): the open one, the watched keys, whether
	// EXEC is running the queue; and run's buffers for the keys and lock
	// stripes of a command.
	tx        *txState
	watched   []watchedKey
	inExec    bool
	running   atomic.Bool // a command with keys runs without their stripes (keyLocks.enter)
	keyBuf    [][]byte
	stripeBuf []uint32
	// subs is the number of its subscriptions, for other goroutines
	// (CLIENT LIST) and the checks of subscribed mode.
	subs atomic.Int32

	// reading is set while the serve goroutine owns the socket's reads
	// (not during the TLS handshake, nor while a watcher reads during a
	// blocking command): pokeReaders may then move its read deadline.
	reading atomic.Bool

	// Error replies so far, and their count when the command now running
	// began (commandstats' failed_calls: run).
	errs, errMark uint64
	// asking is set by ASKING for the next command (redirect.go).
	asking bool
	// redirect: GEOCACHE REDIRECT asked -MOVED and -ASK rather than
	// forwarding (Config.Forward); fwd holds the forwarded commands of
	// the batch running, and capture keeps the replies of a split
	// command's local part in out (forward_conn.go).
	redirect, capture bool
	fwd               *fwdState
	fwdHeld           int // bytes of forwarded replies reserved from MaxClientBuffer until written

	// CLIENT REPLY (ops_cmds.go): replyOff drops every reply until CLIENT
	// REPLY ON; skipNext drops the next command's, skipThis the running
	// one's. While mute, what a command appends to out beyond muteAt is
	// dropped (pushes excepted: confirm).
	replyOff, skipNext, skipThis, mute bool
	muteAt                             int

	// noted is the command lastCmd names, for the connection's goroutine
	// alone (noteCommand).
	noted *command

	mu      sync.Mutex
	name    string
	libName string
	libVer  string
	lastCmd string
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s: s, nc: nc, id: s.nextID.Add(1), created: time.Now(),
		rd:         newReader(s.cfg.MaxArgs, s.cfg.MaxBulkBytes),
		buf:        make([]byte, readBufSize),
		out:        make([]byte, 0, 1024),
		sess:       s.node.NewSession(),
		authed:     !s.passwordSet(),
		ackTimeout: DefaultAckTimeout,
		pipe:       pipeSize{want: readBufSize},
	}
	_, isTLS := nc.(*tls.Conn)
	c.lazyWrite = !isTLS
	c.raw = rawConnOf(nc)
	c.rawFn = c.rawStep
	c.authSince = c.created
	c.lastActive.Store(c.created.UnixNano())
	c.proto.Store(2)
	return c
}

// serve reads, executes and answers commands until the client leaves, a
// request breaks the protocol or a limit, or the server closes.
func (c *conn) serve() {
	defer c.s.dropConn(c)
	if !c.handshake() || c.denyProtected() {
		return
	}
	c.reading.Store(true)
	for {
		ok := c.process()
		if !c.flush() || !ok {
			return
		}
		if c.rerr != nil {
			c.logEnd()
			return
		}
		c.fill()
		if c.ended {
			return
		}
	}
}

func (c *conn) logEnd() {
	var ne net.Error
	switch {
	case errors.Is(c.rerr, io.EOF), errors.Is(c.rerr, net.ErrClosed):
	case errors.Is(c.rerr, os.ErrDeadlineExceeded) || (errors.As(c.rerr, &ne) && ne.Timeout()):
		c.timedOut()
	default:
		c.s.cfg.Logger.Debug("resp: client connection ended", "remote", c.nc.RemoteAddr(), "id", c.id, "err", c.rerr)
	}
}

// process executes every complete command in the buffer. It returns false
// if the connection must close (after its replies are flushed).
func (c *conn) process() bool {
	if c.keepTick {
		c.keepTick = false // the batch's command left unconsumed by a raw read (rawread.go)
	} else {
		c.tick = c.batchTick()
	}
	ran := 0
	defer func() { c.pipe.executed(ran) }()
	for {
		if c.inRaw && c.rawState.Load() == rawClosed {
			return false // closed by another goroutine (closeSocket): run nothing more
		}
		if len(c.side) > 0 && !c.takeSide() {
			return false
		}
		limit := c.s.cfg.MaxRequestBytes
		unauth := c.needAuth()
		if unauth {
			limit = min(limit, c.s.cfg.UnauthLimit-c.unauthUsed)
		}
		args, n, err := c.rd.next(c.buf[c.r:c.w], limit)
		if err != nil {
			c.protocolError(err, unauth && limit < c.s.cfg.MaxRequestBytes)
			return false
		}
		if n == 0 {
			return true
		}
		if c.inRaw && len(args) > 0 && (mayBlock(args) || c.sess.Ack() != geocache.Local) {
			c.rawLeave, c.keepTick = true, true // the plain loop runs it (rawread.go)
			return true
		}
		c.rawLeave = false
		c.r += n
		c.reqStart = time.Time{} // a request completed: the next one's clock starts with its first byte
		if unauth {
			c.unauthUsed += n
		}
		if len(args) == 0 {
			continue
		}
		ran++
		c.exec(args)
		if c.quit || c.werr != nil {
			return false
		}
		if len(c.out) >= flushAt || len(c.big) > 0 {
			// A large value goes out as soon as its command has ended
			// (no longer counted running by EXEC, nor holding stripes).
			if !c.flush() {
				return false
			}
			c.tick = monoNow() // the write is not the next command's time
		}
	}
}

func (c *conn) protocolError(err error, unauthLimit bool) {
	var pe *protoError
	if !errors.As(err, &pe) {
		c.replyError("ERR Protocol error: " + err.Error())
		return
	}
	msg := "ERR " + pe.Error()
	switch {
	case pe.tooLarge && unauthLimit:
		msg = "ERR Protocol error: unauthenticated client sent more than " + strconv.Itoa(c.s.cfg.UnauthLimit) + " bytes; AUTH first"
	case pe.tooLarge:
		msg = "ERR Protocol error: request over the limit of " + strconv.Itoa(c.s.cfg.MaxRequestBytes) + " bytes"
	}
	if pe.limit || unauthLimit {
		c.s.rejectedReqs.Add(1)
		attrs := []any{"remote", c.nc.RemoteAddr(), "id", c.id, "error", msg}
		if pe.detail != "" {
			attrs = append(attrs, "detail", pe.detail)
		}
		c.s.logLimit("resp: request over a limit; closing the connection", attrs...)
	} else {
		c.s.cfg.Logger.Debug("resp: protocol error; closing the connection", "remote", c.nc.RemoteAddr(), "id", c.id, "error", msg)
	}
	c.replyError(msg)
}

// fill makes room in the buffer and reads once. A read error is kept in
// rerr; bytes read with it are still processed. The clock is read once per
// read that brings bytes: that reading is the batch's time for the
// deadlines, CLIENT LIST and the command latencies.
func (c *conn) fill() {
	if c.rawState.Load() == rawClosed {
		c.rerr = net.ErrClosed // closed by another goroutine (closeSocket)
		return
	}
	if !c.makeRoom() {
		return
	}
	if c.raw != nil && c.rawEligible() {
		c.fillRaw()
		return
	}
	c.verified() // this read is a real one (rawread.go)
	for {
		c.armRead()
		free := len(c.buf) - c.w
		n, err := c.nc.Read(c.buf[c.w:])
		if n > 0 {
			c.gotBytes(n, free)
		}
		if err != nil && n == 0 && isTimeout(err) && !c.readDue() {
			continue // a deadline armed for an earlier bound passed; the next one is re-armed
		}
		if err != nil {
			c.rerr = err
		}
		return
	}
}

// gotBytes records a read of n bytes into free bytes of the buffer: the
// batch's one clock reading, and the pipeline's size.
func (c *conn) gotBytes(n, free int) {
	c.w += n
	c.lastRead = time.Now()
	c.lastActive.Store(c.lastRead.UnixNano())
	c.pipe.read(n, free, len(c.buf))
}

// makeRoom prepares the read buffer for the next read: it drops what a
// large request or a longer pipeline grew, compacts, and grows it for the
// rest of an incomplete request. It returns false if the connection must
// end instead (rerr is set, and the client answered if need be).
func (c *conn) makeRoom() bool {
	if c.r == c.w {
		c.r, c.w = 0, 0
		c.reqStart = time.Time{}
		if len(c.buf) > c.pipe.want {
			c.resize(c.pipe.want) // drop what one large request or a longer pipeline grew
		}
	} else {
		if c.reqStart.IsZero() {
			c.reqStart = c.lastRead // the incomplete request's first bytes came with the last read
		}
		if len(c.buf) > c.pipe.want && c.w-c.r <= c.pipe.want/2 && c.rd.need() <= c.pipe.want {
			// A client that always leaves part of a command for the next
			// read must not keep what one large request grew.
			c.resize(c.pipe.want)
		}
	}
	if len(c.buf) < c.pipe.want && !c.resizeWithin(c.pipe.want, c.s.cfg.MaxClientBuffer/2) {
		c.pipe.refused(len(c.buf)) // no budget for a longer pipeline: read it in parts
	}
	if c.w == len(c.buf) {
		if c.r > 0 {
			copy(c.buf, c.buf[c.r:c.w])
			c.w -= c.r
			c.r = 0
		}
	}
	if c.w == len(c.buf) {
		// The buffer holds part of one request. It grows by doubling, up
		// to what the request is known to need, never in one step to a
		// length the client only announced: a client must send the bytes
		// it makes the server hold. The reader checks every length
		// against the limits before it waits for more, so an incomplete
		// request is never larger than MaxRequestBytes (plus one header
		// line).
		size := 2 * len(c.buf)
		if need := c.rd.need(); need > len(c.buf) {
			size = min(size, need)
		}
		size = min(size, c.s.cfg.MaxRequestBytes+readBufSize)
		if size <= len(c.buf) {
			// Cannot happen: the buffer always has room for the rest of
			// a request within the limits. Fail closed rather than spin.
			c.rerr = errBufferFull
			return false
		}
		if !c.resize(size) {
			c.bufferRefused()
			return false
		}
	}
	return true
}

// resize replaces the read buffer by one of size bytes, keeping its
// unconsumed bytes (at its start: the caller compacts), and accounts for
// it in MaxClientBuffer. It returns false, changing nothing, if the budget
// cannot give the bytes.
func (c *conn) resize(size int) bool {
	return c.resizeWithin(size, c.s.cfg.MaxClientBuffer)
}

// resizeWithin is resize where the buffers of all clients may hold at
// most limit bytes of MaxClientBuffer afterwards.
func (c *conn) resizeWithin(size int, limit int64) bool {
	held := max(size-readBufSize, 0)
	if held > c.held && !c.s.reserveBuf(held-c.held, limit) {
		return false
	}
	c.s.releaseBuf(c.held - held)
	c.held = held
	nb := make([]byte, size)
	copy(nb, c.buf[c.r:c.w])
	c.w -= c.r
	c.r = 0
	c.buf = nb
	return true
}

// releaseHeld gives the connection's share of MaxClientBuffer back.
func (c *conn) releaseHeld() {
	c.s.releaseBuf(c.held)
	c.held = 0
}

var errBufferFull = errors.New("resp: read buffer full")

// errClientBuffer ends a connection whose request needs more of
// MaxClientBuffer than is left.
var errClientBuffer = errors.New("resp: max-client-buffer reached")

// bufferRefused answers a connection that cannot grow its buffer within
// MaxClientBuffer, and ends it. Refusing rather than waiting for other
// connections to free bytes means no set of connections can wait on each
// other.
func (c *conn) bufferRefused() {
	c.s.rejectedReqs.Add(1)
	c.s.logLimit("resp: max-client-buffer reached; closing the connection", "remote", c.nc.RemoteAddr(), "id", c.id,
		"max_client_buffer", c.s.cfg.MaxClientBuffer, "held", c.s.bufBytes.Load())
	c.replyError("ERR max-client-buffer reached")
	c.rerr = errClientBuffer
	c.quit = true
}

// deadlineKind is which bound a connection's read deadline enforces.
type deadlineKind uint8

const (
	deadlineNone deadlineKind = iota
	deadlineIdle
	deadlineAuth
	deadlineRequest
)

// timedOut ends a connection whose read deadline passed: silently for the
// idle timeout, as Redis; with an error for the others.
func (c *conn) timedOut() {
	var msg string
	switch c.deadline {
	case deadlineAuth:
		msg = "ERR Protocol error: not authenticated within " + c.s.cfg.AuthTimeout.String()
	case deadlineRequest:
		msg = "ERR Protocol error: request not completed within " + c.requestAllowance().Round(time.Millisecond).String()
	default:
		c.s.cfg.Logger.Debug("resp: closing idle client", "remote", c.nc.RemoteAddr(), "id", c.id)
		return
	}
	c.s.rejectedReqs.Add(1)
	c.s.logLimit("resp: client too slow; closing the connection", "remote", c.nc.RemoteAddr(), "id", c.id, "error", msg)
	c.replyError(msg)
	c.flush()
}

// takeSide appends the bytes read ahead during a blocking command to the
// buffer. It returns false if the buffer could not grow within
// MaxClientBuffer (the connection is then answered and ends).
func (c *conn) takeSide() bool {
	if len(c.buf)-c.w < len(c.side) {
		copy(c.buf, c.buf[c.r:c.w])
		c.w -= c.r
		c.r = 0
		if len(c.buf)-c.w < len(c.side) && !c.resize(c.w+len(c.side)+readBufSize) {
			c.side = c.side[:0]
			c.bufferRefused()
			return false
		}
	}
	c.w += copy(c.buf[c.w:], c.side)
	c.side = c.side[:0]
	return true
}

// flush writes the pending replies, with one write, or, while the
// connection has an output queue (it is subscribed), queues them for its
// writer. It returns false once a write failed or the queue died.
func (c *conn) flush() bool {
	if c.capture {
		return c.werr == nil // a split command's local part: its replies are kept (forward_conn.go)
	}
	if c.mute {
		// The running command's replies so far are dropped; the earlier
		// ones go out.
		c.out = c.out[:min(c.muteAt, len(c.out))]
		c.muteAt = 0
	}
	c.resolveForwards()
	if len(c.big) > 0 && (c.ps != nil && c.ps.q != nil || c.big[len(c.big)-1].at > len(c.out)) {
		c.inlineBig() // cannot happen (see replyValue); fail safe
	}
	if c.ps != nil && c.ps.q != nil {
		ok := c.queueOut()
		c.releaseFwdHeld() // queued bytes are counted by the pub/sub limits
		return ok
	}
	if len(c.out) > 0 && c.werr == nil { // a value in big has its prefix in out
		c.werr = c.writeBig() // out in one write when big is empty
		if c.s.idle() > 0 {
			c.lastFlush = time.Now() // idleness counts from here, as it did from the next read's start
		}
	}
	if len(c.big) > 0 {
		clear(c.big) // do not keep the values alive
		c.big = c.big[:0]
	}
	if cap(c.out) > outKeep {
		c.out = make([]byte, 0, 1024)
	} else {
		c.out = c.out[:0]
	}
	c.releaseFwdHeld()
	return c.werr == nil
}

// releaseFwdHeld gives back the MaxClientBuffer bytes of the forwarded
// replies written (or dropped).
func (c *conn) releaseFwdHeld() {
	if c.fwdHeld > 0 {
		c.s.releaseBuf(c.fwdHeld)
		c.fwdHeld = 0
	}
}

// bigValue is a large value of a reply, written after out[:at].
type bigValue struct {
	at int
	v  []byte
}

// writeBig writes out with the values of big in their places: the bytes
// of out before each value, then the value in writeChunk pieces, each
// with its own write bound (write), so a client that reads a long reply
// slowly but steadily is not closed for it, while one that stops reading
// is, as for any write.
func (c *conn) writeBig() error {
	prev := 0
	for _, b := range c.big {
		if b.at > prev {
			if err := c.write(c.out[prev:b.at]); err != nil {
				return err
			}
		}
		for v := b.v; len(v) > 0; {
			n := min(len(v), writeChunk)
			if err := c.write(v[:n]); err != nil {
				return err
			}
			v = v[n:]
		}
		prev = b.at
	}
	if prev < len(c.out) {
		return c.write(c.out[prev:])
	}
	return nil
}

// inlineBig copies the values of big into out, in their places (those
// whose place was cut off with the replies around them are dropped).
func (c *conn) inlineBig() {
	var out []byte
	prev := 0
	for _, b := range c.big {
		if b.at > len(c.out) {
			break
		}
		out = append(append(out, c.out[prev:b.at]...), b.v...)
		prev = b.at
	}
	c.out = append(out, c.out[prev:]...)
	clear(c.big)
	c.big = c.big[:0]
}

// flushIfFull writes the pending replies out if many are waiting, so that a
// long reply (MGET of many large values) never needs a buffer of its size.
func (c *conn) flushIfFull() {
	if len(c.out) >= flushAt && !c.capture {
		c.flush()
	}
}

// closeRaw closes the connection's socket under its TLS layer, if any,
// without a word to the client: the goroutines reading and writing it
// return at once, and unlike tls.Conn.Close it never waits to send a
// close_notify. A plain TCP connection inside a raw read is closed by its
// own goroutine instead (closeSocket, rawread.go). Safe from any goroutine;
// it never waits for the connection.
func (c *conn) closeRaw() {
	if c.raw != nil {
		c.closeSocket() // Close would wait for a raw read in progress (rawread.go)
		return
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		tc.NetConn().Close()
		return
	}
	c.nc.Close()
}

// aLongTimeAgo is a deadline in the past, which makes a blocked Read
// return at once.
var aLongTimeAgo = time.Unix(1, 0)

// block runs fn, which blocks in the node (WAIT), while another goroutine
// watches the socket: if the client goes away, fn's context is canceled,
// as Redis unblocks a client that disconnects. Bytes the client sends
// meanwhile (the next commands of a pipeline) are kept, up to sideBufSize;
// beyond that the watcher stops reading until fn returns.
func (c *conn) block(ctx context.Context, fn func(ctx context.Context)) {
	c.flush() // the replies before a blocking command go out now, as in Redis
	// Whatever it changed is done: a transaction need not wait for the
	// wait (keyLocks.beginTx).
	c.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.s.blocked.Add(1)
	defer c.s.blocked.Add(-1)
	c.reading.Store(false) // the watcher's reads are not pokeReaders' business
	defer c.reading.Store(true)
	if c.side == nil {
		c.side = make([]byte, 0, sideBufSize)
	}
	c.setReadDeadline(time.Time{})
	done := make(chan struct{})
	var stop atomic.Bool // set before the deadline that ends the watcher
	go func() {
		defer close(done)
		for len(c.side) < cap(c.side) {
			n, err := c.nc.Read(c.side[len(c.side):cap(c.side)])
			c.side = c.side[:len(c.side)+n]
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					c.rerr = err
					cancel()
					return
				}
				if stop.Load() {
					return
				}
				// A poke of another goroutine (pokeReaders, the raw
				// reads' verifier) that came as the wait began: keep
				// watching. Looking at stop again after clearing the
				// deadline: if block set it meanwhile, its deadline came
				// after this one and the next read returns at once.
				c.nc.SetReadDeadline(time.Time{})
				if stop.Load() {
					return
				}
			}
		}
	}()
	fn(ctx)
	stop.Store(true)
	c.nc.SetReadDeadline(aLongTimeAgo)
	<-done
	c.setReadDeadline(time.Time{})
	if c.rerr != nil {
		c.quit = true // the client is gone: nobody reads the reply
	}
}

// Replies. Each appends to c.out.

func (c *conn) replyOK()             { c.out = append(c.out, "+OK\r\n"...) }
func (c *conn) replySimple(s string) { c.out = appendSimple(c.out, s) }
func (c *conn) replyInt(n int64)     { c.out = appendInt(c.out, n) }
func (c *conn) replyBulk(b []byte)   { c.out = appendBulk(c.out, b) }

// replyValue replies with a value held by the node (or a slice of one),
// as replyBulk. A value of streamAt bytes or more is not copied: its
// reference waits in big, and it goes out from the node's own bytes once
// the command has ended (process flushes then), or sooner if the command
// fills out (flushIfFull). So a GET of a 512 MiB value needs no buffer of
// its size: a client sending a few bytes cannot make the server copy a
// large value per request. v must not change until it is written; the node
// never modifies a value in place (Node.GetShared). Values are copied as
// before while the command's replies may yet be dropped or replaced
// (CLIENT REPLY OFF or SKIP, EXEC) or are queued for a subscriber's writer.
func (c *conn) replyValue(v []byte) {
	if len(v) < streamAt || c.mute || c.inExec || c.capture || c.ps != nil && c.ps.q != nil {
		c.out = appendBulk(c.out, v)
		return
	}
	c.out = appendPrefix(c.out, '$', int64(len(v)))
	c.big = append(c.big, bigValue{at: len(c.out), v: v})
	c.out = append(c.out, '\r', '\n')
}

func (c *conn) replyBulkString(s string) {
	c.out = appendBulkString(c.out, s)
}
func (c *conn) replyNull()             { c.out = appendNull(c.out, c.resp3) }
func (c *conn) replyNullArray()        { c.out = appendNullArray(c.out, c.resp3) }
func (c *conn) replyArray(n int)       { c.out = appendArray(c.out, n) }
func (c *conn) replyMap(n int)         { c.out = appendMap(c.out, n, c.resp3) }
func (c *conn) replySet(n int)         { c.out = appendSet(c.out, n, c.resp3) }
func (c *conn) replyVerbatim(s string) { c.out = appendVerbatim(c.out, s, c.resp3) }

// replyError sends an error reply; msg starts with its code ("ERR ...").
func (c *conn) replyError(msg string) {
	c.countError(msg)
	c.out = appendError(c.out, msg)
}

// countError counts an error reply (INFO errorstats, the command's failed
// calls) whose text starts with msg's code; replyError and the replies
// built in place (-MOVED) call it.
func (c *conn) countError(msg string) {
	c.s.errors.Add(1)
	c.s.errStats.count(msg)
	c.errs++
}
