package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// ReadFrame reads one frame from r and decodes it.
//
// maxFrame bounds the frame length N (type byte and payload, not the 4-byte
// prefix); zero or less means DefaultMaxFrame. A length of zero is
// ErrMalformed and a length above maxFrame is ErrFrameTooLarge; both are
// returned after reading only the prefix, before any memory is allocated for
// the body.
//
// buf is scratch space for frames that do not fit in r's buffer: pass the
// returned slice to the next call to reuse it (nil is fine). A frame that fits
// in r's buffer is decoded in place and does not touch buf. The returned
// Frame never aliases buf or r's buffer: keys, values and strings are copied,
// so the caller owns the Frame and may keep it, and every part of it, for as
// long as it likes while reusing buf.
//
// Errors: io.EOF when r ends cleanly before a frame; io.ErrUnexpectedEOF when
// r ends inside a frame; ErrFrameTooLarge; ErrMalformed (or ErrUnknownType,
// which is also ErrMalformed) wrapped with details; or r's own read error.
// After an error the stream is out of step and the connection should be
// closed, after sending a Reject where the protocol allows.
//
// Allocations: the returned frame (one), the []Op slice of an Ops or
// SnapshotChunk frame (one), at most one per non-empty key, value or string
// (the runtime interns one-byte strings), and buf growth for frames larger
// than r's buffer; nothing per op beyond its key and value.
func ReadFrame(r *bufio.Reader, maxFrame int, buf []byte) (Frame, []byte, error) {
	return readFrame(r, maxFrame, buf, false)
}

// ReadFrameShared is ReadFrame, except that the Data of a ValuePart it
// returns is not copied: it aliases buf or r's buffer, and is valid only
// until the next call with r or buf. Every other frame owns its memory, as
// from ReadFrame. A receiver that moves each part straight into the value
// it assembles saves an allocation and a copy per part.
func ReadFrameShared(r *bufio.Reader, maxFrame int, buf []byte) (Frame, []byte, error) {
	return readFrame(r, maxFrame, buf, true)
}

func readFrame(r *bufio.Reader, maxFrame int, buf []byte, shared bool) (Frame, []byte, error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	hdr, err := r.Peek(4)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr)
	switch {
	case n == 0:
		return nil, buf, fmt.Errorf("%w: zero length", ErrMalformed)
	case uint64(n) > uint64(maxFrame):
		return nil, buf, fmt.Errorf("%w: length %d exceeds %d", ErrFrameTooLarge, n, maxFrame)
	}

	if uint64(n)+4 <= uint64(r.Size()) { // in uint64: 4+int(n) may overflow a 32-bit int
		// Fast path: decode straight out of r's buffer; the decoder copies
		// what it keeps, so the bytes can be discarded right after.
		p, err := r.Peek(4 + int(n))
		if err != nil {
			return nil, buf, eofIsUnexpected(err)
		}
		f, err := decode(p[4:], shared)
		_, _ = r.Discard(4 + int(n)) // cannot fail: the bytes are buffered (Discard keeps them in place)
		return f, buf, err
	}

	_, _ = r.Discard(4) // cannot fail: Peek returned them
	buf, err = readBody(r, buf[:0], int(n))
	if err != nil {
		return nil, buf, err
	}
	f, err := decode(buf, shared)
	return f, buf, err
}

// readChunk is how far readBody grows its buffer ahead of the bytes that have
// actually arrived, so that a peer that sends a large length and then stalls
// pins memory in proportion to what it sent, not to what it claimed.
const readChunk = 64 << 10

// readBody reads n bytes into buf (length 0) and returns buf[:n].
func readBody(r io.Reader, buf []byte, n int) ([]byte, error) {
	if cap(buf) >= n {
		buf = buf[:n]
		_, err := io.ReadFull(r, buf)
		return buf, eofIsUnexpected(err)
	}
	for len(buf) < n {
		if len(buf) == cap(buf) {
			want := min(n, max(2*cap(buf), readChunk))
			nb := make([]byte, len(buf), want)
			copy(nb, buf)
			buf = nb
		}
		m := min(n, cap(buf))
		got, err := io.ReadFull(r, buf[len(buf):m])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, eofIsUnexpected(err)
		}
	}
	return buf, nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decode decodes one frame body: the type byte and the payload. With
