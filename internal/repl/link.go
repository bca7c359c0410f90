package repl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// A link is the sending side of one peer address: this node dials it and
// streams its own log over the connection.
type link struct {
	addr string

	// ctx ends when the link is removed (RemovePeer) or the replicator
	// closes; done is closed when its dial loop has returned.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// mu guards the fields below.
	mu         sync.Mutex
	nodeID     uint32
	name       string
	region     string // "" until the first handshake
	connected  bool
	since      time.Time // of the last change of connected, or of the link's creation
	acked      uint64    // highest sequence number the peer has applied (0 again when it asks for a full sync)
	lastAck    uint64    // the peer process's highest ack, kept when it asks for a full sync: where a replay starts
	peerInc    uint64    // the peer's incarnation at the last handshake
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
	// vouchKnown is set once the peer said, on this connection, which keys
	// its acks speak for: vouched, nil for every key, else the slots
	// (wire.Vouched). Until then its acks count for no write.
	vouchKnown bool
	vouched    []byte

	clockMerged bool // the peer's clock was merged once; guarded by Replicator.mu

	kick chan struct{} // wakes the writer for an anti-entropy round
	// partSeq and partAcked are the large op being sent and how much of
	// its value the peer holds (PartAck); window wakes the sender when
	// that moves.
	partSeq, partAcked uint64
	window             chan struct{}
	repairWanted       bool
	lastRound          time.Time
	rounds             uint64 // anti-entropy rounds completed
	repaired           uint64 // entries this node took from the peer's repairs
	// reconnectAsked is set when the peer ended the connection asking for
	// a full sync (RejectResync) or to resume with the slots it keeps now
	// (RejectKeeps): the link reconnects at once, quietly. It says why.
	reconnectAsked string
	// resumeAsked is set while the link reconnects because the peer asked
	// it to: the stream resumes where the peer stood, nothing lost, so the
	// next connection starts no anti-entropy round of its own.
	resumeAsked bool
	// proto is the protocol version the next Hello announces: wire.Proto,
	// or wire.MinProto once after a peer refused it for its version (a
	// node of an older version, during a rolling upgrade).
	proto uint16
	// spoken is the version the last handshake settled on (Stats);
	// protoWarn rate-limits the log of a peer refusing wire.Proto.
	spoken    uint16
	protoWarn warnState
	// keeps is the slots whose writes the peer keeps (nil: every key),
	// from its Resume and its Keeps frames since; the sender sends the
	// others' writes as skips (wire.KindSkip), and skipped counts them.
	keeps   []byte
	skipped uint64
	// relayed is the slots the peer takes relayed (nil: none), from its
	// Resume and Keeps frames: their writes are sent as stand-ins
	// (wire.KindRelayed), counted by standIns.
	relayed  []byte
	standIns uint64
	// relayQ holds the writes of other origins this node hands on to the
	// peer (relay.go), relayBytes their size (at most maxRelayQueue);
	// relayWake wakes the sender.
	relayQ     []relayItem
	relayBytes int
	relayWake  chan struct{}
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
	for l.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(l.ctx, r.cfg.DeadTimeout)
		conn, err := r.cfg.Dial(ctx, l.addr)
		cancel()
		if err != nil {
			err = &linkError{reason: dialReason(err), err: err}
			l.mu.Lock()
			l.resumeAsked = false
			l.mu.Unlock()
		} else if r.track(conn) {
			start := time.Now()
			err = r.runOutbound(l, conn)
			r.untrack(conn)
			if time.Since(start) > r.cfg.ReconnectMax {
				backoff = r.cfg.ReconnectMin // it was up for a while: retry fast
			}
			l.mu.Lock()
			asked := l.reconnectAsked
			l.reconnectAsked = ""
			l.resumeAsked = asked != ""
			// A peer that refuses the version announced (an older node,
			// during a rolling upgrade) is dialed again announcing
			// MinProto, without waiting longer than the backoff; refused
			// at MinProto too, it is a mismatch, and the next attempt
			// announces wire.Proto again. Any other end of a connection
			// announces wire.Proto next, so that a link speaks the newest
			// version again once the peer is upgraded.
			announced := l.proto
			refused := errors.Is(err, errPeerProtocol)
			l.proto = wire.Proto
			older := refused && announced > wire.MinProto
			logOlder := false
			if older {
				l.proto = wire.MinProto
				logOlder, _ = l.protoWarn.allow(time.Now(), r.cfg.WarnInterval)
			}
			l.mu.Unlock()
			if logOlder {
				r.cfg.Logger.Info(fmt.Sprintf("replication: the peer refused protocol %d; announcing %d", announced, wire.MinProto), "peer", l.addr)
			}
			if older && l.ctx.Err() == nil {
				err = nil // not a failure of the link: no warning, no count
			}
			if asked != "" && l.ctx.Err() == nil {
				r.cfg.Logger.Info("replication: "+asked+"; reconnecting", "peer", l.addr)
				err, backoff = nil, r.cfg.ReconnectMin
			}
		}
		if l.ctx.Err() != nil {
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
		case <-l.ctx.Done():
			return
		}
		backoff = min(2*backoff, r.cfg.ReconnectMax)
	}
}

