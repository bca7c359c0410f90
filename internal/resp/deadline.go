package resp

import (
	"errors"
	"net"
	"os"
	"time"
)

// Deadlines without a timer update per request.
//
// Every bound on a connection is a socket deadline: the idle timeout, the
// authentication timeout and the request timeout on reads, and on writes
// the bound on a client that does not read its replies. Setting a deadline
// modifies a runtime timer under a lock, and computing a fresh one reads
// the clock: done for every read and every write, that was a measurable
// part of a small request (docs/benchmarks-server.md). So deadlines are
// armed lazily:
//
//   - Reads: the deadline armed on the socket is never later than the
//     earliest bound that applies (readDeadline), but it may be earlier:
//     it is only moved when the bound comes before it. When an early one
//     fires, the read returns a timeout without consuming anything;
//     readDue then checks the bounds on the clock and either ends the
//     connection (a bound really passed) or arms the next one and reads
//     again. A busy client therefore costs one deadline update per
//     timeout period, not one per read.
//   - Writes (not over TLS): one deadline is armed when the connection
//     first writes and left alone. A write that runs into it (because it
//     passed long ago, or because the client stopped reading) gets a new
//     one a full timeout away and continues where it stopped; a second
//     timeout in the same write ends the connection. A client that does
//     not read is therefore closed between one and two timeouts after the
//     write began, never earlier than before. TLS writes cannot resume
//     after a timeout (crypto/tls marks the connection broken), so over
//     TLS every write arms its deadline as it always did.

// readDeadline returns the earliest bound on the next read and which one
// it is: the idle timeout (none while the client is subscribed, as in
// Redis) counts from the last read or write, the
// authentication timeout from the connection, the request timeout from the
// first byte of an incomplete request.
func (c *conn) readDeadline() (time.Time, deadlineKind) {
	var at time.Time
	kind := deadlineNone
	set := func(t time.Time, k deadlineKind) {
		if at.IsZero() || t.Before(at) {
			at, kind = t, k
		}
	}
	if d := c.s.idle(); d > 0 && !c.subscribed() { // as Redis, never for a subscriber
		since := c.created
		if c.lastRead.After(since) {
			since = c.lastRead
		}
		if c.lastFlush.After(since) {
			since = c.lastFlush
		}
		set(since.Add(d), deadlineIdle)
	}
	if c.needAuth() {
		set(c.authSince.Add(c.s.cfg.AuthTimeout), deadlineAuth)
	}
	if !c.reqStart.IsZero() {
		set(c.reqStart.Add(c.requestAllowance()), deadlineRequest)
	}
	return at, kind
}

// requestRate is the slowest rate, in bytes per second, at which a large
// request arrives in time: besides RequestTimeout, a request has one
// second for every requestRate bytes of it received so far. A 512 MiB
// value may thus take RequestTimeout + 512 s; a client sending one byte a
// second earns a microsecond a byte.
const requestRate = 1 << 20

// requestAllowance is how long the incomplete request at buf[r:w] may take
// from its first byte: RequestTimeout, and a second for every requestRate
// bytes of it received.
func (c *conn) requestAllowance() time.Duration {
	return c.s.cfg.RequestTimeout + time.Duration(c.w-c.r)*(time.Second/requestRate)
}

// armRead makes sure the socket's read deadline is no later than the
// earliest bound, touching it only when it is later (or none is armed).
// If the idle timeout changed meanwhile (CONFIG SET: readGen moved), it
// looks again: pokeReaders may have poked the socket before this
// armed a deadline computed with the old timeout.
func (c *conn) armRead() {
	for {
		gen := c.s.readGen.Load()
		at, _ := c.readDeadline()
		if !at.IsZero() && (c.rdl.IsZero() || c.rdl.After(at)) {
			c.setReadDeadline(at) // else none is needed, or the armed one comes first
		}
		if c.s.readGen.Load() == gen {
			return
		}
	}
}

// readDue is called when a read timed out. It reports whether a bound has
// passed (c.deadline says which); if not, the deadline was an early one
// and readDue arms the next.
func (c *conn) readDue() bool {
	at, kind := c.readDeadline()
	c.deadline = kind
	if !at.IsZero() && !time.Now().Before(at) {
		return true
	}
	return c.setReadDeadline(at) != nil
}

func (c *conn) setReadDeadline(t time.Time) error {
	c.rdl = t
	return c.nc.SetReadDeadline(t)
}

// writeTimeout bounds a write to a client that does not read its replies:
// the idle timeout if set, else the request timeout.
func (c *conn) writeTimeout() time.Duration {
	if d := c.s.idle(); d > 0 {
		return d
	}
	return c.s.cfg.RequestTimeout
}

// write writes b whole, within the write bound (see above).
func (c *conn) write(b []byte) error {
	d := c.writeTimeout()
	if !c.lazyWrite {
		c.nc.SetWriteDeadline(time.Now().Add(d))
		_, err := c.nc.Write(b)
		return err
	}
	if c.wdl.IsZero() {
		c.wdl = time.Now().Add(d)
		c.setWriteDeadline(c.wdl)
	}
	renewed := false
	for {
		n, err := c.nc.Write(b)
		if err == nil || renewed || !isTimeout(err) || c.rawState.Load() == rawClosed {
			return err // (closed by another goroutine: closeSocket's past deadline)
		}
		// The deadline armed for an earlier write has passed: this write
		// gets a full one from now.
		b, renewed = b[n:], true
		c.wdl = time.Now().Add(d)
		if err := c.setWriteDeadline(c.wdl); err != nil {
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// batchTick is where the timing of a batch's first command starts (see
// commandLatency): when the batch was read, from the clock reading the
// read already took.
func (c *conn) batchTick() time.Duration {
	if c.lastRead.IsZero() {
		return monoNow()
	}
	return c.lastRead.Sub(monoBase)
}

// setWriteDeadline sets the socket's write deadline from the serve
// goroutine without undoing closeSocket's past one (closeSocket marks
// rawClosed before it sets it).
func (c *conn) setWriteDeadline(t time.Time) error {
	err := c.nc.SetWriteDeadline(t)
	if c.rawState.Load() == rawClosed {
		c.nc.SetWriteDeadline(aLongTimeAgo)
	}
	return err
}
