package wire

import (
	"encoding/binary"
	"math"
	"slices"
	"unicode/utf8"
)

// Hello is the first frame each side sends on a new connection. Its layout is
// the same in every protocol version (see Proto).
//
// Incarnation identifies one run of the sender's process (the replication
// layer picks a random nonzero value at start). Sequence numbers are only
// meaningful within an incarnation: a node that restarts without its log
// numbers its writes from the start again, so a receiver that sees a new
// Incarnation must not resume from the position it held for the old one.
type Hello struct {
	Proto         uint16 // protocol version of the sender: Proto
	Cluster       string // cluster name; at most MaxNameLen bytes
	Region        string // sender's region; at most MaxNameLen bytes
	NodeName      string // sender's node name; at most MaxNameLen bytes
	NodeID        uint32 // sender's numeric id, the origin of its writes
	Incarnation   uint64 // changes when the sender restarts (and its log with it)
	PhysicalNanos int64  // sender's physical clock, Unix nanoseconds
}

// Reject is the last frame a node sends before it closes a connection because
// of a handshake mismatch or a protocol error. It doubles as the protocol's
// only error frame: every error a peer must hear about ends the connection.
type Reject struct {
	Code    RejectCode
	Message string // for humans and logs; at most MaxMessageLen bytes
}

// Resume tells the node Origin to stream its log to the sender starting at
// sequence number NextSeq (the first one the sender has not applied), and
// carries the sender's hybrid logical clock: at least the version of every
// write it has received, from Origin's earlier incarnations too, so that a
// restarted Origin merges it before versioning new writes.
type Resume struct {
	Origin  uint32
	NextSeq uint64
	HLC     uint64
	// Wanted, with NextSeq 0 (a full sync asked for), is nil for every key,
	// or a set of SlotSetLen bytes: the hash slots the full sync is to
	// carry (a node of a region keeping only its own slots); the sender's
	// snapshot then holds only their keys, and the receiver's drop rule
	// judges only them.
	Wanted []byte
	// Keeps is nil when the receiver keeps every key, or a set of
	// SlotSetLen bytes: the hash slots whose writes it keeps. The sender
	// may send each write of another slot's key as a KindSkip op
	// (protocol 9).
	Keeps []byte
	// Relayed is nil, or a set of SlotSetLen bytes within Keeps: the
	// slots whose writes the receiver takes from its region's primary of
	// the slot (a Relay frame) rather than from the origin, which sends
	// each as a KindRelayed stand-in (protocol 12; never sent to a peer of
	// an older version).
	Relayed []byte
}

// Op is one replicated operation. Its version is (HLC, VOrigin); VOrigin may
// differ from the stream's origin when a node forwards writes of others.
type Op struct {
	Kind     Kind
	Key      string // at most MaxKeyLen bytes
	Value    []byte // empty for deletes; a zero-length Value decodes as nil
	ExpireAt int64  // absolute expiry time as the store defines it; 0: none
	HLC      uint64 // hybrid logical clock part of the version
	VOrigin  uint32 // origin part of the version
}

// Size returns the number of bytes op occupies inside an Ops or
// SnapshotChunk frame. See MaxOpsHeader.
func (op *Op) Size() int {
	return 1 + 8 + 4 + varintLen(op.ExpireAt) +
		uvarintLen(uint64(len(op.Key))) + len(op.Key) +
		uvarintLen(uint64(len(op.Value))) + len(op.Value)
}

// Ops carries consecutive operations of Origin's log: Ops[i] has sequence
// number FirstSeq+i. FirstSeq+len(Ops)-1 must not overflow a uint64.
type Ops struct {
	Origin   uint32
	FirstSeq uint64
	Ops      []Op // a frame with no ops decodes as nil
}

// Ack tells Origin that the sender has applied its log up to and including
// Seq.
type Ack struct {
	Origin uint32
	Seq    uint64
}

