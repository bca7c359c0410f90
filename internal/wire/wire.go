package wire

import (
	"errors"
	"strconv"
)

// Proto is the replication protocol version this package speaks. It travels
// in [Hello.Proto]; the layout of Hello itself never changes between versions,
// so a peer of any version can decode it and answer a mismatch with
// [RejectProtocol].
//
// Version 2: Resume carries the receiver's HLC.
// Version 3: an Op may be a pub/sub message (KindPublish) or a batch's
// start (KindBatch) in Ops frames.
// Version 4: an Op may be a counter's state (KindCounter).
// Version 5: an Op may be a hash's state (KindHash).
// Version 6: an Op whose value is too large for one frame travels as a
// LargeOp frame and the ValuePart frames that follow it, which the
// receiver acknowledges with PartAck frames.
// Version 7: SnapshotBegin carries the hash slots the sender vouches for,
// and Resume the slots a full sync is to carry (a node of a region keeping
// only its own slots); Reject code 9 (RejectResync) asks the sender for a
// full sync.
// Version 8: a receiver that keeps only its own slots tells each origin
// which slots its acknowledgements speak for (Vouched), so that only a
// key's owners count toward that key's acknowledgement level.
// Version 9: Resume carries the slots the receiver keeps (Keeps), and a
// Keeps frame tells the origin when they change; the sender may send a write of a key the receiver does not keep as a skip
// (KindSkip): its version and slot, without key or value; Reject code 10
// (RejectKeeps) asks the sender to reconnect so that the Resume names the
// slots kept now.
// Version 10: a connection may start with FetchHello instead of Hello: it
// carries Fetch requests, each answered by a Fetched frame (a large entry
// by a LargeOp and its ValueParts after it), and never a stream.
// Version 11: a fetch connection may carry a SlotSync, answered by a full
// sync of the slots it names (SnapshotBegin, SnapshotChunks, the large
// entries' LargeOps and ValueParts, SnapshotEnd) once the sender has
// applied each named origin's stream as far as the SlotSync says, or by a
// Reject (RejectBehind) if it cannot.
// Version 12: Resume and Keeps may name the slots the receiver takes
// relayed (Relayed): the origin sends their writes as KindRelayed stand-ins,
// and the slot's primary in the receiver's region hands each write on in a
// Relay frame.
const Proto = 12

// MinProto is the oldest protocol version a node of this one links with.
// A node accepts a Hello of MinProto or later and answers with the older
// of the two versions, which both then speak; a node refused for the
// version it announced (RejectProtocol) dials again announcing MinProto.
// So nodes of versions 9 and 10 replicate with each other during a
// rolling upgrade: their streams are the same, and only version 10 serves
// fetch connections (a FetchHello announces 10 or later).
const MinProto = 9

// SlotSetLen is the length of a set of hash slots on the wire (one bit per
// slot of Redis Cluster's 16,384: bit s&7 of byte s>>3).
const SlotSetLen = 16384 / 8