// shared, a ValuePart's Data aliases body.
func decode(body []byte, shared bool) (Frame, error) {
	t := Type(body[0])
	d := decoder{p: body[1:]}
	var f Frame
	switch t {
	case TypeHello:
		f = d.hello()
	case TypeFetchHello:
		f = &FetchHello{Hello: *d.hello()}
	case TypeFetch:
		f = d.fetch()
	case TypeFetched:
		f = d.fetched()
	case TypeSlotSync:
		f = d.slotSync()
	case TypeReject:
		f = &Reject{Code: RejectCode(d.u16()), Message: d.str(MaxMessageLen, "message")}
	case TypeResume:
		rs := &Resume{Origin: d.u32(), NextSeq: d.uvarint(), HLC: d.u64()}
		rs.Wanted = d.slotSet("wanted slots")
		rs.Keeps = d.slotSet("kept slots")
		if len(d.p) > 0 {
			rs.Relayed = d.relayedSet()
		}
		f = rs
	case TypeOps:
		f = d.ops()
	case TypeAck:
		f = &Ack{Origin: d.u32(), Seq: d.uvarint()}
	case TypeSnapshotBegin:
		sb := &SnapshotBegin{Origin: d.u32(), Seq: d.uvarint(), HLC: d.u64()}
		sb.Vouched = d.slotSet("vouched slots")
		f = sb
	case TypeSnapshotChunk:
		origin := d.u32()
		f = &SnapshotChunk{Origin: origin, Ops: d.opList()}
	case TypeSnapshotEnd:
		origin := d.u32()
		f = &SnapshotEnd{Origin: origin, Ghosts: d.u64List()}
	case TypePing:
		f = &Ping{SentNanos: int64(d.u64())}
	case TypePong:
		f = &Pong{EchoNanos: int64(d.u64()), PhysicalNanos: int64(d.u64())}
	case TypeProbe:
		origin := d.u32()
		f = &Probe{Origin: origin, Ops: d.opList()}
	case TypeRepair:
		origin := d.u32()
		f = &Repair{Origin: origin, Ops: d.opList()}
	case TypeLargeOp:
		f = d.largeOp()
	case TypeValuePart:
		f = d.valuePart(shared)
	case TypePartAck:
		f = &PartAck{Origin: d.u32(), Seq: d.uvarint(), Received: d.uvarint()}
	case TypeVouched:
		v := &Vouched{Origin: d.u32()}
		v.Slots = d.slotSet("vouched slots")
		f = v
	case TypeKeeps:
		k := &Keeps{Origin: d.u32()}
		k.Slots = d.slotSet("kept slots")
		if len(d.p) > 0 {
			k.Relayed = d.relayedSet()
		}
		f = k
	case TypeRelay:
		f = d.relay()
	default:
		return nil, fmt.Errorf("%w %d", ErrUnknownType, body[0])
	}
	if d.err == "" && len(d.p) > 0 {
		d.err = "trailing bytes"
	}
	if d.err != "" {
		return nil, fmt.Errorf("%w: %v: %s", ErrMalformed, t, d.err)
	}
	return f, nil
}

// decoder reads fields from the front of p. The first failure is recorded in
// err (a static description, so that failing costs no allocation until the
// error is returned) and makes every later read return zero values.
type decoder struct {
	p   []byte
	err string
}

func (d *decoder) fail(why string) {
	if d.err == "" {
		d.err = why
	}
	d.p = nil
}

func (d *decoder) take(n int) []byte {
	if len(d.p) < n {
		d.fail("truncated")
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// uvarint reads an unsigned varint in its shortest form. Accepting only the
// shortest form makes the encoding canonical: a frame that decodes
// re-encodes to the very same bytes.
func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if !d.canonical(n) {
		return 0
	}
	return v
}

// varint reads a zigzag signed varint in its shortest form.
func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if !d.canonical(n) {
		return 0
	}
	return v
}

