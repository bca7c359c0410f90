package main

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	"github.com/geocache/geocache/internal/wire"
	"google.golang.org/grpc/mem"
)

func testOps() *wire.Ops {
	d := newDataset(64, 16, 100)
	return &wire.Ops{Origin: origin, FirstSeq: 1000, Ops: d.batch(0, 64)}
}

// TestCodecRoundTrip checks that wireCodec carries Ops and Acks unchanged,
// whole or split across several grpc buffers, and rejects trailing bytes.
func TestCodecRoundTrip(t *testing.T) {
	c := wireCodec{}
	in := testOps()
	data, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	flat := data.Materialize()
	if !bytes.Equal(flat, in.Append(nil)) {
		t.Fatal("Marshal differs from Ops.Append")
	}
	for _, parts := range []mem.BufferSlice{
		data,
		{mem.SliceBuffer(flat[:3]), mem.SliceBuffer(nil), mem.SliceBuffer(flat[3:5000]), mem.SliceBuffer(flat[5000:])},
	} {
		var out wire.Ops
		if err := c.Unmarshal(parts, &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&out, in) {
			t.Fatal("Ops changed in the round trip")
		}
	}
	data.Free()

	ack := &wire.Ack{Origin: 3, Seq: 1 << 40}
	data, err = c.Marshal(ack)
	if err != nil {
		t.Fatal(err)
	}
	var got wire.Ack
	if err := c.Unmarshal(data, &got); err != nil || got != *ack {
		t.Fatalf("Ack round trip: %v, %+v", err, got)
	}

	trailing := append(ack.Append(nil), 0)
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(trailing)}, &got); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(ack.Append(nil))}, new(wire.Ops)); err == nil {
		t.Fatal("Ack accepted as Ops")
	}
}

// BenchmarkDecode compares the codec's Unmarshal (bufio over grpc's
// buffers) with the frames receiver's decode (wire.ReadFrame on a bufio
// reader that already holds the frame), for one 64-op frame: the difference
// is the extra copy the codec makes.
func BenchmarkDecode(b *testing.B) {
	frame := testOps().Append(nil)
	b.Run("codec", func(b *testing.B) {
		c := wireCodec{}
		data := mem.BufferSlice{mem.SliceBuffer(frame)}
		var out wire.Ops
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ReadFrame", func(b *testing.B) {
		// A reader that returns the same frame forever, as a socket would
		// deliver a stream of them.
		br := bufio.NewReaderSize(&repeatReader{p: frame}, 64<<10)
		b.SetBytes(int64(len(frame)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := wire.ReadFrame(br, 0, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncode compares the codec's Marshal (into a pooled grpc buffer)
// with the frames sender's encode (into a reused buffer).
func BenchmarkEncode(b *testing.B) {
	ops := testOps()
	b.Run("codec", func(b *testing.B) {
		c := wireCodec{}
		b.ReportAllocs()
		for b.Loop() {
			data, err := c.Marshal(ops)
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
		}
	})
	b.Run("Append", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = ops.Append(buf[:0])
		}
	})
}

type repeatReader struct {
	p   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.p[r.off:])
		n += c
		r.off = (r.off + c) % len(r.p)
	}
	return n, nil
}