// SnapshotBegin starts a full sync of Origin's data: the SnapshotChunk frames
// that follow, up to SnapshotEnd, hold every entry and tombstone the sender
// had when its log for Origin stood at Seq and its clock at HLC. After the
// snapshot, streaming resumes at Seq+1.
type SnapshotBegin struct {
	Origin uint32
	Seq    uint64
	HLC    uint64
	// Vouched is nil if the sender vouches for every key (it keeps every
	// key it holds), or a set of SlotSetLen bytes: the hash slots whose
	// entries the sender holds all of, the only keys the receiver's drop
	// rule may judge by this snapshot.
	Vouched []byte
}

// SnapshotChunk carries part of a full sync started by SnapshotBegin. The
// ops carry no sequence numbers.
type SnapshotChunk struct {
	Origin uint32
	Ops    []Op // a chunk with no ops decodes as nil
}

// Probe starts an anti-entropy exchange: Origin lists entries and
// tombstones it holds, as ops without values (Kind, Key and version only),
// and asks the peer for its newer versions of those keys.
type Probe struct {
	Origin uint32
	Ops    []Op
}

// Repair answers a Probe with the peer's entries and tombstones that are
// newer than the probed versions, as complete ops. Origin is the sender.
type Repair struct {
	Origin uint32
	Ops    []Op
}

// LargeOp starts an op whose value does not fit in one frame: Op carries
// the op with the first bytes of its value, and the ValuePart frames of
// the same Seq that follow carry the rest, in order, until the value has
// Size bytes (Size > len(Op.Value), at most MaxValueLen). Seq is the op's
// sequence number in Origin's log, or 0 for an op of a full sync or of a
// Repair. Frames of other kinds may come between the parts; what may is
// the replication layer's business.
type LargeOp struct {
	Origin uint32
	Seq    uint64
	Size   uint64
	Op     Op
}

// ValuePart continues the value of the LargeOp of the same Origin and Seq
// with Data (never empty).
type ValuePart struct {
	Origin uint32
	Seq    uint64
	Data   []byte
}

// PartAck tells Origin that the sender holds Received bytes of the value of
// the large op Seq of Origin's log: the origin paces the parts it sends
// by them.
type PartAck struct {
	Origin   uint32
	Seq      uint64
	Received uint64
}

// Vouched tells Origin which keys the sender's later Acks speak for: nil
// if every key (it keeps every key), or a set of SlotSetLen bytes, the hash
// slots whose entries the sender holds all of. A receiver keeping only its
// own slots sends one before its first Ack on a connection and again
// before the first Ack after the set changed; the origin counts an Ack
// toward a write's acknowledgement level only for the slots vouched for.
type Vouched struct {
	Origin uint32
	Slots  []byte
}

// Keeps tells Origin which slots' writes the sender of the frame keeps
// from now on: nil if every key, or a set of SlotSetLen bytes. A receiver
// keeping only its own slots names them in its Resume and sends a Keeps
// frame, before its next Ack, whenever they change; the origin may send
// the writes of the other slots' keys as skips (KindSkip) from the frame
// on.
type Keeps struct {
	Origin uint32
	Slots  []byte
	// Relayed is as Resume.Relayed (protocol 12; nil for none).
	Relayed []byte
}

// Relay hands on writes of the remote origin Origin (of incarnation
// Incarnation) that the sender, a slot's primary in the receiver's region,
// received whole, to a co-owner of the slot that takes it relayed: the
// receiver applies each and stops owing the write its stream from Origin
// stood in for with KindRelayed at the same sequence number (protocol 12).
type Relay struct {
	Origin      uint32
	Incarnation uint64
	Seqs        []uint64 // one per op
	Ops         []Op     // KindSet, KindCounter or KindHash
}

// SnapshotEnd ends the full sync of Origin. Ghosts is the sender's
// tombstone-ghost table at the end of the snapshot (a power-of-two number
// of slots, each the largest HLC of the deletes and expiries whose exact
// tombstones left the sender's store, for keys hashing there), so the
// receiver can tell which of its entries a delete or an expiry may have
// superseded. The sender's evictions and flushes are local and not in it.
// A receiver refuses a table whose size is not a power of two.
type SnapshotEnd struct {
	Origin uint32
	Ghosts []uint64
}

