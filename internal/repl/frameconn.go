package repl

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// errProtocol marks a peer that broke the protocol; the connection is
// rejected and closed.
var errProtocol = errors.New("repl: protocol error")

// frameConn reads and writes frames on one connection. Reads are made by
// one goroutine at a time. Writes take wmu: an outbound connection's writer
// is its sender, but its reader writes the Reject that ends it when the
// peer breaks the protocol. Every read and write has a deadline: a peer
// that goes silent, or a link that stalls, is detected within DeadTimeout.
type frameConn struct {
	c        net.Conn
	r        *bufio.Reader
	rbuf     []byte
	wmu      sync.Mutex // guards wbuf and the connection's writes
	wbuf     []byte
	maxFrame int
	dead     time.Duration
}

// readBufferSize is a connection's read buffer once its handshake is done.
const readBufferSize = 64 << 10

func newFrameConn(c net.Conn, maxFrame int, dead time.Duration) *frameConn {
	return &frameConn{c: c, r: bufio.NewReaderSize(c, readBufferSize), maxFrame: maxFrame, dead: dead}
}

// newHandshakeConn is newFrameConn for an accepted connection whose peer has
// not said who it is: its read buffer is small (maxHelloFrame) until
// grow, so that connections that never complete a handshake hold little.
func newHandshakeConn(c net.Conn, maxFrame int, dead time.Duration) *frameConn {
	return &frameConn{c: c, r: bufio.NewReaderSize(c, maxHelloFrame), maxFrame: maxFrame, dead: dead}
}

// grow gives the connection its full read buffer after the handshake. A
// peer that sent more than its Hello before being answered keeps the small
// buffer (its bytes are in it); frames are read all the same.
func (fc *frameConn) grow() {
	if fc.r.Size() < readBufferSize && fc.r.Buffered() == 0 {
		fc.r = bufio.NewReaderSize(fc.c, readBufferSize)
	}
}

// readHello reads the first frame of a connection, which must be a Hello:
// at most maxHelloFrame bytes, within handshakeTimeout. A larger frame, a
// slower peer or another frame type ends the connection before any more
// memory is spent on it.
func (fc *frameConn) readHello() (wire.Frame, error) {
	if err := fc.c.SetReadDeadline(time.Now().Add(min(fc.dead, handshakeTimeout))); err != nil {
		return nil, err
	}
	f, buf, err := wire.ReadFrame(fc.r, maxHelloFrame, fc.rbuf)
	fc.rbuf = buf
	if err != nil {
		return nil, fc.rejectRead(err)
	}
	return f, nil
}

func (fc *frameConn) write(f wire.Frame) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.wbuf = f.Append(fc.wbuf)
	return fc.flushLocked()
}

// queue appends f to the frames to write at the next write or flush.
func (fc *frameConn) queue(f wire.Frame) {
	fc.wmu.Lock()
	fc.wbuf = f.Append(fc.wbuf)
	fc.wmu.Unlock()
}

// queued returns the bytes queued and not yet written.
func (fc *frameConn) queued() int {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return len(fc.wbuf)
}

// flush writes the frames queued, if any.
func (fc *frameConn) flush() error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if len(fc.wbuf) == 0 {
		return nil
	}
	return fc.flushLocked()
}

// writeBytes writes frames already encoded, after those queued.
func (fc *frameConn) writeBytes(b []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if len(fc.wbuf) > 0 {
		fc.wbuf = append(fc.wbuf, b...)
		return fc.flushLocked()
	}
	return fc.writeLocked(b)
}

// flushLocked writes the frames queued and empties the queue.
func (fc *frameConn) flushLocked() error {
	err := fc.writeLocked(fc.wbuf)
	fc.wbuf = fc.wbuf[:0]
	if cap(fc.wbuf) > 2*fc.maxFrame {
		fc.wbuf = nil // do not keep an outsized buffer
	}
	return err
}

// writeLocked writes b within the write deadline; wmu is held.
func (fc *frameConn) writeLocked(b []byte) error {
	if err := fc.c.SetWriteDeadline(time.Now().Add(fc.dead)); err != nil {
		return err
	}
	_, err := fc.c.Write(b)
	return err
}

func (fc *frameConn) read() (wire.Frame, error) {
	if err := fc.c.SetReadDeadline(time.Now().Add(fc.dead)); err != nil {
		return nil, err
	}
	// A ValuePart's data is moved into its value at once (largeRecv), so
	// it may stay in the read buffer: no allocation and copy per part.
	f, buf, err := wire.ReadFrameShared(fc.r, fc.maxFrame, fc.rbuf)
	fc.rbuf = buf
	return f, err
}

// reject tells the peer why the connection ends (best effort) and returns
// the error to log.
func (fc *frameConn) reject(code wire.RejectCode, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	fc.write(&wire.Reject{Code: code, Message: msg})
	return fmt.Errorf("%w: %s", errProtocol, msg)
}

// rejectFor turns a read error into the Reject the peer should hear, if
// any, and returns the error to log.
func (fc *frameConn) rejectRead(err error) error {
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		return fc.reject(wire.RejectFrameTooLarge, "%v", err)
	case errors.Is(err, wire.ErrMalformed):
		return fc.reject(wire.RejectBadFrame, "%v", err)
	}
	return err
}

// expect reads one frame of type T, rejecting anything else.
func expect[T wire.Frame](fc *frameConn) (T, error) {
	var zero T
	f, err := fc.read()
	if err != nil {
		return zero, fc.rejectRead(err)
	}
	switch f := f.(type) {
	case T:
		return f, nil
	case *wire.Reject:
		return zero, fmt.Errorf("repl: peer rejected us: %v: %s", f.Code, f.Message)
	}
	return zero, fc.reject(wire.RejectBadFrame, "unexpected %T frame", f)
}