// errPeerProtocol is the error of a link whose peer refused this node's
// Hello for the protocol version it announced.
var errPeerProtocol = errors.New("the peer refused the protocol version")

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
		err := fmt.Errorf("the peer refused the link: %s", f.Message)
		if f.Code == wire.RejectProtocol {
			err = fmt.Errorf("%w: %s", errPeerProtocol, f.Message)
		}
		return nil, &linkError{reason: rejectReason(f), err: err}
	}
	return nil, fc.reject(wire.RejectBadFrame, "unexpected %T frame", f)
}

// runOutbound serves one outbound connection until it fails: the
// handshake, then the stream of this node's log with its probe rounds,
// while a reader takes the peer's answers.
func (r *Replicator) runOutbound(l *link, conn net.Conn) error {
	fc := newFrameConn(conn, r.cfg.MaxFrame, r.cfg.DeadTimeout)
	resume, needSnapshot, err := r.handshakeOut(l, fc)
	if err != nil {
		return err
	}
	// The reader takes acks, pongs and repairs; it ends when the
	// connection closes, which the caller does when this function returns.
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	wg.Go(func() {
		err := r.readAcks(l, fc)
		asked := ""
		switch {
		case errors.Is(err, errResyncAsked):
			asked = "the peer asks for a full sync"
		case errors.Is(err, errKeepsAsked):
			asked = "the peer keeps slots it did not keep when it resumed"
		}
		if asked != "" {
			l.mu.Lock()
			l.reconnectAsked = asked // whatever error the sender returns
			l.mu.Unlock()
		}
		// A reader that stops (the peer went silent, or broke the
		// protocol) takes the connection down with it, so that a sender
		// busy writing does not go on streaming to a link whose acks
		// nobody reads.
		conn.Close()
		readErr <- err
	})
	s := &sender{r: r, l: l, fc: fc, next: resume.NextSeq, wanted: resume.Wanted, needSnapshot: needSnapshot, readErr: readErr}
	return s.run()
}