// Ping asks the peer for a Pong, to measure round-trip time and clock offset.
type Ping struct {
	SentNanos int64 // sender's physical clock when sending, Unix nanoseconds
}

// Pong answers a Ping.
type Pong struct {
	EchoNanos     int64 // the Ping's SentNanos, echoed
	PhysicalNanos int64 // responder's physical clock when answering
}

// FetchHello is the first frame of a connection that asks the peer for
// entries (Fetch) instead of streaming a log to it; the peer answers it as
// a Hello, with its own Hello or a Reject, and takes over no stream. Its
// fields and layout are Hello's.
type FetchHello struct{ Hello }

// Fetch asks the peer, on a connection opened by FetchHello, for its entry
// or tombstone of Key. Touch makes the entry most recently used there, as
// a read would. Fetches may be pipelined: the peer answers each one in
// order with a Fetched frame.
type Fetch struct {
	Touch bool
	Key   string // at most MaxKeyLen bytes
}

// Fetched answers a Fetch: Op is the sender's entry of the key (KindSet,
// KindCounter or KindHash, with its state) or its tombstone (KindDelete)
// if Found. Partial says that the sender may lack writes the region holds
// of the key's slot (it does not keep the slot, or is still filling it).
// If Large, Op is empty and the entry follows as a LargeOp of sequence
// number 0 and its ValueParts, before the answer to the next Fetch.
type Fetched struct {
	Found   bool
	Partial bool
	Large   bool
	Op      Op
}

// SlotSync asks the peer, on a connection opened by FetchHello, for a full
// sync of the hash slots in Slots: once it has applied each origin's
// stream of Since up to at least the position given (for the same
// incarnation), it sends SnapshotBegin (Origin: its own id, Seq 0),
// SnapshotChunks of its entries and tombstones of those slots (a large
// entry as a LargeOp of sequence number 0 and its ValueParts), and
// SnapshotEnd with its tombstone ghosts; or a Reject (RejectBehind). A node
// that gains slots asks one owner of them instead of every origin: Since
// holds how far it had received each origin's stream when it began keeping
// them, so the owner's snapshot holds every write of those slots it passed
// over.
type SlotSync struct {
	Slots []byte // SlotSetLen bytes, at least one slot
	Since []Position
}

// Position is how far a node has received one origin's stream: through
// sequence number Seq of that origin's incarnation Incarnation.
type Position struct {
	Origin      uint32
	Incarnation uint64
	Seq         uint64
}

// MaxSlotSyncOrigins bounds the positions of a SlotSync.
const MaxSlotSyncOrigins = 4096

// Type returns TypeSlotSync.
func (*SlotSync) Type() Type { return TypeSlotSync }

// Type returns TypeHello.
func (*Hello) Type() Type { return TypeHello }

// Type returns TypeFetchHello.
func (*FetchHello) Type() Type { return TypeFetchHello }

// Type returns TypeFetch.
func (*Fetch) Type() Type { return TypeFetch }

// Type returns TypeFetched.
func (*Fetched) Type() Type { return TypeFetched }

// Type returns TypeReject.
func (*Reject) Type() Type { return TypeReject }

// Type returns TypeResume.
func (*Resume) Type() Type { return TypeResume }

// Type returns TypeOps.
func (*Ops) Type() Type { return TypeOps }

// Type returns TypeAck.
func (*Ack) Type() Type { return TypeAck }

// Type returns TypeVouched.
func (*Vouched) Type() Type { return TypeVouched }

// Type returns TypeKeeps.
func (*Keeps) Type() Type { return TypeKeeps }

// Type returns TypeRelay.
func (*Relay) Type() Type { return TypeRelay }

// Type returns TypeSnapshotBegin.
func (*SnapshotBegin) Type() Type { return TypeSnapshotBegin }

