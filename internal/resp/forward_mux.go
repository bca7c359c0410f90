package resp

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/geocache/geocache"
)

// One shared connection per owner (forward.go): the batches of every
// client whose writes need no acknowledgement wait (LOCAL, the default) go
// to an owner on one connection, where a writer goroutine coalesces the
// batches queued meanwhile into one write and a reader goroutine hands the
// replies back in order. Concurrent clients then share system calls on
// both sides, and the owner reads long pipelines, instead of one exchange
// per client and batch. A batch with QUORUM or ALL writes, which the owner
// answers only once other regions acknowledge them, would hold up every
// client behind it: it takes a connection of the pool to itself.
//
// The reader is always reading: a connection the owner closes while idle
// (its idle timeout, a restart) is seen as soon as its end arrives and
// replaced (a batch written in the moment before fails, "may have run").
// The replies of the oldest batch in flight have fwdTimeout, and one more
// second per MiB of a large value, counted from the previous batch's end.
// A batch whose replies go over the limits fails alone; any other failure
// fails every batch in flight on the connection (written, so they may have
// run) and the next batch opens a new connection. A batch pushed onto a
// connection found dead before anything was written goes to a new one.

// fwdMux is the shared connection to one owner.
type fwdMux struct {
	f    *forwarder
	addr string
	wake chan struct{} // a batch was queued (capacity 1)
	stop chan struct{} // closed when the owner left the region

	mu     sync.Mutex
	queue  []*fwdBatch
	closed bool

	buf []byte // the writer's, for the next write
}

// muxConn is one connection of a fwdMux, with the batches written to it
// whose replies are still to come.
type muxConn struct {
	fc       *fwdConn
	mu       sync.Mutex
	inflight []*fwdBatch
	dead     bool
}

var errMuxClosed = errors.New("connection to the owner closed")

// mux returns the shared connection to addr, nil once the forwarder is
// closed.
func (f *forwarder) mux(addr string) *fwdMux {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	m := f.muxes[addr]
	if m == nil {
		if len(f.muxes) >= 16 {
			f.dropStaleLocked()
		}
		m = &fwdMux{f: f, addr: addr, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		f.muxes[addr] = m
		f.wg.Add(1)
		go m.run()
	}
	return m
}

// localOnly reports whether none of b's requests waits for
// acknowledgements.
func (b *fwdBatch) localOnly() bool {
	for _, m := range b.modes {
		if m.ack != geocache.Local {
			return false
		}
	}
	return b.first.ack == geocache.Local
}

// submit queues b; b.done closes once its replies are in (or b.err set).
func (m *fwdMux) submit(b *fwdBatch) {
	b.done = make(chan struct{})
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		b.err = errFwdClosed
		close(b.done)
		return
	}
	m.queue = append(m.queue, b)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run is the writer: it writes the queued batches, as one write, to the
// current connection, opening one if need be.
func (m *fwdMux) run() {
	defer m.f.wg.Done()
	var mc *muxConn
	for {
		select {
		case <-m.wake:
		case <-m.stop:
			m.shut(mc, errMuxClosed)
			return
		case <-m.f.s.ctx.Done():
			m.shut(mc, errFwdClosed)
			return
		}
		q := m.take()
		if len(q) == 0 {
			continue
		}
		for try := 0; ; try++ {
			if mc == nil || mc.isDead() {
				fc, err := m.f.dial(m.addr, time.Now().Add(fwdTimeout))
				if err != nil {
					mc = nil
					for _, b := range q {
						b.err = err
						close(b.done)
					}
					break
				}
				mc = &muxConn{fc: fc}
				m.f.wg.Add(1)
				go m.read(mc)
			}
			buf := m.buf[:0]
			mode := mc.fc.mode
			for _, b := range q {
				buf, b.pre = appendModeChange(buf, mode, b.first)
				buf = append(buf, b.reqs...)
				mode = b.last
			}
			if !mc.push(q, try > 0) {
				continue // dead before anything was written: a new connection
			}
			mc.fc.mode = mode
			mc.fc.nc.SetWriteDeadline(time.Now().Add(fwdTimeout + time.Duration(len(buf)>>20)*time.Second))
			if _, err := mc.fc.nc.Write(buf); err != nil {
				mc.kill() // the reader fails what is in flight: written, maybe in part
			}
			if cap(buf) <= muxWriteMax {
				m.buf = buf
			}
			break
		}
	}
}

// muxWriteMax bounds the bytes of the batches coalesced into one write
// (a single larger batch goes alone).
const muxWriteMax = 4 << 20

// take returns the queued batches for one write, leaving those beyond
// muxWriteMax queued (and the writer woken again).
func (m *fwdMux) take() []*fwdBatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, size := 0, 0
	for n < len(m.queue) && (n == 0 || size+len(m.queue[n].reqs) <= muxWriteMax) {
		size += len(m.queue[n].reqs)
		n++
	}
	q := m.queue[:n:n]
	m.queue = m.queue[n:]
	if len(m.queue) > 0 {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	} else {
		m.queue = nil
	}
	return q
}