// handshakeOut exchanges Hellos, measures the peer's clock, and reads
// where the peer resumes this node's log: it returns the peer's Resume,
// its NextSeq set to the sequence number to stream from, and whether the
// peer asked for a full sync. With a full sync, NextSeq is where the log
// replays from after the snapshot: the peer's last ack if the same process
// of the peer asks (see sendSnapshot), else 0.
func (r *Replicator) handshakeOut(l *link, fc *frameConn) (resume *wire.Resume, needSnapshot bool, err error) {
	l.mu.Lock()
	hello := r.helloAt(l.proto)
	l.mu.Unlock()
	if err := fc.write(hello); err != nil {
		return nil, false, err
	}
	h, err := readHello(fc)
	if err != nil {
		return nil, false, err
	}
	recv := r.cfg.Physical.UnixNano()
	rej := r.checkHello(h)
	if rej == nil && h.Proto > hello.Proto {
		// A peer answers with the older of the two versions.
		rej = &wire.Reject{Code: wire.RejectProtocol, Message: fmt.Sprintf("answered with protocol %d to a Hello of %d", h.Proto, hello.Proto)}
	}
	if rej != nil {
		fc.write(publicReject(rej, h))
		return nil, false, &linkError{reason: rejectReason(rej), err: fmt.Errorf("this node refused the peer: %s", rej.Message)}
	}
	// The Hello exchange is the first measurement of the peer's clock: a
	// node started far from its peers refuses writes from its first one
	// (the node layer waits for the peers' Resumes, which come after this),
	// not from the first Pong.
	rtt := time.Duration(recv - hello.PhysicalNanos)
	off := hlc.EstimateOffset(hello.PhysicalNanos, h.PhysicalNanos, recv)
	l.mu.Lock()
	l.rtt, l.offset = rtt, off
	l.spoken = min(hello.Proto, h.Proto)
	l.mu.Unlock()
	r.cfg.Clock.ObservePeerOffset(h.NodeName, towardZero(off, rtt/2))
	resume, err = expect[*wire.Resume](fc)
	if err != nil {
		return nil, false, err
	}
	// NextSeq 0 asks for a full sync (the receiver has never synced).
	next := max(resume.NextSeq, 1)
	if resume.Origin != r.cfg.NodeID || next > r.log.Next() {
		return nil, false, fc.reject(wire.RejectBadFrame, "resume of origin %d at %d; this is origin %d at %d",
			resume.Origin, resume.NextSeq, r.cfg.NodeID, r.log.Next())
	}
	r.mergePeerClock(l, h.NodeName, resume.HLC)
	r.mu.Lock()
	l.mu.Lock()
	if l.nodeID != h.NodeID {
		l.acked = 0 // another node answers at this address: its acks start over
	}
	replay := uint64(0)
	if l.nodeID == h.NodeID && l.peerInc == h.Incarnation {
		replay = l.lastAck + 1
	} else {
		l.lastAck = 0 // another process: nothing of this log
	}
	l.peerInc = h.Incarnation
	l.nodeID, l.name, l.region = h.NodeID, h.NodeName, h.Region
	l.vouchKnown, l.vouched = false, nil // announced after the Resume
	// The relays queued stay: they answer the peer's streams from other
	// origins, which this reconnection did not touch.
	l.keeps, l.relayed = resume.Keeps, resume.Relayed
	l.acked = max(l.acked, next-1)
	l.lastAck = max(l.lastAck, next-1)
	if resume.NextSeq == 0 {
		// A peer asking for a full sync may vouch for keys it skipped or
		// lost since its last acks: those acks no longer speak for it
		// until the snapshot lands and it acknowledges again (its acks
		// during the snapshot say 0). lastAck stays: a full sync cut off
		// before the peer acknowledged it replays from there again.
		l.acked = 0
	}
	l.sent = next
	l.mu.Unlock()
	r.ackAdvancedLocked()
	r.mu.Unlock()
	l.setState(true, nil)
	l.mu.Lock()
	if !l.resumeAsked {
		l.repairWanted = true // after a disconnect, compare what both sides hold
	}
	l.resumeAsked = false
	warned := l.warned
	l.warned = false
	l.mu.Unlock()
	r.wakeSync()
	r.cfg.Logger.Info("replication link up", "peer", l.addr, "node", h.NodeName, "region", h.Region, "from_seq", next, "protocol", min(hello.Proto, h.Proto))
	if warned {
		r.cfg.Logger.Info("replication link recovered", "peer", l.addr, "node", h.NodeName, "region", h.Region)
	}
	if resume.NextSeq == 0 {
		resume.NextSeq = replay
		return resume, true, nil
	}
	resume.NextSeq, resume.Wanted = next, nil
	return resume, false, nil
}

// sender streams this node's log on one connection, with a full sync when
// the peer asks for one or the log no longer reaches back far enough,
// pings, and the probe rounds of anti-entropy while the log is idle.
type sender struct {
	r            *Replicator
	l            *link
	fc           *frameConn
	next         uint64 // next sequence number to send
	wanted       []byte // the slots the peer's full sync is to carry (nil: every key)
	needSnapshot bool
	readErr      <-chan error // the reader's end

	batch []store.Op
	ops   []wire.Op
	round *probeRound
	// large is the large op being sent, a part per turn (large.go), and
	// batchLeft the ops of the current batch not sent yet.
	large     *largeSend
	batchLeft uint64
	probes    <-chan []wire.Op // nil unless a round is running
	// relayBuf is the relay queue swapped with the link's (relay.go).
	relayBuf []relayItem

	// lastOps is when the last frame of writes went out; hold fires when
	// the next may (Config.Coalesce), and held is its channel while the
	// sender waits for it (nil otherwise).
	lastOps time.Time
	hold    *time.Timer
	held    <-chan time.Time
}

// DefaultCoalesce is Config.Coalesce's default.
const DefaultCoalesce = 500 * time.Microsecond