// Limits. See the package documentation for how they bound decoding.
const (
	// DefaultMaxFrame is the frame size limit ReadFrame applies when given a
	// maximum of zero or less: 4 MiB, counting the type byte and payload but
	// not the 4-byte length prefix.
	DefaultMaxFrame = 4 << 20

	// MaxKeyLen is the longest key an Op may carry: 64 KiB.
	MaxKeyLen = 64 << 10

	// MaxNameLen is the longest Cluster, Region or NodeName a Hello may carry.
	MaxNameLen = 255

	// MaxMessageLen is the longest Message a Reject may carry. Reject.Append
	// truncates a longer message.
	MaxMessageLen = 1024

	// MaxValueLen is the largest value a LargeOp may announce: 512 MiB,
	// Redis's largest string. A receiver may accept less.
	MaxValueLen = 512 << 20

	// MaxLargeOpHeader is the most bytes of a LargeOp frame's length that
	// are not its op (type, Origin, Seq, Size).
	MaxLargeOpHeader = 1 + 4 + binaryMaxVarintLen64 + binaryMaxVarintLen64

	// MaxValuePartHeader is the most bytes of a ValuePart frame's length
	// that are not its data (type, Origin, Seq, the data's length).
	MaxValuePartHeader = 1 + 4 + binaryMaxVarintLen64 + binaryMaxVarintLen64

	// MaxOpsHeader is the most bytes of an Ops or SnapshotChunk frame's
	// length that are not ops (type, Origin, FirstSeq, count): a batch whose
	// [Op.Size] values sum to at most maxFrame-MaxOpsHeader always encodes to
	// a frame that ReadFrame with that maxFrame accepts.
	MaxOpsHeader = 1 + 4 + binaryMaxVarintLen64 + binaryMaxVarintLen64

	// MaxRelayHeader is the most bytes of a Relay frame's payload and
	// type that are not its ops and their sequence numbers (type, Origin,
	// Incarnation, count); each op adds Op.Size and its sequence number's
	// varint (at most binaryMaxVarintLen64).
	MaxRelayHeader = 1 + 4 + 8 + binaryMaxVarintLen64

	// minOpLen is the size of the smallest encoded Op (empty key and value,
	// no expiry). It lets the decoder reject a claimed op count that the
	// remaining payload cannot hold before it allocates the slice.
	minOpLen = 1 + 8 + 4 + 1 + 1 + 1

	// binaryMaxVarintLen64 mirrors binary.MaxVarintLen64 so that the
	// constants above stay untyped.
	binaryMaxVarintLen64 = 10
)

// Errors returned by ReadFrame. They are never wrapped in one another except
// as stated: errors.Is(err, ErrMalformed) also holds for ErrUnknownType.
var (
	// ErrMalformed reports a frame whose length prefix is zero or whose
	// payload does not follow the layout of its type: a field runs past the
	// end of the payload, a length or count claims more than the payload
	// holds, a limit is exceeded, a varint is not in its shortest form, or
	// bytes are left over after the last field. The returned error wraps it
	// with details.
	ErrMalformed = errors.New("wire: malformed frame")

	// ErrFrameTooLarge reports a length prefix above the reader's maximum
	// frame size. It is detected from the prefix alone, before the body is
	// read or any memory is allocated for it.
	ErrFrameTooLarge = errors.New("wire: frame too large")

	// ErrUnknownType reports a frame type this version does not know.
	// errors.Is(ErrUnknownType, ErrMalformed) is true.
	ErrUnknownType error = &childError{msg: "wire: unknown frame type", parent: ErrMalformed}
)

// childError is a sentinel error that is also its parent sentinel under
// errors.Is, without the parent's text in its message.
type childError struct {
	msg    string
	parent error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.parent }

// Type is a frame type: the first byte after the length prefix.
type Type uint8

// Frame types. Zero is never a valid type.
const (
	TypeHello         Type = 1
	TypeReject        Type = 2
	TypeResume        Type = 3
	TypeOps           Type = 4
	TypeAck           Type = 5
	TypeSnapshotBegin Type = 6
	TypeSnapshotChunk Type = 7
	TypeSnapshotEnd   Type = 8
	TypePing          Type = 9
	TypePong          Type = 10
	TypeProbe         Type = 11
	TypeRepair        Type = 12
	TypeLargeOp       Type = 13
	TypeValuePart     Type = 14
	TypePartAck       Type = 15
	TypeVouched       Type = 16
	TypeKeeps         Type = 17
	TypeFetchHello    Type = 18
	TypeFetch         Type = 19
	TypeFetched       Type = 20
	TypeSlotSync      Type = 21
	TypeRelay         Type = 22
)

