package repl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// A link is the sending side of one peer address: this node dials it and
// streams its own log over the connection.
type link struct {
	addr string

	// mu guards the fields below.
	mu         sync.Mutex
	nodeID     uint32
	name       string
	region     string // "" until the first handshake
	connected  bool
	since      time.Time // of the last change of connected, or of the link's creation
	acked      uint64    // highest sequence number the peer has applied
	sent       uint64    // next sequence number to send
	rtt        time.Duration
	offset     time.Duration // peer's physical clock minus ours
	fullSyncs  uint64
	reconnects uint64
	lastErr    string    // why the link is down; "" while it is up
	lastErrAt  time.Time // when lastErr happened
	reason     Reason    // lastErr's kind
	failures   [numReasons]uint64
	warns      [numReasons]warnState // rate limit of the warnings, by reason
	warned     bool                  // a warning was logged since the link was last up
	clockWarn  warnState             // rate limit of the warning about the peer's clock
	sync       syncState             // the first sync from this peer (see Replicator.Synced)

	clockMerged bool // the peer's clock was merged once; guarded by Replicator.mu

	kick         chan struct{} // wakes the writer for an anti-entropy round
	repairWanted bool
	lastRound    time.Time
	rounds       uint64 // anti-entropy rounds completed
	repaired     uint64 // entries this node took from the peer's repairs
}

// setState records a change of the link. A connected link has no last
// error: the error that took it down last time is history, not its state.
func (l *link) setState(connected bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.connected != connected {
		l.since = now
	}
	l.connected = connected
	if connected {
		l.reconnects++
		l.lastErr, l.lastErrAt, l.reason = "", time.Time{}, ReasonNone
	}
	if err != nil {
		l.lastErr, l.lastErrAt = err.Error(), now
		l.reason = reasonOf(err)
		l.failures[l.reason]++
	}
}

// dialLoop keeps one connection to l.addr up until Close, with capped,
// jittered exponential backoff between attempts.
func (r *Replicator) dialLoop(l *link) {
	backoff := r.cfg.ReconnectMin
	for r.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DeadTimeout)
		conn, err := r.cfg.Dial(ctx, l.addr)
		cancel()
		if err != nil {
			err = &linkError{reason: dialReason(err), err: err}
		} else if r.track(conn) {
			start := time.Now()
			err = r.runOutbound(l, conn)
			r.untrack(conn)
			if time.Since(start) > r.cfg.ReconnectMax {
				backoff = r.cfg.ReconnectMin // it was up for a while: retry fast
			}
		}
		if r.ctx.Err() != nil {
			l.setState(false, nil)
			return
		}
		if err != nil && !errors.As(err, new(*linkError)) {
			// Not refused for a reason of its own: the connection failed,
			// before the handshake completed or after.
			l.mu.Lock()
			up := l.connected
			l.mu.Unlock()
			reason := ReasonHandshake
			if up {
				reason = ReasonLost
			}
			err = &linkError{reason: reason, err: err}
		}
		l.setState(false, err)
		if err != nil {
			r.linkDown(l, err, backoff)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
			return
		}
		backoff = min(2*backoff, r.cfg.ReconnectMax)
	}
}

// readHello reads the peer's answer to this node's Hello: its own Hello,
// or a Reject that says why it refuses the link.
func readHello(fc *frameConn) (*wire.Hello, error) {
	f, err := fc.readHello()
	if err != nil {
		return nil, err
	}
	switch f := f.(type) {
	case *wire.Hello:
		return f, nil
	case *wire.Reject:
		return nil, &linkError{reason: rejectReason(f), err: fmt.Errorf("the peer refused the link: %s", f.Message)}
	}
	return nil, fc.reject(wire.RejectBadFrame, "unexpected %T frame", f)
}