// canonical checks the n returned by binary.Uvarint or Varint and consumes
// the varint. A longer-than-needed varint ends in a 0x00 group.
func (d *decoder) canonical(n int) bool {
	switch {
	case n == 0:
		d.fail("truncated varint")
	case n < 0:
		d.fail("varint overflows 64 bits")
	case n > 1 && d.p[n-1] == 0:
		d.fail("varint not in shortest form")
	default:
		d.p = d.p[n:]
		return true
	}
	return false
}

// bytes reads a length-prefixed byte string of at most limit bytes and
// returns a subslice of the payload (not a copy). The length is checked
// against the remaining payload and against limit before slicing.
func (d *decoder) bytes(limit int, what string) []byte {
	n := d.uvarint()
	if d.err != "" {
		return nil
	}
	if n > uint64(len(d.p)) {
		d.fail(what + " length exceeds payload")
		return nil
	}
	if n > uint64(limit) {
		d.fail(what + " too long")
		return nil
	}
	return d.take(int(n))
}

// slotSet reads a length-prefixed set of hash slots: nil if empty, else
// exactly SlotSetLen bytes (copied).
func (d *decoder) slotSet(what string) []byte {
	v := d.bytes(SlotSetLen, what)
	if len(v) == 0 || d.err != "" {
		return nil
	}
	if len(v) != SlotSetLen {
		d.fail(what + " not a full set")
		return nil
	}
	return append([]byte(nil), v...)
}

// relayedSet reads the optional Relayed set of a Resume or a Keeps: when
// present it is a full set (an empty one is never sent), so that a stray
// byte after the frame's fields is refused as trailing.
func (d *decoder) relayedSet() []byte {
	if len(d.p) != uvarintLen(SlotSetLen)+SlotSetLen {
		d.fail("trailing bytes")
		return nil
	}
	return d.slotSet("relayed slots")
}

// str reads a length-prefixed string and copies it.
func (d *decoder) str(limit int, what string) string {
	return string(d.bytes(limit, what))
}

func (d *decoder) hello() *Hello {
	var h Hello
	h.Proto = d.u16()
	h.Cluster = d.str(MaxNameLen, "cluster")
	h.Region = d.str(MaxNameLen, "region")
	h.NodeName = d.str(MaxNameLen, "node name")
	h.NodeID = d.u32()
	h.Incarnation = d.u64()
	h.PhysicalNanos = int64(d.u64())
	return &h
}

func (d *decoder) fetch() *Fetch {
	var f Fetch
	switch d.u8() {
	case 0:
	case 1:
		f.Touch = true
	default:
		d.fail("fetch flag not 0 or 1")
	}
	f.Key = d.str(MaxKeyLen, "key")
	return &f
}

func (d *decoder) fetched() *Fetched {
	var f Fetched
	flags := d.u8()
	f.Found, f.Partial, f.Large = flags&fetchedFound != 0, flags&fetchedPartial != 0, flags&fetchedLarge != 0
	switch {
	case d.err != "":
	case flags&^(fetchedFound|fetchedPartial|fetchedLarge) != 0:
		d.fail("unknown fetched flags")
	case f.Large && !f.Found:
		d.fail("a large answer that found nothing")
	case f.Found && !f.Large:
		d.op(&f.Op)
		if k := f.Op.Kind; d.err == "" && k != KindSet && k != KindDelete && k != KindCounter && k != KindHash {
			d.fail("fetched op of a kind that is no entry")
		}
	}
	return &f
}

func (d *decoder) slotSync() *SlotSync {
	var f SlotSync
	f.Slots = d.slotSet("slots")
	if d.err == "" && f.Slots == nil {
		d.fail("a slot sync of no slot set")
	}
	n := d.uvarint()
	switch {
	case d.err != "" || n == 0:
		return &f
	case n > MaxSlotSyncOrigins:
		d.fail("more positions than MaxSlotSyncOrigins")
		return &f
	case n > uint64(len(d.p)/13): // origin, incarnation and a 1-byte seq at least
		d.fail("count exceeds payload")
		return &f
	}
	f.Since = make([]Position, n)
	for i := range f.Since {
		f.Since[i] = Position{Origin: d.u32(), Incarnation: d.u64(), Seq: d.uvarint()}
	}
	return &f
}

