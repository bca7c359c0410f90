package repl

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/wire"
)

// Relays: each write crossing a region boundary once.
//
// A node of a region of several nodes names, to each origin of another
// region, the slots it keeps but is not the primary of (a co-owner, or
// with full copies any serving member; Config.RelayedSlots;
// Resume.Relayed, Keeps.Relayed). The origin
// sends their writes to it as stand-ins (wire.KindRelayed: version and
// slot), and the slot's primary in the region, which takes them whole,
// hands each on over its own link (a Relay frame: origin, incarnation,
// sequence number, op). The co-owner owes each stand-in until its relay
// arrives: its acknowledged and resume position for the origin stays
// below the oldest write owed (originState.acked), as it stays below a
// large value still arriving, so acks, Quorum and All, resume, full syncs
// and the horizon rules are those of a write received whole. A relay that
// arrives before its stand-in is remembered (bounded) and settles it. A
// write owed longer than Config.RelayWait (the primary died, or the two
// disagreed on the slot map for a moment) ends the stream, which resumes
// from it with every kept slot whole until it has passed that point.

// Bounds of the relay state.
const (
	// maxOwed bounds the writes one origin's stream may owe at once; one
	// more ends the stream as a missed relay does.
	maxOwed = 1 << 16
	// maxEarlyRelays bounds the relays remembered ahead of their
	// stand-ins, per origin; one more is applied and not remembered (its
	// stand-in, when it comes, is owed until the wait ends the stream).
	maxEarlyRelays = 1 << 12
	// maxRelayQueue bounds the bytes of relays queued on one link (each
	// counted with its op's size and relayOverhead); a relay that does not
	// fit is dropped (the co-owner's wait ends).
	maxRelayQueue = 8 << 20
	relayOverhead = 128
	// relaySeqBytes is the most a relayed op's sequence number adds on the
	// wire (a uvarint), counted when a sender cuts Relay frames.
	relaySeqBytes = 10
	// maxRelayedOp is the largest op (wire.Op.Size) sent as a stand-in and
	// relayed; larger ones go whole. A constant of the protocol, not of
	// either node's configuration, so that the origin and the primary
	// agree on it; a Relay frame of one such op fits any MaxFrame.
	maxRelayedOp = 32 << 10
	// relayProto is the first protocol version with relays.
	relayProto = 12
)

// DefaultRelayWait is Config.RelayWait's default: the default DeadTimeout.
const DefaultRelayWait = 5 * time.Second

// errRelayMissed ends a stream whose writes owed were not relayed in time,
// or that owes more than maxOwed: it resumes from the oldest with every
// kept slot whole (wire.RejectKeeps).
var errRelayMissed = errors.New("a write taken relayed was not relayed in time")

// owedOp is a write of an origin's stream taken relayed and not relayed
// yet: its sequence number and when its stand-in arrived (Unix ns).
type owedOp struct {
	seq  uint64
	at   int64
	slot int
}

// clearRelayLocked forgets what the origin's stream owes, at a new
// connection (it resumes from the oldest owed) or a full sync; with
// early, the relays remembered ahead of their stand-ins too (a full sync,
// a new incarnation).
func (o *originState) clearRelayLocked(early bool) {
	o.owed = o.owed[:0]
	o.owedSince.Store(0)
	o.earlyPruned = 0 // the position may have moved back
	if early {
		clear(o.early)
	}
}

// ForgetRelayed forgets the relays remembered (ahead of their stand-ins)
// of the writes of slots kept says this node no longer keeps. The node
// layer calls it before it forgets those slots' entries: a stand-in
// settled by such a relay would be acknowledged without the write held,
// even if the slot is kept again by then.
func (r *Replicator) ForgetRelayed(kept func(slot int) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.origins {
		o.mu.Lock()
		o.forgetEarlyLocked(kept)
		o.mu.Unlock()
	}
}

// forgetEarlyLocked forgets the relays remembered of slots kept says this
// node no longer keeps: it forgets their entries, and a stand-in of them
// settled by such a relay would be acknowledged without the write held.
func (o *originState) forgetEarlyLocked(kept func(slot int) bool) {
	for seq, slot := range o.early {
		if !kept(slot) {
			delete(o.early, seq)
		}
	}
}

