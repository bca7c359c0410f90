package repl

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Large ops (large.go): values too large for one frame travel in parts,
// and plain writes behind a large one pass it. BatchBytes is 1 KiB here,
// so a value of a few KiB is large.

const testBatch = 1 << 10

// bigValue returns n bytes that differ from one position to the next, so a
// part out of place shows.
func bigValue(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%08d", i)
	}
	return b.String()[:n]
}

// collect reads a large op's remaining parts from p and returns the value,
// with the Ops frames that came between them.
func collectLarge(t *testing.T, p *fakePeer, lo *wire.LargeOp) (string, []*wire.Ops) {
	t.Helper()
	value := append([]byte(nil), lo.Op.Value...)
	var between []*wire.Ops
	for uint64(len(value)) < lo.Size {
		switch f := p.recvData().(type) {
		case *wire.ValuePart:
			if f.Seq != lo.Seq || f.Origin != lo.Origin || len(f.Data) > testBatch {
				t.Fatalf("part %+v of large op %d", f, lo.Seq)
			}
			value = append(value, f.Data...)
		case *wire.Ops:
			between = append(between, f)
		default:
			t.Fatalf("want a part of op %d, got %T", lo.Seq, f)
		}
	}
	if uint64(len(value)) != lo.Size {
		t.Fatalf("value of %d bytes, announced %d", len(value), lo.Size)
	}
	return string(value), between
}

// A large Set goes as a LargeOp and parts no larger than BatchBytes, and
// the small writes behind it go out between its parts, not after.
func TestLargeSetIsOvertaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, BatchBytes: testBatch}, false)
		big := bigValue(20 * testBatch)
		a.put(t, "big", big)
		for i := 2; i <= 4; i++ {
			a.put(t, fmt.Sprint("k", i), "v")
		}

		p := streamTo(t, ln, 1)
		lo := dataAs[*wire.LargeOp](t, p)
		if lo.Seq != 1 || lo.Op.Key != "big" || lo.Op.Kind != wire.KindSet || lo.Size != uint64(len(big)) || lo.Op.Size() > testBatch || lo.Op.Size() < testBatch-8 {
			t.Fatalf("LargeOp %d %s %v size %d, op of %d bytes with its first part (want just under %d)", lo.Seq, lo.Op.Key, lo.Op.Kind, lo.Size, lo.Op.Size(), testBatch)
		}
		got, between := collectLarge(t, p, lo)
		if got != big {
			t.Fatal("the value arrived changed")
		}
		if len(between) != 1 || between[0].FirstSeq != 2 || len(between[0].Ops) != 3 {
			t.Fatalf("ops between the parts: %v; want seqs 2..4 in one frame", between)
		}
		// What follows comes after: nothing is sent twice.
		a.put(t, "k5", "v")
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != 5 {
			t.Fatalf("next Ops from %d, want 5", ops.FirstSeq)
		}
	})
}

// Nothing passes a large pub/sub message (messages keep their order) or a
// large op inside a batch (a batch stays one unit).
func TestLargeMessageAndBatchOpNotOvertaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, BatchBytes: testBatch}, false)
		big := bigValue(5 * testBatch)
		ts, _ := a.clock.Now()
		a.r.Append(store.Op{Kind: store.KindPublish, Key: "ch", Value: []byte(big), Version: store.Version{HLC: ts, Origin: 1}})
		a.put(t, "k2", "v")
		ts, _ = a.clock.Now()
		a.r.AppendBatch([]store.Op{
			{Kind: store.KindSet, Key: "b1", Value: []byte(big), Version: store.Version{HLC: ts, Origin: 1}},
			{Kind: store.KindSet, Key: "b2", Value: []byte("small"), Version: store.Version{HLC: ts, Origin: 1}},
		})
		a.put(t, "k6", "v")

		p := streamTo(t, ln, 1)
		lo := dataAs[*wire.LargeOp](t, p)
		if lo.Seq != 1 || lo.Op.Kind != wire.KindPublish {
			t.Fatalf("LargeOp %d %v, want the message at 1", lo.Seq, lo.Op.Kind)
		}
		if got, between := collectLarge(t, p, lo); got != big || len(between) != 0 {
			t.Fatalf("message intact %v, %d Ops frames passed it", got == big, len(between))
		}
		// k2 and the batch's marker, then the batch's large op: nothing
		// passes it either.
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != 2 || len(ops.Ops) != 2 || ops.Ops[1].Kind != wire.KindBatch {
			t.Fatalf("Ops from %d: %v", ops.FirstSeq, opKeys(ops.Ops))
		}
		lo = dataAs[*wire.LargeOp](t, p)
		if lo.Seq != 4 || lo.Op.Key != "b1" {
			t.Fatalf("LargeOp %d %s, want b1 at 4", lo.Seq, lo.Op.Key)
		}
		if got, between := collectLarge(t, p, lo); got != big || len(between) != 0 {
			t.Fatalf("batch op intact %v, %d Ops frames passed it", got == big, len(between))
		}
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != 5 || len(ops.Ops) != 2 {
			t.Fatalf("Ops from %d: %v; want b2 and k6", ops.FirstSeq, opKeys(ops.Ops))
		}
	})
}

