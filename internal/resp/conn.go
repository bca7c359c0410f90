package resp

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache"
)

const (
	readBufSize = 8 << 10  // a connection's read buffer at rest
	flushAt     = 64 << 10 // replies are written out once this many bytes wait
	outKeep     = 64 << 10 // a reply buffer grown past this is dropped after a flush
	sideBufSize = 4 << 10  // bytes read ahead while a client is blocked in WAIT
)

// conn is one client connection. Its goroutine (serve) owns everything but
// the fields under mu, which CLIENT LIST reads from other connections.
type conn struct {
	s       *Server
	nc      net.Conn
	id      int64
	created time.Time

	rd   *reader
	buf  []byte // bytes read; buf[r:w] are not consumed yet
	r, w int
	rerr error // the read error that ends the connection, once seen
	side []byte

	out   []byte // replies not yet written
	werr  error  // the first write error; the connection ends
	resp3 bool
	quit  bool

	sess       *geocache.Session
	authed     bool
	unauthUsed int // bytes received before authenticating
	ackTimeout time.Duration

	lastActive atomic.Int64 // Unix ns of the last read
	proto      atomic.Int32 // 2 or 3: resp3 for other goroutines (CLIENT LIST)

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
		authed:     s.cfg.RequirePass == "",
		ackTimeout: DefaultAckTimeout,
	}
	c.lastActive.Store(c.created.UnixNano())
	c.proto.Store(2)
	return c
}

// serve reads, executes and answers commands until the client leaves, a
// request breaks the protocol or a limit, or the server closes.
func (c *conn) serve() {
	defer c.s.dropConn(c)
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
	}
}

func (c *conn) logEnd() {
	var ne net.Error
	switch {
	case errors.Is(c.rerr, io.EOF), errors.Is(c.rerr, net.ErrClosed):
	case errors.Is(c.rerr, os.ErrDeadlineExceeded) || (errors.As(c.rerr, &ne) && ne.Timeout()):
		c.s.cfg.Logger.Debug("resp: closing idle client", "remote", c.nc.RemoteAddr(), "id", c.id)
	default:
		c.s.cfg.Logger.Debug("resp: client connection ended", "remote", c.nc.RemoteAddr(), "id", c.id, "err", c.rerr)
	}
}

// process executes every complete command in the buffer. It returns false
// if the connection must close (after its replies are flushed).
func (c *conn) process() bool {
	for {
		if len(c.side) > 0 {
			c.takeSide()
		}
		limit := c.s.cfg.MaxRequestBytes
		unauth := !c.authed
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
		c.r += n
		if unauth {
			c.unauthUsed += n
		}
		if len(args) == 0 {
			continue
		}
		c.exec(args)
		if c.quit || c.werr != nil {
			return false
		}
		if len(c.out) >= flushAt && !c.flush() {
			return false
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
		c.s.logLimit("resp: request over a limit; closing the connection", "remote", c.nc.RemoteAddr(), "id", c.id, "error", msg)
	} else {
		c.s.cfg.Logger.Debug("resp: protocol error; closing the connection", "remote", c.nc.RemoteAddr(), "id", c.id, "error", msg)
	}
	c.replyError(msg)
}

// fill makes room in the buffer and reads once. A read error is kept in
// rerr; bytes read with it are still processed.
func (c *conn) fill() {
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.buf) > readBufSize {
			c.buf = make([]byte, readBufSize) // drop what one large request grew
		}
	}
	need := c.rd.need()
	if c.w == len(c.buf) || c.r+need > len(c.buf) {
		if c.r > 0 {
			copy(c.buf, c.buf[c.r:c.w])
			c.w -= c.r
			c.r = 0
		}
		size := len(c.buf)
		switch {
		case need > size:
			size = need
		case c.w == size:
			// The reader checks every length against the limits before it
			// waits for more, so an incomplete request is never larger
			// than MaxRequestBytes (plus one header line).
			size = min(2*size, c.s.cfg.MaxRequestBytes+readBufSize)
		}
		if size > len(c.buf) {
			nb := make([]byte, size)
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
	}
	if c.w == len(c.buf) {
		// Cannot happen: the buffer always has room for the rest of a
		// request within the limits. Fail closed rather than spin.
		c.rerr = errBufferFull
		return
	}
	if d := c.s.cfg.IdleTimeout; d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if err != nil {
		c.rerr = err
	}
	if n > 0 {
		c.lastActive.Store(time.Now().UnixNano())
	}
}

// takeSide appends the bytes read ahead during a blocking command to the
// buffer.
func (c *conn) takeSide() {
	if len(c.buf)-c.w < len(c.side) {
		copy(c.buf, c.buf[c.r:c.w])
		c.w -= c.r
		c.r = 0
		if len(c.buf)-c.w < len(c.side) {
			nb := make([]byte, c.w+len(c.side)+readBufSize)
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
	}
	c.w += copy(c.buf[c.w:], c.side)
	c.side = c.side[:0]
}

// flush writes the pending replies. It returns false once a write failed.
func (c *conn) flush() bool {
	if len(c.out) > 0 && c.werr == nil {
		if d := c.s.cfg.IdleTimeout; d > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(d))
		}
		_, c.werr = c.nc.Write(c.out)
	}
	if cap(c.out) > outKeep {
		c.out = make([]byte, 0, 1024)
	} else {
		c.out = c.out[:0]
	}
	return c.werr == nil
}

// flushIfFull writes the pending replies out if many are waiting, so that a
// long reply (MGET of many large values) never needs a buffer of its size.
func (c *conn) flushIfFull() {
	if len(c.out) >= flushAt {
		c.flush()
	}
}

var errBufferFull = errors.New("resp: read buffer full")

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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.s.blocked.Add(1)
	defer c.s.blocked.Add(-1)
	if c.side == nil {
		c.side = make([]byte, 0, sideBufSize)
	}
	c.nc.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(c.side) < cap(c.side) {
			n, err := c.nc.Read(c.side[len(c.side):cap(c.side)])
			c.side = c.side[:len(c.side)+n]
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					c.rerr = err
					cancel()
				}
				return
			}
		}
	}()
	fn(ctx)
	c.nc.SetReadDeadline(aLongTimeAgo)
	<-done
	c.nc.SetReadDeadline(time.Time{})
	if c.rerr != nil {
		c.quit = true // the client is gone: nobody reads the reply
	}
}

// Replies. Each appends to c.out.

func (c *conn) replyOK()             { c.out = append(c.out, "+OK\r\n"...) }
func (c *conn) replySimple(s string) { c.out = appendSimple(c.out, s) }
func (c *conn) replyInt(n int64)     { c.out = appendInt(c.out, n) }
func (c *conn) replyBulk(b []byte)   { c.out = appendBulk(c.out, b) }
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
	c.s.errors.Add(1)
	c.out = appendError(c.out, msg)
}