var typeNames = [...]string{
	TypeHello:         "Hello",
	TypeReject:        "Reject",
	TypeResume:        "Resume",
	TypeOps:           "Ops",
	TypeAck:           "Ack",
	TypeSnapshotBegin: "SnapshotBegin",
	TypeSnapshotChunk: "SnapshotChunk",
	TypeSnapshotEnd:   "SnapshotEnd",
	TypePing:          "Ping",
	TypePong:          "Pong",
	TypeProbe:         "Probe",
	TypeRepair:        "Repair",
	TypeLargeOp:       "LargeOp",
	TypeValuePart:     "ValuePart",
	TypePartAck:       "PartAck",
	TypeVouched:       "Vouched",
	TypeKeeps:         "Keeps",
	TypeFetchHello:    "FetchHello",
	TypeFetch:         "Fetch",
	TypeFetched:       "Fetched",
	TypeSlotSync:      "SlotSync",
	TypeRelay:         "Relay",
}

// String returns the frame type's name, such as "Ops", or "Type(42)" for an
// unknown type.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Frame is one decoded or to-be-encoded frame. The concrete types are the
// pointer types *Hello, *Reject, *Resume, *Ops, *Ack, *SnapshotBegin,
// *SnapshotChunk, *SnapshotEnd, *Ping, *Pong, *Probe, *Repair, *LargeOp, *ValuePart, *PartAck, *Vouched, *Keeps, *FetchHello,
// *Fetch and *Fetched; ReadFrame returns one of
// them, so callers dispatch with a type switch.
type Frame interface {
	// Type returns the frame's type byte.
	Type() Type
	// Append appends the complete encoded frame, length prefix included, to
	// buf and returns the extended slice. It allocates only when buf lacks
	// capacity.
	Append(buf []byte) []byte
}

// Kind is the kind of a replicated operation.
type Kind uint8

// Operation kinds. The decoder rejects any other value.
const (
	KindSet    Kind = 1
	KindDelete Kind = 2
	// KindPublish is a pub/sub message: Key is the channel, Value the
	// payload, ExpireAt 0. It is valid in Ops frames only (protocol 3);
	// the decoder accepts it in every op list, and the receiver refuses it
	// where it does not belong (snapshots, probes, repairs).
	KindPublish Kind = 3
	// KindBatch starts a batch: the next ExpireAt ops of the stream (1 to
	// MaxBatchOps; Key and Value empty) are one transaction, applied as
	// one unit. Valid in Ops frames only (protocol 3).
	KindBatch Kind = 4
	// KindCounter carries a counter's whole state in Value (the store's
	// encoding; the receiver's store checks it) with the state's newest
	// version and its expiry: receivers merge it into theirs instead of
	// replacing (protocol 4). Valid in every op list; in a Probe, Value is
	// the state's digest.
	KindCounter Kind = 5
	// KindHash carries a hash's whole state in Value (the store's
	// encoding; the receiver's store checks it) with the state's newest
	// version and its expiry: receivers merge it field by field
	// (protocol 5). Valid in every op list; in a Probe, Value is the
	// state's digest.
	KindHash Kind = 6
	// KindSkip stands in an Ops frame (and inside a batch) for a write of a
	// key the receiver said it does not keep (Resume.Keeps): ExpireAt is
	// the key's hash slot (0 to 16,383), HLC and VOrigin the write's
	// version, Key and Value empty. It keeps the stream's sequence whole
	// and the receiver's clock merged as the write would have (protocol
	// 9). The receiver refuses it in snapshots, probes, repairs and large
	// ops.
	KindSkip Kind = 7
	// KindRelayed stands in an Ops frame (never inside a batch) for a
	// write of a slot the receiver said it takes relayed (Resume.Relayed):
	// laid out as KindSkip, but the receiver keeps the write's slot and
	// owes the write until the slot's primary in its region relays it (a
	// Relay frame with the same origin and sequence number). The receiver
	// refuses it anywhere else (protocol 12).
	KindRelayed Kind = 8
)

