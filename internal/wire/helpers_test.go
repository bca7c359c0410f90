package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
)

type sample struct {
	name string
	f    Frame
}

// samples returns at least one frame of every type, with empty and maximal
// fields. Empty Values and op lists are nil, as the decoder returns them.
func samples() []sample {
	maxKey := strings.Repeat("k", MaxKeyLen)
	maxName := strings.Repeat("n", MaxNameLen)
	return []sample{
		{"Hello/empty", &Hello{}},
		{"Hello/typical", &Hello{Proto: Proto, Cluster: "prod", Region: "eu-west", NodeName: "cache-1", NodeID: 0xdeadbeef, Incarnation: 0x0123456789abcdef, PhysicalNanos: 1732580000123456789}},
		{"Hello/max", &Hello{Proto: math.MaxUint16, Cluster: maxName, Region: maxName, NodeName: maxName, NodeID: math.MaxUint32, Incarnation: math.MaxUint64, PhysicalNanos: math.MaxInt64}},
		{"Hello/negative clock", &Hello{Proto: Proto, PhysicalNanos: math.MinInt64}},
		{"Reject/empty", &Reject{}},
		{"Reject/typical", &Reject{Code: RejectCluster, Message: `cluster "prod" != "dev"`}},
		{"Reject/max", &Reject{Code: math.MaxUint16, Message: strings.Repeat("m", MaxMessageLen)}},
		{"Resume/zero", &Resume{}},
		{"Resume/max", &Resume{Origin: math.MaxUint32, NextSeq: math.MaxUint64, HLC: math.MaxUint64}},
		{"Ops/empty", &Ops{}},
		{"Ops/one set", &Ops{Origin: 1, FirstSeq: 1, Ops: []Op{{Kind: KindSet, Key: "a", Value: []byte("1"), HLC: 1 << 20, VOrigin: 1}}}},
		{"Ops/mixed", &Ops{Origin: 42, FirstSeq: 1000, Ops: []Op{
			{Kind: KindSet, Key: "user:1", Value: []byte(`{"name":"ann"}`), ExpireAt: 1732580060000000000, HLC: 0x0193_6a1b_2c3d_0001, VOrigin: 42},
			{Kind: KindDelete, Key: "user:2", HLC: 0x0193_6a1b_2c3d_0002, VOrigin: 7},
			{Kind: KindPublish, Key: "invalidate", Value: []byte("user:2"), HLC: 0x0193_6a1b_2c3d_0003, VOrigin: 42},
			{Kind: KindSet, Key: "", Value: nil, ExpireAt: -1, HLC: 0, VOrigin: 0},
			{Kind: KindSet, Key: "neg", Value: []byte{0}, ExpireAt: math.MinInt64, HLC: math.MaxUint64, VOrigin: math.MaxUint32},
		}}},
		{"Ops/max key", &Ops{Origin: 3, FirstSeq: math.MaxUint64, Ops: []Op{{Kind: KindSet, Key: maxKey, Value: bytes.Repeat([]byte("v"), 100_000), ExpireAt: math.MaxInt64}}}},
		{"Ops/last seq", &Ops{Origin: 3, FirstSeq: math.MaxUint64 - 1, Ops: []Op{{Kind: KindDelete, Key: "x"}, {Kind: KindDelete, Key: "y"}}}},
		{"Ack/zero", &Ack{}},
		{"Ack/max", &Ack{Origin: math.MaxUint32, Seq: math.MaxUint64}},
		{"SnapshotBegin/zero", &SnapshotBegin{}},
		{"SnapshotBegin/max", &SnapshotBegin{Origin: math.MaxUint32, Seq: math.MaxUint64, HLC: math.MaxUint64}},
		{"Resume/wanted", &Resume{Origin: 1, NextSeq: 0, HLC: 3, Wanted: bytes.Repeat([]byte{0xa5}, SlotSetLen)}},
		{"Keeps/every key", &Keeps{Origin: 4}},
		{"FetchHello/typical", &FetchHello{Hello{Proto: Proto, Cluster: "prod", Region: "eu-west", NodeName: "cache-2", NodeID: 7, Incarnation: 9, PhysicalNanos: 1732580000123456789}}},
		{"Fetch/peek", &Fetch{Key: "user:1"}},
		{"Fetch/touch", &Fetch{Touch: true, Key: "profile:{7}"}},
		{"Fetched/nothing", &Fetched{}},
		{"Fetched/partial nothing", &Fetched{Partial: true}},
		{"Fetched/set", &Fetched{Found: true, Op: Op{Kind: KindSet, Key: "user:1", Value: []byte("ann"), ExpireAt: 1732580060000000000, HLC: 77, VOrigin: 3}}},
		{"Fetched/tombstone partial", &Fetched{Found: true, Partial: true, Op: Op{Kind: KindDelete, Key: "gone", HLC: 78, VOrigin: 4}}},
		{"Fetched/large", &Fetched{Found: true, Large: true}},
		{"SlotSync/no positions", &SlotSync{Slots: bytes.Repeat([]byte{0x10}, SlotSetLen)}},
		{"SlotSync/positions", &SlotSync{Slots: bytes.Repeat([]byte{0x01}, SlotSetLen), Since: []Position{{Origin: 3, Incarnation: 1732580000123456789, Seq: 0}, {Origin: math.MaxUint32, Incarnation: math.MaxUint64, Seq: math.MaxUint64}}}},
		{"Keeps/slots", &Keeps{Origin: 4, Slots: bytes.Repeat([]byte{0x81}, SlotSetLen)}},
		{"Resume/keeps", &Resume{Origin: 1, NextSeq: 7, HLC: 3, Keeps: bytes.Repeat([]byte{0x3c}, SlotSetLen)}},
		{"Resume/relayed", &Resume{Origin: 1, NextSeq: 7, HLC: 3, Keeps: bytes.Repeat([]byte{0x3c}, SlotSetLen), Relayed: bytes.Repeat([]byte{0x14}, SlotSetLen)}},
		{"Keeps/relayed", &Keeps{Origin: 4, Slots: bytes.Repeat([]byte{0x81}, SlotSetLen), Relayed: bytes.Repeat([]byte{0x01}, SlotSetLen)}},
		{"Relay/empty", &Relay{Origin: 2, Incarnation: 9}},
		{"Relay/ops", &Relay{Origin: 2, Incarnation: 1 << 60, Seqs: []uint64{5, 1 << 40}, Ops: []Op{
			{Kind: KindSet, Key: "k", Value: []byte("v"), HLC: 77, VOrigin: 2},
			{Kind: KindCounter, Key: "c", Value: []byte{1, 2}, ExpireAt: 9, HLC: 78, VOrigin: 3},
		}}},
		{"Ops/relayed stand-in", &Ops{Origin: 3, FirstSeq: 4, Ops: []Op{{Kind: KindRelayed, ExpireAt: 12000, HLC: 5, VOrigin: 3}}}},
		{"Resume/wanted and keeps", &Resume{Origin: 1, HLC: 3, Wanted: bytes.Repeat([]byte{0x01}, SlotSetLen), Keeps: bytes.Repeat([]byte{0x03}, SlotSetLen)}},
		{"Ops/skips", &Ops{Origin: 2, FirstSeq: 5, Ops: []Op{{Kind: KindSkip, ExpireAt: 16383, HLC: 9, VOrigin: 2}, {Kind: KindSet, Key: "a", Value: []byte("1")}, {Kind: KindSkip, HLC: 10, VOrigin: 4}}}},
		{"SnapshotBegin/vouched", &SnapshotBegin{Origin: 1, Seq: 2, HLC: 3, Vouched: bytes.Repeat([]byte{0x5a}, SlotSetLen)}},
		{"SnapshotChunk/empty", &SnapshotChunk{Origin: 9}},
		{"SnapshotChunk/ops", &SnapshotChunk{Origin: 9, Ops: []Op{
			{Kind: KindSet, Key: "a", Value: []byte("apple"), HLC: 5, VOrigin: 9},
			{Kind: KindDelete, Key: "b", HLC: 6, VOrigin: 2},
		}}},
		{"SnapshotEnd/zero", &SnapshotEnd{}},
		{"SnapshotEnd/max", &SnapshotEnd{Origin: math.MaxUint32}},
		{"SnapshotEnd/ghosts", &SnapshotEnd{Origin: 2, Ghosts: []uint64{0, 7, math.MaxUint64, 1}}},
		{"Ping/zero", &Ping{}},
		{"Ping/extremes", &Ping{SentNanos: math.MinInt64}},
		{"Pong/zero", &Pong{}},
		{"Pong/extremes", &Pong{EchoNanos: math.MaxInt64, PhysicalNanos: math.MinInt64}},
		{"Probe/empty", &Probe{Origin: 4}},
		{"Probe/versions", &Probe{Origin: 4, Ops: []Op{
			{Kind: KindSet, Key: "a", HLC: 5, VOrigin: 9},
			{Kind: KindDelete, Key: "b", HLC: 6, VOrigin: 2},
		}}},
		{"Repair/ops", &Repair{Origin: 5, Ops: []Op{
			{Kind: KindSet, Key: "a", Value: []byte("apple"), ExpireAt: 77, HLC: 7, VOrigin: 9},
		}}},
		{"LargeOp/set", &LargeOp{Origin: 6, Seq: 12, Size: 1 << 20, Op: Op{Kind: KindSet, Key: "big", Value: []byte("first part"), ExpireAt: 9, HLC: 11, VOrigin: 6}}},
		{"LargeOp/max", &LargeOp{Origin: math.MaxUint32, Seq: math.MaxUint64, Size: MaxValueLen, Op: Op{Kind: KindHash, Key: "h", Value: []byte{1}, ExpireAt: math.MinInt64, HLC: math.MaxUint64, VOrigin: math.MaxUint32}}},
		{"LargeOp/snapshot, empty first part", &LargeOp{Origin: 6, Size: 1, Op: Op{Kind: KindPublish, Key: "ch"}}},
		{"PartAck/zero", &PartAck{}},
		{"PartAck/max", &PartAck{Origin: math.MaxUint32, Seq: math.MaxUint64, Received: math.MaxUint64}},
		{"ValuePart/one byte", &ValuePart{Origin: 6, Seq: 12, Data: []byte{0}}},
		{"ValuePart/chunk", &ValuePart{Origin: 6, Data: bytes.Repeat([]byte("d"), 1000)}},
		{"Vouched/every key", &Vouched{Origin: 3}},
		{"Vouched/slots", &Vouched{Origin: math.MaxUint32, Slots: bytes.Repeat([]byte{0xa5}, SlotSetLen)}},
	}
}

