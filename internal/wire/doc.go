// Package wire defines the frames of geocache's replication protocol: the
// byte layout, append-style encoders and a strict, bounded decoder.
//
// Nodes in different regions keep one TCP connection per pair and exchange
// frames on it in both directions. Each side first sends a [Hello]; a node
// that cannot accept its peer sends a [Reject] and closes. Afterwards a
// receiver tells each origin where to stream from ([Resume]), the origin
// streams its log ([Ops]), the receiver acknowledges ([Ack]), and when the
// log no longer reaches back far enough the origin sends a full sync
// ([SnapshotBegin], [SnapshotChunk]..., [SnapshotEnd]). [Ping] and [Pong]
// measure round-trip time and clock offset (see hlc.EstimateOffset). What
// may be sent when is the replication layer's business; this package only
// turns frames into bytes and back.
//
// # Framing
//
// Every frame is a 4-byte big-endian length N followed by N bytes: one type
// byte, then the payload. N counts the type byte, so N >= 1.
//
// Field encodings:
//
//	u8, u16, u32, u64  fixed size, big-endian; i64 is a u64 in two's complement
//	uvarint            encoding/binary Uvarint, shortest form only
//	varint             encoding/binary Varint (zigzag), shortest form only
//	str                uvarint length L, then L bytes
//
// Fixed sizes hold identifiers and clock readings, which are large and spread
// over their whole range; varints hold sequence numbers, counts and lengths,
// which are usually small. ExpireAt is a varint because most entries have
// none (0 takes one byte).
//
// # Layout
//
//	Type  Frame          Payload (after the type byte)
//	1     Hello          Proto u16 | Cluster str | Region str | NodeName str | NodeID u32 | Incarnation u64 | PhysicalNanos i64
//	2     Reject         Code u16 | Message str
//	3     Resume         Origin u32 | NextSeq uvarint | HLC u64 | Wanted bytes (0 or SlotSetLen) | Keeps bytes (0 or SlotSetLen) [| Relayed bytes (SlotSetLen)]
//	4     Ops            Origin u32 | FirstSeq uvarint | count uvarint | count × Op
//	5     Ack            Origin u32 | Seq uvarint
//	6     SnapshotBegin  Origin u32 | Seq uvarint | HLC u64 | Vouched bytes (0 or SlotSetLen)
//	7     SnapshotChunk  Origin u32 | count uvarint | count × Op
//	8     SnapshotEnd    Origin u32 | count uvarint | count × u64 (ghost slots)
//	9     Ping           SentNanos i64
//	10    Pong           EchoNanos i64 | PhysicalNanos i64
//	11    Probe          Origin u32 | count uvarint | count × Op (values empty)
//	12    Repair         Origin u32 | count uvarint | count × Op
//	13    LargeOp        Origin u32 | Seq uvarint | Size uvarint | Op (Value: the first bytes)
//	14    ValuePart      Origin u32 | Seq uvarint | Data str
//	15    PartAck        Origin u32 | Seq uvarint | Received uvarint
//	16    Vouched        Origin u32 | Slots bytes (0 or SlotSetLen)
//	17    Keeps          Origin u32 | Slots bytes (0 or SlotSetLen) [| Relayed bytes (SlotSetLen)]
//	18    FetchHello     as Hello
//	19    Fetch          Touch u8 (0 or 1) | Key str
//	20    Fetched        Flags u8 (1 found, 2 partial, 4 large) | Op if found and not large
//	21    SlotSync       Slots bytes (SlotSetLen) | count uvarint | count × (Origin u32 | Incarnation u64 | Seq uvarint)
//	22    Relay          Origin u32 | Incarnation u64 | count uvarint | count × (Seq uvarint | Op)
//	      Op             Kind u8 | HLC u64 | VOrigin u32 | ExpireAt varint | Key str | Value str
//
// For example, Ack{Origin: 7, Seq: 300} is
//
//	00 00 00 07  05  00 00 00 07  ac 02
//	length 7     Ack Origin       Seq
//
// # Limits
//
// The decoder is strict: it accepts exactly the bytes the encoders produce
// for some frame and nothing else, so a frame that decodes re-encodes to the
// same bytes. It rejects, with [ErrMalformed] unless noted:
//
//   - a length N of 0, or above the reader's maximum ([DefaultMaxFrame], 4
//     MiB, unless the caller passes another) with [ErrFrameTooLarge]; both
//     are decided from the 4-byte prefix, before the body is read or memory
//     is allocated for it;
//   - a type byte it does not know, with [ErrUnknownType] (which is also
//     ErrMalformed);
//   - a field that runs past the end of the payload, and any bytes left over
//     after the last field;
//   - a string length above the payload's remaining bytes (checked before
//     slicing), a Key over [MaxKeyLen] (64 KiB), a Hello name over
//     [MaxNameLen] (255 bytes), a Reject message over [MaxMessageLen] (1 KiB);
//     a Value is bounded only by the frame;
//   - a LargeOp whose Size is not above its first part's length, is
//     above [MaxValueLen] (512 MiB), or whose op is a delete, a batch
//     start, a skip or a stand-in; a ValuePart with no data;
//   - a Resume's or a Keeps' optional Relayed set that is present but not
//     a full set (it is never sent empty: absent means none);
//   - an op count above remaining/16, 16 bytes being the smallest Op, checked
//     before the []Op slice is allocated;
//   - an Op Kind other than [KindSet], [KindDelete], [KindPublish], [KindBatch], [KindCounter], [KindHash], [KindSkip] and [KindRelayed], an Ops frame whose
//     last sequence number FirstSeq+count-1 overflows a uint64, and a varint
//     that is not in its shortest form.
//
// Decoding a frame of N bytes therefore allocates O(N): at most N/16 Ops
// (about 4.5 bytes of Op struct per frame byte) plus copies of the bytes
// themselves. The decoder does not interpret values: Proto, codes, sequence
// numbers, clocks and ExpireAt are checked by the layers that use them.
//
// The encoders check nothing (except that [Reject.Append] truncates a long
// message): a frame that breaks a limit is encoded as given and rejected by
// the peer. The replication layer keeps keys within MaxKeyLen and cuts
// batches with [Op.Size] and [MaxOpsHeader] so that frames stay within the
// peer's maximum.
//
// # Go representation and ownership
//
// Each frame type is a struct, and [Frame] is the interface its pointer
// implements; [ReadFrame] returns one of the pointers, and callers dispatch
// with a type switch. Concrete structs keep each frame's fields exactly those
// of its layout (a tagged union would carry every field of every frame and
// leave the reader to guess which are meaningful), and since the methods
// have pointer receivers a `case wire.Ops:` that could never match does not
// compile. The cost is one small allocation per decoded frame for the
// interface value, which is O(1) per frame, not per op.
//
// Decoded frames own their memory: ReadFrame copies every key (to a string),
// every value (to its own []byte) and every string out of the read buffer.
// Nothing aliases the buffer, so the buffer can be reused for the next frame
// while the store keeps the ops. The value copies are not extra work: the
// store must hold each value in an allocation of its own anyway (sharing one
// frame-sized buffer would let one surviving entry pin a whole frame and
// break the cache's byte budget), so copying here moves that allocation
// rather than adding one, and removes the class of bugs where a stored value
// changes under the store when the next frame is read. Decoding an Ops frame
// of n ops therefore makes 2 allocations (the frame and its []Op) plus at
// most one per non-empty key and one per non-empty value: 130 for 64 ops with
// keys and values, 66 for 64 deletes; see TestDecodeAllocs.
//
// # Versions
//
// [Proto] is 12 (2: Resume carries the receiver's HLC; 3: pub/sub messages,
// [KindPublish], and batches, [KindBatch], travel in Ops frames; 4:
// counters' states, [KindCounter]; 5: hashes' states, [KindHash]; 6: an op
// too large for one frame travels as a [LargeOp] and its [ValuePart]s, paced
// by the receiver's [PartAck]s; 7: slot sets in [Resume] and [SnapshotBegin];
// 8: [Vouched], the slots a receiver's acknowledgements speak for; 9: the
// slots a receiver keeps, in [Resume] and [Keeps], and [KindSkip]; 10:
// fetch connections, [FetchHello], [Fetch] and [Fetched]; 11: [SlotSync]
// on a fetch connection, and [RejectBehind]; 12: the slots a receiver
// takes relayed, in [Resume] and [Keeps], [KindRelayed] and [Relay]). The layout of
// Hello is frozen: every version sends the same Hello first, so a node can
// always decode its peer's Hello. Up to version 9 a node answered a
// version other than its own with a Reject of code [RejectProtocol]. From
// version 10 a node accepts a Hello of [MinProto] or later and answers
// with the older of the two versions, which both then speak (a node never
// answers with a version above the one it was announced); a node refused
// for the version it announced dials again announcing [MinProto]. A later
// version adds information in new frame types, sent only to a peer that
// speaks that version.
//
// There is no separate error frame. Every error that a peer needs to hear
// about ends the connection, so Reject serves both the handshake and later
// protocol errors; conditions the stream can recover from are expressed by
// the protocol itself (Resume, full sync).
package wire