// Type returns TypeSnapshotChunk.
func (*SnapshotChunk) Type() Type { return TypeSnapshotChunk }

// Type returns TypeSnapshotEnd.
func (*SnapshotEnd) Type() Type { return TypeSnapshotEnd }

// Type returns TypePing.
func (*Ping) Type() Type { return TypePing }

// Type returns TypePong.
func (*Pong) Type() Type { return TypePong }

// Type returns TypeProbe.
func (*Probe) Type() Type { return TypeProbe }

// Type returns TypeRepair.
func (*Repair) Type() Type { return TypeRepair }

// Type returns TypeLargeOp.
func (*LargeOp) Type() Type { return TypeLargeOp }

// Type returns TypeValuePart.
func (*ValuePart) Type() Type { return TypeValuePart }

// Type returns TypePartAck.
func (*PartAck) Type() Type { return TypePartAck }

// Append appends the encoded frame to buf. It does not check the name
// limits: a name longer than MaxNameLen is encoded, and the peer rejects it.
func (f *Hello) Append(buf []byte) []byte { return f.appendAs(buf, TypeHello) }

// Append appends the encoded frame to buf, as Hello's.
func (f *FetchHello) Append(buf []byte) []byte { return f.appendAs(buf, TypeFetchHello) }

func (f *Hello) appendAs(buf []byte, t Type) []byte {
	buf, start := begin(buf, t)
	buf = binary.BigEndian.AppendUint16(buf, f.Proto)
	buf = appendString(buf, f.Cluster)
	buf = appendString(buf, f.Region)
	buf = appendString(buf, f.NodeName)
	buf = binary.BigEndian.AppendUint32(buf, f.NodeID)
	buf = binary.BigEndian.AppendUint64(buf, f.Incarnation)
	buf = binary.BigEndian.AppendUint64(buf, uint64(f.PhysicalNanos))
	return finish(buf, start)
}

// Append appends the encoded frame to buf. A Message longer than
// MaxMessageLen is truncated to at most MaxMessageLen bytes, at a UTF-8
// character boundary when it is valid UTF-8.
func (f *Reject) Append(buf []byte) []byte {
	msg := f.Message
	if len(msg) > MaxMessageLen {
		n := MaxMessageLen
		for n > MaxMessageLen-utf8.UTFMax && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n]
	}
	buf, start := begin(buf, TypeReject)
	buf = binary.BigEndian.AppendUint16(buf, uint16(f.Code))
	buf = appendString(buf, msg)
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *Resume) Append(buf []byte) []byte {
	buf, start := begin(buf, TypeResume)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.NextSeq)
	buf = binary.BigEndian.AppendUint64(buf, f.HLC)
	buf = appendSlotSet(buf, f.Wanted)
	buf = appendSlotSet(buf, f.Keeps)
	if len(f.Relayed) > 0 { // absent for a peer of an older version
		buf = appendSlotSet(buf, f.Relayed)
	}
	return finish(buf, start)
}

// Append appends the encoded frame to buf. It does not check limits: a key
// longer than MaxKeyLen, a frame larger than the peer's maximum or a
// FirstSeq+len(Ops)-1 past the uint64 range is encoded, and the peer
// rejects it. Use Op.Size and MaxOpsHeader to cut batches.
func (f *Ops) Append(buf []byte) []byte {
	buf = slices.Grow(buf, 4+MaxOpsHeader+opsSize(f.Ops)) // one reallocation at most
	buf, start := begin(buf, TypeOps)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.FirstSeq)
	buf = appendOps(buf, f.Ops)
	return finish(buf, start)
}