// owedLocked takes the stand-in w (wire.KindRelayed) of the write of
// sequence number seq: owed until relayed, settled at once if its relay
// came first, or nothing if this node no longer keeps its slot.
func (r *Replicator) owedLocked(o *originState, seq uint64, w *wire.Op) error {
	if err := checkSkip(w); err != nil {
		return err
	}
	if _, err := r.cfg.Clock.Merge(hlc.Timestamp(w.HLC)); err != nil {
		return err
	}
	slot := int(w.ExpireAt)
	if r.cfg.KeepsSlot != nil && !r.cfg.KeepsSlot(slot) {
		r.notKept.Add(1) // not kept now: nothing is owed
		return nil
	}
	if _, ok := o.early[seq]; ok {
		delete(o.early, seq) // relayed first, and held: its slot kept since
		return nil
	}
	if !r.takesRelayed(slot) {
		// Taken whole now: the stream resumes from it at once, as at a
		// skip of a slot kept since (no relay will come).
		return fmt.Errorf("%w: slot %d is no longer taken relayed", errKeepsGrew, slot)
	}
	if len(o.owed) >= maxOwed {
		return fmt.Errorf("%w: more than %d writes owed", errRelayMissed, maxOwed)
	}
	now := time.Now().UnixNano()
	if len(o.owed) == 0 {
		o.owedSince.Store(now)
	}
	o.owed = append(o.owed, owedOp{seq: seq, at: now, slot: slot})
	return nil
}

// snapshotVouched returns the slots a full sync this node sends vouches
// for (Config.Vouched; nil: every key), less those with a write owed (a
// full set less them if Config.Vouched says every key): this node does not hold that write yet, and the receiver's
// drop rule must not judge its key by this snapshot (it could drop the
// receiver's own write, sent straight to this node and taken relayed).
func (r *Replicator) snapshotVouched() []byte {
	var v []byte
	if r.cfg.Vouched != nil {
		v = r.cfg.Vouched()
	}
	var owed []int
	r.mu.Lock()
	for _, o := range r.origins {
		if o.owedSince.Load() != 0 {
			o.mu.Lock()
			for _, w := range o.owed {
				owed = append(owed, w.slot)
			}
			o.mu.Unlock()
		}
	}
	r.mu.Unlock()
	if len(owed) == 0 {
		return v
	}
	if v == nil {
		v = bytes.Repeat([]byte{0xff}, wire.SlotSetLen) // every key
	} else {
		v = slices.Clone(v) // the node's set is shared
	}
	for _, slot := range owed {
		v[slot>>3] &^= 1 << (slot & 7)
	}
	return v
}

// takesRelayed reports whether this node takes slot's writes relayed
// (Config.RelayedSlots) now.
func (r *Replicator) takesRelayed(slot int) bool {
	if r.cfg.RelayedSlots == nil {
		return false
	}
	set := r.cfg.RelayedSlots()
	return set != nil && slotIn(set, slot)
}

// rememberLocked remembers that the write seq of slot was relayed and is
// held (at most maxEarlyRelays, forgetting first those the stream will not
// send again: at or below the acknowledged position, looked for once per
// move of that position).
func (o *originState) rememberLocked(seq uint64, slot int) {
	if o.early == nil {
		o.early = map[uint64]int{}
	}
	if acked := o.acked(); len(o.early) >= maxEarlyRelays && acked > o.earlyPruned {
		o.earlyPruned = acked
		for s := range o.early {
			if s <= acked {
				delete(o.early, s)
			}
		}
	}
	if len(o.early) < maxEarlyRelays {
		o.early[seq] = slot
	}
}

// owedIndex returns the index of the write seq in o.owed, and whether it
// is owed.
func (o *originState) owedIndex(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(o.owed, seq, func(a owedOp, s uint64) int {
		switch {
		case a.seq < s:
			return -1
		case a.seq > s:
			return 1
		}
		return 0
	})
}

