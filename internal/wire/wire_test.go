package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRoundTrip(t *testing.T) {
	for _, tt := range samples() {
		t.Run(tt.name, func(t *testing.T) {
			// Append after existing bytes: the encoder must patch its own
			// length prefix, not the start of buf.
			prefix := []byte("xyz")
			enc := tt.f.Append(prefix)
			if !bytes.Equal(enc[:3], prefix) {
				t.Fatalf("Append overwrote the bytes already in buf")
			}
			enc = enc[3:]
			if n := binary.BigEndian.Uint32(enc); int(n) != len(enc)-4 {
				t.Fatalf("length prefix %d, frame has %d bytes after it", n, len(enc)-4)
			}
			if Type(enc[4]) != tt.f.Type() {
				t.Fatalf("type byte %d, want %v", enc[4], tt.f.Type())
			}
			for _, size := range bufSizes {
				got, err := readOne(enc, size)
				if err != nil {
					t.Fatalf("bufio size %d: %v", size, err)
				}
				mustEqualFrames(t, []Frame{got}, []Frame{tt.f})
				if again := got.Append(nil); !bytes.Equal(again, enc) {
					t.Fatalf("bufio size %d: re-encoding differs", size)
				}
			}
		})
	}
}

func TestAckExample(t *testing.T) {
	// The example in the package documentation.
	got := (&Ack{Origin: 7, Seq: 300}).Append(nil)
	want := []byte{0, 0, 0, 7, 5, 0, 0, 0, 7, 0xac, 0x02}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestStream(t *testing.T) {
	var stream []byte
	var want []Frame
	for _, s := range samples() {
		stream = s.f.Append(stream)
		want = append(want, s.f)
	}
	for _, size := range bufSizes {
		got, err := readAll(stream, size)
		if err != io.EOF {
			t.Fatalf("bufio size %d: final error %v, want io.EOF", size, err)
		}
		mustEqualFrames(t, got, want)
	}
}

// TestSplitEverywhere delivers a stream of every sample frame split in two
// at every byte, as nats-server's parser tests do; FuzzSplitReads explores
// more splits.
func TestSplitEverywhere(t *testing.T) {
	var stream []byte
	var want []Frame
	for _, s := range samples() {
		if s.f.Type() == TypeOps && len(s.f.(*Ops).Ops) == 1 && len(s.f.(*Ops).Ops[0].Key) == MaxKeyLen {
			continue // keep the quadratic test fast
		}
		stream = s.f.Append(stream)
		want = append(want, s.f)
	}
	for i := 0; i <= len(stream); i++ {
		got, err := readAllFrom(&chunkReader{data: stream, chunks: []int{i}}, 16)
		if err != io.EOF {
			t.Fatalf("split at %d: final error %v, want io.EOF", i, err)
		}
		mustEqualFrames(t, got, want)
	}
}

func TestTruncatedStream(t *testing.T) {
	for _, tt := range samples() {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.f.Append(nil)
			for _, i := range cutPoints(enc) {
				for _, size := range bufSizes {
					_, err := readOne(enc[:i], size)
					want := io.ErrUnexpectedEOF
					if i == 0 {
						want = io.EOF
					}
					if err != want {
						t.Fatalf("cut at %d of %d, bufio size %d: error %v, want %v", i, len(enc), size, err, want)
					}
				}
			}
		})
	}
}

// TestTruncatedPayload cuts the payload at every byte but fixes up the length
// prefix, so the framing is intact and the decoder itself must notice.
func TestTruncatedPayload(t *testing.T) {
	for _, tt := range samples() {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.f.Append(nil)
			for _, i := range cutPoints(enc) {
				if i < 5 {
					continue
				}
				cut := bytes.Clone(enc[:i])
				binary.BigEndian.PutUint32(cut, uint32(i-4))
				if optionalCut(tt.f, len(enc)-i) {
					continue // a valid frame without its optional last field
				}
				if _, err := readOne(cut, 1<<18); !errors.Is(err, ErrMalformed) {
					t.Fatalf("payload cut at %d of %d: error %v, want ErrMalformed", i, len(enc), err)
				}
			}
		})
	}
}

