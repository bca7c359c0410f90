package wire

import (
	"bufio"
	"bytes"
	"testing"
)

func TestEncodeAllocs(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			buf := make([]byte, 0, len(s.f.Append(nil)))
			if n := testing.AllocsPerRun(100, func() { buf = s.f.Append(buf[:0]) }); n != 0 {
				t.Errorf("%v allocations per Append into a buffer with capacity, want 0", n)
			}
		})
	}
}

// replay decodes the same encoded frame over and over without allocating
// for the reader itself.
type replay struct {
	enc []byte
	rd  bytes.Reader
	br  *bufio.Reader
	buf []byte
}

func newReplay(f Frame, bufioSize int) *replay {
	r := &replay{enc: f.Append(nil)}
	r.rd.Reset(r.enc)
	r.br = bufio.NewReaderSize(&r.rd, bufioSize)
	return r
}

func (r *replay) next(tb testing.TB) Frame {
	r.rd.Reset(r.enc)
	r.br.Reset(&r.rd)
	f, buf, err := ReadFrame(r.br, 0, r.buf)
	if err != nil {
		tb.Fatal(err)
	}
	r.buf = buf
	return f
}

// TestDecodeAllocs pins the decoder's allocation count: 1 for the frame,
// 1 for the []Op slice of an Ops frame, and 1 per non-empty key and value
// (strings and values are copied so that the caller owns them; see the
// package documentation). For 64 ops with 16-byte keys and 100-byte values
// that is 2 + 64 + 64 = 130, both when the frame fits in the bufio buffer
// and when it is read through the caller's (reused) buffer.
func TestDecodeAllocs(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want float64
	}{
		{"Ops 64 sets", opsFrame(64, 16, 100), 2 + 64 + 64},
		{"Ops 64 deletes", opsFrame(64, 16, 0), 2 + 64},
		{"Ops 1000 sets", opsFrame(1000, 16, 100), 2 + 1000 + 1000},
		{"Ops empty", &Ops{Origin: 1}, 1},
		{"SnapshotChunk 64 sets", &SnapshotChunk{Origin: 1, Ops: opsFrame(64, 16, 100).Ops}, 2 + 64 + 64},
		{"Ack", &Ack{Origin: 1, Seq: 1 << 40}, 1},
		{"Resume", &Resume{Origin: 1, NextSeq: 1 << 40, HLC: 1 << 50}, 1},
		{"Ping", &Ping{SentNanos: 1}, 1},
		{"Pong", &Pong{EchoNanos: 1, PhysicalNanos: 2}, 1},
		{"Hello", &Hello{Proto: Proto, Cluster: "prod", Region: "eu-west", NodeName: "cache-1", NodeID: 1}, 4},
		{"Reject", &Reject{Code: RejectCluster, Message: "no"}, 2},
	}
	for _, tt := range tests {
		for _, path := range []struct {
			name string
			size int
		}{{"in place", 1 << 20}, {"via buf", 16}} {
			t.Run(tt.name+"/"+path.name, func(t *testing.T) {
				r := newReplay(tt.f, path.size)
				r.next(t) // grow the reused buffer
				if n := testing.AllocsPerRun(100, func() { r.next(t) }); n != tt.want {
					t.Errorf("%v allocations per ReadFrame, want %v", n, tt.want)
				}
			})
		}
	}
}

func BenchmarkOpsAppend(b *testing.B) {
	f := opsFrame(64, 16, 100)
	buf := f.Append(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0])
	}
}

func BenchmarkOpsRead(b *testing.B) {
	f := opsFrame(64, 16, 100)
	for _, path := range []struct {
		name string
		size int
	}{{"in place", 64 << 10}, {"via buf", 4096}} {
		b.Run(path.name, func(b *testing.B) {
			r := newReplay(f, path.size)
			b.SetBytes(int64(len(r.enc)))
			b.ReportAllocs()
			for b.Loop() {
				r.next(b)
			}
		})
	}
}