func (d *decoder) ops() *Ops {
	var f Ops
	f.Origin = d.u32()
	f.FirstSeq = d.uvarint()
	f.Ops = d.opList()
	if n := uint64(len(f.Ops)); n > 0 && f.FirstSeq > ^uint64(0)-(n-1) {
		d.fail("sequence numbers overflow")
	}
	return &f
}

// u64List reads a count and that many u64s, checking the count against
// the remaining payload before allocating.
func (d *decoder) u64List() []uint64 {
	n := d.uvarint()
	if d.err != "" || n == 0 {
		return nil
	}
	if n > uint64(len(d.p)/8) {
		d.fail("count exceeds payload")
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = d.u64()
	}
	return out
}

// opList reads an op count and that many ops. The count is checked against
// the remaining payload (every op takes at least minOpLen bytes) before the
// slice is allocated, so a frame can make the decoder allocate at most
// len(payload)/minOpLen ops.
func (d *decoder) opList() []Op {
	n := d.uvarint()
	if d.err != "" {
		return nil
	}
	if n > uint64(len(d.p)/minOpLen) {
		d.fail("op count exceeds payload")
		return nil
	}
	if n == 0 {
		return nil
	}
	ops := make([]Op, n)
	for i := range ops {
		if d.op(&ops[i]); d.err != "" {
			return nil
		}
	}
	return ops
}

// op reads one Op.
func (d *decoder) op(op *Op) {
	op.Kind = Kind(d.u8())
	if d.err == "" && op.Kind != KindSet && op.Kind != KindDelete && op.Kind != KindPublish && op.Kind != KindBatch && op.Kind != KindCounter && op.Kind != KindHash && op.Kind != KindSkip && op.Kind != KindRelayed {
		d.fail("unknown op kind")
	}
	op.HLC = d.u64()
	op.VOrigin = d.u32()
	op.ExpireAt = d.varint()
	op.Key = d.str(MaxKeyLen, "key")
	if v := d.bytes(math.MaxInt, "value"); len(v) > 0 {
		op.Value = append([]byte(nil), v...)
	}
}

// relay reads a Relay frame's payload: the count is checked against the
// remaining payload (a sequence number and an op take at least
// 1+minOpLen bytes) before anything is allocated.
func (d *decoder) relay() *Relay {
	f := &Relay{Origin: d.u32(), Incarnation: d.u64()}
	n := d.uvarint()
	switch {
	case d.err != "" || n == 0:
		return f
	case n > uint64(len(d.p)/(1+minOpLen)):
		d.fail("op count exceeds payload")
		return f
	}
	f.Seqs, f.Ops = make([]uint64, n), make([]Op, n)
	for i := range f.Ops {
		f.Seqs[i] = d.uvarint()
		if d.op(&f.Ops[i]); d.err != "" {
			return f
		}
	}
	return f
}

func (d *decoder) largeOp() *LargeOp {
	var f LargeOp
	f.Origin = d.u32()
	f.Seq = d.uvarint()
	f.Size = d.uvarint()
	d.op(&f.Op)
	switch {
	case d.err != "":
	case f.Size > MaxValueLen:
		d.fail("large op size above MaxValueLen")
	case f.Size <= uint64(len(f.Op.Value)):
		d.fail("large op size not above its first part")
	case f.Op.Kind == KindDelete || f.Op.Kind == KindBatch || f.Op.Kind == KindSkip || f.Op.Kind == KindRelayed:
		d.fail("large op of a kind without a value")
	}
	return &f
}

func (d *decoder) valuePart(shared bool) *ValuePart {
	var f ValuePart
	f.Origin = d.u32()
	f.Seq = d.uvarint()
	if v := d.bytes(math.MaxInt, "data"); len(v) > 0 {
		f.Data = v
		if !shared {
			f.Data = append([]byte(nil), v...)
		}
	} else if d.err == "" {
		d.fail("empty value part")
	}
	return &f
}