// optionalCut reports whether cutting the last n bytes of f's encoding
// leaves it without its optional last field: Resume's and Keeps' Relayed
// (protocol 12), absent in the frames of older versions.
func optionalCut(f Frame, n int) bool {
	switch f := f.(type) {
	case *Resume:
		return len(f.Relayed) > 0 && n == uvarintLen(SlotSetLen)+SlotSetLen
	case *Keeps:
		return len(f.Relayed) > 0 && n == uvarintLen(SlotSetLen)+SlotSetLen
	}
	return false
}

func TestTrailingBytes(t *testing.T) {
	for _, tt := range samples() {
		t.Run(tt.name, func(t *testing.T) {
			for _, extra := range [][]byte{{0}, {0xff}, []byte("garbage")} {
				enc := append(tt.f.Append(nil), extra...)
				binary.BigEndian.PutUint32(enc, uint32(len(enc)-4))
				_, err := readOne(enc, 1<<18)
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "trailing bytes") {
					t.Fatalf("%d trailing bytes: error %v, want ErrMalformed (trailing bytes)", len(extra), err)
				}
			}
		})
	}
}

// noMoreReader returns data on its first Read and fails the test on any
// later Read: the decoder must decide from the length prefix alone.
type noMoreReader struct {
	t    *testing.T
	data []byte
	done bool
}

func (r *noMoreReader) Read(p []byte) (int, error) {
	if r.done {
		r.t.Fatal("ReadFrame read past the length prefix")
	}
	r.done = true
	return copy(p, r.data), nil
}

