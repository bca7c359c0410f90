package repl

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/latency"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// originState is the receive side of one origin: how far its log has been
// applied here, for which incarnation of it.
type originState struct {
	id uint32

	// mu guards the fields below and serializes applying this origin's
	// frames. Lock order: Replicator.mu, then mu, then store locks.
	mu          sync.Mutex
	gen         uint64 // bumped by each new connection; older ones stop
	incarnation uint64
	applied     uint64 // last sequence number applied, or passed by overtaking ops
	// hole is the sequence number of an overtaken large op whose parts are
	// still arriving (0: none): acks stop before it, and a new connection
	// resumes from it (large.go).
	hole uint64
	// delivered is the sequence number of the last message handed to
	// OnPublish: a replay after a full sync does not deliver it again.
	delivered uint64
	messages  uint64 // messages delivered
	// batch holds a batch (a KindBatch marker and the ops it announces)
	// whose frames are still arriving: it is applied whole once complete,
	// and dropped with the connection (the origin resends it from the
	// marker, at applied+1).
	batch pendingBatch
	// synced is false until this node has completed a full sync from the
	// origin: a node that has never synced (it just started, empty) asks for
	// one, which refills it with everything the origin holds — including
	// its own writes from before a crash, which no log would send back.
	synced    bool
	name      string
	region    string
	connected bool
	since     time.Time
	conn      net.Conn // the connection applying the stream, while connected (Resync)
	// resync is set by Resync to end the connection applying the stream
	// now: it tells the origin (RejectResync) at its next frame, or at
	// once if idle (Resync cuts its read short).
	resync atomic.Bool
	// fill is set by Resync for an origin this node had synced with: the
	// full sync it asks for only fills the keys it came to keep
	// (Config.Wanted); an absence past the horizon clears it.
	fill bool
	// heard is when the last connection from the origin last delivered a
	// frame: the start of an absence.
	heard     time.Time
	results   [store.Invalid + 1]uint64 // Apply results of its ops
	fullSyncs uint64
	dropped   uint64 // entries dropped after full syncs
	// heldAhead counts the stops at a version too far ahead (holdAhead),
	// whose warnings aheadWarn rate-limits; syncsRefused counts the full
	// syncs refused (not asked for, or over budget).
	heldAhead    uint64
	aheadWarn    warnState
	syncsRefused uint64
	syncWarn     warnState
	// visibility times the streamed ops' arrival (metrics.go); atomic.
	visibility latency.Histogram

	// Relays (relay.go). owed are the stream's writes taken relayed
	// (wire.KindRelayed) and not relayed yet, oldest first: acks stop
	// before the oldest, and a new connection resumes from it. owedSince
	// is the oldest's arrival (Unix ns; 0: none), read by the stream's
	// goroutine at every frame without mu. early are the writes relayed
	// before their stand-ins arrived (at most maxEarlyRelays). wholeUntil
	// is where the stream stood when a relay was missed: its connections
	// name no slot relayed until they have applied it (0: none). stream
	// is the connection applying the stream, to acknowledge a relay at
	// once; relayWarn rate-limits the log of a missed relay.
	// relayOff (Unix ns) is when, after missed relays, this node may name
	// slots relayed to the origin again (0: at once), backing off at each
	// miss in a row (relayMisses; a relay that settles a write resets it):
	// a primary that never relays (a node of an older version, during a
	// rolling upgrade) costs a miss per backoff, not one per RelayWait.
	owed        []owedOp
	owedSince   atomic.Int64
	relayOff    atomic.Int64
	relayMisses int
	early       map[uint64]int // sequence number → slot
	earlyPruned uint64         // acked() when early was last pruned
	wholeUntil  uint64
	stream      *inStream
	relayWarn   warnState
}