// settleLocked stops owing the write at index i of o.owed.
func (o *originState) settleLocked(i int) {
	if i == 0 {
		o.owed = o.owed[1:] // in order, the usual case: no copy
	} else {
		o.owed = slices.Delete(o.owed, i, i+1)
	}
	switch {
	case len(o.owed) == 0:
		o.owedSince.Store(0)
	case i == 0:
		o.owedSince.Store(o.owed[0].at)
	}
}

// relayItem is a write of another origin to hand on: collected from an
// Ops frame (collectRelayLocked), then queued on the links to its slot's
// co-owners (queueRelay) until their senders write it (sendRelays).
type relayItem struct {
	origin      uint32
	incarnation uint64
	seq         uint64
	slot        int
	op          wire.Op
}

// relaying reports whether this node hands on the writes of o's stream:
// o is of another region and this node has co-owners to relay to.
func (r *Replicator) relaying(o *originState) bool {
	return r.cfg.RelayTo != nil && o.region != r.cfg.Region
}

// collectRelayLocked adds the write w of o's sequence number seq, applied
// alone (not in a batch), to b if this node hands it on: a set, counter
// or hash of at most maxRelayedOp bytes, of a slot it relays.
func (r *Replicator) collectRelayLocked(b *[]relayItem, o *originState, seq uint64, w *wire.Op) {
	if w.Kind != wire.KindSet && w.Kind != wire.KindCounter && w.Kind != wire.KindHash || w.Size() > maxRelayedOp {
		return
	}
	slot := cluster.KeySlot(w.Key)
	if len(r.cfg.RelayTo(slot)) == 0 {
		return
	}
	*b = append(*b, relayItem{origin: o.id, incarnation: o.incarnation, seq: seq, slot: slot, op: *w})
}

// queueRelays queues the writes of b on the links to the co-owners of
// their slots (Config.RelayTo), each sender's to send, and empties b.
func (r *Replicator) queueRelays(b *[]relayItem) {
	if len(*b) == 0 {
		return
	}
	r.mu.Lock()
	for i := range *b {
		it := &(*b)[i]
		for _, addr := range r.cfg.RelayTo(it.slot) {
			l := r.links[addr]
			if l == nil || !l.queueRelay(it) {
				r.relaysDropped.Add(1)
			}
		}
	}
	r.mu.Unlock()
	clear(*b)
	*b = (*b)[:0]
}

// queueRelay queues it for the link's sender, if the link is up, speaks
// relays and has room, and reports whether it did.
func (l *link) queueRelay(it *relayItem) bool {
	size := it.op.Size() + relayOverhead
	l.mu.Lock()
	ok := l.connected && l.spoken >= relayProto && l.relayBytes+size <= maxRelayQueue
	if ok {
		l.relayQ = append(l.relayQ, *it)
		l.relayBytes += size
	}
	l.mu.Unlock()
	if ok {
		select {
		case l.relayWake <- struct{}{}:
		default:
		}
	}
	return ok
}

// sendRelays writes the relays queued on the link, as few Relay frames as
// BatchBytes allows.
func (s *sender) sendRelays() error {
	l := s.l
	l.mu.Lock()
	q := l.relayQ
	l.relayQ, l.relayBytes = s.relayBuf[:0], 0
	l.mu.Unlock()
	if len(q) == 0 {
		s.relayBuf = q
		return nil
	}
	f := wire.Relay{}
	size := 0
	flush := func() {
		if len(f.Ops) > 0 {
			s.fc.queue(&f)
			s.r.relaysSent.Add(uint64(len(f.Ops)))
		}
		f.Seqs, f.Ops, size = f.Seqs[:0], f.Ops[:0], 0
	}
	for i := range q {
		it := &q[i]
		if len(f.Ops) > 0 && (it.origin != f.Origin || it.incarnation != f.Incarnation || size+it.op.Size()+relaySeqBytes > s.r.cfg.BatchBytes) {
			flush()
		}
		f.Origin, f.Incarnation = it.origin, it.incarnation
		f.Seqs = append(f.Seqs, it.seq)
		f.Ops = append(f.Ops, it.op)
		size += it.op.Size() + relaySeqBytes
	}
	flush()
	clear(q)
	s.relayBuf = q[:0]
	return s.fc.flush()
}