func TestBadLength(t *testing.T) {
	tests := []struct {
		name     string
		n        uint32
		maxFrame int
		want     error
	}{
		{"zero", 0, 0, ErrMalformed},
		{"default max plus one", DefaultMaxFrame + 1, 0, ErrFrameTooLarge},
		{"largest", math.MaxUint32, 0, ErrFrameTooLarge},
		{"largest with largest max", math.MaxUint32, math.MaxUint32 - 1, ErrFrameTooLarge},
		{"custom max plus one", 101, 100, ErrFrameTooLarge},
		{"negative max means default", DefaultMaxFrame + 1, -1, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := binary.BigEndian.AppendUint32(nil, tt.n)
			br := bufio.NewReader(&noMoreReader{t: t, data: hdr})
			f, buf, err := ReadFrame(br, tt.maxFrame, nil)
			if !errors.Is(err, tt.want) || f != nil {
				t.Fatalf("got (%v, %v), want error %v", f, err, tt.want)
			}
			if buf != nil {
				t.Fatalf("ReadFrame allocated a %d-byte buffer for a rejected frame", cap(buf))
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestMaxFrameAccepted(t *testing.T) {
	// A frame of exactly maxFrame bytes is accepted, one byte more is not.
	f := &Ops{Ops: []Op{{Kind: KindSet, Value: make([]byte, 1000)}}}
	enc := f.Append(nil)
	n := len(enc) - 4
	for _, size := range bufSizes {
		br := bufio.NewReaderSize(bytes.NewReader(enc), size)
		if _, _, err := ReadFrame(br, n, nil); err != nil {
			t.Fatalf("bufio size %d: frame of exactly max bytes: %v", size, err)
		}
		br = bufio.NewReaderSize(bytes.NewReader(enc), size)
		if _, _, err := ReadFrame(br, n-1, nil); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("bufio size %d: frame of max+1 bytes: %v, want ErrFrameTooLarge", size, err)
		}
	}
}

func TestStalledLargeFrameBoundsBuffer(t *testing.T) {
	// A peer that claims 4 MiB and sends 10 bytes must not make the reader
	// allocate 4 MiB.
	data := append(binary.BigEndian.AppendUint32(nil, DefaultMaxFrame), byte(TypeOps))
	data = append(data, make([]byte, 9)...)
	br := bufio.NewReaderSize(bytes.NewReader(data), 16)
	_, buf, err := ReadFrame(br, 0, nil)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("error %v, want io.ErrUnexpectedEOF", err)
	}
	if cap(buf) > readChunk {
		t.Fatalf("buffer grew to %d bytes for a 10-byte body", cap(buf))
	}
}

func TestBufferReuse(t *testing.T) {
	// Large frames go through buf; the returned frames must not alias it.
	f1 := opsFrame(64, 16, 100)
	f2 := opsFrame(64, 16, 100)
	for i := range f2.Ops {
		f2.Ops[i].Value = bytes.Repeat([]byte{0xee}, 100)
		f2.Ops[i].Key = strings.Repeat("z", 16)
	}
	stream := f2.Append(f1.Append(nil))
	br := bufio.NewReaderSize(bytes.NewReader(stream), 16)
	got1, buf, err := ReadFrame(br, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got2, buf2, err := ReadFrame(br, 0, buf)
	if err != nil {
		t.Fatal(err)
	}
	if &buf[:1][0] != &buf2[:1][0] {
		t.Errorf("ReadFrame did not reuse a buffer of sufficient capacity")
	}
	mustEqualFrames(t, []Frame{got1, got2}, []Frame{f1, f2})
}

func TestMalformed(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	uv := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// op returns an op with the given kind, no expiry, and the given key and
	// value length prefixes followed by the bytes in rest.
	op := func(kind byte, rest ...[]byte) []byte {
		return cat(append([][]byte{{kind}, u64(1), u32(2), {0}}, rest...)...)
	}
	okOp := op(1, uv(1), []byte("k"), uv(1), []byte("v"))

	tests := []struct {
		name string
		data []byte
		want error
		why  string
	}{
		{"type 0", frameBytes(0), ErrUnknownType, ""},
		{"type 23", frameBytes(23, 1, 2, 3), ErrUnknownType, ""},
		{"SlotSync without slots", frameBytes(TypeSlotSync, cat(uv(0), uv(0))...), ErrMalformed, "no slot set"},
		{"SlotSync positions over the bound", frameBytes(TypeSlotSync, cat(uv(SlotSetLen), make([]byte, SlotSetLen), uv(MaxSlotSyncOrigins+1), make([]byte, 13*(MaxSlotSyncOrigins+1)))...), ErrMalformed, "MaxSlotSyncOrigins"},
		{"SlotSync count over the payload", frameBytes(TypeSlotSync, cat(uv(SlotSetLen), make([]byte, SlotSetLen), uv(2), u32(1), u64(1), uv(1))...), ErrMalformed, "count exceeds payload"},
		{"type 255", frameBytes(255), ErrUnknownType, ""},
		{"empty Hello", frameBytes(TypeHello), ErrMalformed, "truncated"},
		{"Hello name over limit", frameBytes(TypeHello, cat([]byte{0, 1}, uv(MaxNameLen+1), make([]byte, MaxNameLen+1), uv(0), uv(0), u32(1), u64(1), u64(1))...), ErrMalformed, "cluster too long"},
		{"Hello region longer than payload", frameBytes(TypeHello, cat([]byte{0, 1}, uv(0), uv(200), []byte("eu"))...), ErrMalformed, "region length exceeds payload"},
		{"Resume with a partial slot set", frameBytes(TypeResume, cat(u32(1), uv(0), u64(1), uv(7), make([]byte, 7))...), ErrMalformed, "wanted slots not a full set"},
		{"Fetch key over limit", frameBytes(TypeFetch, cat([]byte{1}, uv(MaxKeyLen+1), make([]byte, MaxKeyLen+1))...), ErrMalformed, "key too long"},
		{"Fetch flag not 0 or 1", frameBytes(TypeFetch, cat([]byte{2}, uv(1), []byte("k"))...), ErrMalformed, "fetch flag"},
		{"Fetched with unknown flags", frameBytes(TypeFetched, 8), ErrMalformed, "unknown fetched flags"},
		{"Fetched large and not found", frameBytes(TypeFetched, 4), ErrMalformed, "large answer that found nothing"},
		{"Fetched a publish", frameBytes(TypeFetched, cat([]byte{1, byte(KindPublish)}, u64(1), u32(1), uv(0), uv(1), []byte("c"), uv(0))...), ErrMalformed, "no entry"},
		{"Fetched op missing", frameBytes(TypeFetched, 1), ErrMalformed, "truncated"},
		{"Keeps with a partial slot set", frameBytes(TypeKeeps, cat(u32(1), uv(2), []byte{1, 2})...), ErrMalformed, "kept slots not a full set"},
		{"Resume with a partial kept set", frameBytes(TypeResume, cat(u32(1), uv(3), u64(1), uv(0), uv(SlotSetLen+1), make([]byte, SlotSetLen+1))...), ErrMalformed, "kept slots"},
		{"SnapshotBegin with a partial slot set", frameBytes(TypeSnapshotBegin, cat(u32(1), uv(1), u64(1), uv(SlotSetLen-1), make([]byte, SlotSetLen-1))...), ErrMalformed, "vouched slots not a full set"},
		{"Vouched with a partial slot set", frameBytes(TypeVouched, cat(u32(1), uv(1), []byte{1})...), ErrMalformed, "vouched slots not a full set"},
		{"Vouched slot set over limit", frameBytes(TypeVouched, cat(u32(1), uv(SlotSetLen+1), make([]byte, SlotSetLen+1))...), ErrMalformed, "vouched slots too long"},
		{"SnapshotBegin slot set over limit", frameBytes(TypeSnapshotBegin, cat(u32(1), uv(1), u64(1), uv(SlotSetLen+1), make([]byte, SlotSetLen+1))...), ErrMalformed, "vouched slots too long"},
		{"Reject message over limit", frameBytes(TypeReject, cat([]byte{0, 1}, uv(MaxMessageLen+1), make([]byte, MaxMessageLen+1))...), ErrMalformed, "message too long"},
		{"Reject message length 2^63", frameBytes(TypeReject, cat([]byte{0, 1}, uv(1<<63))...), ErrMalformed, "message length exceeds payload"},
		{"Resume varint overflow", frameBytes(TypeResume, cat(u32(1), bytes.Repeat([]byte{0xff}, 10), []byte{1}, u64(0))...), ErrMalformed, "varint overflows"},
		{"Resume truncated varint", frameBytes(TypeResume, cat(u32(1), []byte{0x80, 0x80})...), ErrMalformed, "truncated varint"},
		{"Ack non-shortest varint", frameBytes(TypeAck, cat(u32(1), []byte{0x81, 0x00})...), ErrMalformed, "shortest form"},
		{"Ack non-shortest zero", frameBytes(TypeAck, cat(u32(1), []byte{0x80, 0x00})...), ErrMalformed, "shortest form"},
		{"Ops count 2^62", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1<<62), okOp)...), ErrMalformed, "op count exceeds payload"},
		{"Ops count one more than fits", frameBytes(TypeOps, cat(u32(1), uv(1), uv(2), okOp, make([]byte, 2*minOpLen-len(okOp)-1))...), ErrMalformed, "op count exceeds payload"},
		{"Ops count one less than present", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), okOp, okOp)...), ErrMalformed, "trailing bytes"},
		{"Ops kind 0", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), op(0, uv(0), uv(0)))...), ErrMalformed, "unknown op kind"},
		{"Ops kind 9", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), op(9, uv(0), uv(0)))...), ErrMalformed, "unknown op kind"},
		{"Ops key longer than payload", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), op(1, uv(1000), make([]byte, 10)))...), ErrMalformed, "key length exceeds payload"},
		{"Ops key over MaxKeyLen", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), op(1, uv(MaxKeyLen+1), make([]byte, MaxKeyLen+1), uv(0)))...), ErrMalformed, "key too long"},
		{"Ops value longer than payload", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), op(1, uv(0), uv(100), make([]byte, 99)))...), ErrMalformed, "value length exceeds payload"},
		{"Ops value length 2^64-1", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), op(1, uv(0), uv(math.MaxUint64)))...), ErrMalformed, "value length exceeds payload"},
		{"Ops expiry non-shortest", frameBytes(TypeOps, cat(u32(1), uv(1), uv(1), []byte{1}, u64(1), u32(2), []byte{0x80, 0}, uv(0), uv(0))...), ErrMalformed, "shortest form"},
		{"Ops sequence overflow", frameBytes(TypeOps, cat(u32(1), uv(math.MaxUint64), uv(2), okOp, okOp)...), ErrMalformed, "sequence numbers overflow"},
		{"SnapshotChunk count exceeds", frameBytes(TypeSnapshotChunk, cat(u32(1), uv(5), okOp)...), ErrMalformed, "op count exceeds payload"},
		{"SnapshotEnd short", frameBytes(TypeSnapshotEnd, 0, 0, 1), ErrMalformed, "truncated"},
		{"LargeOp size not above first part", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(1), okOp)...), ErrMalformed, "not above its first part"},
		{"LargeOp size over MaxValueLen", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(MaxValueLen+1), okOp)...), ErrMalformed, "above MaxValueLen"},
		{"LargeOp of a delete", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(10), op(2, uv(1), []byte("k"), uv(0)))...), ErrMalformed, "kind without a value"},
		{"LargeOp of a batch", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(10), op(4, uv(0), uv(0)))...), ErrMalformed, "kind without a value"},
		{"LargeOp two ops", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(10), okOp, okOp)...), ErrMalformed, "trailing bytes"},
		{"LargeOp of a skip", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(10), op(7, uv(0), uv(0)))...), ErrMalformed, "kind without a value"},
		{"LargeOp of a relayed stand-in", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(10), op(8, uv(0), uv(0)))...), ErrMalformed, "kind without a value"},
		{"Relay count 2^62", frameBytes(TypeRelay, cat(u32(1), u64(1), uv(1<<62), uv(1), okOp)...), ErrMalformed, "op count exceeds payload"},
		{"Relay count one more than present", frameBytes(TypeRelay, cat(u32(1), u64(1), uv(2), uv(1), okOp, uv(2), okOp[:len(okOp)-2])...), ErrMalformed, "truncated"},
		{"Relay trailing", frameBytes(TypeRelay, cat(u32(1), u64(1), uv(1), uv(1), okOp, okOp)...), ErrMalformed, "trailing bytes"},
		{"Relay kind 9", frameBytes(TypeRelay, cat(u32(1), u64(1), uv(1), uv(1), op(9, uv(0), uv(0)))...), ErrMalformed, "unknown op kind"},
		{"Keeps relayed not a full set", frameBytes(TypeKeeps, cat(u32(1), uv(0), uv(3), []byte{1, 2, 3})...), ErrMalformed, "trailing bytes"},
		{"LargeOp kind 9", frameBytes(TypeLargeOp, cat(u32(1), uv(1), uv(10), op(9, uv(0), uv(0)))...), ErrMalformed, "unknown op kind"},
		{"ValuePart empty", frameBytes(TypeValuePart, cat(u32(1), uv(1), uv(0))...), ErrMalformed, "empty value part"},
		{"ValuePart data longer than payload", frameBytes(TypeValuePart, cat(u32(1), uv(1), uv(5), []byte("abcd"))...), ErrMalformed, "data length exceeds payload"},
		{"ValuePart trailing", frameBytes(TypeValuePart, cat(u32(1), uv(1), uv(1), []byte("ab"))...), ErrMalformed, "trailing bytes"},
		{"Ping long", frameBytes(TypePing, make([]byte, 9)...), ErrMalformed, "trailing bytes"},
		{"Pong short", frameBytes(TypePong, make([]byte, 15)...), ErrMalformed, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range bufSizes {
				f, err := readOne(tt.data, size)
				if !errors.Is(err, tt.want) || f != nil {
					t.Fatalf("bufio size %d: got (%v, %v), want %v", size, f, err, tt.want)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v is not ErrMalformed", err)
				}
				if !strings.Contains(err.Error(), tt.why) || !strings.HasPrefix(err.Error(), "wire: ") {
					t.Fatalf("error %q, want the prefix %q and %q", err, "wire: ", tt.why)
				}
			}
		})
	}
}