// MaxBatchOps bounds the ops of one batch (KindBatch).
const MaxBatchOps = 1 << 16

// String returns "set", "delete", "publish", "batch", "counter", "hash",
// "skip", "relayed" or "Kind(n)".
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindHash:
		return "hash"
	case KindSet:
		return "set"
	case KindDelete:
		return "delete"
	case KindPublish:
		return "publish"
	case KindBatch:
		return "batch"
	case KindSkip:
		return "skip"
	case KindRelayed:
		return "relayed"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// RejectCode says why a node rejects its peer in a Reject frame. The code
// space is open: the decoder accepts any value, so a newer peer may send a
// code this version does not name.
type RejectCode uint16

// Reject codes.
const (
	// RejectBadFrame: a frame was malformed, of an unknown type, or not
	// expected in the connection's state (for example Ops before Hello).
	RejectBadFrame RejectCode = 1
	// RejectProtocol: Hello.Proto is a version the receiver does not speak.
	RejectProtocol RejectCode = 2
	// RejectCluster: Hello.Cluster names another cluster.
	RejectCluster RejectCode = 3
	// RejectDuplicateNode: Hello.NodeID is the receiver's own id or that of
	// another connected node.
	RejectDuplicateNode RejectCode = 4
	// RejectFrameTooLarge: a frame's length exceeded the receiver's limit.
	RejectFrameTooLarge RejectCode = 5
	// RejectShuttingDown: the receiver is closing; the peer should reconnect
	// elsewhere or later.
	RejectShuttingDown RejectCode = 6
	// RejectInternal: the receiver failed for a reason of its own.
	RejectInternal RejectCode = 7
	// RejectClockAhead: a received version (or the peer's clock) is further
	// ahead of the receiver's physical clock than the cluster's maximum
	// offset; the receiver applied nothing from that point. The sender's
	// clock is the likely culprit: it should count the receiver as out of
	// bounds, and reconnect later (the write is delivered once in bounds).
	// A peer of an older version that does not name the code treats it as a
	// refusal and reconnects all the same.
	RejectClockAhead RejectCode = 8
	// RejectResync: the receiver needs a full sync (it now keeps keys whose
	// writes it passed over) and ends the stream; the sender should
	// reconnect at once, and the receiver's Resume then asks for one. A
	// peer of an older version treats it as a refusal and reconnects all
	// the same, after its backoff.
	RejectResync RejectCode = 9
	// RejectKeeps: the receiver keeps slots it did not keep when it
	// resumed, and a skip (KindSkip) of one of them arrived; it applied
	// nothing from that op on and ends the stream. The sender should
	// reconnect at once: the receiver's Resume then names the slots it
	// keeps now, from that op.
	RejectKeeps RejectCode = 10
	// RejectBehind: the receiver of a SlotSync cannot answer it: it does
	// not hold every slot named, or has not applied some origin's stream
	// as far as the SlotSync names, in time. The asker takes the slots
	// another way.
	RejectBehind RejectCode = 11
)

var rejectNames = [...]string{
	RejectBadFrame:      "bad frame",
	RejectProtocol:      "protocol version",
	RejectCluster:       "cluster mismatch",
	RejectDuplicateNode: "duplicate node id",
	RejectFrameTooLarge: "frame too large",
	RejectShuttingDown:  "shutting down",
	RejectInternal:      "internal error",
	RejectClockAhead:    "clock ahead",
	RejectResync:        "full sync asked",
	RejectKeeps:         "slots kept grew",
	RejectBehind:        "behind the positions asked for",
}

// String returns a short description such as "cluster mismatch", or
// "RejectCode(n)" for a code this version does not name.
func (c RejectCode) String() string {
	if int(c) < len(rejectNames) && rejectNames[c] != "" {
		return rejectNames[c]
	}
	return "RejectCode(" + strconv.Itoa(int(c)) + ")"
}
