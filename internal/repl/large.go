package repl

import (
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// Large ops. An op whose encoding is larger than Config.BatchBytes does not
// travel in an Ops frame: it goes as a LargeOp frame with the first
// BatchBytes of its value, then ValuePart frames of BatchBytes each.
//
// On the stream of an origin's log, a large Set, Counter or Hash op outside
// a batch may be overtaken: the sender goes on sending the ops behind it in
// Ops frames between its parts, so a 64 MiB value does not hold up the
// small writes queued after it, and the receiver applies them as they come.
// The overtaken op is applied once its last part arrives; until then the
// receiver's acknowledgements stop just before it (acks stay cumulative),
// and a connection that ends resumes the stream from it: the ops behind it
// come again, and applying them twice is harmless (a version is applied
// once; pub/sub messages are delivered once, see originState.delivered).
// A large pub/sub message or a large op inside a batch is not overtaken
// (messages keep their order, a batch stays one unit): nothing else is sent
// on the stream until its last part. At most one large op is in flight per
// connection. A full sync and an anti-entropy answer send their large ops
// the same way, with sequence number 0, part after part.

// overtakes reports whether the ops behind a large op of kind k may pass it
// on the stream: a plain write outside a batch. Sender and receiver decide
// it the same way from what both know.
func overtakes(k wire.Kind, inBatch bool) bool {
	return !inBatch && (k == wire.KindSet || k == wire.KindCounter || k == wire.KindHash)
}

// largeSend is a large op being sent on a stream: the sender sends one part
// per turn.
type largeSend struct {
	origin   uint32
	seq      uint64
	value    []byte // the op's whole value
	off      int    // bytes of value sent
	overtake bool
}

// startLarge writes w's LargeOp frame with the first part of its value and
// returns what remains to send.
func startLarge(fc *frameConn, origin uint32, seq uint64, w wire.Op, part int, overtake bool) (*largeSend, error) {
	value := w.Value
	w.Value = value[:part]
	if err := fc.write(&wire.LargeOp{Origin: origin, Seq: seq, Size: uint64(len(value)), Op: w}); err != nil {
		return nil, err
	}
	return &largeSend{origin: origin, seq: seq, value: value, off: part, overtake: overtake}, nil
}

// next writes the next ValuePart of at most part bytes and reports whether
// the value is complete.
func (ls *largeSend) next(fc *frameConn, part int) (bool, error) {
	end := min(ls.off+part, len(ls.value))
	if err := fc.write(&wire.ValuePart{Origin: ls.origin, Seq: ls.seq, Data: ls.value[ls.off:end]}); err != nil {
		return false, err
	}
	ls.off = end
	return end == len(ls.value), nil
}

// isLarge reports whether w travels as a large op.
func (r *Replicator) isLarge(w *wire.Op) bool { return w.Size() > r.cfg.BatchBytes }

// writeLarge sends w as a large op of sequence number 0 (a full sync's or a
// repair's), all its parts at once.
func (r *Replicator) writeLarge(fc *frameConn, w wire.Op) error {
	part := r.cfg.BatchBytes
	ls, err := startLarge(fc, r.cfg.NodeID, 0, w, part, false)
	for done := false; err == nil && !done; {
		done, err = ls.next(fc, part)
	}
	return err
}

// largeRecv is a large op whose parts are arriving.
type largeRecv struct {
	seq       uint64
	op        wire.Op
	size      int
	overtaken bool
}

// newLargeRecv starts collecting f's value, refusing one larger than max.
// The value grows with the parts that arrive, not at once to the size the
// peer announced.
func newLargeRecv(f *wire.LargeOp, max int) (*largeRecv, error) {
	if f.Size > uint64(max) {
		return nil, fmt.Errorf("a value of %d bytes, over this node's limit of %d (MaxValueBytes)", f.Size, max)
	}
	return &largeRecv{seq: f.Seq, op: f.Op, size: int(f.Size)}, nil
}

// add appends a part and reports whether the value is complete.
func (lr *largeRecv) add(f *wire.ValuePart) (bool, error) {
	if f.Seq != lr.seq {
		return false, fmt.Errorf("a value part of op %d while op %d is arriving", f.Seq, lr.seq)
	}
	v := lr.op.Value
	if len(f.Data) > lr.size-len(v) {
		return false, fmt.Errorf("value parts of op %d over its %d bytes", lr.seq, lr.size)
	}
	if len(v)+len(f.Data) > cap(v) {
		// Double, up to the announced size: the last growth makes the value
		// exactly its size, so the store keeps no slack.
		grown := make([]byte, len(v), min(lr.size, max(2*cap(v), len(v)+len(f.Data), 64<<10)))
		copy(grown, v)
		v = grown
	}
	lr.op.Value = append(v, f.Data...)
	return len(lr.op.Value) == lr.size, nil
}

// onLargeOp starts a large op: of the log (it must be the next op of the
// stream) or, with sequence number 0, of the full sync in progress.
func (in *inStream) onLargeOp(f *wire.LargeOp) error {
	if err := in.fromOrigin(f.Origin, "large op"); err != nil {
		return err
	}
	if in.large != nil {
		return in.fc.reject(wire.RejectBadFrame, "large op %d while the value of op %d is arriving", f.Seq, in.large.seq)
	}
	switch {
	case f.Seq == 0 && in.snap == nil:
		return in.fc.reject(wire.RejectBadFrame, "large op of sequence number 0 outside a full sync")
	case f.Seq != 0 && in.snap != nil:
		return in.fc.reject(wire.RejectBadFrame, "large op of sequence number %d inside a full sync", f.Seq)
	}
	if f.Op.Kind == wire.KindPublish && in.snap != nil {
		return in.fc.reject(wire.RejectBadFrame, "a publish op inside a snapshot")
	}
	lr, err := newLargeRecv(f, in.r.cfg.MaxValueBytes)
	if err != nil {
		return in.fc.reject(wire.RejectBadFrame, "large op %d: %v", f.Seq, err)
	}
	if f.Seq != 0 {
		if lr.overtaken, err = in.r.startLarge(in.o, in.gen, f); err != nil {
			return in.fc.reject(wire.RejectBadFrame, "%v", err)
		}
	}
	in.large = lr
	return in.partAck(lr)
}

// partAck tells the origin how much of a large op of its log this node
// holds, so it sends the next parts (the sender's LargeWindow).
func (in *inStream) partAck(lr *largeRecv) error {
	if lr.seq == 0 {
		return nil // a full sync's: sent part after part, unpaced
	}
	in.lastWrite = time.Now()
	return in.fc.write(&wire.PartAck{Origin: in.h.NodeID, Seq: lr.seq, Received: uint64(len(lr.op.Value))})
}

// onValuePart adds a part to the large op arriving and applies the op once
// its value is complete.
func (in *inStream) onValuePart(f *wire.ValuePart) error {
	if err := in.fromOrigin(f.Origin, "value part"); err != nil {
		return err
	}
	lr := in.large
	if lr == nil {
		return in.fc.reject(wire.RejectBadFrame, "value part of op %d with no large op arriving", f.Seq)
	}
	done, err := lr.add(f)
	if err != nil {
		return in.fc.reject(wire.RejectBadFrame, "%v", err)
	}
	if !done {
		return in.partAck(lr)
	}
	in.large = nil
	if lr.seq == 0 {
		return in.snapshotOps([]wire.Op{lr.op})
	}
	applied, err := in.r.finishLarge(in.o, in.gen, lr)
	return in.applied(applied, err)
}

// startLarge checks that a large op of the log comes next in the stream's
// order and reports whether the ops behind it may pass it; if so, the
// stream moves past it and leaves it as the hole the acks stop at.
func (r *Replicator) startLarge(o *originState, gen uint64, f *wire.LargeOp) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gen != gen {
		return false, errSuperseded
	}
	inBatch := len(o.batch.ops) > 0
	if want := o.applied + 1 + uint64(len(o.batch.ops)); f.Seq != want {
		return false, fmt.Errorf("large op out of sequence: got %d, want %d", f.Seq, want)
	}
	if inBatch && o.batch.bytes+int64(len(f.Op.Key))+int64(f.Size) > r.cfg.MaxBatchBytes {
		return false, fmt.Errorf("%w: more than %d bytes (MaxBatchBytes)", errBadBatch, r.cfg.MaxBatchBytes)
	}
	if !overtakes(f.Op.Kind, inBatch) {
		return false, nil
	}
	o.applied, o.hole = f.Seq, f.Seq
	return true, nil
}