func TestRejectTruncatesMessage(t *testing.T) {
	tests := []struct {
		name, msg string
		wantLen   int
	}{
		{"ascii", strings.Repeat("a", 5000), MaxMessageLen},
		// A 3-byte rune straddles the limit: cut before it.
		{"rune at limit", strings.Repeat("a", MaxMessageLen-1) + "€" + "tail", MaxMessageLen - 1},
		{"rune ends at limit", strings.Repeat("a", MaxMessageLen-3) + "€" + "tail", MaxMessageLen},
		{"invalid utf-8", strings.Repeat("\x80", 2000), MaxMessageLen - utf8.UTFMax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := (&Reject{Code: RejectInternal, Message: tt.msg}).Append(nil)
			f, err := readOne(enc, 1<<18)
			if err != nil {
				t.Fatal(err)
			}
			got := f.(*Reject).Message
			if len(got) != tt.wantLen || got != tt.msg[:tt.wantLen] {
				t.Fatalf("message truncated to %d bytes, want %d", len(got), tt.wantLen)
			}
		})
	}
}

func TestOpSize(t *testing.T) {
	for _, s := range samples() {
		var ops []Op
		switch f := s.f.(type) {
		case *Ops:
			ops = f.Ops
		case *SnapshotChunk:
			ops = f.Ops
		default:
			continue
		}
		enc := s.f.Append(nil)
		sum := 0
		for i := range ops {
			sum += ops[i].Size()
		}
		if header := len(enc) - 4 - sum; header < 0 || header > MaxOpsHeader {
			t.Errorf("%s: %d bytes outside ops, MaxOpsHeader is %d", s.name, header, MaxOpsHeader)
		}
	}
	// The worst case: every header varint at its longest.
	f := &Ops{Origin: math.MaxUint32, FirstSeq: math.MaxUint64, Ops: make([]Op, 0)}
	if n := len(f.Append(nil)) - 4; n > MaxOpsHeader {
		t.Errorf("empty Ops frame has %d bytes, MaxOpsHeader is %d", n, MaxOpsHeader)
	}
	for _, op := range []Op{{}, {Kind: KindSet, Key: "k", Value: make([]byte, 300), ExpireAt: -1 << 62}} {
		one := (&SnapshotChunk{Ops: []Op{op}}).Append(nil)
		none := (&SnapshotChunk{}).Append(nil)
		if got := len(one) - len(none); got != op.Size() {
			t.Errorf("op encodes to %d bytes, Size says %d", got, op.Size())
		}
	}
	if got := (&Op{}).Size(); got != minOpLen {
		t.Errorf("smallest op is %d bytes, minOpLen is %d", got, minOpLen)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{TypeOps.String(), "Ops"},
		{TypePong.String(), "Pong"},
		{Type(0).String(), "Type(0)"},
		{Type(200).String(), "Type(200)"},
		{KindSet.String(), "set"},
		{KindDelete.String(), "delete"},
		{KindPublish.String(), "publish"},
		{KindBatch.String(), "batch"},
		{Kind(9).String(), "Kind(9)"},
		{RejectCluster.String(), "cluster mismatch"},
		{RejectCode(0).String(), "RejectCode(0)"},
		{RejectCode(999).String(), "RejectCode(999)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	for _, s := range samples() {
		if !strings.HasPrefix(s.name, s.f.Type().String()+"/") {
			t.Errorf("sample %q has type %v", s.name, s.f.Type())
		}
	}
}

func TestErrors(t *testing.T) {
	for _, err := range []error{ErrMalformed, ErrFrameTooLarge, ErrUnknownType} {
		if !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("%q lacks the package prefix", err)
		}
	}
	if !errors.Is(ErrUnknownType, ErrMalformed) {
		t.Error("ErrUnknownType is not ErrMalformed")
	}
	if errors.Is(ErrFrameTooLarge, ErrMalformed) || errors.Is(ErrMalformed, ErrUnknownType) {
		t.Error("unexpected error relationship")
	}
}

