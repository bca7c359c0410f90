package repl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/wire"
)

// Slot syncs. A node that keeps only its own slots and gains some (a
// member died or left) fills them from one owner that holds them
// (SlotSync) instead of asking every origin for a full sync (Resync).
//
// What makes one owner's snapshot enough is a barrier. Before the gain,
// this node passed over the writes of those slots as it received them
// (skips, or writes it did not keep); from the gain on, its streams carry
// them whole (a skip of a slot it keeps now makes the origin resume from
// it). So the owner's snapshot must hold every write this node passed
// over: it is taken only once the owner has applied each origin's stream
// at least as far as this node had received it when it asked (the
// SlotSync's positions, this node's own stream included: a write it made
// there and has forgotten since). An owner that does not hold the slots,
// does not know an origin's incarnation, or stays behind for
// slotSyncBarrier refuses (RejectBehind), and the caller takes the slots
// the other way.

// slotSyncProto is the first protocol version with SlotSync.
const slotSyncProto = 11

// ErrPeerTooOld is returned by SlotSync for a peer of a protocol version
// without slot syncs.
var ErrPeerTooOld = errors.New("repl: the peer's protocol version has no slot syncs")

// errFullSyncPending fails a SlotSync while a full sync this node asked an
// origin for has not completed (positions).
var errFullSyncPending = errors.New("repl: a full sync from an origin is pending")

// SlotSynced is what a SlotSync took in.
type SlotSynced struct {
	Entries int // live entries received
	Dropped int // entries dropped by the full sync's drop rule
}

// SlotSync asks the node at the replication address addr for a full sync
// of the slots in the wire slot set slots, on a connection of its own, and
// merges it into the store as an origin's full sync of those slots is
// merged: its entries and tombstones, its tombstone ghosts, and the drop
// rule within those slots. The peer answers only once it holds every slot
// asked for and has applied every origin's stream as far as this node has
// received it (see above). It fails with ctx's error, ErrClosed,
// ErrPeerTooOld, the peer's refusal, or the connection's. While a full
// sync this node asked some connected origin for is pending (it carries
// only the slots wanted when asked), it waits for it before asking,
// failing with errFullSyncPending if ctx ends first. Entries taken in
// before a failure stay (they are versions like any other).
func (r *Replicator) SlotSync(ctx context.Context, addr string, slots []byte) (SlotSynced, error) {
	if len(slots) != wire.SlotSetLen {
		return SlotSynced{}, fmt.Errorf("repl: a slot set of %d bytes, not %d", len(slots), wire.SlotSetLen)
	}
	got, err := r.slotSync(ctx, addr, slots)
	if err != nil {
		r.slotSyncFailures.Add(1)
		if r.ctx.Err() != nil {
			err = ErrClosed
		}
		return got, err
	}
	r.slotSyncs.Add(1)
	return got, nil
}