// runOutbound serves one outbound connection until it fails: handshake,
// then stream the log from where the peer asks, with a full sync when the
// log no longer reaches back that far.
func (r *Replicator) runOutbound(l *link, conn net.Conn) error {
	fc := newFrameConn(conn, r.cfg.MaxFrame, r.cfg.DeadTimeout)
	hello := r.hello()
	if err := fc.write(hello); err != nil {
		return err
	}
	h, err := readHello(fc)
	if err != nil {
		return err
	}
	recv := r.cfg.Physical.UnixNano()
	if rej := r.checkHello(h); rej != nil {
		fc.write(rej)
		return &linkError{reason: rejectReason(rej), err: fmt.Errorf("this node refused the peer: %s", rej.Message)}
	}
	// The Hello exchange is the first measurement of the peer's clock: a
	// node started far from its peers refuses writes from its first one
	// (the node layer waits for the peers' Resumes, which come after this),
	// not from the first Pong.
	rtt := time.Duration(recv - hello.PhysicalNanos)
	off := hlc.EstimateOffset(hello.PhysicalNanos, h.PhysicalNanos, recv)
	l.mu.Lock()
	l.rtt, l.offset = rtt, off
	l.mu.Unlock()
	r.cfg.Clock.ObservePeerOffset(h.NodeName, towardZero(off, rtt/2))
	resume, err := expect[*wire.Resume](fc)
	if err != nil {
		return err
	}
	// NextSeq 0 asks for a full sync (the receiver has never synced).
	next := max(resume.NextSeq, 1)
	needSnapshot := resume.NextSeq == 0
	if resume.Origin != r.cfg.NodeID || next > r.log.Next() {
		return fc.reject(wire.RejectBadFrame, "resume of origin %d at %d; this is origin %d at %d",
			resume.Origin, resume.NextSeq, r.cfg.NodeID, r.log.Next())
	}
	r.mergePeerClock(l, h.NodeName, resume.HLC)
	r.mu.Lock()
	l.mu.Lock()
	if l.nodeID != h.NodeID {
		l.acked = 0 // another node answers at this address: its acks start over
	}
	l.nodeID, l.name, l.region = h.NodeID, h.NodeName, h.Region
	l.acked = max(l.acked, next-1)
	l.sent = next
	l.mu.Unlock()
	r.ackAdvancedLocked()
	r.mu.Unlock()
	l.setState(true, nil)
	l.mu.Lock()
	l.repairWanted = true // after a disconnect, compare what both sides hold
	warned := l.warned
	l.warned = false
	l.mu.Unlock()
	r.wakeSync()
	r.cfg.Logger.Info("replication link up", "peer", l.addr, "node", h.NodeName, "region", h.Region, "from_seq", next)
	if warned {
		r.cfg.Logger.Info("replication link recovered", "peer", l.addr, "node", h.NodeName, "region", h.Region)
	}

	// The reader takes acks and pongs; it ends when the connection closes,
	// which the caller does when this function returns.
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	wg.Go(func() {
		err := r.readAcks(l, fc)
		// A reader that stops (the peer went silent, or broke the
		// protocol) takes the connection down with it, so that a sender
		// busy writing does not go on streaming to a link whose acks
		// nobody reads.
		conn.Close()
		readErr <- err
	})

	wake, unsubscribe := r.log.Subscribe()
	defer unsubscribe()
	ping := time.NewTicker(r.cfg.PingInterval)
	defer ping.Stop()
	var batch []store.Op
	var ops []wire.Op
	var round *probeRound
	var probes <-chan []wire.Op // nil unless a round is running
	defer func() {
		if round != nil {
			round.close()
		}
	}()
	for {
		// Send everything available before waiting: under load the next
		// batch gathers while the previous one is being written, and an
		// idle link sends a write the moment it is published. No timer is
		// on this path.
		var n uint64
		var err error
		batch, n, err = r.log.Read(next, int64(r.cfg.BatchBytes), batch[:0])
		if errors.Is(err, ErrTruncated) || needSnapshot {
			needSnapshot = false
			if next, err = r.sendSnapshot(l, fc); err != nil {
				return err
			}
			continue
		}
		if len(batch) > 0 {
			// A busy link still pings (RTT, clock offset, liveness) and
			// notices a failed reader.
			select {
			case <-ping.C:
				if err := fc.write(&wire.Ping{SentNanos: r.cfg.Physical.UnixNano()}); err != nil {
					return err
				}
			case err := <-readErr:
				return err
			default:
			}
			ops = toWire(batch, ops[:0])
			if err := fc.write(&wire.Ops{Origin: r.cfg.NodeID, FirstSeq: next, Ops: ops}); err != nil {
				return err
			}
			clear(batch) // do not pin values until the next batch
			next = n
			l.mu.Lock()
			l.sent = next
			l.mu.Unlock()
			continue
		}
		if round == nil && r.roundDue(l) {
			round = r.startProbeRound()
			probes = round.chunks
		}
		select {
		case <-wake:
		case <-l.kick:
		case chunk, ok := <-probes:
			if !ok {
				round.close()
				round, probes = nil, nil
				l.mu.Lock()
				l.rounds++
				l.mu.Unlock()
				continue
			}
			if err := fc.write(&wire.Probe{Origin: r.cfg.NodeID, Ops: chunk}); err != nil {
				return err
			}
		case <-ping.C:
			if err := fc.write(&wire.Ping{SentNanos: r.cfg.Physical.UnixNano()}); err != nil {
				return err
			}
		case err := <-readErr:
			return err
		case <-r.ctx.Done():
			fc.write(&wire.Reject{Code: wire.RejectShuttingDown, Message: "node shutting down"})
			return nil
		}
	}
}

// roundDue reports whether an anti-entropy round should start on l now,
// and if so marks it started.
func (r *Replicator) roundDue(l *link) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	// At most one round per DeadTimeout on a link: reconnects in a flapping
	// network must not turn into back-to-back full walks of the store.
	if !l.repairWanted || time.Since(l.lastRound) < r.cfg.DeadTimeout {
		return false
	}
	l.repairWanted, l.lastRound = false, time.Now()
	return true
}