// Fetched flags.
const (
	fetchedFound   = 1 << 0
	fetchedPartial = 1 << 1
	fetchedLarge   = 1 << 2
)

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits.
func (f *Fetch) Append(buf []byte) []byte {
	buf, start := begin(buf, TypeFetch)
	touch := byte(0)
	if f.Touch {
		touch = 1
	}
	buf = append(buf, touch)
	buf = appendString(buf, f.Key)
	return finish(buf, start)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits. Op is encoded only if Found and not Large.
func (f *Fetched) Append(buf []byte) []byte {
	withOp := f.Found && !f.Large
	if withOp {
		buf = slices.Grow(buf, 4+2+f.Op.Size())
	}
	buf, start := begin(buf, TypeFetched)
	var flags byte
	if f.Found {
		flags |= fetchedFound
	}
	if f.Partial {
		flags |= fetchedPartial
	}
	if f.Large {
		flags |= fetchedLarge
	}
	buf = append(buf, flags)
	if withOp {
		buf = appendOp(buf, &f.Op)
	}
	return finish(buf, start)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits.
func (f *SlotSync) Append(buf []byte) []byte {
	buf, start := begin(buf, TypeSlotSync)
	buf = appendSlotSet(buf, f.Slots)
	buf = binary.AppendUvarint(buf, uint64(len(f.Since)))
	for _, p := range f.Since {
		buf = binary.BigEndian.AppendUint32(buf, p.Origin)
		buf = binary.BigEndian.AppendUint64(buf, p.Incarnation)
		buf = binary.AppendUvarint(buf, p.Seq)
	}
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *Ack) Append(buf []byte) []byte {
	buf, start := begin(buf, TypeAck)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.Seq)
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *Vouched) Append(buf []byte) []byte {
	return appendSlotsFrame(buf, TypeVouched, f.Origin, f.Slots)
}

// Append appends the encoded frame to buf.
func (f *Keeps) Append(buf []byte) []byte {
	if len(f.Relayed) == 0 { // as a peer of an older version reads it
		return appendSlotsFrame(buf, TypeKeeps, f.Origin, f.Slots)
	}
	buf, start := begin(buf, TypeKeeps)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = appendSlotSet(buf, f.Slots)
	buf = appendSlotSet(buf, f.Relayed)
	return finish(buf, start)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits; Seqs and Ops must be as long.
func (f *Relay) Append(buf []byte) []byte {
	buf = slices.Grow(buf, 4+MaxRelayHeader+len(f.Ops)*binaryMaxVarintLen64+opsSize(f.Ops))
	buf, start := begin(buf, TypeRelay)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.BigEndian.AppendUint64(buf, f.Incarnation)
	buf = binary.AppendUvarint(buf, uint64(len(f.Ops)))
	for i := range f.Ops {
		buf = binary.AppendUvarint(buf, f.Seqs[i])
		buf = appendOp(buf, &f.Ops[i])
	}
	return finish(buf, start)
}

// appendSlotsFrame appends a frame of type t whose payload is an origin and
// a slot set (Vouched, Keeps).
func appendSlotsFrame(buf []byte, t Type, origin uint32, slots []byte) []byte {
	buf, start := begin(buf, t)
	buf = binary.BigEndian.AppendUint32(buf, origin)
	buf = appendSlotSet(buf, slots)
	return finish(buf, start)
}

// appendSlotSet appends a slot set (empty for nil), as decoder.slotSet reads
// it.
func appendSlotSet(buf, set []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(set)))
	return append(buf, set...)
}

// Append appends the encoded frame to buf.
func (f *SnapshotBegin) Append(buf []byte) []byte {
	buf, start := begin(buf, TypeSnapshotBegin)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.Seq)
	buf = binary.BigEndian.AppendUint64(buf, f.HLC)
	buf = appendSlotSet(buf, f.Vouched)
	return finish(buf, start)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not check
