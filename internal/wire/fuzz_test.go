package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// chunkReader delivers data in reads of the lengths in chunks, then the rest
// in reads as large as the caller asks for. A zero-length chunk is an empty
// read (0, nil), which io.Reader allows.
type chunkReader struct {
	data   []byte
	chunks []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.chunks) > 0 {
		n = min(n, r.chunks[0])
		r.chunks = r.chunks[1:]
	}
	if n > len(p) {
		// Deliver the rest of this chunk on the next read.
		r.chunks = append([]int{n - len(p)}, r.chunks...)
		n = len(p)
	}
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// smallSamples are the samples whose encoding is at most 4 KiB: the
// fallback stream of FuzzSplitReads. The larger ones are covered by the unit
// tests.
func smallSamples() []sample {
	return samplesUpTo(4 << 10)
}

// seedSamples are the samples whose encoding is at most 256 bytes: the fuzz
// seeds. Long seeds make the fuzzer spend its time minimizing (quadratic in
// the input length) instead of exploring; every frame type has a short
// sample.
func seedSamples() []sample {
	return samplesUpTo(256)
}

func samplesUpTo(n int) []sample {
	var out []sample
	for _, s := range samples() {
		if len(s.f.Append(nil)) <= n {
			out = append(out, s)
		}
	}
	return out
}

// addReadFrameSeeds adds every seed sample, a short stream of three frames,
// and one malformed frame for each kind of fault.
func addReadFrameSeeds(f *testing.F) {
	for _, s := range seedSamples() {
		f.Add(s.f.Append(nil))
	}
	var stream []byte
	stream = (&Hello{Proto: Proto, Cluster: "c", Region: "r", NodeName: "n", NodeID: 1}).Append(stream)
	stream = (&Ops{Origin: 1, FirstSeq: 1, Ops: []Op{{Kind: KindSet, Key: "k", Value: []byte("v")}}}).Append(stream)
	stream = (&Ack{Origin: 2, Seq: 3}).Append(stream)
	f.Add(stream)
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})                                               // zero length
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})                                // too large
	f.Add(frameBytes(11, 1, 2, 3))                                          // unknown type
	f.Add(frameBytes(TypeAck, 0, 0, 0, 1, 0x81, 0x00))                      // non-shortest varint
	f.Add(frameBytes(TypeOps, 0, 0, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f)) // huge op count
	f.Add(frameBytes(TypePing, make([]byte, 9)...))                         // trailing byte
}

// FuzzReadFrame feeds arbitrary bytes to ReadFrame. It must never panic;
// every frame it decodes must re-encode to exactly the bytes it came from
// (the encoding is canonical), and decoding those again must give the same
// frames; and the two decoding paths (in place from a large bufio buffer,
// and through the caller's buffer with the smallest one) must agree.
func FuzzReadFrame(f *testing.F) {
	addReadFrameSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, err := readAll(data, 8<<10)
		switch {
		case err == io.EOF, err == io.ErrUnexpectedEOF,
			errors.Is(err, ErrMalformed), errors.Is(err, ErrFrameTooLarge):
		default:
			t.Fatalf("unexpected error %v", err)
		}

		small, smallErr := readAll(data, 16)
		if smallErr == nil || err.Error() != smallErr.Error() {
			t.Fatalf("decoding paths disagree: error %v with a large buffer, %v with a small one", err, smallErr)
		}
		mustEqualFrames(t, small, frames)

		var enc []byte
		for _, fr := range frames {
			enc = fr.Append(enc)
		}
		if !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("re-encoding differs from the input:\n got % x\nwant % x", enc, data[:len(enc)])
		}
		again, err := readAll(enc, 8<<10)
		if err != io.EOF {
			t.Fatalf("decoding the re-encoded frames: %v", err)
		}
		mustEqualFrames(t, again, frames)
	})
}

// FuzzSplitReads checks that the way a stream is cut into reads does not
// change what it decodes to, as nats-server's parser fuzzing does. The
// stream is the frames that data decodes to (or, when it decodes to none,
// every small sample frame), re-encoded; splits chooses the bufio size
// (first byte, 16 to 271 bytes, so that most frames take the buffer path)
// and the lengths of the successive reads.
func FuzzSplitReads(f *testing.F) {
	// Seeds with no data split the fallback stream of every small sample;
	// the others let the fuzzer vary the frames too.
	f.Add([]byte(nil), []byte{})
	f.Add([]byte(nil), []byte{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte(nil), []byte{0, 3, 0, 5, 7, 0, 250, 2})
	f.Add([]byte(nil), []byte{255, 16, 17, 4})
	f.Add([]byte(nil), []byte{40, 0, 0, 0, 200, 200, 200, 200, 1})
	for i, s := range seedSamples() {
		f.Add(s.f.Append(nil), []byte{byte(i), byte(i % 5), 1, 2, 3})
	}
	var fallback []Frame
	for _, s := range smallSamples() {
		fallback = append(fallback, s.f)
	}
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		want, _ := readAll(data, 8<<10)
		if len(want) == 0 {
			want = fallback
		}
		var stream []byte
		for _, fr := range want {
			stream = fr.Append(stream)
		}

		size := 4096
		if len(splits) > 0 {
			size = 16 + int(splits[0])
			splits = splits[1:]
		}
		// At most 64 chunks: bufio gives up after 100 empty reads in a row.
		chunks := make([]int, 0, 64)
		for _, b := range splits[:min(len(splits), 64)] {
			chunks = append(chunks, int(b))
		}

		got, err := readAllFrom(&chunkReader{data: stream, chunks: chunks}, size)
		if err != io.EOF {
			t.Fatalf("final error %v, want io.EOF (bufio size %d, chunks %v)", err, size, chunks)
		}
		mustEqualFrames(t, got, want)
	})
}
