package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// deadline is the per-read and per-write deadline of the frames transport,
// as internal/repl's frameConn sets one before every read and write.
const deadline = 30 * time.Second

// framesTransport is geocache's own protocol: wire frames on a plain TCP
// connection, written as internal/repl's frameConn writes them (one Write
// per frame, deadline per call) and read with a 64 KiB bufio.Reader and
// wire.ReadFrame.
//
// With coalesce set (the "frames-coalesced" variant) the sender gathers
// frames into one Write of up to coalesceBytes, and the receiver sends one
// cumulative Ack per burst of frames it has already received (when its read
// buffer runs dry, or every maxUnacked frames) instead of one per frame:
// what grpc's writer does for its own writes, applied to geocache's frames.
type framesTransport struct {
	ln       net.Listener
	coalesce bool
}

const (
	coalesceBytes = 64 << 10
	maxUnacked    = 32
)

func newFramesTransport(coalesce bool) (*framesTransport, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &framesTransport{ln: ln, coalesce: coalesce}
	go t.acceptLoop()
	return t, nil
}

func (t *framesTransport) name() string {
	if t.coalesce {
		return "frames-coalesced"
	}
	return "frames"
}

func (t *framesTransport) shutdown() { t.ln.Close() }

func (t *framesTransport) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			if err := serveFrames(c, t.coalesce); err != nil {
				panic(fmt.Sprintf("frames receiver: %v", err))
			}
		}()
	}
}

// serveFrames is the receiver: it decodes Ops frames and answers each with
// an Ack (with coalesce, a burst of frames with one Ack), until the sender
// closes its side.
func serveFrames(c net.Conn, coalesce bool) error {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	var rbuf, wbuf []byte
	next := uint64(1)
	unacked := 0
	for {
		if err := c.SetReadDeadline(time.Now().Add(deadline)); err != nil {
			return err
		}
		f, buf, err := wire.ReadFrame(r, 0, rbuf)
		rbuf = buf
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ops, ok := f.(*wire.Ops)
		if !ok {
			return fmt.Errorf("unexpected %T", f)
		}
		if err := checkSeq(ops, &next); err != nil {
			return err
		}
		unacked++
		if coalesce && r.Buffered() > 0 && unacked < maxUnacked {
			continue // more is already here: acknowledge it all at once
		}
		unacked = 0
		ack := wire.Ack{Origin: ops.Origin, Seq: next - 1}
		wbuf = ack.Append(wbuf[:0])
		if err := c.SetWriteDeadline(time.Now().Add(deadline)); err != nil {
			return err
		}
		if _, err := c.Write(wbuf); err != nil {
			return err
		}
	}
}

// checkSeq checks that ops continues the stream at *next and advances it.
func checkSeq(ops *wire.Ops, next *uint64) error {
	if ops.FirstSeq != *next || len(ops.Ops) == 0 {
		return fmt.Errorf("got FirstSeq %d (%d ops), want %d", ops.FirstSeq, len(ops.Ops), *next)
	}
	*next += uint64(len(ops.Ops))
	return nil
}

type framesLink struct {
	coalesce bool
	tcp      *net.TCPConn
	c        *countingConn
	r        *bufio.Reader
	wbuf     []byte
	rbuf     []byte
}

func (t *framesTransport) open() (link, error) {
	c, err := net.Dial("tcp", t.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	return &framesLink{coalesce: t.coalesce, tcp: c.(*net.TCPConn), c: cc, r: bufio.NewReaderSize(cc, 64<<10)}, nil
}

func (l *framesLink) send(ops *wire.Ops) error {
	if l.coalesce {
		l.wbuf = ops.Append(l.wbuf)
		if len(l.wbuf) < coalesceBytes {
			return nil
		}
		return l.flush()
	}
	l.wbuf = ops.Append(l.wbuf[:0])
	if err := l.c.SetWriteDeadline(time.Now().Add(deadline)); err != nil {
		return err
	}
	_, err := l.c.Write(l.wbuf)
	return err
}

func (l *framesLink) flush() error {
	if !l.coalesce || len(l.wbuf) == 0 {
		return nil
	}
	if err := l.c.SetWriteDeadline(time.Now().Add(deadline)); err != nil {
		return err
	}
	_, err := l.c.Write(l.wbuf)
	l.wbuf = l.wbuf[:0]
	return err
}

func (l *framesLink) recvAck(ack *wire.Ack) error {
	if err := l.c.SetReadDeadline(time.Now().Add(deadline)); err != nil {
		return err
	}
	f, buf, err := wire.ReadFrame(l.r, 0, l.rbuf)
	l.rbuf = buf
	if err != nil {
		return err
	}
	a, ok := f.(*wire.Ack)
	if !ok {
		return fmt.Errorf("unexpected %T", f)
	}
	*ack = *a
	return nil
}

func (l *framesLink) closeSend() error { return l.tcp.CloseWrite() }

func (l *framesLink) close() error { return l.c.Close() }

func (l *framesLink) counts() sockCounts { return l.c.counts() }