func (r *Replicator) slotSync(ctx context.Context, addr string, slots []byte) (SlotSynced, error) {
	// The positions are read before the question goes out: every write
	// this node passed over is at or before them.
	since, err := r.settledPositions(ctx)
	if err != nil {
		return SlotSynced{}, err
	}
	conn, fc, h, err := r.dialFetch(ctx, addr)
	if err != nil {
		return SlotSynced{}, err
	}
	defer r.wg.Done()
	defer r.untrack(conn)
	if h.Proto < slotSyncProto {
		return SlotSynced{}, fmt.Errorf("%w: %s speaks %d", ErrPeerTooOld, addr, h.Proto)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := fc.write(&wire.SlotSync{Slots: slots, Since: since}); err != nil {
		return SlotSynced{}, ctxErr(ctx, err)
	}
	got, err := r.readSlotSync(fc, h, slots)
	return got, ctxErr(ctx, err)
}

// pendingPoll is how often a slot sync waiting for a pending full sync
// looks again.
const pendingPoll = 20 * time.Millisecond

// settledPositions returns positions() once no full sync is pending,
// looking again every pendingPoll until ctx ends (errFullSyncPending).
func (r *Replicator) settledPositions(ctx context.Context) ([]wire.Position, error) {
	poll := time.NewTicker(pendingPoll)
	defer poll.Stop()
	for {
		since, err := r.positions()
		if !errors.Is(err, errFullSyncPending) {
			return since, err
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return nil, err
		case <-r.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// ctxErr returns ctx's error if it ended, else err.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// positions returns how far this node has received each origin's stream,
// its own included.
func (r *Replicator) positions() ([]wire.Position, error) {
	var since []wire.Position
	if seq := r.LastSeq(); seq > 0 {
		since = append(since, wire.Position{Origin: r.cfg.NodeID, Incarnation: r.incarnation, Seq: seq})
	}
	r.mu.Lock()
	origins := make([]*originState, 0, len(r.origins))
	for _, o := range r.origins {
		origins = append(origins, o)
	}
	r.mu.Unlock()
	horizon := r.cfg.TombstoneHorizon
	for _, o := range origins {
		o.mu.Lock()
		// A full sync asked for before the slots were kept, under way on
		// the origin's connection, carries only the slots wanted then, and
		// moves this node's position past the origin's writes of the
		// others: no position read now covers them (Resync asks again). An
		// origin away asks what it wants at its next handshake, with the
		// slots kept now (a fill replays the log from this node's last
		// ack, or carries every slot).
		pending, id := !o.synced && o.incarnation != 0 && o.connected, o.id
		// An origin away longer than the horizon is asked for a full sync
		// of every slot if it comes back (takeOver): its position names
		// nothing an owner must have, and an owner started since it went
		// would refuse it for ever.
		gone := horizon > 0 && !o.connected && time.Since(o.heard) > horizon
		if o.incarnation != 0 && o.applied > 0 && !gone {
			since = append(since, wire.Position{Origin: o.id, Incarnation: o.incarnation, Seq: o.applied})
		}
		o.mu.Unlock()
		if pending {
			return nil, fmt.Errorf("%w: origin %d", errFullSyncPending, id)
		}
	}
	if len(since) > wire.MaxSlotSyncOrigins {
		return nil, fmt.Errorf("repl: %d origins, over the %d a slot sync names", len(since), wire.MaxSlotSyncOrigins)
	}
	return since, nil
}

// readSlotSync reads and merges the answer to a SlotSync.
func (r *Replicator) readSlotSync(fc *frameConn, h *wire.Hello, slots []byte) (SlotSynced, error) {
	var snap *snapshotState
	var large *largeRecv
	apply := func(w *wire.Op) error {
		if w.Kind != wire.KindSkip && !slotIn(slots, cluster.KeySlot(w.Key)) {
			return fc.reject(wire.RejectBadFrame, "a slot sync's entry of slot %d, not asked for", cluster.KeySlot(w.Key))
		}
		if err := r.snapshotOp(nil, snap, w); err != nil {
			return fc.reject(wire.RejectBadFrame, "slot sync: %v", err)
		}
		return nil
	}
	for {
		f, err := fc.read()
		if err != nil {
			return SlotSynced{}, fc.rejectRead(err)
		}
		switch f := f.(type) {
		case *wire.SnapshotBegin:
			if f.Origin != h.NodeID || snap != nil || f.Seq != 0 {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "unexpected snapshot begin answering a slot sync")
			}
			if err := r.cfg.Clock.Check(hlc.Timestamp(f.HLC)); err != nil {
				return SlotSynced{}, fmt.Errorf("repl: slot sync from %s: %w", h.NodeName, err)
			}
			if f.Vouched != nil && !holdsAll(f.Vouched, slots) {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "a slot sync from a node that vouches for fewer slots than asked for")
			}
			snap = &snapshotState{hlc: hlc.Timestamp(f.HLC), keys: map[string]struct{}{}, wanted: slots}
		case *wire.SnapshotChunk:
			if f.Origin != h.NodeID || snap == nil || large != nil {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "snapshot chunk outside a slot sync")
			}
			for i := range f.Ops {
				if err := apply(&f.Ops[i]); err != nil {
					return SlotSynced{}, err
				}
			}
		case *wire.LargeOp:
			if f.Origin != h.NodeID || snap == nil || large != nil || f.Seq != 0 {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "a large op outside a slot sync")
			}
			if large, err = newLargeRecv(f, r.cfg.MaxValueBytes); err != nil {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "slot sync: %v", err)
			}
		case *wire.ValuePart:
			if large == nil || f.Origin != h.NodeID {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "a value part outside a slot sync's large op")
			}
			done, err := large.add(f)
			if err != nil {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "slot sync: %v", err)
			}
			if done {
				w := large.op
				large = nil
				if err := apply(&w); err != nil {
					return SlotSynced{}, err
				}
			}
		case *wire.SnapshotEnd:
			if f.Origin != h.NodeID || snap == nil || large != nil {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "snapshot end outside a slot sync")
			}
			if err := ghostTableShape(f.Ghosts); err != nil {
				return SlotSynced{}, fc.reject(wire.RejectBadFrame, "%v", err)
			}
			if err := r.checkGhosts(f.Ghosts); err != nil {
				return SlotSynced{}, fmt.Errorf("repl: slot sync from %s: %w", h.NodeName, err)
			}
			dropped, err := r.dropUnvouched(snap, f.Ghosts)
			if err != nil {
				return SlotSynced{}, err
			}
			got := SlotSynced{Entries: len(snap.keys), Dropped: dropped}
			r.cfg.Logger.Info("slot sync received", "peer", h.NodeName, "entries", got.Entries, "dropped", got.Dropped)
			return got, nil
		case *wire.Reject:
			return SlotSynced{}, fmt.Errorf("repl: %s refused the slot sync: %v: %s", h.NodeName, f.Code, f.Message)
		default:
			return SlotSynced{}, fc.reject(wire.RejectBadFrame, "unexpected %T frame answering a slot sync", f)
		}
	}
}

