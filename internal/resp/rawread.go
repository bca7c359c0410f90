package resp

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/geocache/geocache"
)

// Reading without the read that finds nothing.
//
// A connection's goroutine used to read until the socket was empty: after
// every batch of requests it answered, its next read found nothing
// (EAGAIN) and only then waited for the netpoller. Go's poller is
// edge-triggered and forgets a pending edge whenever a read starts
// (internal/poll's prepareRead), so a net.Conn read must try the socket
// before it may wait. On this project's 2-core virtual machine a system
// call costs about a microsecond: that empty read was one of the three or
// four system calls of every -P 1 request and of every pipelined batch
// (docs/benchmarks-server.md, "Reading without the empty read").
//
// fillRaw reads a plain TCP connection inside one syscall.RawConn.Read.
// When a read returns fewer bytes than the buffer had room for, the socket
// was empty at that instant, so the batch is executed and answered there,
// inside the callback (rawStep), which then returns false: RawConn.Read
// waits for the socket's next edge without reading. Edges that come while
// the batch runs are kept by the poller (nothing resets them within one
// RawConn.Read), so no request waits unseen; an edge of bytes the read has
// already taken only costs one read that finds nothing, as before.
//
// Two things a read that found nothing used to learn are learnt otherwise:
//
//   - The end of the stream. A client's FIN that arrived with its last
//     request raises no edge after the read that took the request (a
//     client that half-closes and waits for the server to close). So a
//     connection that skipped a read is marked (skipped), and if it stays
//     quiet for rawVerifyAfter, the server's verifier (verifyRawReads, on
//     a timer while the server has connections) pokes its read deadline: it wakes and makes a real read, which
//     finds nothing or the end. A busy connection is never poked; a quiet
//     one once. A client that closes fully is answered by the client's
//     RST when its reply arrives, an edge of its own.
//   - Closing by other goroutines. Inside the callback the connection
//     holds its socket's read lock, and net.Conn.Close waits until every
//     read returns: a CLIENT KILL or Server.Close that waited could wait
//     on a command that needs a lock the closer holds, or on itself. So a
//     connection inside a raw read is not closed by others (closeSocket):
//     they mark it closed, shut its socket for reading and set a past
//     write deadline, which wake its waits, and its own goroutine closes
//     the socket as it leaves (dropConn), as soon as the batch in hand is
//     done. rawState arbitrates between the two.
//
// The callback returns (and the plain loop takes over) before anything
// that reads the socket from another goroutine or may wait long: WAIT
// (its watcher reads the socket), a connection whose writes wait for
// acknowledgements, a subscribed connection, bytes read ahead during a
// blocking command.

// rawVerifyAfter is how long a connection that skipped a read must be
// quiet before the verifier pokes it, and the verifier's period: a client
// that half-closes waits up to twice this for the server to close.
const rawVerifyAfter = 50 * time.Millisecond

// rawState values: whether the serve goroutine is inside a raw read, and
// whether another goroutine closed the connection.
const (
	rawOut    int32 = iota // not inside a raw read
	rawIn                  // inside one: others must not Close the socket
	rawClosed              // closed by another goroutine (closeSocket)
)