// streamTo accepts node 1's connection to the fake peer, answers its Hello
// and resumes its stream at next (0: a full sync).
func streamTo(t *testing.T, ln *fakeListener, next uint64) *fakePeer {
	t.Helper()
	p := ln.accept()
	p.answer(fakeHello(fakeID))
	p.send(&wire.Resume{Origin: 1, NextSeq: next, HLC: uint64(nowTS())})
	return p
}

// nextAck returns the next Ack from the node, skipping its PartAcks.
func nextAck(t *testing.T, p *fakePeer) *wire.Ack {
	t.Helper()
	for {
		f, err := p.recv()
		if err != nil {
			t.Fatalf("want an Ack: %v", err)
		}
		switch f := f.(type) {
		case *wire.Ack:
			return f
		case *wire.PartAck:
			continue
		default:
			t.Fatalf("want an Ack, got %T %+v", f, f)
		}
	}
}

// largeOrigin is a fake origin streaming to node b: synced, so b resumes
// it where it left off.
func largeOrigin(t *testing.T, cfg Config) (*node, *fakePeer, *testkit.Network) {
	t.Helper()
	mem := testkit.NewNetwork()
	t.Cleanup(func() { mem.Close() })
	cfg.NodeID = 2
	b := startTestNode(t, mem, "b", cfg, true)
	p := dialFake(t, mem, "fake", "b")
	if r := p.handshake(fakeID); r.NextSeq != 0 {
		t.Fatalf("first resume at %d", r.NextSeq)
	}
	p.emptySync(fakeID)
	return b, p, mem
}

// The receiver applies the writes that pass a large op at once, acks up to
// just before it until its last part, and applies it then.
func TestLargeOpReceived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p, _ := largeOrigin(t, Config{})
		big := bigValue(3000)
		op := setOp("big", big[:1000], nowTS(), fakeID)
		p.send(&wire.LargeOp{Origin: fakeID, Seq: 1, Size: uint64(len(big)), Op: op})
		p.send(&wire.ValuePart{Origin: fakeID, Seq: 1, Data: []byte(big[1000:2000])})
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("k2", "v", nowTS(), fakeID), setOp("k3", "v", nowTS(), fakeID)}})
		if a := nextAck(t, p); a.Seq != 0 {
			t.Fatalf("ack %d with op 1 arriving; want 0", a.Seq)
		}
		if b.value("k2") != "v" || b.value("k3") != "v" || b.has("big") {
			t.Fatalf("k2 %q k3 %q big %v: want the small writes applied, the large one not yet", b.value("k2"), b.value("k3"), b.has("big"))
		}
		if got := b.origin(t, fakeID).Applied; got != 0 {
			t.Fatalf("stats say applied up to %d", got)
		}
		p.send(&wire.ValuePart{Origin: fakeID, Seq: 1, Data: []byte(big[2000:])})
		if a := nextAck(t, p); a.Seq != 3 {
			t.Fatalf("ack %d once op 1 is complete; want 3", a.Seq)
		}
		if b.value("big") != big {
			t.Fatal("the large value is not what was sent")
		}
	})
}