// acceptLoop accepts peer connections until Close.
func (r *Replicator) acceptLoop() {
	for {
		c, err := r.cfg.Listener.Accept()
		if err != nil {
			if r.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			r.cfg.Logger.Warn("replication accept failed", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-r.ctx.Done():
				return
			}
			continue
		}
		if !r.admit(c.RemoteAddr()) {
			c.Close()
			continue
		}
		if !r.track(c) {
			r.leave()
			return
		}
		r.wg.Go(func() {
			defer r.leave()
			defer r.untrack(c)
			if err := r.runInbound(c); err != nil && r.ctx.Err() == nil {
				r.cfg.Logger.Debug("replication stream from peer ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		})
	}
}

// snapshotState collects a full sync in progress.
type snapshotState struct {
	seq  uint64
	hlc  hlc.Timestamp
	keys map[string]struct{}
	// bytes is what keys costs, counted against Config.MaxSnapshotBytes.
	bytes int64
	// vouched is the sender's set of slots it holds all of, wanted the set
	// this node asked for (nil: every key): the drop rule judges only the
	// keys of both.
	vouched, wanted []byte
}

// maxUnackedFrames bounds how many received frames one ack may cover.
const maxUnackedFrames = 16

var errSuperseded = errors.New("repl: a newer connection from the same origin took over")

// runInbound serves one connection from a peer that streams its log here:
// the handshake, then one handler per frame kind.
func (r *Replicator) runInbound(c net.Conn) error {
	in, err := r.handshakeIn(c)
	if in == nil {
		return err
	}
	defer func() { r.release(in.o, in.gen, in.heard) }()
	if err != nil {
		return err
	}
	if r.cfg.RelayedSlots != nil && in.h.Region != r.cfg.Region {
		// The writes this stream takes relayed are acknowledged when
		// their relays arrive, by a goroutine of the stream's own.
		stop := make(chan struct{})
		var acker sync.WaitGroup
		acker.Go(func() { in.ackRelays(stop) })
		defer func() { close(stop); acker.Wait() }()
	}
	return in.serve()
}

// inStream is the receiving side of one accepted connection after its
// handshake: it applies one origin's stream and answers its probes.
type inStream struct {
	r   *Replicator
	fc  *frameConn
	h   *wire.Hello // the origin's
	o   *originState
	gen uint64 // this connection's generation of o
	// asked is set while this node has asked for a full sync (it resumed
	// at 0) that has not started: it applies one only when it asks, and
	// then only one, since an unasked one could drop what it holds.
	asked bool
	next  uint64 // where this node asked the origin to resume
	// wanted is the set of slots the full sync asked for is to carry (nil:
	// every key; Config.Wanted).
	wanted []byte
	snap   *snapshotState
	heard  time.Time // when the last frame arrived

	lastWrite time.Time // of the last frame written to the origin
	unacked   int       // Ops frames applied and not yet acknowledged
	pending   uint64    // the sequence number those acks would carry
	large     *largeRecv
	// vouched is the slot set last announced to the origin (Vouched).
	vouched []byte
	// keeps is the set of slots kept last named to the origin (Resume,
	// Keeps), relayed those named taken relayed (nil: none).
	keeps, relayed []byte
	// lastVouched is vouched, for the goroutine that acknowledges a
	// relay's arrival (ackRelayed); ackDue is set when that goroutine
	// left the ack to this stream's (the slots vouched for changed).
	lastVouched atomic.Pointer[[]byte]
	ackDue      atomic.Bool
	// ackSeq is the position a relay's arrival moved the origin's
	// acknowledged position to; ackWake wakes ackRelays to send it.
	ackSeq  atomic.Uint64
	ackWake chan struct{}
	// wholeUntil is the origin's while this connection names no slot
	// relayed (after a missed relay; 0 once past it).
	wholeUntil uint64
	// relays collects the writes of a frame to hand on (relay.go).
	relays []relayItem
}

// acked returns the sequence number this node acknowledges: the last one
// applied, or the one before an overtaken op still arriving or a write
// owed by a relay, whichever is first.
func (o *originState) acked() uint64 {
	a := o.applied
	if o.hole != 0 {
		a = min(a, o.hole-1)
	}
	if len(o.owed) > 0 {
		a = min(a, o.owed[0].seq-1)
	}
	return a
}

// handshakeIn reads the peer's Hello, answers it, takes over the origin's
// stream and tells it where to resume. It returns a nil stream if the
// handshake failed before the takeover (nothing to release).
func (r *Replicator) handshakeIn(c net.Conn) (*inStream, error) {
	fc := newHandshakeConn(c, r.cfg.MaxFrame, r.cfg.DeadTimeout)
	first, err := fc.readHello()
	if err != nil {
		return nil, err
	}
	if fh, ok := first.(*wire.FetchHello); ok {
		return nil, r.serveFetches(c, fc, &fh.Hello)
	}
	h, ok := first.(*wire.Hello)
	if !ok {
		return nil, fc.reject(wire.RejectBadFrame, "a connection starts with a Hello or a FetchHello, not %T", first)
	}
	if rej := r.checkHello(h); rej != nil {
		r.refused(c.RemoteAddr(), h, rej)
		fc.write(publicReject(rej, h))
		return nil, errors.New("repl: refused peer: " + rej.Message)
	}
	// The older of the two versions, which both speak from here on.
	if err := fc.write(r.helloAt(min(h.Proto, wire.Proto))); err != nil {
		return nil, err
	}
	fc.grow()
	o, gen, next, fill := r.takeOver(h, c)
	now := time.Now()
	in := &inStream{r: r, fc: fc, h: h, o: o, gen: gen, asked: next == 0, next: next, heard: now, lastWrite: now, ackWake: make(chan struct{}, 1)}
	if next == 0 && r.cfg.Wanted != nil {
		in.wanted = r.cfg.Wanted(fill)
	}
	if r.cfg.KeptSlots != nil {
		in.keeps = r.cfg.KeptSlots()
	}
	o.mu.Lock()
	if o.wholeUntil > o.applied {
		in.wholeUntil = o.wholeUntil
	}
	o.mu.Unlock()
	in.relayed = in.relayedSlots()
	if err := fc.write(&wire.Resume{Origin: h.NodeID, NextSeq: next, HLC: uint64(r.cfg.Clock.Last()), Wanted: in.wanted, Keeps: in.keeps, Relayed: in.relayed}); err != nil {
		return in, err
	}
	// The Resume acknowledges next-1: the origin counts it once it knows
	// which keys this node's acknowledgements speak for.
	if err := in.announceVouched(true); err != nil {
		return in, err
	}
	// From now on a relay's arrival may acknowledge on this connection
	// (never before the Resume, which the origin reads first).
	o.mu.Lock()
	if o.gen == gen {
		o.stream = in
	}
	o.mu.Unlock()
	return in, nil
}

// announceKeeps tells the origin which slots' writes this node keeps
// (Config.KeptSlots), and which of them it takes relayed, if that changed
// since it last said, at each frame received: the origin sends the
// others' writes as skips, and the relayed ones' as stand-ins, from then
// on. A set that grew needs no haste: a skip of a slot kept now (or a
// stand-in of a slot taken whole now) ends the stream, which resumes from
// it.
func (in *inStream) announceKeeps() (changed bool, err error) {
	if in.r.cfg.KeptSlots == nil && in.r.cfg.RelayedSlots == nil {
		return false, nil
	}
	var k []byte
	if in.r.cfg.KeptSlots != nil {
		k = in.r.cfg.KeptSlots()
	}
	rl := in.relayedSlots()
	if sameSlots(k, in.keeps) && sameSlots(rl, in.relayed) {
		return false, nil
	}
	if k != nil && !sameSlots(k, in.keeps) {
		// (Config users without a hook of their own: ForgetRelayed.)
		in.o.mu.Lock()
		in.o.forgetEarlyLocked(func(slot int) bool { return slotIn(k, slot) })
		in.o.mu.Unlock()
	}
	in.keeps, in.relayed = k, rl
	return true, in.fc.write(&wire.Keeps{Origin: in.h.NodeID, Slots: k, Relayed: rl})
}

// sameSlots reports whether two wire slot sets (nil: every slot) are the
// same; the same slice is, without comparing its bytes.
func sameSlots(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return &a[0] == &b[0] || bytes.Equal(a, b)
}

// announceVouched tells the origin which keys this node's acknowledgements
// speak for (Config.Vouched), if always or if that changed since it last
// did. It runs before every Ack, so that an Ack never speaks for slots
// this node no longer holds all of.
func (in *inStream) announceVouched(always bool) error {
	var v []byte
	if in.r.cfg.Vouched != nil {
		v = in.r.cfg.Vouched()
	}
	if !always && bytes.Equal(v, in.vouched) && (v == nil) == (in.vouched == nil) {
		return nil
	}
	in.vouched = v
	// Sent before the goroutine that acknowledges relays may speak for
	// it: an Ack never overtakes the Vouched it speaks under.
	err := in.fc.write(&wire.Vouched{Origin: in.h.NodeID, Slots: v})
	in.lastVouched.Store(&v)
	return err
}

func (in *inStream) serve() error {
	for {
		// Before waiting for more, acknowledge what is applied: an ack is
		// only ever deferred while more received bytes are waiting.
		if in.unacked > 0 && in.fc.r.Buffered() == 0 {
			if err := in.ack(in.pending); err != nil {
				return err
			}
		}
		f, err := in.fc.read()
		if in.o.resync.Load() {
			return in.askResync()
		}
		if err != nil {
			return in.fc.rejectRead(err)
		}
		in.heard = time.Now()
		// Whatever the frame, the origin hears first of slots this node
		// stopped or started keeping: a frame of writes is the earliest
		// moment it needs to (it sends the others' writes as skips).
		if changed, err := in.announceKeeps(); err != nil {
			return err
		} else if changed {
			if err := in.relayMoved(); err != nil {
				return err
			}
		}
		if err := in.relayOverdue(in.heard); err != nil {
			return err
		}
		if in.ackDue.Swap(false) {
			in.o.mu.Lock()
			acked := in.o.acked()
			in.o.mu.Unlock()
			if err := in.ack(acked); err != nil {
				return err
			}
		}
		switch f := f.(type) {
		case *wire.Ops:
			err = in.onOps(f)
		case *wire.SnapshotBegin:
			err = in.onSnapshotBegin(f)
		case *wire.SnapshotChunk:
			err = in.onSnapshotChunk(f)
		case *wire.SnapshotEnd:
			err = in.onSnapshotEnd(f)
		case *wire.Probe:
			err = in.onProbe(f)
		case *wire.LargeOp:
			err = in.onLargeOp(f)
		case *wire.ValuePart:
			err = in.onValuePart(f)
		case *wire.Relay:
			err = in.onRelay(f)
		case *wire.Ping:
			err = in.fc.write(&wire.Pong{EchoNanos: f.SentNanos, PhysicalNanos: in.r.cfg.Physical.UnixNano()})
		case *wire.Reject:
			err = errors.New("repl: peer closed the stream: " + f.Code.String() + ": " + f.Message)
		default:
			err = in.fc.reject(wire.RejectBadFrame, "unexpected %T frame on a receiving stream", f)
		}
		if errors.Is(err, errResyncAsked) { // at the end of a snapshot
			return in.askResync()
		}
		if err != nil {
			return err
		}
	}
}

// askResync ends the stream at Resync's request, telling the origin to
// reconnect at once (its handshake is then asked for a full sync). The
// frame just read, if any, is not applied: the full sync brings it.
func (in *inStream) askResync() error {
	in.fc.write(&wire.Reject{Code: wire.RejectResync, Message: "this node asks for a full sync"})
	return errResyncAsked
}

// slotIn reports whether slot is in a wire.SlotSetLen-byte set.
func slotIn(set []byte, slot int) bool { return set[slot>>3]&(1<<(slot&7)) != 0 }

// errResyncAsked ends a stream that Resync asked to end.
var errResyncAsked = errors.New("repl: a full sync is asked for")

// ack acknowledges the origin's log up to seq.
func (in *inStream) ack(seq uint64) error {
	in.unacked = 0
	in.lastWrite = time.Now()
	if err := in.announceVouched(false); err != nil {
		return err
	}
	return in.fc.write(&wire.Ack{Origin: in.h.NodeID, Seq: seq})
}

// fromOrigin refuses a frame that names another origin than the stream's.
func (in *inStream) fromOrigin(origin uint32, what string) error {
	if origin != in.h.NodeID {
		return in.fc.reject(wire.RejectBadFrame, "%s of origin %d on the stream of %d", what, origin, in.h.NodeID)
	}
	return nil
}

// onOps applies a batch of the origin's log and acknowledges it, at once
// or with the frames already received behind it.
func (in *inStream) onOps(f *wire.Ops) error {
	if err := in.fromOrigin(f.Origin, "ops"); err != nil {
		return err
	}
	if in.large != nil && !in.large.overtaken {
		return in.fc.reject(wire.RejectBadFrame, "ops while the value of op %d is arriving, which they may not pass", in.large.seq)
	}
	applied, err := in.r.applyOps(in.o, in.gen, f, in.snap != nil, &in.relays)
	in.r.queueRelays(&in.relays)
	if in.wholeUntil != 0 && applied >= in.wholeUntil {
		in.wholeUntil = 0 // past the missed relay: name the slots relayed again
	}
	return in.applied(applied, err)
}

// applied acknowledges the origin's log up to applied after a frame, at
// once or with the frames already received behind it; or, if applying
// stopped at a version too far ahead, acknowledges what was applied and
// holds the stream.
func (in *inStream) applied(applied uint64, err error) error {
	if errors.Is(err, hlc.ErrRemoteAhead) {
		// Acknowledge what was applied, so the origin resumes after it.
		if err := in.ack(applied); err != nil {
			return err
		}
		return in.r.holdAhead(in.fc, in.o, in.h, "ops", err)
	}
	if errors.Is(err, errKeepsGrew) {
		if err := in.ack(applied); err != nil {
			return err
		}
		in.r.keepsGrew.Add(1)
		in.r.cfg.Logger.Info("replication: a skipped write of a slot this node now keeps; resuming the origin's stream from it",
			"origin", in.h.NodeName, "region", in.h.Region, "from_seq", applied+1)
		return in.fc.reject(wire.RejectKeeps, "%v", err)
	}
	if errors.Is(err, errRelayMissed) {
		return in.relayMissed(err)
	}
	if err != nil {
		return in.fc.reject(wire.RejectBadFrame, "%v", err)
	}
	// A burst of frames gets one ack, an isolated frame its own at once.
	if in.fc.r.Buffered() > 0 && in.unacked < maxUnackedFrames {
		in.unacked++
		in.pending = applied
		return nil
	}
	return in.ack(applied)
}

func (in *inStream) onSnapshotBegin(f *wire.SnapshotBegin) error {
	r := in.r
	if f.Origin != in.h.NodeID || in.snap != nil || in.large != nil {
		return in.fc.reject(wire.RejectBadFrame, "unexpected snapshot begin")
	}
	if !in.asked {
		r.unaskedSync(in.o, in.gen, in.h)
		return in.fc.reject(wire.RejectBadFrame,
			"full sync not requested: this node resumed origin %d at seq %d; it asks for one on the next connection", in.h.NodeID, in.next)
	}
	if err := r.cfg.Clock.Check(hlc.Timestamp(f.HLC)); err != nil {
		return r.holdAhead(in.fc, in.o, in.h, "snapshot time", err)
	}
	in.asked = false
	in.snap = &snapshotState{seq: f.Seq, hlc: hlc.Timestamp(f.HLC), keys: map[string]struct{}{}, vouched: f.Vouched, wanted: in.wanted}
	return nil
}

func (in *inStream) onSnapshotChunk(f *wire.SnapshotChunk) error {
	if f.Origin != in.h.NodeID || in.snap == nil || in.large != nil {
		return in.fc.reject(wire.RejectBadFrame, "snapshot chunk outside a snapshot")
	}
	return in.snapshotOps(f.Ops)
}

// snapshotOps applies entries of the full sync in progress.
func (in *inStream) snapshotOps(ops []wire.Op) error {
	r := in.r
	if err := r.applySnapshotChunk(in.o, in.gen, in.snap, ops); err != nil {
		switch {
		case errors.Is(err, hlc.ErrRemoteAhead):
			return r.holdAhead(in.fc, in.o, in.h, "full sync", err)
		case errors.Is(err, errSnapshotBudget):
			r.syncOverBudget(in.o, in.h, err)
			return in.fc.reject(wire.RejectInternal, "%v", err)
		}
		return err
	}
	// A long snapshot must not look like a silent peer to the sender: keep
	// its reader alive with an ack of 0, which acknowledges nothing. Not
	// the last ack: the sender started this node's acks over when it asked
	// for the full sync, and counts them again from the first one after
	// the snapshot lands.
	if time.Since(in.lastWrite) > r.cfg.PingInterval {
		return in.ack(0)
	}
	return nil
}

func (in *inStream) onSnapshotEnd(f *wire.SnapshotEnd) error {
	r := in.r
	if f.Origin != in.h.NodeID || in.snap == nil || in.large != nil {
		return in.fc.reject(wire.RejectBadFrame, "snapshot end outside a snapshot")
	}
	if err := ghostTableShape(f.Ghosts); err != nil {
		return in.fc.reject(wire.RejectBadFrame, "%v", err)
	}
	if err := r.checkGhosts(f.Ghosts); err != nil {
		return r.holdAhead(in.fc, in.o, in.h, "full sync", err)
	}
	if err := r.finishSnapshot(in.o, in.gen, in.snap, f.Ghosts); err != nil {
		return err
	}
	seq := in.snap.seq
	in.snap = nil
	return in.ack(seq)
}

func (in *inStream) onProbe(f *wire.Probe) error {
	if err := in.fromOrigin(f.Origin, "probe"); err != nil {
		return err
	}
	return in.r.answerProbe(in.fc, f)
}

// takeOver makes this connection the one that applies h's origin, and
// returns where the origin should resume: after the last op applied here,
// for the same incarnation; from the start for a new one (a restarted
// origin's log starts at 1 again); or 0, asking for a full sync, if this
// node has never synced with the origin.
func (r *Replicator) takeOver(h *wire.Hello, c net.Conn) (o *originState, gen, next uint64, fill bool) {
	r.mu.Lock()
	o = r.origins[h.NodeID]
	if o == nil {
		o = &originState{id: h.NodeID}
		r.origins[h.NodeID] = o
	}
	r.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gen++
	if o.incarnation != h.Incarnation {
		o.incarnation = h.Incarnation
		o.applied, o.delivered, o.hole = 0, 0, 0
		o.clearRelayLocked(true)
		o.wholeUntil = 0
		// Nothing of the new incarnation's log is here: a full sync asked
		// for now must carry every slot kept, not only those gained (a
		// fill), or its writes of the others before the snapshot are
		// never sent.
		o.fill = false
	}
	o.batch = pendingBatch{}
	// Resume from an overtaken op (it never arrived whole) or a write
	// still owed by a relay, whichever is first.
	o.applied, o.hole = o.acked(), 0
	o.clearRelayLocked(false)
	// Away longer than the tombstone horizon: deletes this node missed may
	// have left no tombstone anywhere, so no stream or anti-entropy round
	// would bring them; a full sync's drop rule removes what they deleted.
	if horizon := r.cfg.TombstoneHorizon; horizon > 0 && (o.synced || o.fill) && !o.connected && time.Since(o.heard) > horizon {
		o.synced, o.fill = false, false
		r.cfg.Logger.Info("origin away longer than the tombstone horizon: asking for a full sync",
			"origin", h.NodeName, "away", time.Since(o.heard).Round(time.Millisecond), "horizon", horizon)
	}
	o.name, o.region = h.NodeName, h.Region
	o.connected, o.since, o.conn = true, time.Now(), c
	o.resync.Store(false) // this connection starts with the full sync asked for, if any
	if !o.synced {
		return o, o.gen, 0, o.fill
	}
	return o, o.gen, o.applied + 1, false
}

// release marks the origin disconnected unless a newer connection took
// over. A lost origin may have delivered its last writes to some regions
// and not others, and a restarted one never resends them, so every link
// then runs an anti-entropy round.
func (r *Replicator) release(o *originState, gen uint64, heard time.Time) {
	o.mu.Lock()
	lost := o.gen == gen
	if lost {
		o.connected, o.since, o.heard, o.conn, o.stream = false, time.Now(), heard, nil, nil
	}
	o.mu.Unlock()
	if lost && r.ctx.Err() == nil {
		r.requestRepair()
	}
}

// applyOps applies one Ops frame and returns the sequence number applied.
// Every op's version is merged into the clock first, so that later local
// writes are versioned after everything this node has seen.
//
// The writes this node hands on to co-owners (relay.go) are added to
// relays.
func (r *Replicator) applyOps(o *originState, gen uint64, f *wire.Ops, inSnapshot bool, relays *[]relayItem) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gen != gen {
		return 0, errSuperseded
	}
	if inSnapshot {
		return 0, errors.New("ops inside a snapshot")
	}
	if want := o.applied + 1 + uint64(len(o.batch.ops)); f.FirstSeq != want {
		return 0, fmt.Errorf("ops out of sequence: got %d, want %d", f.FirstSeq, want)
	}
	relay := r.relaying(o)
	for i := range f.Ops {
		w, seq := &f.Ops[i], f.FirstSeq+uint64(i)
		alone := len(o.batch.ops) == 0
		if err := r.streamOpLocked(o, seq, w); err != nil {
			// Hold the stream here: the ops before are applied, this one
			// and the rest come again once the origin reconnects (a batch
			// from its marker).
			r.observeVisibility(o, f.Ops[:i])
			return o.acked(), fmt.Errorf("op %d: %w", seq, err)
		}
		if relay && alone {
			r.collectRelayLocked(relays, o, seq, w)
		}
	}
	r.observeVisibility(o, f.Ops)
	return o.acked(), nil
}

// streamOpLocked applies (or delivers, or adds to the batch arriving) the
// op of sequence number seq, next in the stream's order.
func (r *Replicator) streamOpLocked(o *originState, seq uint64, w *wire.Op) error {
	var err error
	switch {
	case len(o.batch.ops) > 0 || w.Kind == wire.KindBatch:
		err = r.batchOpLocked(o, w)
	case w.Kind == wire.KindPublish:
		err = r.deliverLocked(o, seq, w)
	case w.Kind == wire.KindRelayed:
		err = r.owedLocked(o, seq, w)
	default:
		err = r.applyLocked(o, w)
	}
	if err == nil && len(o.batch.ops) == 0 && w.Kind != wire.KindBatch {
		o.applied = seq
	}
	return err
}

// pendingBatch is a batch whose ops are still arriving: the KindBatch
// marker first, then the ops it announces.
type pendingBatch struct {
	ops   []wire.Op
	want  int   // ops after the marker
	bytes int64 // of their keys and values
}

// batchOpLocked takes one op of a batch (its marker first) and applies the
// batch once its last op has arrived.
func (r *Replicator) batchOpLocked(o *originState, w *wire.Op) error {
	b := &o.batch
	if len(b.ops) == 0 {
		if n := w.ExpireAt; n < 2 || n > wire.MaxBatchOps || w.Key != "" || len(w.Value) != 0 {
			return fmt.Errorf("%w: a batch of %d ops (2 to %d)", errBadBatch, n, wire.MaxBatchOps)
		}
		b.want = int(w.ExpireAt)
		b.ops = append(b.ops, *w)
		return nil
	}
	if w.Kind != wire.KindSet && w.Kind != wire.KindDelete && w.Kind != wire.KindCounter && w.Kind != wire.KindHash && w.Kind != wire.KindSkip {
		return fmt.Errorf("%w: a %v op inside a batch", errBadBatch, w.Kind)
	}
	b.bytes += int64(len(w.Key) + len(w.Value))
	if b.bytes > r.cfg.MaxBatchBytes {
		return fmt.Errorf("%w: more than %d bytes (MaxBatchBytes)", errBadBatch, r.cfg.MaxBatchBytes)
	}
	b.ops = append(b.ops, *w)
	if len(b.ops) <= b.want {
		return nil
	}
	return r.applyBatchLocked(o)
}

// errBadBatch is a malformed batch: the connection ends with a protocol
// error.
var errBadBatch = errors.New("malformed batch")

// applyBatchLocked applies a complete batch as one unit, through
// Config.ApplyBatch: either every op (each merged into the clock first)
// or, if one is too far ahead of this node's clock, none, and the stream
// holds at the marker.
func (r *Replicator) applyBatchLocked(o *originState) error {
	ops := o.batch.ops[1:]
	keys := make([]string, 0, len(ops))
	for i := range ops {
		err := r.cfg.Clock.Check(hlc.Timestamp(ops[i].HLC))
		if err == nil && ops[i].Kind == wire.KindSkip {
			err = checkSkip(&ops[i])
		}
		if err != nil {
			o.batch = pendingBatch{}
			return err
		}
		if ops[i].Kind != wire.KindSkip {
			keys = append(keys, ops[i].Key)
		}
	}
	var err error
	apply := func() {
		// A skip of a slot this node keeps now holds the whole batch. It
		// is judged here, where the batch's writes are judged (keeps):
		// ApplyBatch may wait, and the slots kept may grow meanwhile.
		for i := range ops {
			if ops[i].Kind == wire.KindSkip {
				if err = r.skipMissed(&ops[i]); err != nil {
					return
				}
			}
		}
		for i := range ops {
			if ops[i].Kind == wire.KindSkip {
				// Judged above: a slot gained since must not cut the
				// batch in two.
				if _, err = r.cfg.Clock.Merge(hlc.Timestamp(ops[i].HLC)); err != nil {
					return
				}
				r.notKept.Add(1)
				continue
			}
			if err = r.applyLocked(o, &ops[i]); err != nil {
				return
			}
		}
	}
	if r.cfg.ApplyBatch != nil {
		r.cfg.ApplyBatch(keys, apply)
	} else {
		apply()
	}
	if errors.Is(err, errKeepsGrew) {
		o.batch = pendingBatch{} // nothing of it applied: resent from its marker
		return err
	}
	if err != nil {
		// Checked in bounds a moment ago: the clock only moves on.
		return err
	}
	o.applied += uint64(len(o.batch.ops))
	o.batch = pendingBatch{}
	return nil
}

// applyLocked merges an op's version into the clock and applies the op,
// unless the version is too far ahead of this node's physical clock: then
// it applies nothing and returns an error wrapping hlc.ErrRemoteAhead. o
// counts the result; it is nil for a SlotSync's entries.
func (r *Replicator) applyLocked(o *originState, w *wire.Op) error {
	if _, err := r.cfg.Clock.Merge(hlc.Timestamp(w.HLC)); err != nil {
		return err
	}
	if w.Kind == wire.KindSkip {
		return r.skipped(w)
	}
	if w.Kind == wire.KindRelayed {
		return errors.New("a relayed write's stand-in outside a stream's ops")
	}
	if !r.keeps(w) {
		return nil
	}
	op := fromWireOp(w)
	res := r.cfg.Store.Apply(op)
	if o != nil && int(res) < len(o.results) {
		o.results[res]++
	}
	return nil
}

// skipped takes a skip (wire.KindSkip) of the stream: a write this node
// said it does not keep. If it keeps the write's slot now, the write is
// missing here: errKeepsGrew ends the stream before it, and the stream
// resumes from it with the slots kept now.
func (r *Replicator) skipped(w *wire.Op) error {
	if err := checkSkip(w); err != nil {
		return err
	}
	if err := r.skipMissed(w); err != nil {
		return err
	}
	r.notKept.Add(1)
	return nil
}

// skipMissed returns errKeepsGrew if this node keeps the slot of the skip
// w now (KeepsSlot; nil keeps every slot): the write it stands for is
// missing here.
func (r *Replicator) skipMissed(w *wire.Op) error {
	if r.cfg.KeepsSlot == nil || r.cfg.KeepsSlot(int(w.ExpireAt)) {
		return fmt.Errorf("%w: slot %d", errKeepsGrew, w.ExpireAt)
	}
	return nil
}

// checkSkip refuses a malformed skip.
func checkSkip(w *wire.Op) error {
	if w.Key != "" || len(w.Value) != 0 || w.ExpireAt < 0 || w.ExpireAt >= cluster.Slots {
		return fmt.Errorf("a skip with a key, a value or a slot outside 0..%d", cluster.Slots-1)
	}
	return nil
}

// errKeepsGrew ends a stream at a skip of a slot this node has come to
// keep since the stream resumed (wire.RejectKeeps).
var errKeepsGrew = errors.New("a skipped write of a slot this node now keeps")

// keeps reports whether this node applies the replicated write w
// (Config.Keeps), and counts it if not. A delete is always applied; a
// skip or a stand-in never is (it has no key: skipped and owedLocked
// judge them in a stream, and nothing applies them elsewhere).
func (r *Replicator) keeps(w *wire.Op) bool {
	if w.Kind == wire.KindSkip || w.Kind == wire.KindRelayed {
		return false
	}
	if r.cfg.Keeps == nil || w.Kind == wire.KindDelete || r.cfg.Keeps(w.Key) {
		return true
	}
	r.notKept.Add(1)
	return false
}

// deliverLocked hands the message with sequence number seq to OnPublish,
// unless it was delivered before, after merging its version into the clock
// like a write's (a message too far ahead holds the stream the same way).
func (r *Replicator) deliverLocked(o *originState, seq uint64, w *wire.Op) error {
	if _, err := r.cfg.Clock.Merge(hlc.Timestamp(w.HLC)); err != nil {
		return err
	}
	if seq <= o.delivered {
		return nil
	}
	o.delivered = seq
	o.messages++
	if r.cfg.OnPublish != nil {
		r.cfg.OnPublish(w.Key, w.Value)
	}
	return nil
}

func (r *Replicator) applySnapshotChunk(o *originState, gen uint64, snap *snapshotState, ops []wire.Op) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gen != gen {
		return errSuperseded
	}
	for i := range ops {
		if err := r.snapshotOp(o, snap, &ops[i]); err != nil {
			return err
		}
	}
	return nil
}

// snapshotOp applies one entry or tombstone of a full sync in progress,
// and tracks a live entry's key for the drop rule within the bounds of
// MaxSnapshotKeys and MaxSnapshotBytes. o (nil for a SlotSync's) counts
// the result.
func (r *Replicator) snapshotOp(o *originState, snap *snapshotState, w *wire.Op) error {
	if w.Kind == wire.KindPublish || w.Kind == wire.KindBatch || w.Kind == wire.KindSkip || w.Kind == wire.KindRelayed {
		return fmt.Errorf("a %v op inside a snapshot", w.Kind)
	}
	track := false
	if (w.Kind == wire.KindSet || w.Kind == wire.KindCounter || w.Kind == wire.KindHash) && r.keeps(w) {
		if _, in := snap.keys[w.Key]; !in {
			cost := int64(len(w.Key)) + snapshotKeyOverhead
			if len(snap.keys) >= r.cfg.MaxSnapshotKeys || snap.bytes+cost > r.cfg.MaxSnapshotBytes {
				return fmt.Errorf("%w: more than %d keys or %d bytes of keys to track (MaxSnapshotKeys, MaxSnapshotBytes)",
					errSnapshotBudget, r.cfg.MaxSnapshotKeys, r.cfg.MaxSnapshotBytes)
			}
			snap.bytes += cost
			track = true
		}
	}
	if err := r.applyLocked(o, w); err != nil {
		return err
	}
	if track {
		snap.keys[w.Key] = struct{}{}
	}
	return nil
}

// unaskedSync records a full sync this node did not ask for: it is refused,
// and the next connection from the origin asks for one (a sender whose log
// no longer reaches back to where this node resumed has nothing else to
// send), which is then the one applied.
func (r *Replicator) unaskedSync(o *originState, gen uint64, h *wire.Hello) {
	o.mu.Lock()
	o.syncsRefused++
	if o.gen == gen {
		o.synced = false
	}
	log, suppressed := o.syncWarn.allow(time.Now(), r.cfg.WarnInterval)
	o.mu.Unlock()
	if log {
		r.cfg.Logger.Warn("replication: full sync not requested refused; asking the origin for one on its next connection",
			"origin", h.NodeName, "region", h.Region, "suppressed", suppressed)
	}
}

// syncOverBudget records a full sync refused for its size.
func (r *Replicator) syncOverBudget(o *originState, h *wire.Hello, err error) {
	o.mu.Lock()
	o.syncsRefused++
	log, suppressed := o.syncWarn.allow(time.Now(), r.cfg.WarnInterval)
	o.mu.Unlock()
	if log {
		r.cfg.Logger.Warn("replication: full sync refused", "origin", h.NodeName, "region", h.Region, "err", err, "suppressed", suppressed)
	}
}

// finishSnapshot drops what the snapshot cannot vouch for: an entry the
// snapshot did not contain, not newer than the snapshot, whose key the
// sender's tombstone ghosts say a delete or an expiry may have superseded
// (its exact tombstone is gone from the sender, past the horizon or over
// the bound). Such an entry may have been deleted by a write this node
// missed, and nothing else would ever tell it so (I3). An entry the
// sender does not hold for any other reason is kept: written elsewhere
// and not arrived there yet, or evicted or flushed there — eviction and
// FLUSHALL are local, and a refilling node takes every live entry some
// peer holds unless a delete or expiry supersedes it. Dropping costs a
// miss, never a stale hit (I2). The frame's handler refuses a malformed
// table before this runs.
func (r *Replicator) finishSnapshot(o *originState, gen uint64, snap *snapshotState, ghosts []uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gen != gen {
		return errSuperseded
	}
	if o.resync.Load() {
		// Resync asked for a new full sync while this one ran (its chunks
		// were judged by the keys kept before): that one counts.
		return errResyncAsked
	}
	n, err := r.dropUnvouched(snap, ghosts)
	if err != nil {
		return err
	}
	o.applied, o.hole = snap.seq, 0
	// The relays remembered ahead of their stand-ins stay: the drop rule
	// drops only what the sender's ghosts cover, which, merged, refuse
	// those writes whole as well.
	o.clearRelayLocked(false)
	o.synced, o.fill = true, false
	o.fullSyncs++
	o.dropped += uint64(n)
	r.cfg.Logger.Info("full sync received", "origin", o.name, "seq", snap.seq, "entries", len(snap.keys), "dropped", n)
	return nil
}

// dropUnvouched ends a full sync (the origin's, or a SlotSync's): it takes
// in the sender's tombstone ghosts and drops what the snapshot cannot vouch
// for (finishSnapshot says which), returning how many entries it dropped.
func (r *Replicator) dropUnvouched(snap *snapshotState, ghosts []uint64) (int, error) {
	// The sender's tombstone ghosts first: a version another peer's
	// snapshot brings after this point is refused if the sender's table
	// covers it, and one that came before is dropped below.
	r.cfg.Store.MergeTombstoneGhosts(ghosts)
	// And into the clock (the frame's handler refused a table from the
	// future): this node's own later writes are versioned above every ghost
	// it now holds, so none of them is refused as if already superseded.
	if top := maxSlot(ghosts); top > 0 {
		if _, err := r.cfg.Clock.Merge(hlc.Timestamp(top)); err != nil {
			return 0, err
		}
	}
	n := r.cfg.Store.DropUnvouched(func(key string, v store.Version) bool {
		if _, in := snap.keys[key]; in || v.HLC > snap.hlc {
			return true
		}
		if snap.vouched != nil || snap.wanted != nil {
			slot := cluster.KeySlot(key)
			if snap.vouched != nil && !slotIn(snap.vouched, slot) || snap.wanted != nil && !slotIn(snap.wanted, slot) {
				return true // a slot the snapshot does not cover: it cannot tell
			}
		}
		return !store.GhostCovers(ghosts, key, v.HLC)
	})
	return n, nil
}