// errReader fails with err after delivering data.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadErrorPassesThrough(t *testing.T) {
	boom := errors.New("boom")
	enc := opsFrame(4, 16, 100).Append(nil)
	for _, cut := range []int{0, 2, 4, 10, len(enc) - 1} {
		for _, size := range bufSizes {
			br := bufio.NewReaderSize(&errReader{data: enc[:cut], err: boom}, size)
			if _, _, err := ReadFrame(br, 0, nil); err != boom {
				t.Fatalf("cut %d, bufio size %d: error %v, want the reader's", cut, size, err)
			}
		}
	}
}

// ReadFrameShared decodes every frame as ReadFrame does; only a
// ValuePart's Data aliases the buffers.
func TestReadFrameShared(t *testing.T) {
	for _, s := range samples() {
		enc := s.f.Append(nil)
		for _, size := range bufSizes {
			br := getReader(bytes.NewReader(enc), size)
			f, buf, err := ReadFrameShared(br, 0, nil)
			putReader(br)
			if err != nil {
				t.Fatalf("%s, bufio size %d: %v", s.name, size, err)
			}
			mustEqualFrames(t, []Frame{f}, []Frame{s.f})
			if vp, ok := f.(*ValuePart); ok && size < len(enc) {
				if &vp.Data[0] != &buf[len(buf)-len(vp.Data)] {
					t.Fatalf("%s: Data copied, want it in the read buffer", s.name)
				}
			}
		}
	}
}