// A connection that ends inside an overtaken op resumes from it: the ops
// that passed it come again, and applying them twice is harmless.
func TestLargeOpResumesFromTheHole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p, mem := largeOrigin(t, Config{})
		big := bigValue(3000)
		p.send(&wire.LargeOp{Origin: fakeID, Seq: 1, Size: uint64(len(big)), Op: setOp("big", big[:1000], nowTS(), fakeID)})
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("k2", "v", nowTS(), fakeID)}})
		nextAck(t, p)
		p.c.Close()
		synctest.Wait()

		p = dialFake(t, mem, "fake", "b")
		if r := p.handshake(fakeID); r.NextSeq != 1 {
			t.Fatalf("resume at %d; want 1, the large op", r.NextSeq)
		}
		if b.value("k2") != "v" || b.has("big") {
			t.Fatal("k2 lost or a partial value applied")
		}
		p.send(&wire.LargeOp{Origin: fakeID, Seq: 1, Size: uint64(len(big)), Op: setOp("big", big[:2000], nowTS(), fakeID)})
		p.send(&wire.ValuePart{Origin: fakeID, Seq: 1, Data: []byte(big[2000:])})
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("k2", "v", nowTS(), fakeID)}})
		for {
			if a := nextAck(t, p); a.Seq == 2 {
				break
			}
		}
		if b.value("big") != big {
			t.Fatal("the large value is not what was sent")
		}
	})
}

// Full syncs carry large entries as large ops of sequence number 0, both
// ways.
func TestLargeEntriesInFullSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, BatchBytes: testBatch}, false)
		big := bigValue(4 * testBatch)
		a.put(t, "big", big)
		a.put(t, "small", "v")
		p := streamTo(t, ln, 0)
		dataAs[*wire.SnapshotBegin](t, p)
		got := map[string]string{}
		for done := false; !done; {
			switch f := p.recvData().(type) {
			case *wire.SnapshotChunk:
				for _, op := range f.Ops {
					got[op.Key] = string(op.Value)
				}
			case *wire.LargeOp:
				if f.Seq != 0 {
					t.Fatalf("a snapshot's large op of seq %d", f.Seq)
				}
				v, between := collectLarge(t, p, f)
				if len(between) > 0 {
					t.Fatal("ops inside a snapshot")
				}
				got[f.Op.Key] = v
			case *wire.SnapshotEnd:
				done = true
			default:
				t.Fatalf("unexpected %T in a snapshot", f)
			}
		}
		if got["big"] != big || got["small"] != "v" || len(got) != 2 {
			t.Fatalf("snapshot: big intact %v, small %q, %d entries", got["big"] == big, got["small"], len(got))
		}

		// And received: b takes a large entry from a snapshot.
		mem2 := testkit.NewNetwork()
		defer mem2.Close()
		b := startTestNode(t, mem2, "b", Config{NodeID: 2}, true)
		q := dialFake(t, mem2, "fake", "b")
		q.handshake(fakeID)
		q.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 0, HLC: uint64(nowTS())})
		q.send(&wire.LargeOp{Origin: fakeID, Size: uint64(len(big)), Op: setOp("big", big[:100], nowTS()-1, fakeID)})
		q.send(&wire.ValuePart{Origin: fakeID, Data: []byte(big[100:])})
		q.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)})
		nextAck(t, q)
		if b.value("big") != big {
			t.Fatal("b does not hold the snapshot's large entry")
		}
	})
}

// Anti-entropy answers carry large entries too: a probe of an older
// version gets the large value back in parts.
func TestLargeRepair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p, _ := largeOrigin(t, Config{BatchBytes: testBatch})
		big := bigValue(3 * testBatch)
		ts := nowTS()
		b.hold(t, "big", big, ts, 5)
		p.send(&wire.Probe{Origin: fakeID, Ops: []wire.Op{{Kind: wire.KindSet, Key: "big", HLC: uint64(ts - 1), VOrigin: 5}}})
		lo := recvAs[*wire.LargeOp](t, p)
		if lo.Seq != 0 || lo.Op.Key != "big" {
			t.Fatalf("repair LargeOp seq %d key %s", lo.Seq, lo.Op.Key)
		}
		if v, _ := collectLarge(t, p, lo); v != big {
			t.Fatal("the repaired value is not the one held")
		}
	})
}