func (s *sender) run() error {
	r, l := s.r, s.l
	wake, unsubscribe := r.log.Subscribe()
	defer unsubscribe()
	ping := time.NewTicker(r.cfg.PingInterval)
	defer ping.Stop()
	s.hold = time.NewTimer(time.Hour)
	s.hold.Stop()
	defer s.hold.Stop()
	defer s.endRound()
	for {
		// Send everything available before waiting: an idle link sends a
		// write the moment it is appended; a busy one sends what gathered
		// while it held (Config.Coalesce) or wrote the previous frame.
		if err := s.sendRelays(); err != nil {
			return err
		}
		if s.held == nil {
			sent, err := s.sendAvailable(ping.C)
			if err != nil {
				return err
			}
			if sent {
				continue
			}
		}
		if s.round == nil && r.roundDue(l) {
			l.mu.Lock()
			keeps := l.keeps
			l.mu.Unlock()
			s.round = r.startProbeRound(keeps)
			s.probes = s.round.chunks
		}
		// While holding, appends do not wake the sender: that wake-up per
		// write is what holding saves.
		appended := wake
		if s.held != nil {
			appended = nil
		}
		select {
		case <-appended:
		case <-s.held:
			s.held = nil
		case <-l.kick:
		case <-l.window:
		case <-l.relayWake:
		case chunk, ok := <-s.probes:
			if err := s.sendProbe(chunk, ok); err != nil {
				return err
			}
		case <-ping.C:
			if err := s.ping(); err != nil {
				return err
			}
		case err := <-s.readErr:
			return err
		case <-l.ctx.Done():
			msg := "peer removed from this node's peers"
			if r.ctx.Err() != nil {
				msg = "node shutting down"
			}
			s.fc.write(&wire.Reject{Code: wire.RejectShuttingDown, Message: msg})
			return nil
		}
	}
}

// sendAvailable sends the next part of a large op in flight, a full sync
// if one is due, or else the next batch of the log (the ops an overtaken
// large op lets pass, up to the next large one), and reports whether it
// sent anything.
func (s *sender) sendAvailable(ping <-chan time.Time) (bool, error) {
	r := s.r
	sentPart := false
	if s.large != nil {
		if err := s.pingIfDue(ping); err != nil {
			return false, err
		}
		if s.windowOpen() {
			done, err := s.large.next(s.fc, r.cfg.BatchBytes)
			if err != nil {
				return false, err
			}
			if done {
				s.large = nil
			}
			sentPart = true
		}
		if s.large != nil && !s.large.overtake {
			return sentPart, nil // nothing passes a message or a batch's op
		}
	}
	var err error
	s.batch, _, err = r.log.Read(s.next, int64(r.cfg.BatchBytes), s.batch[:0])
	if errors.Is(err, ErrTruncated) || s.needSnapshot {
		if s.large != nil {
			// The op in flight first: the receiver refuses a sync inside
			// it. With its window closed nothing went out: wait for a
			// PartAck (l.window) rather than read again at once.
			return sentPart, nil
		}
		replay := s.next
		if !s.needSnapshot {
			replay = 0 // the log no longer reaches back to the peer
		}
		s.needSnapshot = false
		s.next, err = r.sendSnapshot(s.l, s.fc, replay, s.wanted, s.sendRelays)
		s.batchLeft = 0
		return err == nil, err
	}
	if len(s.batch) == 0 {
		return sentPart, nil
	}
	if s.large == nil && s.holding(len(s.batch)) {
		clear(s.batch)
		return false, nil
	}
	if s.large == nil {
		if err := s.pingIfDue(ping); err != nil {
			return false, err
		}
	}
	s.ops = toWire(s.batch, s.ops[:0])
	clear(s.batch) // do not pin values until the next batch
	s.skipUnkept()
	k := 0
	for k < len(s.ops) && !r.isLarge(&s.ops[k]) {
		k++
	}
	switch {
	case k > 0:
		if err := s.fc.write(&wire.Ops{Origin: r.cfg.NodeID, FirstSeq: s.next, Ops: s.ops[:k]}); err != nil {
			return false, err
		}
		if s.r.cfg.Coalesce > 0 {
			s.lastOps = time.Now()
		}
	case s.large != nil:
		// The next op is large too: it waits for the one in flight (and,
		// if its window is closed, for a PartAck).
		clear(s.ops)
		return sentPart, nil
	default:
		w := s.ops[0]
		s.l.mu.Lock()
		s.l.partSeq, s.l.partAcked = s.next, 0
		s.l.mu.Unlock()
		s.large, err = startLarge(s.fc, r.cfg.NodeID, s.next, w, r.cfg.BatchBytes, overtakes(w.Kind, s.batchLeft > 0))
		if err != nil {
			return false, err
		}
		k = 1
	}
	for i := range k {
		if s.batchLeft > 0 {
			s.batchLeft--
		} else if s.ops[i].Kind == wire.KindBatch {
			s.batchLeft = uint64(s.ops[i].ExpireAt)
		}
	}
	clear(s.ops)
	s.next += uint64(k)
	s.l.mu.Lock()
	s.l.sent = s.next
	s.l.mu.Unlock()
	return true, nil
}