// onRelay applies the writes a co-owner of their slots hands on (the
// slots' primary in this region): only a peer of this region relays, and
// only another node's writes, of a kind relayed.
func (in *inStream) onRelay(f *wire.Relay) error {
	r := in.r
	switch {
	case in.h.Region != r.cfg.Region:
		return in.fc.reject(wire.RejectBadFrame, "a relay from a node of region %q; only this region's nodes relay", in.h.Region)
	case f.Origin == r.cfg.NodeID || f.Origin == in.h.NodeID:
		return in.fc.reject(wire.RejectBadFrame, "a relay of origin %d from node %d", f.Origin, in.h.NodeID)
	}
	for i := range f.Ops {
		if k := f.Ops[i].Kind; k != wire.KindSet && k != wire.KindCounter && k != wire.KindHash || f.Seqs[i] == 0 {
			return in.fc.reject(wire.RejectBadFrame, "a relayed %v op of sequence number %d", k, f.Seqs[i])
		}
	}
	r.applyRelay(f)
	return nil
}

// applyRelay applies relayed writes and settles the stand-ins they answer;
// if that moves the origin's acknowledged position, it acknowledges at
// once on the origin's stream.
func (r *Replicator) applyRelay(f *wire.Relay) {
	r.mu.Lock()
	o := r.origins[f.Origin]
	r.mu.Unlock()
	if o == nil {
		// This node never had a stream from the origin: the writes come
		// whole by the stream it will have.
		r.relaysIgnored.Add(uint64(len(f.Ops)))
		return
	}
	o.mu.Lock()
	before := o.acked()
	current := o.incarnation == f.Incarnation
	for i := range f.Ops {
		seq, w := f.Seqs[i], &f.Ops[i]
		j, owed := 0, false
		if current {
			j, owed = o.owedIndex(seq)
		}
		if current && !owed && seq <= o.applied {
			r.relaysIgnored.Add(1) // taken whole, or relayed twice
			continue
		}
		kept := r.cfg.Keeps == nil || r.cfg.Keeps(w.Key)
		if !kept && !owed {
			// Not kept here (a map change the primary saw first): not
			// held, so not remembered; its stand-in, if this node comes to
			// keep the slot, waits for a relay or the stream's resume.
			r.relaysIgnored.Add(1)
			continue
		}
		if err := r.applyLocked(o, w); err != nil {
			// Too far ahead of this node's clock: still owed, and overdue
			// at once, so that the stream takes it whole (and holds there
			// while it is ahead).
			if owed {
				o.owed[j].at = time.Now().UnixNano() - int64(r.cfg.RelayWait) - 1
				if j == 0 {
					o.owedSince.Store(o.owed[0].at)
				}
			}
			r.relaysIgnored.Add(uint64(len(f.Ops) - i))
			break
		}
		r.relaysApplied.Add(1)
		if owed {
			// (Owed of a slot no longer kept: the write is not needed.)
			o.settleLocked(j)
			o.relayMisses = 0
		}
		// A write past the acknowledged position comes again as a
		// stand-in if the stream resumes: its relay, first or not, is
		// remembered to settle it then.
		if current && kept && seq > o.acked() {
			o.rememberLocked(seq, cluster.KeySlot(w.Key))
		}
	}
	after := o.acked()
	st := o.stream
	o.mu.Unlock()
	if after > before && st != nil {
		st.ackRelayed(after)
	}
}

// ackRelayed has the origin's log acknowledged up to seq, without
// blocking the goroutine that applied a relay (it serves another peer's
// connection): ackRelays writes the Ack (the stream's own goroutine waits
// for the origin's next frame).
func (in *inStream) ackRelayed(seq uint64) {
	for {
		cur := in.ackSeq.Load()
		if seq <= cur || in.ackSeq.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case in.ackWake <- struct{}{}:
	default:
	}
}