// Two real nodes: large values and small writes interleaved on the stream,
// the connection reset in the middle, arrive all and intact.
func TestLargeValuesBetweenNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cfg := Config{BatchBytes: testBatch, Coalesce: -1}
		cfg.NodeID, cfg.Peers = 1, []string{"b"}
		a := startTestNode(t, mem, "a", cfg, true)
		cfg.NodeID, cfg.Peers = 2, []string{"a"}
		b := startTestNode(t, mem, "b", cfg, true)
		want := map[string]string{}
		for i := range 40 {
			k, v := fmt.Sprint("k", i), fmt.Sprint("v", i)
			if i%5 == 0 {
				v = bigValue(testBatch*(2+i%7) + i)
			}
			a.put(t, k, v)
			want[k] = v
			if i == 20 {
				time.Sleep(time.Millisecond)
				mem.Reset("a", "b")
			}
		}
		deadline := time.Now().Add(time.Minute)
		for {
			missing := 0
			for k, v := range want {
				if b.value(k) != v {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d values missing or wrong on b", missing, len(want))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Every way a peer can misuse large ops is refused with a Reject, and the
// node goes on taking the origin's stream on the next connection.
func TestLargeOpAbuseRefused(t *testing.T) {
	big := bigValue(3000)
	first := func(seq uint64) *wire.LargeOp {
		return &wire.LargeOp{Origin: fakeID, Seq: seq, Size: uint64(len(big)), Op: setOp("big", big[:1000], nowTS(), fakeID)}
	}
	part := func(seq uint64, from, to int) *wire.ValuePart {
		return &wire.ValuePart{Origin: fakeID, Seq: seq, Data: []byte(big[from:to])}
	}
	msg := func() *wire.LargeOp {
		return &wire.LargeOp{Origin: fakeID, Seq: 1, Size: uint64(len(big)), Op: wire.Op{Kind: wire.KindPublish, Key: "ch", Value: []byte(big[:10]), HLC: uint64(nowTS()), VOrigin: fakeID}}
	}
	cases := []struct {
		name   string
		frames func() []wire.Frame
		why    string
	}{
		{"over the value limit", func() []wire.Frame {
			f := first(1)
			f.Size = 1 << 20
			return []wire.Frame{f}
		}, "over this node's limit"},
		{"part with no large op", func() []wire.Frame { return []wire.Frame{part(1, 0, 10)} }, "no large op arriving"},
		{"parts past the size", func() []wire.Frame { return []wire.Frame{first(1), part(1, 0, 2500)} }, "over its"},
		{"part of another op", func() []wire.Frame { return []wire.Frame{first(1), part(2, 1000, 1100)} }, "while op 1 is arriving"},
		{"second large op", func() []wire.Frame { return []wire.Frame{first(1), first(2)} }, "while the value of op 1"},
		{"out of sequence", func() []wire.Frame { return []wire.Frame{first(5)} }, "out of sequence"},
		{"seq 0 outside a sync", func() []wire.Frame { return []wire.Frame{first(0)} }, "outside a full sync"},
		{"ops passing a message", func() []wire.Frame {
			return []wire.Frame{msg(), &wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("k", "v", nowTS(), fakeID)}}}
		}, "which they may not pass"},
		{"snapshot inside a large op", func() []wire.Frame {
			return []wire.Frame{first(1), &wire.SnapshotBegin{Origin: fakeID, HLC: uint64(nowTS())}}
		}, "unexpected snapshot begin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, p, mem := largeOrigin(t, Config{MaxValueBytes: 64 << 10})
				for _, f := range tc.frames() {
					p.send(f)
				}
				if rej := p.expectReject(wire.RejectBadFrame); !strings.Contains(rej.Message, tc.why) {
					t.Fatalf("Reject %q; want it to say %q", rej.Message, tc.why)
				}
				p.expectClosed()
				synctest.Wait()
				if b.has("big") {
					t.Fatal("a partial or refused value was applied")
				}
				// The origin comes back and streams properly.
				q := dialFake(t, mem, "fake", "b")
				r := q.handshake(fakeID)
				q.send(&wire.Ops{Origin: fakeID, FirstSeq: r.NextSeq, Ops: []wire.Op{setOp("after", "v", nowTS(), fakeID)}})
				if a := nextAck(t, q); a.Seq != r.NextSeq {
					t.Fatalf("ack %d, want %d", a.Seq, r.NextSeq)
				}
				if b.value("after") != "v" {
					t.Fatal("the node does not take the stream after the refusal")
				}
			})
		})
	}
}