// shut fails what is queued and closes the connection, as the writer
// ends.
func (m *fwdMux) shut(mc *muxConn, err error) {
	m.mu.Lock()
	m.closed = true
	q := m.queue
	m.queue = nil
	m.mu.Unlock()
	for _, b := range q {
		b.err = err
		close(b.done)
	}
	if mc != nil {
		mc.fc.nc.Close()
	}
}

// push records q as in flight, before they are written, so that the reader
// expects their replies, and marks them sent. If the connection is dead it
// returns false, leaving them unsent: the writer tries a new connection
// once, and fails them (not sent) the second time (last).
func (mc *muxConn) push(q []*fwdBatch, last bool) bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.dead {
		if last {
			for _, b := range q {
				b.err = errMuxClosed
				close(b.done)
			}
		}
		return false
	}
	if len(mc.inflight) == 0 {
		mc.fc.nc.SetReadDeadline(time.Now().Add(fwdTimeout))
	}
	for _, b := range q {
		b.sent = true
	}
	mc.inflight = append(mc.inflight, q...)
	return true
}

// kill marks the connection dead, so that no batch is pushed onto it any
// more, and closes it: the reader fails what is in flight.
func (mc *muxConn) kill() {
	mc.mu.Lock()
	mc.dead = true
	mc.mu.Unlock()
	mc.fc.nc.Close()
}

func (mc *muxConn) isDead() bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.dead
}

// read is the reader of one connection: it waits for bytes (or the
// connection's end) at all times, and reads each batch's replies in turn.
func (m *fwdMux) read(mc *muxConn) {
	defer m.f.wg.Done()
	var err error
	for {
		if _, err = mc.fc.rd.Peek(1); err != nil {
			break
		}
		mc.mu.Lock()
		if len(mc.inflight) == 0 {
			mc.mu.Unlock()
			err = errors.New("a reply nobody asked for")
			break
		}
		b := mc.inflight[0]
		mc.inflight[0] = nil
		mc.inflight = mc.inflight[1:]
		mc.mu.Unlock()
		limit := fwdLimit{left: m.f.s.fwdReplyLimit(), s: m.f.s, nc: mc.fc.nc}
		err = b.read(mc.fc, b.pre, &limit)
		b.held, b.err = limit.held, err
		close(b.done)
		if err == errBatchOver {
			err = nil // that batch alone: the connection is in step
		}
		if err != nil {
			break
		}
		mc.mu.Lock()
		if len(mc.inflight) == 0 {
			mc.fc.nc.SetReadDeadline(time.Time{}) // idle: wait for the end as long as it takes
		} else {
			mc.fc.nc.SetReadDeadline(time.Now().Add(fwdTimeout))
		}
		mc.mu.Unlock()
	}
	mc.mu.Lock()
	mc.dead = true // before anything else: the writer pushes no more
	rest := mc.inflight
	mc.inflight = nil
	mc.mu.Unlock()
	mc.fc.nc.Close()
	m.f.forget(mc.fc)
	for _, b := range rest {
		b.err = fmt.Errorf("connection to the owner failed: %w", err)
		close(b.done)
	}
}