// ackRelays writes the acknowledgements ackRelayed asks for until stop is
// closed, if the slots they speak for are those last announced; otherwise
// the stream acknowledges at its next frame, after announcing them.
func (in *inStream) ackRelays(stop <-chan struct{}) {
	for {
		select {
		case <-in.ackWake:
		case <-stop:
			return
		}
		if v := in.r.cfg.Vouched; v != nil {
			last := in.lastVouched.Load()
			if last == nil || !sameSlots(v(), *last) {
				in.ackDue.Store(true)
				continue
			}
		}
		// An error is the connection's: its stream's goroutine sees it.
		in.fc.write(&wire.Ack{Origin: in.h.NodeID, Seq: in.ackSeq.Load()})
	}
}

// relayedSlots returns the slots to name as taken relayed to the origin
// of this stream (nil: none): only to an origin of another region that
// speaks relays, and not while the stream takes every slot whole after a
// missed relay.
func (in *inStream) relayedSlots() []byte {
	r := in.r
	if r.cfg.RelayedSlots == nil || in.h.Region == r.cfg.Region || min(in.h.Proto, wire.Proto) < relayProto || in.wholeUntil != 0 {
		return nil
	}
	if off := in.o.relayOff.Load(); off != 0 && in.heard.UnixNano() < off {
		return nil
	}
	return r.cfg.RelayedSlots()
}

// maxRelayBackoff bounds how long a node takes every slot whole from an
// origin after relays missed in a row.
const maxRelayBackoff = 5 * time.Minute

// relayMoved ends the stream at once, to resume from the oldest write owed,
// if a write owed is of a slot this node no longer takes relayed (the slot
// map changed: it became the slot's primary, its primary left): no relay
// will come for it, and its writes come whole once the stream resumes.
// Called when the slots named relayed change.
func (in *inStream) relayMoved() error {
	if in.o.owedSince.Load() == 0 {
		return nil
	}
	o := in.o
	o.mu.Lock()
	if o.gen != in.gen {
		o.mu.Unlock()
		return errSuperseded
	}
	moved := slices.ContainsFunc(o.owed, func(w owedOp) bool { return in.relayed == nil || !slotIn(in.relayed, w.slot) })
	acked := o.acked()
	o.mu.Unlock()
	if !moved {
		return nil
	}
	in.r.keepsGrew.Add(1)
	in.r.cfg.Logger.Info("replication: a slot taken relayed is taken whole now; resuming the origin's stream from its write owed",
		"origin", in.h.NodeName, "region", in.h.Region, "from_seq", acked+1)
	if err := in.ack(acked); err != nil {
		return err
	}
	return in.fc.reject(wire.RejectKeeps, "a slot taken relayed is taken whole now")
}

// relayOverdue ends the stream if its oldest write owed has waited longer
// than RelayWait: it resumes from it with every kept slot whole until past
// the point it had reached.
func (in *inStream) relayOverdue(now time.Time) error {
	since := in.o.owedSince.Load()
	if since == 0 || now.UnixNano()-since <= int64(in.r.cfg.RelayWait) {
		return nil
	}
	return in.relayMissed(errRelayMissed)
}

// relayMissed acknowledges what the stream holds and ends it: the origin
// reconnects at once, and the stream resumes from the oldest write owed
// with every kept slot whole up to where it stood.
func (in *inStream) relayMissed(why error) error {
	o := in.o
	o.mu.Lock()
	if o.gen != in.gen {
		o.mu.Unlock()
		return errSuperseded // the origin's state is the newer connection's
	}
	o.wholeUntil = o.applied
	o.relayMisses++
	backoff := min(in.r.cfg.RelayWait<<min(o.relayMisses-1, 16), maxRelayBackoff)
	o.relayOff.Store(time.Now().Add(backoff).UnixNano())
	acked := o.acked()
	log, suppressed := o.relayWarn.allow(time.Now(), in.r.cfg.WarnInterval)
	o.mu.Unlock()
	in.r.relaysMissed.Add(1)
	if log {
		in.r.cfg.Logger.Info("replication: a write taken relayed did not arrive; resuming the origin's stream from it with every slot whole",
			"origin", in.h.NodeName, "region", in.h.Region, "from_seq", acked+1, "suppressed", suppressed)
	}
	if err := in.ack(acked); err != nil {
		return err
	}
	return in.fc.reject(wire.RejectKeeps, "%v", why)
}