// limits.
func (f *SnapshotChunk) Append(buf []byte) []byte {
	return appendOpList(buf, TypeSnapshotChunk, f.Origin, f.Ops)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits.
func (f *Probe) Append(buf []byte) []byte { return appendOpList(buf, TypeProbe, f.Origin, f.Ops) }

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits.
func (f *Repair) Append(buf []byte) []byte { return appendOpList(buf, TypeRepair, f.Origin, f.Ops) }

// appendOpList encodes the frames made of an origin and a list of ops.
func appendOpList(buf []byte, t Type, origin uint32, ops []Op) []byte {
	buf = slices.Grow(buf, 4+MaxOpsHeader+opsSize(ops)) // one reallocation at most
	buf, start := begin(buf, t)
	buf = binary.BigEndian.AppendUint32(buf, origin)
	buf = appendOps(buf, ops)
	return finish(buf, start)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits.
func (f *LargeOp) Append(buf []byte) []byte {
	buf = slices.Grow(buf, 4+MaxLargeOpHeader+f.Op.Size())
	buf, start := begin(buf, TypeLargeOp)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.Seq)
	buf = binary.AppendUvarint(buf, f.Size)
	buf = appendOp(buf, &f.Op)
	return finish(buf, start)
}

// Append appends the encoded frame to buf. Like Ops.Append, it does not
// check limits.
func (f *ValuePart) Append(buf []byte) []byte {
	buf = slices.Grow(buf, 4+MaxValuePartHeader+len(f.Data))
	buf, start := begin(buf, TypeValuePart)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.Seq)
	buf = binary.AppendUvarint(buf, uint64(len(f.Data)))
	buf = append(buf, f.Data...)
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *PartAck) Append(buf []byte) []byte {
	buf, start := begin(buf, TypePartAck)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, f.Seq)
	buf = binary.AppendUvarint(buf, f.Received)
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *SnapshotEnd) Append(buf []byte) []byte {
	buf = slices.Grow(buf, 4+1+4+binaryMaxVarintLen64+8*len(f.Ghosts))
	buf, start := begin(buf, TypeSnapshotEnd)
	buf = binary.BigEndian.AppendUint32(buf, f.Origin)
	buf = binary.AppendUvarint(buf, uint64(len(f.Ghosts)))
	for _, g := range f.Ghosts {
		buf = binary.BigEndian.AppendUint64(buf, g)
	}
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *Ping) Append(buf []byte) []byte {
	buf, start := begin(buf, TypePing)
	buf = binary.BigEndian.AppendUint64(buf, uint64(f.SentNanos))
	return finish(buf, start)
}

// Append appends the encoded frame to buf.
func (f *Pong) Append(buf []byte) []byte {
	buf, start := begin(buf, TypePong)
	buf = binary.BigEndian.AppendUint64(buf, uint64(f.EchoNanos))
	buf = binary.BigEndian.AppendUint64(buf, uint64(f.PhysicalNanos))
	return finish(buf, start)
}

// begin appends a placeholder length prefix and the type byte; finish fills
// in the length once the payload is known.
func begin(buf []byte, t Type) ([]byte, int) {
	return append(buf, 0, 0, 0, 0, byte(t)), len(buf)
}

func finish(buf []byte, start int) []byte {
	n := len(buf) - start - 4
	if uint64(n) > math.MaxUint32 {
		// Unreachable with sane batching (frames are limited to a few MiB);
		// a silently wrapped length would desynchronise the stream.
		panic("wire: frame longer than 4 GiB")
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(n))
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendOps(buf []byte, ops []Op) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(ops)))
	for i := range ops {
		buf = appendOp(buf, &ops[i])
	}
	return buf
}

func appendOp(buf []byte, op *Op) []byte {
	buf = append(buf, byte(op.Kind))
	buf = binary.BigEndian.AppendUint64(buf, op.HLC)
	buf = binary.BigEndian.AppendUint32(buf, op.VOrigin)
	buf = binary.AppendVarint(buf, op.ExpireAt)
	buf = appendString(buf, op.Key)
	buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
	return append(buf, op.Value...)
}

func opsSize(ops []Op) int {
	n := 0
	for i := range ops {
		n += ops[i].Size()
	}
	return n
}

// uvarintLen is the length of binary.AppendUvarint(nil, v).
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// varintLen is the length of binary.AppendVarint(nil, v).
func varintLen(v int64) int {
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}