// holdsAll reports whether the slot set a holds every slot of b.
func holdsAll(a, b []byte) bool {
	for i := range b {
		if b[i]&^a[i] != 0 {
			return false
		}
	}
	return true
}

// slotSyncBarrier is the part of DeadTimeout a slot sync's answer waits
// for this node to apply the streams as far as the asker names: the
// asker's read fails after DeadTimeout.
const slotSyncBarrier = 2

// answerSlotSync answers a SlotSync of the peer asker: once this node
// holds every slot asked for and has applied every named origin's stream
// as far as named, a full sync of those slots; else a RejectBehind, which
// ends the connection.
func (r *Replicator) answerSlotSync(fc *frameConn, asker *wire.Hello, q *wire.SlotSync) error {
	r.slotSyncsServed.Add(1)
	deadline := time.Now().Add(r.cfg.DeadTimeout / slotSyncBarrier)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	// A slot not held is refused at once: waiting for it would mostly
	// make a region that forms wait, where every node is still filling
	// every slot and the asker takes them from every origin at once.
	if why := r.unheld(q.Slots); why != "" {
		return fc.reject(wire.RejectBehind, "%s", why)
	}
	for {
		why := r.behind(q)
		if why == "" {
			break
		}
		if !time.Now().Before(deadline) {
			return fc.reject(wire.RejectBehind, "%s", why)
		}
		select {
		case <-poll.C:
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
	ts := r.cfg.Clock.Update(0)
	// Every slot asked for, writes owed or not: the asker is of this
	// region (its own writes never reach this node as stand-ins), and the
	// barrier above has this node hold every write the asker named.
	var vouched []byte
	if r.cfg.Vouched != nil {
		vouched = r.cfg.Vouched()
	}
	if err := fc.write(&wire.SnapshotBegin{Origin: r.cfg.NodeID, HLC: uint64(ts), Vouched: vouched}); err != nil {
		return err
	}
	if err := r.writeEntries(fc, q.Slots, nil); err != nil {
		return err
	}
	// A slot lost during the walk may have lost entries to it (forget):
	// the asker takes the slots another way.
	if why := r.unheld(q.Slots); why != "" {
		return fc.reject(wire.RejectBehind, "%s", why)
	}
	if err := fc.write(&wire.SnapshotEnd{Origin: r.cfg.NodeID, Ghosts: r.cfg.Store.TombstoneGhosts()}); err != nil {
		return err
	}
	r.cfg.Logger.Info("slot sync sent", "peer", asker.NodeName, "region", asker.Region)
	return nil
}

// behind says why this node cannot answer the SlotSync q yet ("" if it
// can).
func (r *Replicator) behind(q *wire.SlotSync) string {
	if why := r.unheld(q.Slots); why != "" {
		return why
	}
	for _, p := range q.Since {
		if p.Origin == r.cfg.NodeID {
			if p.Incarnation != r.incarnation || p.Seq > r.LastSeq() {
				return "a position of this node's own stream it never reached"
			}
			continue
		}
		r.mu.Lock()
		o := r.origins[p.Origin]
		r.mu.Unlock()
		if o == nil {
			return fmt.Sprintf("no stream of origin %d here", p.Origin)
		}
		o.mu.Lock()
		inc, acked, pending := o.incarnation, o.acked(), !o.synced
		o.mu.Unlock()
		if inc != p.Incarnation {
			return fmt.Sprintf("another incarnation of origin %d here", p.Origin)
		}
		if pending {
			// A full sync this node asked the origin for has not landed
			// (under way, or the origin away since; a round of them may
			// have timed out and marked slots warm): its store may lack
			// the origin's writes. Asking every origin may find them
			// elsewhere.
			return fmt.Sprintf("a full sync from origin %d pending here", p.Origin)
		}
		if acked < p.Seq {
			return fmt.Sprintf("origin %d applied to %d here, not %d", p.Origin, acked, p.Seq)
		}
	}
	return ""
}

// unheld names a slot of set this node does not hold whole (Config.Holds),
// or returns "".
func (r *Replicator) unheld(set []byte) string {
	if r.cfg.Holds == nil {
		return ""
	}
	for slot := range cluster.Slots {
		if slotIn(set, slot) && !r.cfg.Holds(slot) {
			return fmt.Sprintf("slot %d not held whole here", slot)
		}
	}
	return ""
}