// rawConnOf returns the raw connection of a plain TCP connection, nil for
// anything else (TLS, pipes).
func rawConnOf(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// rawEligible reports whether the connection's next batches may run inside
// a raw read.
func (c *conn) rawEligible() bool {
	return c.ps == nil && len(c.side) == 0 && !c.quit && c.werr == nil && c.rerr == nil &&
		c.sess.Ack() == geocache.Local
}

// fillRaw is fill's read for a plain TCP connection: it reads, and
// executes and answers every batch that empties the socket, until a read
// may have left bytes in the socket, the connection must change mode, or
// it ends (rerr or ended set).
func (c *conn) fillRaw() {
	for {
		c.armRead()
		if !c.rawState.CompareAndSwap(rawOut, rawIn) {
			c.rerr = net.ErrClosed // closed by another goroutine
			return
		}
		c.inRaw = true
		err := c.raw.Read(c.rawFn)
		c.inRaw = false
		if !c.rawState.CompareAndSwap(rawIn, rawOut) {
			c.rerr = net.ErrClosed
			return
		}
		if err == nil {
			return // rawStep ended it: bytes to process, or rerr or ended set
		}
		if isTimeout(err) && !c.readDue() {
			continue // an early deadline, or the verifier's poke: the next read is a real one
		}
		c.rerr = err
		return
	}
}

// rawStep is fillRaw's callback: it returns false to wait for the socket to
// be readable, true to end the raw read.
func (c *conn) rawStep(fd uintptr) bool {
	for {
		if c.rawState.Load() == rawClosed {
			c.rerr = net.ErrClosed
			return true
		}
		free := len(c.buf) - c.w
		n, err := syscall.Read(int(fd), c.buf[c.w:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			c.verified() // the socket is known to be empty, and open
			return false
		}
		if n > 0 {
			c.gotBytes(n, free)
		}
		switch {
		case err != nil:
			c.rerr = os.NewSyscallError("read", err)
			return true
		case n == 0:
			c.rerr = io.EOF
			return true
		case n == free:
			return true // more may wait in the socket: the plain loop reads on
		}
		ok := c.process()
		if !c.flush() || !ok {
			c.ended = true
			return true
		}
		if c.rawLeave || !c.rawEligible() || !c.makeRoom() {
			return true
		}
		if !c.skipped.Load() {
			c.skipped.Store(true)
		}
		c.armRead()
		return false // the read emptied the socket: wait for its next edge
	}
}

// mayBlock reports whether a command must not run inside a raw read: WAIT
// reads the socket from another goroutine while it blocks (conn.block).
func mayBlock(args [][]byte) bool {
	return len(args[0]) == 4 && equalFold(args[0], "wait")
}

// closeSocket closes a plain TCP connection's socket from another
// goroutine, or, while the connection is inside a raw read, has the
// connection close it itself (see above). It never waits for the
// connection, and does nothing once the connection is closed.
func (c *conn) closeSocket() {
	for {
		switch c.rawState.Load() {
		case rawOut:
			if c.rawState.CompareAndSwap(rawOut, rawClosed) {
				c.nc.Close()
				return
			}
		case rawIn:
			if c.rawState.CompareAndSwap(rawIn, rawClosed) {
				c.nc.SetWriteDeadline(aLongTimeAgo) // a write waiting for the client returns; write gives up
				c.raw.Control(func(fd uintptr) {
					syscall.Shutdown(int(fd), syscall.SHUT_RD) // a wait for bytes returns, and no more come
				})
				return
			}
		default:
			return
		}
	}
}

// verified records that a read found the socket empty and open: the
// verifier has nothing to check.
func (c *conn) verified() {
	if c.skipped.Load() {
		c.skipped.Store(false)
	}
}

// armVerifierLocked starts the verifier's timer unless it is pending or
// the server is closed. s.mu is held.
func (s *Server) armVerifierLocked() {
	if s.verifyArmed || s.closed {
		return
	}
	s.verifyArmed = true
	if s.verifyTimer == nil {
		s.verifyTimer = time.AfterFunc(rawVerifyAfter, s.verifyRawReads)
	} else {
		s.verifyTimer.Reset(rawVerifyAfter)
	}
}

// verifyRawReads is the verifier (see above), run by a timer every
// rawVerifyAfter while the server has connections: it pokes the read
// deadline of the connections that skipped a read and have been quiet
// since and own their socket's reads, as pokeReaders does. A poke lost to
// the connection arming its own deadline at the same moment is made again
// on the next tick; one that reaches a WAIT's watcher as the wait begins is
// ignored by it (conn.block). It runs
// under s.mu, so once Close has marked the server closed (and stopped the
// timer) it does nothing.
func (s *Server) verifyRawReads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verifyArmed = false
	if s.closed || len(s.conns) == 0 {
		return // the next connection starts it again
	}
	quiet := time.Now().Add(-rawVerifyAfter).UnixNano()
	for c := range s.conns {
		if c.skipped.Load() && c.reading.Load() && c.lastActive.Load() <= quiet {
			c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
	s.armVerifierLocked()
}