// A receiver holds what the peer sent, not what it announced, until the
// first step (4 MiB) has arrived; then one buffer of exactly the value's
// size, allocated off the connection's goroutine, takes the parts.
func TestLargeRecvHoldsWhatArrived(t *testing.T) {
	lr, err := newLargeRecv(&wire.LargeOp{Seq: 1, Size: 500 << 20, Op: wire.Op{Kind: wire.KindSet, Value: []byte("x")}}, wire.MaxValueLen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lr.add(&wire.ValuePart{Seq: 1, Data: make([]byte, 1000)}); err != nil {
		t.Fatal(err)
	}
	if lr.buf != nil || lr.alloc != nil || lr.received() != 1001 {
		t.Fatalf("1,001 bytes of 500 MiB received: buffer of %d, allocation started %v", cap(lr.buf), lr.alloc != nil)
	}
	for _, size := range []int{3000, largeFirstStep + 300_001} {
		lr, _ = newLargeRecv(&wire.LargeOp{Seq: 1, Size: uint64(size), Op: wire.Op{Kind: wire.KindSet, Value: []byte("x")}}, wire.MaxValueLen)
		want := []byte("x")
		for i := 0; ; i++ {
			if lr.received() >= largeFirstStep && lr.alloc == nil && lr.buf == nil {
				t.Fatalf("%d of %d bytes received and no allocation started", lr.received(), size)
			}
			if lr.received() < largeFirstStep && (lr.alloc != nil || lr.buf != nil) {
				t.Fatalf("room made at %d bytes received, before the first step", lr.received())
			}
			data := bytes.Repeat([]byte{byte(i)}, min(100_000, size-lr.received()))
			want = append(want, data...)
			done, err := lr.add(&wire.ValuePart{Seq: 1, Data: data})
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
		}
		if v := lr.op.Value; len(v) != size || cap(v) != size || !bytes.Equal(v, want) {
			t.Fatalf("value of %d bytes (cap %d), intact %v; want %d", len(v), cap(v), bytes.Equal(v, want), size)
		}
	}
}

// A PartAck for another origin or an op the log never had ends the link
// with a Reject; the node redials and streams on.
func TestBadPartAckRefused(t *testing.T) {
	for _, ack := range []*wire.PartAck{{Origin: 7, Seq: 1, Received: 1}, {Origin: 1, Seq: 1000, Received: 1}} {
		synctest.Test(t, func(t *testing.T) {
			mem := testkit.NewNetwork()
			defer mem.Close()
			ln := listenFake(t, mem, "fake")
			a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
			a.put(t, "k1", "v")
			p := streamTo(t, ln, 1)
			dataAs[*wire.Ops](t, p)
			p.send(ack)
			for {
				f := p.recvData()
				if rej, ok := f.(*wire.Reject); ok {
					if rej.Code != wire.RejectBadFrame || !strings.Contains(rej.Message, "part ack") {
						t.Fatalf("Reject %v %q", rej.Code, rej.Message)
					}
					break
				}
			}
			q := streamTo(t, ln, 1)
			if ops := dataAs[*wire.Ops](t, q); ops.FirstSeq != 1 {
				t.Fatalf("after the refusal, Ops from %d", ops.FirstSeq)
			}
		})
	}
}

// A large op stamped too far ahead of the node's clock is not applied at
// its last part: the node acknowledges up to just before it, holds the
// stream with a clock-ahead Reject, keeps the writes that passed it, and
// resumes the origin from it on the next connection.
func TestLargeOpAheadHeldAtTheHole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p, mem := largeOrigin(t, Config{})
		big := bigValue(3000)
		p.send(&wire.LargeOp{Origin: fakeID, Seq: 1, Size: uint64(len(big)), Op: setOp("big", big[:1000], at(time.Hour), fakeID)})
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("k2", "v", nowTS(), fakeID)}})
		p.send(&wire.ValuePart{Origin: fakeID, Seq: 1, Data: []byte(big[1000:])})
		for held := false; !held; {
			f, err := p.recv()
			if err != nil {
				t.Fatalf("waiting for the Reject: %v", err)
			}
			switch f := f.(type) {
			case *wire.PartAck:
			case *wire.Ack:
				if f.Seq != 0 {
					t.Fatalf("ack %d past the op held", f.Seq)
				}
			case *wire.Reject:
				if f.Code != wire.RejectClockAhead {
					t.Fatalf("Reject %v %q, want clock ahead", f.Code, f.Message)
				}
				held = true
			default:
				t.Fatalf("unexpected %T", f)
			}
		}
		synctest.Wait()
		if b.has("big") || b.value("k2") != "v" {
			t.Fatalf("big applied %v, k2 %q: want the op ahead held and the write that passed it kept", b.has("big"), b.value("k2"))
		}
		q := dialFake(t, mem, "fake", "b")
		if r := q.handshake(fakeID); r.NextSeq != 1 {
			t.Fatalf("resume at %d, want 1: the op held", r.NextSeq)
		}
	})
}