// opsFrame returns an Ops frame of n ops with keyLen-byte keys and
// valueLen-byte values, as in the benchmarks.
func opsFrame(n, keyLen, valueLen int) *Ops {
	f := &Ops{Origin: 7, FirstSeq: 1 << 20, Ops: make([]Op, n)}
	for i := range f.Ops {
		key := []byte(strings.Repeat("k", keyLen))
		key[0] = byte('a' + i%26)
		f.Ops[i] = Op{Kind: KindSet, Key: string(key), ExpireAt: 1732580060000000000, HLC: 0x0193_6a1b_2c3d_0000 + uint64(i), VOrigin: 7}
		if valueLen > 0 {
			f.Ops[i].Value = bytes.Repeat([]byte{byte(i)}, valueLen)
		}
	}
	return f
}

// readAll decodes frames from data with a bufio.Reader of the given size
// until an error, and returns the frames and the final error.
func readAll(data []byte, size int) ([]Frame, error) {
	return readAllFrom(bytes.NewReader(data), size)
}

func readAllFrom(r io.Reader, size int) ([]Frame, error) {
	br := getReader(r, size)
	defer putReader(br)
	var (
		frames []Frame
		buf    []byte
	)
	for {
		f, nbuf, err := ReadFrame(br, 0, buf)
		buf = nbuf
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
}

// readOne decodes exactly one frame from data and requires data to hold
// nothing else.
func readOne(data []byte, size int) (Frame, error) {
	br := getReader(bytes.NewReader(data), size)
	defer putReader(br)
	f, _, err := ReadFrame(br, 0, nil)
	if err != nil {
		return nil, err
	}
	if _, err := br.Peek(1); err != io.EOF {
		return nil, errors.New("test: ReadFrame left bytes unread")
	}
	return f, nil
}

// readerPools recycles bufio.Readers by size: the tests and fuzz targets
// decode many short inputs, and a fresh 256 KiB reader for each would
// dominate their run time.
var readerPools sync.Map // int -> *sync.Pool

func getReader(r io.Reader, size int) *bufio.Reader {
	p, _ := readerPools.LoadOrStore(size, &sync.Pool{})
	if br, ok := p.(*sync.Pool).Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, size)
}