// sendSnapshot performs a full sync: every live entry and tombstone of the
// store, framed by the log position it stands for. The receiver merges it
// and drops what the snapshot does not vouch for. It returns the sequence
// number to stream from afterwards.
func (r *Replicator) sendSnapshot(l *link, fc *frameConn) (uint64, error) {
	// Every write with a sequence number below s0 was versioned before ts
	// (versions come from a monotonic clock, and a write is versioned before
	// it is logged), so the snapshot plus the log from s0 covers them all.
	s0 := r.log.Next()
	ts := r.cfg.Clock.Update(0)
	if err := fc.write(&wire.SnapshotBegin{Origin: r.cfg.NodeID, Seq: s0 - 1, HLC: uint64(ts)}); err != nil {
		return 0, err
	}
	var chunk []wire.Op
	size := 0
	var err error
	flush := func() {
		if len(chunk) > 0 && err == nil {
			err = fc.write(&wire.SnapshotChunk{Origin: r.cfg.NodeID, Ops: chunk})
		}
		clear(chunk)
		chunk, size = chunk[:0], 0
	}
	r.cfg.Store.Snapshot(func(op store.Op) bool {
		w := toWireOp(&op)
		if size+w.Size() > r.cfg.BatchBytes {
			flush()
		}
		chunk = append(chunk, w)
		size += w.Size()
		return err == nil
	})
	flush()
	if err != nil {
		return 0, err
	}
	// The tombstone-ghost table, read after the walk, covers every delete
	// and expiry whose tombstone left this store before or during it. The
	// ghosts of evictions and flushes stay here: they are local.
	if err := fc.write(&wire.SnapshotEnd{Origin: r.cfg.NodeID, Ghosts: r.cfg.Store.TombstoneGhosts()}); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.fullSyncs++
	l.mu.Unlock()
	r.cfg.Logger.Info("full sync sent", "peer", l.addr, "seq", s0-1)
	return s0, nil
}

// readAcks reads the peer's side of an outbound connection.
func (r *Replicator) readAcks(l *link, fc *frameConn) error {
	for {
		f, err := fc.read()
		if err != nil {
			return fc.rejectRead(err)
		}
		switch f := f.(type) {
		case *wire.Ack:
			if f.Origin != r.cfg.NodeID || f.Seq >= r.log.Next() {
				return fc.reject(wire.RejectBadFrame, "ack of origin %d seq %d", f.Origin, f.Seq)
			}
			r.mu.Lock()
			l.mu.Lock()
			advanced := f.Seq > l.acked
			l.acked = max(l.acked, f.Seq)
			l.mu.Unlock()
			if advanced {
				r.ackAdvancedLocked()
			}
			r.mu.Unlock()
		case *wire.Pong:
			now := r.cfg.Physical.UnixNano()
			rtt := time.Duration(now - f.EchoNanos)
			off := hlc.EstimateOffset(f.EchoNanos, f.PhysicalNanos, now)
			l.mu.Lock()
			l.rtt, l.offset = rtt, off
			name := l.name
			l.mu.Unlock()
			// The midpoint estimate is off by up to half the round trip
			// (asymmetric delay: a Ping queued behind a burst of data), so
			// judge the peer by the smallest offset consistent with it.
			r.cfg.Clock.ObservePeerOffset(name, towardZero(off, rtt/2))
		case *wire.Repair:
			r.applyRepair(l, f)
		case *wire.Reject:
			if f.Code == wire.RejectClockAhead {
				// The peer found this node's versions too far ahead of its
				// clock. This node already refuses writes if it is the
				// culprit: its offset to most peers is measured at each
				// handshake and ping, and its clock refuses to version
				// writes while it runs ahead of its own physical time
				// (hlc.Clock.NowWithin). Redial with backoff; the op is
				// delivered once in bounds.
				return &linkError{reason: ReasonClockAhead, err: fmt.Errorf("the peer holds this node's stream: %s", f.Message)}
			}
			return fmt.Errorf("repl: peer rejected us: %v: %s", f.Code, f.Message)
		default:
			return fc.reject(wire.RejectBadFrame, "unexpected %T frame on a sending link", f)
		}
	}
}

// towardZero shrinks |d| by slack, stopping at zero.
func towardZero(d, slack time.Duration) time.Duration {
	switch {
	case d > slack:
		return d - slack
	case d < -slack:
		return d + slack
	}
	return 0
}

func toWireOp(op *store.Op) wire.Op {
	return wire.Op{
		Kind:     wire.Kind(op.Kind),
		Key:      op.Key,
		Value:    op.Value,
		ExpireAt: op.ExpireAt,
		HLC:      uint64(op.Version.HLC),
		VOrigin:  op.Version.Origin,
	}
}

func toWire(ops []store.Op, dst []wire.Op) []wire.Op {
	for i := range ops {
		dst = append(dst, toWireOp(&ops[i]))
	}
	return dst
}

func fromWireOp(op *wire.Op) store.Op {
	return store.Op{
		Kind:     store.Kind(op.Kind),
		Key:      op.Key,
		Value:    op.Value,
		ExpireAt: op.ExpireAt,
		Version:  store.Version{HLC: hlc.Timestamp(op.HLC), Origin: op.VOrigin},
	}
}