// skipUnkept turns the writes of s.ops whose keys the peer does not keep
// into skips: their version and slot, without key or value; and those of
// slots it takes relayed into stand-ins (wire.KindRelayed), laid out the
// same, unless they are in a batch or larger than maxRelayedOp (those go
// whole). Deletes go whole (the peer applies them whatever the key), and
// so do messages and batch markers.
func (s *sender) skipUnkept() {
	s.l.mu.Lock()
	keeps, relayed := s.l.keeps, s.l.relayed
	s.l.mu.Unlock()
	if keeps == nil && relayed == nil {
		return // the peer keeps every key, and takes none relayed
	}
	skips, standIns := 0, 0
	inBatch := s.batchLeft
	for i := range s.ops {
		w := &s.ops[i]
		batched := inBatch > 0
		switch {
		case batched:
			inBatch--
		case w.Kind == wire.KindBatch:
			inBatch = uint64(w.ExpireAt)
		}
		if w.Kind != wire.KindSet && w.Kind != wire.KindCounter && w.Kind != wire.KindHash {
			continue
		}
		slot := cluster.KeySlot(w.Key)
		switch {
		case keeps != nil && !slotIn(keeps, slot):
			*w = wire.Op{Kind: wire.KindSkip, ExpireAt: int64(slot), HLC: w.HLC, VOrigin: w.VOrigin}
			skips++
		case relayed != nil && !batched && slotIn(relayed, slot) && w.Size() <= maxRelayedOp && !s.r.isLarge(w):
			// (A large op reaches the primary in parts, which it does not
			// relay: it goes whole to the co-owner too.)
			*w = wire.Op{Kind: wire.KindRelayed, ExpireAt: int64(slot), HLC: w.HLC, VOrigin: w.VOrigin}
			standIns++
		}
	}
	if skips > 0 || standIns > 0 {
		s.l.mu.Lock()
		s.l.skipped += uint64(skips)
		s.l.standIns += uint64(standIns)
		s.l.mu.Unlock()
	}
}

// holding reports whether the n writes read from the log wait for more
// before they are sent (Config.Coalesce), and if so arms the hold: the
// last frame of writes went out less than Coalesce ago and the writes
// ready do not fill a frame.
func (s *sender) holding(n int) bool {
	c := s.r.cfg.Coalesce
	if c <= 0 || s.lastOps.IsZero() {
		return false
	}
	wait := c - time.Since(s.lastOps)
	if wait <= 0 || s.r.log.BytesAfter(s.next-1) >= int64(s.r.cfg.BatchBytes) {
		return false
	}
	s.hold.Reset(wait)
	s.held = s.hold.C
	return true
}

// windowOpen reports whether the large op in flight may send its next
// part: the peer holds all but less than LargeWindow of what was sent.
// Without the bound the parts would fill every buffer between here and the
// link's narrowest point, and the small writes that pass the large op would
// queue behind all of them there.
func (s *sender) windowOpen() bool {
	// partAcked is the op in flight's: the sender set partSeq to it when it
	// started the op, and onPartAck counts only its acks.
	s.l.mu.Lock()
	acked := s.l.partAcked
	s.l.mu.Unlock()
	return uint64(s.large.off) < acked+uint64(s.r.cfg.LargeWindow)
}

// pingIfDue pings if the ticker says so and returns the reader's error if
// it failed: a busy link still pings (RTT, clock offset, liveness: a long
// large op keeps the peer's answers coming) and notices a failed reader.
func (s *sender) pingIfDue(ping <-chan time.Time) error {
	select {
	case <-ping:
		return s.ping()
	case err := <-s.readErr:
		return err
	default:
	}
	return nil
}

func (s *sender) ping() error {
	return s.fc.write(&wire.Ping{SentNanos: s.r.cfg.Physical.UnixNano()})
}

