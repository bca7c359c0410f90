package repl

import (
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// Large ops. An op whose encoding is larger than Config.BatchBytes does not
// travel in an Ops frame: it goes as a LargeOp frame with as much of its
// value as fits in BatchBytes with the rest of the op, then ValuePart
// frames of BatchBytes each.
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
	// The op with its first part is at most part bytes, like an Ops
	// frame's batch, so the frame fits whatever the key's length.
	first := min(len(value), max(0, part-(w.Size()-len(value))))
	w.Value = value[:first]
	if err := fc.write(&wire.LargeOp{Origin: origin, Seq: seq, Size: uint64(len(value)), Op: w}); err != nil {
		return nil, err
	}
	return &largeSend{origin: origin, seq: seq, value: value, off: first, overtake: overtake}, nil
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

// largeFirstStep is how much of a large value a receiver takes before it
// makes room for the whole announced size (largeRecv.add).
const largeFirstStep = 4 << 20

// largeRecv is a large op whose parts are arriving.
//
// The parts are kept as they were decoded until the peer has sent
// largeFirstStep bytes (or the whole value, if smaller): a peer makes this
// node hold little more than it sent. Then one buffer of exactly the
// announced size is allocated, by a goroutine of its own, and the parts go
// into it. Allocating tens of MiB at once while the garbage collector is
// marking charges the allocating goroutine a matching assist debt, and it
// waits for the collector to finish: on the connection's goroutine, that
// held up every small write the large value lets pass, by hundreds of
// milliseconds (docs/benchmarks-replication.md). The allocator goroutine
// only allocates and hands the buffer over, so it ends on its own.
type largeRecv struct {
	seq       uint64
	op        wire.Op // its Value is set once complete
	size      int
	overtaken bool

	got   int      // bytes received
	parts [][]byte // received, not yet in buf
	buf   []byte   // the value, once allocated
	alloc chan []byte
}

// newLargeRecv starts collecting f's value, refusing one larger than max.
func newLargeRecv(f *wire.LargeOp, max int) (*largeRecv, error) {
	if f.Size > uint64(max) {
		return nil, fmt.Errorf("a value of %d bytes, over this node's limit of %d (MaxValueBytes)", f.Size, max)
	}
	lr := &largeRecv{seq: f.Seq, op: f.Op, size: int(f.Size)}
	lr.op.Value = nil
	lr.take(f.Op.Value, true)
	return lr, nil
}

// received returns the bytes of the value received so far.
func (lr *largeRecv) received() int { return lr.got }

// add appends a part and reports whether the value is complete.
func (lr *largeRecv) add(f *wire.ValuePart) (bool, error) {
	if f.Seq != lr.seq {
		return false, fmt.Errorf("a value part of op %d while op %d is arriving", f.Seq, lr.seq)
	}
	if len(f.Data) > lr.size-lr.got {
		return false, fmt.Errorf("value parts of op %d over its %d bytes", lr.seq, lr.size)
	}
	lr.take(f.Data, false) // read with wire.ReadFrameShared
	if lr.got < lr.size {
		return false, nil
	}
	if lr.buf == nil && lr.alloc == nil {
		lr.buf = make([]byte, 0, lr.size) // small, or the peer sent it all at once
	}
	if lr.buf == nil {
		lr.buf = <-lr.alloc
	}
	lr.fill()
	lr.op.Value, lr.buf = lr.buf, nil
	return true, nil
}

// take keeps a part (a copy unless owned: a ValuePart's data is only lent
// by the read buffer), starts the allocation of the whole value once
// largeFirstStep has arrived, and moves the parts into the value's buffer
// once it is there.
func (lr *largeRecv) take(p []byte, owned bool) {
	if len(p) > 0 {
		if lr.buf != nil {
			lr.buf = append(lr.buf, p...)
			lr.got += len(p)
			return
		}
		if !owned {
			p = append([]byte(nil), p...)
		}
		lr.parts = append(lr.parts, p)
		lr.got += len(p)
	}
	if lr.alloc == nil && lr.buf == nil && lr.got < lr.size && lr.got >= min(lr.size, largeFirstStep) {
		ch := make(chan []byte, 1)
		size := lr.size
		go func() { ch <- make([]byte, 0, size) }()
		lr.alloc = ch
	}
	if lr.buf == nil && lr.alloc != nil {
		select {
		case lr.buf = <-lr.alloc:
		default:
		}
	}
	if lr.buf != nil {
		lr.fill()
	}
}

// fill moves the parts received into buf.
func (lr *largeRecv) fill() {
	for i, p := range lr.parts {
		lr.buf = append(lr.buf, p...)
		lr.parts[i] = nil
	}
	lr.parts = lr.parts[:0]
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
		if lr.overtaken, err = in.r.admitLarge(in.o, in.gen, f); err != nil {
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
	return in.fc.write(&wire.PartAck{Origin: in.h.NodeID, Seq: lr.seq, Received: uint64(lr.received())})
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

// admitLarge checks that a large op of the log comes next in the stream's
// order and reports whether the ops behind it may pass it; if so, the
// stream moves past it and leaves it as the hole the acks stop at.
func (r *Replicator) admitLarge(o *originState, gen uint64, f *wire.LargeOp) (bool, error) {
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