func putReader(br *bufio.Reader) {
	p, _ := readerPools.Load(br.Size())
	br.Reset(nil)
	p.(*sync.Pool).Put(br)
}

// bufSizes are the bufio.Reader sizes tests decode with: the minimum, which
// sends every frame longer than 12 bytes through the buffer path, and a
// large one, which decodes most frames in place.
var bufSizes = []int{16, 1 << 18}

// cutPoints returns the offsets at which to cut an encoded frame: every
// offset for frames up to 4 KiB; for larger ones (long runs of one repeated
// byte in the samples) every offset within 8 bytes of a change of byte value,
// which covers every field boundary, plus every 997th offset.
func cutPoints(enc []byte) []int {
	var out []int
	last := -100 // offset of the last byte that differs from its predecessor
	for i := range enc {
		if i > 0 && enc[i] != enc[i-1] {
			last = i
		}
		near := i-last <= 8 || (i+8 < len(enc) && !allSame(enc[i:i+9]))
		if len(enc) <= 4<<10 || near || i%997 == 0 {
			out = append(out, i)
		}
	}
	return out
}

func allSame(b []byte) bool {
	for _, c := range b {
		if c != b[0] {
			return false
		}
	}
	return true
}

func mustEqualFrames(t *testing.T, got, want []Frame) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frames differ:\ngot  %s\nwant %s", describe(got), describe(want))
	}
}

func describe(fs []Frame) string {
	var b strings.Builder
	for _, f := range fs {
		s := strings.TrimPrefix(reflect.TypeOf(f).String(), "*wire.")
		b.WriteString(s)
		b.WriteString(" ")
		enc := f.Append(nil)
		if len(enc) > 64 {
			enc = enc[:64]
		}
		b.WriteString(hex.EncodeToString(enc))
		b.WriteString("; ")
	}
	return b.String()
}

// frameBytes returns the length prefix and type for t followed by payload,
// with a correct length.
func frameBytes(t Type, payload ...byte) []byte {
	n := len(payload) + 1
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(t)}, payload...)
}