// finishLarge applies a large op of the log whose value is complete, and
// returns the sequence number to acknowledge.
func (r *Replicator) finishLarge(o *originState, gen uint64, lr *largeRecv) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gen != gen {
		return 0, errSuperseded
	}
	var err error
	if lr.overtaken {
		if err = r.applyLocked(o, &lr.op); err == nil {
			o.hole = 0
		}
	} else {
		err = r.streamOpLocked(o, lr.seq, &lr.op)
	}
	if err != nil {
		return o.acked(), fmt.Errorf("op %d: %w", lr.seq, err)
	}
	r.observeVisibility(o, []wire.Op{lr.op})
	return o.acked(), nil
}

// largeRepair collects the large ops of a peer's anti-entropy answers on
// an outbound connection.
type largeRepair struct{ lr *largeRecv }

// onLargeOp starts a large repair (sequence number 0).
func (lp *largeRepair) onLargeOp(r *Replicator, fc *frameConn, f *wire.LargeOp) error {
	switch {
	case lp.lr != nil:
		return fc.reject(wire.RejectBadFrame, "large op while another is arriving")
	case f.Seq != 0 || f.Origin == r.cfg.NodeID:
		return fc.reject(wire.RejectBadFrame, "large op of origin %d seq %d on a sending link", f.Origin, f.Seq)
	case f.Op.Kind == wire.KindPublish:
		return fc.reject(wire.RejectBadFrame, "a publish op in a repair")
	}
	lr, err := newLargeRecv(f, r.cfg.MaxValueBytes)
	if err != nil {
		return fc.reject(wire.RejectBadFrame, "large repair: %v", err)
	}
	lp.lr = lr
	return nil
}

// onValuePart adds a part and applies the repair once complete.
func (lp *largeRepair) onValuePart(r *Replicator, l *link, fc *frameConn, f *wire.ValuePart) error {
	if lp.lr == nil {
		return fc.reject(wire.RejectBadFrame, "value part with no large op arriving")
	}
	done, err := lp.lr.add(f)
	if err != nil {
		return fc.reject(wire.RejectBadFrame, "%v", err)
	}
	if done {
		r.applyRepair(l, &wire.Repair{Origin: f.Origin, Ops: []wire.Op{lp.lr.op}})
		lp.lr = nil
	}
	return nil
}