// sendProbe sends one chunk of the running probe round, or ends the round
// when its producer is done (ok false).
func (s *sender) sendProbe(chunk []wire.Op, ok bool) error {
	if !ok {
		s.endRound()
		s.l.mu.Lock()
		s.l.rounds++
		s.l.mu.Unlock()
		return nil
	}
	return s.fc.write(&wire.Probe{Origin: s.r.cfg.NodeID, Ops: chunk})
}

func (s *sender) endRound() {
	if s.round != nil {
		s.round.close()
		s.round, s.probes = nil, nil
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
//
// between runs after each chunk (nil: nothing): the link's relays, which
// must not wait for the end of a long sync.
func (r *Replicator) sendSnapshot(l *link, fc *frameConn, replay uint64, wanted []byte, between func() error) (uint64, error) {
	// Every write with a sequence number below s0 was versioned before ts
	// (versions come from a monotonic clock, and a write is versioned before
	// it is logged), so the snapshot plus the log from s0 covers them all.
	s0 := r.log.Next()
	ts := r.cfg.Clock.Update(0)
	// A peer away longer than the tombstone horizon asks for a full sync
	// (see takeOver) but may have missed this node's own writes too. The
	// snapshot alone does not always cover them: a write that superseded a
	// delete and was then evicted here leaves only a local ghost, and the
	// peer would keep the value the delete removed. So if the peer is the
	// process that acked up to replay-1, and the log still reaches back to
	// replay, the log replays from there after the snapshot: replaying
	// what the snapshot already covers is idempotent.
	from := s0
	if replay > 0 && replay < s0 {
		if r.log.Stats().First <= replay {
			from = replay
		} else {
			// The peer holds this log up to replay-1 for the slots it did
			// not ask for, and the log no longer reaches back there: it
			// resumes after s0 for every slot, so the snapshot carries
			// every slot.
			wanted = nil
		}
	}
	// The receiver judges only the slots it wanted anyway.
	if err := fc.write(&wire.SnapshotBegin{Origin: r.cfg.NodeID, Seq: from - 1, HLC: uint64(ts), Vouched: r.snapshotVouched()}); err != nil {
		return 0, err
	}
	if err := r.writeEntries(fc, wanted, between); err != nil {
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
	r.cfg.Logger.Info("full sync sent", "peer", l.addr, "seq", s0-1, "replay_from", from)
	return from, nil
}

// writeEntries writes every live entry and tombstone of the store whose
// key is in wanted (nil: every key) as SnapshotChunks of this node's, a
// large one as a LargeOp of sequence number 0 and its ValueParts: the body
// of a full sync. between, if set, runs after each chunk written.
func (r *Replicator) writeEntries(fc *frameConn, wanted []byte, between func() error) error {
	var chunk []wire.Op
	size := 0
	var err error
	flush := func() {
		if len(chunk) > 0 && err == nil {
			err = fc.write(&wire.SnapshotChunk{Origin: r.cfg.NodeID, Ops: chunk})
			if err == nil && between != nil {
				err = between()
			}
		}
		clear(chunk)
		chunk, size = chunk[:0], 0
	}
	r.cfg.Store.Snapshot(func(op store.Op) bool {
		if wanted != nil && !slotIn(wanted, cluster.KeySlot(op.Key)) {
			return true
		}
		w := toWireOp(&op)
		if r.isLarge(&w) {
			flush()
			if err == nil {
				err = r.writeLarge(fc, w)
			}
			return err == nil
		}
		if size+w.Size() > r.cfg.BatchBytes {
			flush()
		}
		chunk = append(chunk, w)
		size += w.Size()
		return err == nil
	})
	flush()
	return err
}

// readAcks reads the peer's side of an outbound connection: one handler
// per frame kind.
func (r *Replicator) readAcks(l *link, fc *frameConn) error {
	var large largeRepair
	for {
		f, err := fc.read()
		if err != nil {
			return fc.rejectRead(err)
		}
		switch f := f.(type) {
		case *wire.Ack:
			err = r.onAck(l, fc, f)
		case *wire.Pong:
			r.onPong(l, f)
		case *wire.Repair:
			if large.lr != nil {
				return fc.reject(wire.RejectBadFrame, "repair while a large one is arriving")
			}
			r.applyRepair(l, f)
		case *wire.PartAck:
			err = r.onPartAck(l, fc, f)
		case *wire.Vouched:
			err = r.onVouched(l, fc, f)
		case *wire.Keeps:
			if f.Origin != r.cfg.NodeID {
				err = fc.reject(wire.RejectBadFrame, "kept slots for origin %d", f.Origin)
				break
			}
			l.mu.Lock()
			l.keeps, l.relayed = f.Slots, f.Relayed // the writes sent from now on
			l.mu.Unlock()
		case *wire.LargeOp:
			err = large.onLargeOp(r, fc, f)
		case *wire.ValuePart:
			err = large.onValuePart(r, l, fc, f)
		case *wire.Reject:
			err = onPeerReject(f)
		default:
			err = fc.reject(wire.RejectBadFrame, "unexpected %T frame on a sending link", f)
		}
		if err != nil {
			return err
		}
	}
}

// onAck records how far the peer has applied this node's log.
func (r *Replicator) onAck(l *link, fc *frameConn, f *wire.Ack) error {
	if f.Origin != r.cfg.NodeID || f.Seq >= r.log.Next() {
		return fc.reject(wire.RejectBadFrame, "ack of origin %d seq %d", f.Origin, f.Seq)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l.mu.Lock()
	advanced := f.Seq > l.acked
	l.acked = max(l.acked, f.Seq)
	l.lastAck = max(l.lastAck, f.Seq)
	l.mu.Unlock()
	if advanced {
		r.ackAdvancedLocked()
	}
	return nil
}

// onVouched records which keys the peer's acks speak for.
func (r *Replicator) onVouched(l *link, fc *frameConn, f *wire.Vouched) error {
	if f.Origin != r.cfg.NodeID {
		return fc.reject(wire.RejectBadFrame, "vouched slots for origin %d", f.Origin)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l.mu.Lock()
	l.vouchKnown, l.vouched = true, f.Slots
	l.mu.Unlock()
	r.ackAdvancedLocked() // a wait may be met by what the acks now cover
	return nil
}

// onPartAck records how much of the large op in flight the peer holds and
// wakes the sender.
func (r *Replicator) onPartAck(l *link, fc *frameConn, f *wire.PartAck) error {
	if f.Origin != r.cfg.NodeID || f.Seq >= r.log.Next() {
		return fc.reject(wire.RejectBadFrame, "part ack of origin %d seq %d", f.Origin, f.Seq)
	}
	l.mu.Lock()
	if f.Seq == l.partSeq {
		l.partAcked = max(l.partAcked, f.Received)
	}
	l.mu.Unlock()
	select {
	case l.window <- struct{}{}:
	default:
	}
	return nil
}

// onPong measures the round trip and the peer's clock offset.
func (r *Replicator) onPong(l *link, f *wire.Pong) {
	now := r.cfg.Physical.UnixNano()
	rtt := time.Duration(now - f.EchoNanos)
	off := hlc.EstimateOffset(f.EchoNanos, f.PhysicalNanos, now)
	l.mu.Lock()
	l.rtt, l.offset = rtt, off
	name := l.name
	l.mu.Unlock()
	// The midpoint estimate is off by up to half the round trip
	// (asymmetric delay: a Ping queued behind a burst of data), so judge
	// the peer by the smallest offset consistent with it.
	r.cfg.Clock.ObservePeerOffset(name, towardZero(off, rtt/2))
}

// errKeepsAsked ends a link whose peer came to keep slots whose writes
// this node sent it as skips (wire.RejectKeeps).
var errKeepsAsked = errors.New("repl: the peer resumes with the slots it keeps now")

// onPeerReject ends the link on the peer's Reject.
func onPeerReject(f *wire.Reject) error {
	if f.Code == wire.RejectResync {
		return errResyncAsked
	}
	if f.Code == wire.RejectKeeps {
		return errKeepsAsked
	}
	if f.Code == wire.RejectClockAhead {
		// The peer found this node's versions too far ahead of its clock.
		// This node already refuses writes if it is the culprit: its
		// offset to most peers is measured at each handshake and ping, and
		// its clock refuses to version writes while it runs ahead of its
		// own physical time (hlc.Clock.NowWithin). Redial with backoff;
		// the op is delivered once in bounds.
		return &linkError{reason: ReasonClockAhead, err: fmt.Errorf("the peer holds this node's stream: %s", f.Message)}
	}
	return fmt.Errorf("repl: peer rejected us: %v: %s", f.Code, f.Message)
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