// A large op's first frame fits the peer's frame limit whatever its key's
// length: the op with its first part is no larger than a batch.
func TestLargeOpWithLongKeyFitsTheFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		const maxFrame = 64 << 10
		cfg := Config{MaxFrame: maxFrame, BatchBytes: maxFrame - wire.MaxOpsHeader, Coalesce: -1}
		cfg.NodeID, cfg.Peers = 1, []string{"b"}
		a := startTestNode(t, mem, "a", cfg, true)
		cfg.NodeID, cfg.Peers = 2, []string{"a"}
		b := startTestNode(t, mem, "b", cfg, true)
		key, value := strings.Repeat("k", 40<<10), bigValue(200<<10)
		a.put(t, key, value)
		a.put(t, "after", "v")
		testkit.Eventually(t, "the value on b", func() bool { return b.value(key) == value && b.value("after") == "v" })
	})
}

// A peer that withholds its PartAcks stops a large op at its window, and
// the sender then waits, whatever is next in the log (another large op
// here): it does not spin reading the log again and again. The bubble
// settles (synctest.Wait returns) only if every goroutine in it is
// blocked; a spinning sender would keep it busy, which the minute outside
// the bubble catches.
func TestClosedWindowWaitsForPartAck(t *testing.T) {
	settled, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		synctest.Test(t, func(t *testing.T) {
			mem := testkit.NewNetwork()
			defer mem.Close()
			ln := listenFake(t, mem, "fake")
			a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, BatchBytes: testBatch, LargeWindow: 2 * testBatch}, false)
			big := bigValue(20 * testBatch)
			a.put(t, "big1", big)
			a.put(t, "big2", big)
			p := streamTo(t, ln, 1)
			var got atomic.Int64
			go func() {
				for {
					f, err := p.recv()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *wire.LargeOp:
						got.Add(int64(len(f.Op.Value)))
					case *wire.ValuePart:
						got.Add(int64(len(f.Data)))
					}
				}
			}()
			synctest.Wait()
			close(settled)
			if n := got.Load(); n == 0 || n >= int64(len(big)) {
				t.Errorf("%d bytes of the value sent with no PartAck; want some, within the window", n)
			}
			p.c.Close()
		})
	}()
	select {
	case <-settled:
		<-done
	case <-time.After(time.Minute): // only catches the spin
		t.Fatal("the sender never waited with its window closed: it spins")
	}
}
