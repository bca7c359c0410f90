package repl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Streams: where a sending node starts from a peer's Resume, how a
// receiving node acknowledges, and what Wait and Drain make of the acks.

// opKeys returns the keys of ops.
func opKeys(ops []wire.Op) []string {
	var keys []string
	for _, op := range ops {
		keys = append(keys, op.Key)
	}
	return keys
}

func kN(from, to int) []string {
	var keys []string
	for i := from; i <= to; i++ {
		keys = append(keys, fmt.Sprint("k", i))
	}
	return keys
}

// The node streams from the peer's NextSeq while its log reaches back that
// far, and sends a full sync when it does not (or when asked with 0); then
// it streams what follows the snapshot.
func TestResumePosition(t *testing.T) {
	cases := []struct {
		name     string
		log      LogConfig
		next     uint64   // the fake peer's Resume.NextSeq
		snapshot bool     // a full sync comes first
		ops      []string // the keys of the first Ops frame
	}{
		{"from the start", LogConfig{}, 1, false, kN(1, 5)},
		{"inside the log", LogConfig{}, 3, false, kN(3, 5)},
		{"at the end of the log", LogConfig{}, 6, false, kN(6, 6)},
		{"full sync asked", LogConfig{}, 0, true, kN(6, 6)},
		{"past the log", LogConfig{MaxRecords: 4}, 1, true, kN(6, 6)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				ln := listenFake(t, mem, "fake")
				a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, Log: tc.log}, false)
				for i := 1; i <= 5; i++ {
					a.put(t, fmt.Sprint("k", i), "v")
				}

				p := ln.accept()
				p.answer(fakeHello(fakeID))
				p.send(&wire.Resume{Origin: 1, NextSeq: tc.next, HLC: uint64(nowTS())})
				if tc.snapshot {
					begin := dataAs[*wire.SnapshotBegin](t, p)
					if begin.Origin != 1 || begin.Seq != 5 {
						t.Fatalf("SnapshotBegin %+v; want origin 1, seq 5", begin)
					}
					var got []string
					for {
						f := p.recvData()
						if end, ok := f.(*wire.SnapshotEnd); ok {
							if n := len(end.Ghosts); n == 0 || n&(n-1) != 0 {
								t.Errorf("ghost table of %d slots", n)
							}
							break
						}
						chunk, ok := f.(*wire.SnapshotChunk)
						if !ok {
							t.Fatalf("want a SnapshotChunk or SnapshotEnd, got %T", f)
						}
						for _, op := range chunk.Ops {
							// Every write up to the snapshot's seq is versioned
							// before its time.
							if op.HLC > begin.HLC {
								t.Errorf("%s stamped %v, after the snapshot's %v", op.Key, hlc.Timestamp(op.HLC), hlc.Timestamp(begin.HLC))
							}
						}
						got = append(got, opKeys(chunk.Ops)...)
					}
					slices.Sort(got)
					if !slices.Equal(got, kN(1, 5)) {
						t.Errorf("snapshot holds %v, want %v", got, kN(1, 5))
					}
				}
				if tc.next == 6 || tc.snapshot {
					a.put(t, "k6", "v") // what follows the resume point
				}
				ops := dataAs[*wire.Ops](t, p)
				if want := tc.ops; ops.Origin != 1 || !slices.Equal(opKeys(ops.Ops), want) {
					t.Errorf("Ops from %d: %v; want %v", ops.FirstSeq, opKeys(ops.Ops), want)
				}
				if want := uint64(strings.TrimPrefix(tc.ops[0], "k")[0] - '0'); ops.FirstSeq != want {
					t.Errorf("Ops start at %d, want %d", ops.FirstSeq, want)
				}
				l := a.link(t, "fake")
				if want := map[bool]uint64{false: 0, true: 1}[tc.snapshot]; l.FullSyncs != want || !l.Connected {
					t.Errorf("link %+v; want connected, %d full syncs", l, want)
				}
			})
		})
	}
}

// A full sync asked by the peer process that acked part of the log (away
// longer than the tombstone horizon) is followed by the log from its last
// ack, not from the snapshot's end: the snapshot alone loses this node's
// writes that left no trace here (a set that superseded a delete, then
// evicted, leaves only a local ghost). Another process of the peer gets
// the snapshot and the log after it, as a first sync does.
func TestFullSyncReplaysLogFromLastAck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		incDelta uint64 // added to the peer's incarnation on reconnecting
		seq      uint64 // the second SnapshotBegin's Seq
		ops      []string
	}{
		{"same peer process", 0, 3, kN(4, 5)},
		{"restarted peer", 1, 5, kN(6, 6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				ln := listenFake(t, mem, "fake")
				a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
				for i := 1; i <= 3; i++ {
					a.put(t, fmt.Sprint("k", i), "v")
				}
				h := fakeHello(fakeID)
				p := ln.accept()
				p.answer(h)
				p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
				if ops := dataAs[*wire.Ops](t, p); !slices.Equal(opKeys(ops.Ops), kN(1, 3)) {
					t.Fatalf("first Ops %v", opKeys(ops.Ops))
				}
				p.send(&wire.Ack{Origin: 1, Seq: 3})
				for a.link(t, "fake").Acked != 3 {
					time.Sleep(time.Millisecond)
				}
				p.c.Close()
				a.put(t, "k4", "v")
				a.put(t, "k5", "v")

				h.Incarnation += tc.incDelta
				p2 := ln.accept()
				p2.answer(h)
				p2.send(&wire.Resume{Origin: 1, NextSeq: 0, HLC: uint64(nowTS())})
				if begin := dataAs[*wire.SnapshotBegin](t, p2); begin.Seq != tc.seq {
					t.Errorf("SnapshotBegin.Seq = %d, want %d", begin.Seq, tc.seq)
				}
				for {
					if _, ok := p2.recvData().(*wire.SnapshotEnd); ok {
						break
					}
				}
				if tc.seq == 5 {
					a.put(t, "k6", "v") // the log has nothing after the snapshot yet
				}
				ops := dataAs[*wire.Ops](t, p2)
				if ops.FirstSeq != tc.seq+1 || !slices.Equal(opKeys(ops.Ops), tc.ops) {
					t.Errorf("after the snapshot: Ops from %d %v; want from %d %v", ops.FirstSeq, opKeys(ops.Ops), tc.seq+1, tc.ops)
				}
			})
		})
	}
}

// A Resume for another origin, or beyond the end of the log, is refused:
// the node streams nothing on that connection.
func TestResumeRefused(t *testing.T) {
	cases := []struct {
		name   string
		resume wire.Resume
	}{
		{"other origin", wire.Resume{Origin: 2, NextSeq: 1}},
		{"this node's own id as peer", wire.Resume{Origin: fakeID, NextSeq: 1}},
		{"beyond the log", wire.Resume{Origin: 1, NextSeq: 4}}, // the log's next is 3
		{"far beyond the log", wire.Resume{Origin: 1, NextSeq: 1 << 62}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				ln := listenFake(t, mem, "fake")
				a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
				a.put(t, "k1", "v")
				a.put(t, "k2", "v")

				p := ln.accept()
				p.answer(fakeHello(fakeID))
				r := tc.resume
				r.HLC = uint64(nowTS())
				p.send(&r)
				if rej := recvAs[*wire.Reject](t, p); rej.Code != wire.RejectBadFrame || !strings.Contains(rej.Message, "resume") {
					t.Errorf("Reject %v %q", rej.Code, rej.Message)
				}
				p.expectClosed()
				synctest.Wait()
				if l := a.link(t, "fake"); l.EverConnected || l.Acked != 0 || l.Reason != ReasonHandshake {
					t.Errorf("link after a bad Resume: %+v", l)
				}

				// The next connection with a good Resume streams.
				p2 := ln.accept()
				p2.answer(fakeHello(fakeID))
				p2.send(&wire.Resume{Origin: 1, NextSeq: 3, HLC: uint64(nowTS())})
				a.put(t, "k3", "v")
				if ops := dataAs[*wire.Ops](t, p2); ops.FirstSeq != 3 || !slices.Equal(opKeys(ops.Ops), []string{"k3"}) {
					t.Errorf("Ops %d %v after a good Resume", ops.FirstSeq, opKeys(ops.Ops))
				}
			})
		})
	}
}

// A receiving node resumes an origin after the last op it applied; a new
// incarnation of the origin (a restart, its log starting over) from 1; and
// its Resume carries its clock, which has merged every op applied.
func TestResumeFollowsApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)

		p := dialFake(t, mem, "fake", "a")
		if _, r := p.open(fakeHello(fakeID)); r.Origin != fakeID || r.NextSeq != 0 {
			t.Fatalf("a new origin: Resume %+v; want origin %d at 0 (full sync)", r, fakeID)
		}
		p.emptySync(fakeID)
		top := at(100 * time.Millisecond) // ahead of a's clock, within bounds
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp("k1", "v", nowTS(), fakeID), setOp("k2", "v", nowTS(), fakeID), setOp("k3", "v", top, fakeID),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Origin != fakeID || ack.Seq != 3 {
			t.Fatalf("Ack %+v, want 3", ack)
		}
		p.c.Close()

		p2 := dialFake(t, mem, "fake", "a")
		_, r := p2.open(fakeHello(fakeID))
		if r.NextSeq != 4 {
			t.Errorf("same incarnation: resume at %d, want 4", r.NextSeq)
		}
		if r.HLC < uint64(top) {
			t.Errorf("Resume's clock %v is behind the applied %v", hlc.Timestamp(r.HLC), top)
		}
		p2.c.Close()

		h := fakeHello(fakeID)
		h.Incarnation++
		p3 := dialFake(t, mem, "fake", "a")
		if _, r := p3.open(h); r.NextSeq != 1 {
			t.Errorf("new incarnation: resume at %d, want 1", r.NextSeq)
		}
		if o := a.origin(t, fakeID); o.FullSyncs != 1 || o.Ops != 3 {
			t.Errorf("origin stats %+v", o)
		}
	})
}

// A receiving node acknowledges an isolated Ops frame at once, and a burst
// of frames with fewer acks than frames; no ack is ahead of what it has
// applied, neither in a burst nor when it stops inside a frame.
func TestAckBatching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		key := func(seq uint64) string { return fmt.Sprint("k", seq) }
		frame := func(seq uint64) *wire.Ops {
			return &wire.Ops{Origin: fakeID, FirstSeq: seq, Ops: []wire.Op{setOp(key(seq), "v", nowTS(), fakeID)}}
		}

		// An isolated frame: its ack comes at once.
		p.send(frame(1))
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 || !a.has("k1") {
			t.Fatalf("Ack %+v for an isolated frame, applied: %v", ack, a.has("k1"))
		}

		// A burst, in one write.
		const burst = 100
		var b []byte
		for seq := uint64(2); seq < 2+burst; seq++ {
			b = frame(seq).Append(b)
		}
		if _, err := p.c.Write(b); err != nil {
			t.Fatal(err)
		}
		acks, last := 0, uint64(1)
		for last < 1+burst {
			ack := recvAs[*wire.Ack](t, p)
			acks++
			if ack.Seq <= last || ack.Seq > 1+burst {
				t.Fatalf("ack %d after %d (%d frames sent)", ack.Seq, last, 1+burst)
			}
			for seq := last + 1; seq <= ack.Seq; seq++ {
				if !a.has(key(seq)) {
					t.Fatalf("ack %d before %s was applied", ack.Seq, key(seq))
				}
			}
			last = ack.Seq
		}
		if acks >= burst {
			t.Errorf("%d acks for a burst of %d frames", acks, burst)
		}
		t.Logf("%d acks for a burst of %d frames", acks, burst)

		// A frame the node stops inside (its third op is stamped too far
		// ahead): the ack covers the ops applied, not the frame.
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 102, Ops: []wire.Op{
			setOp("k102", "v", nowTS(), fakeID), setOp("k103", "v", nowTS(), fakeID), setOp("k104", "v", at(time.Hour), fakeID),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 103 {
			t.Errorf("ack %d of a frame stopped after seq 103", ack.Seq)
		}
		p.expectReject(wire.RejectClockAhead)
		p.expectClosed()
		if a.has("k104") {
			t.Error("the op ahead was applied")
		}

		// A gap in the sequence is a protocol error; nothing is acked past
		// what was applied.
		p2 := dialFake(t, mem, "fake", "a")
		if _, r := p2.open(fakeHello(fakeID)); r.NextSeq != 104 {
			t.Fatalf("resume at %d, want 104", r.NextSeq)
		}
		p2.send(frame(105))
		if rej := recvAs[*wire.Reject](t, p2); rej.Code != wire.RejectBadFrame || !strings.Contains(rej.Message, "out of sequence") {
			t.Errorf("Reject %v %q for a gap", rej.Code, rej.Message)
		}
		synctest.Wait()
		if o := a.origin(t, fakeID); o.Applied != 103 || a.has("k105") {
			t.Errorf("after a gap: applied %d, k105 held: %v", o.Applied, a.has("k105"))
		}
	})
}

// Wait returns once a peer of another region acknowledges the write, once
// it said which keys its acks speak for; Drain
// once every connected peer has acknowledged every write; an ack of a
// write the node never made is refused.
func TestWaitAndDrainFollowAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us", Peers: []string{"fake"}}, false)
		for i := 1; i <= 3; i++ {
			a.put(t, fmt.Sprint("k", i), "v")
		}
		if got := a.r.Regions(); got != 2 {
			t.Errorf("Regions() = %d before the peer answered, want 2 (this one and one unknown)", got)
		}
		type result struct {
			n   int
			err error
		}
		waited := make(chan result, 1)
		go func() {
			n, err := a.r.Wait(context.Background(), 3, nil, 1)
			waited <- result{n, err}
		}()

		p := ln.accept()
		h := fakeHello(fakeID)
		h.Region = "eu"
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != 1 || len(ops.Ops) != 3 {
			t.Fatalf("Ops %d × %d", ops.FirstSeq, len(ops.Ops))
		}
		// An ack of 2 does not meet a wait for 3, whatever the peer vouches
		// for; until it says which keys its acks speak for, and while it
		// vouches for no slot, its acks count for no write.
		notYet := func(after string) {
			t.Helper()
			synctest.Wait()
			select {
			case res := <-waited:
				t.Fatalf("Wait(3) returned %+v after %s", res, after)
			default:
			}
		}
		p.send(&wire.Ack{Origin: 1, Seq: 2})
		notYet("an ack of 2")
		p.send(&wire.Vouched{Origin: 1, Slots: make([]byte, wire.SlotSetLen)}) // no slot
		p.send(&wire.Ack{Origin: 1, Seq: 3})
		notYet("an ack of 3 from a peer that vouches for no slot")
		if l := a.link(t, "fake"); l.Acked != 3 {
			t.Fatalf("link %+v; want acked 3", l)
		}
		p.send(&wire.Vouched{Origin: 1}) // every key
		if res := <-waited; res.n != 1 || res.err != nil {
			t.Errorf("Wait(3, 1) = %d, %v; want 1, nil", res.n, res.err)
		}
		if got := a.r.Regions(); got != 2 {
			t.Errorf("Regions() = %d, want 2 (us, eu)", got)
		}

		// Two other regions are not there to be had: Wait gives up with
		// the count it has.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := a.r.Wait(ctx, 3, nil, 2)
		cancel()
		if n != 1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait(3, 2) = %d, %v; want 1, deadline exceeded", n, err)
		}

		// Drain waits for the write made before it.
		a.put(t, "k4", "v")
		drained := make(chan error, 1)
		go func() { drained <- a.r.Drain(context.Background()) }()
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != 4 {
			t.Fatalf("Ops from %d, want 4", ops.FirstSeq)
		}
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v before the ack", err)
		default:
		}
		p.send(&wire.Ack{Origin: 1, Seq: 4})
		if err := <-drained; err != nil {
			t.Errorf("Drain: %v", err)
		}

		// An ack of a write the node has not made is a protocol error.
		p.send(&wire.Ack{Origin: 1, Seq: 5})
		if rej := p.expectReject(wire.RejectBadFrame); !strings.Contains(rej.Message, "ack") {
			t.Errorf("Reject %q", rej.Message)
		}
		p.expectClosed()
		synctest.Wait()
		if l := a.link(t, "fake"); l.Acked != 4 {
			t.Errorf("acked %d after a bogus ack, want 4", l.Acked)
		}
	})
}

// Drain waits for a link that dropped moments ago to come back and take
// the last writes (a blip during a shutdown loses nothing), but not for a
// link that has been down for longer than its reconnects take.
func TestDrainWaitsForALinkThatJustDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us", Peers: []string{"fake"}}, false)
		p := ln.accept()
		h := fakeHello(fakeID)
		h.Region = "eu"
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		a.put(t, "k1", "v")
		dataAs[*wire.Ops](t, p)
		p.send(&wire.Ack{Origin: 1, Seq: 1})
		synctest.Wait()

		// The link drops; a write follows; Drain starts.
		p.c.Close()
		synctest.Wait()
		if l := a.link(t, "fake"); l.Connected {
			t.Fatalf("link %+v still up after the peer closed it", l)
		}
		a.put(t, "k2", "v")
		drained := make(chan error, 1)
		go func() { drained <- a.r.Drain(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v while a link that just dropped had not taken k2", err)
		default:
		}
		p = ln.accept()
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 2, HLC: uint64(nowTS())})
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != 2 || !slices.Equal(opKeys(ops.Ops), []string{"k2"}) {
			t.Fatalf("Ops from %d: %v; want k2 from 2", ops.FirstSeq, opKeys(ops.Ops))
		}
		p.send(&wire.Ack{Origin: 1, Seq: 2})
		if err := <-drained; err != nil {
			t.Errorf("Drain: %v", err)
		}

		// Down for good: once the link has been down for longer than its
		// reconnects take, Drain does not wait for it.
		ln.ln.Close()
		p.c.Close()
		a.put(t, "k3", "v")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := a.r.Drain(ctx); err != nil {
			t.Errorf("Drain with the peer gone: %v; want nil once the link has been down long enough", err)
		}
	})
}

// An ack from a peer of this node's own region does not count for Wait,
// which counts other regions.
func TestWaitCountsOtherRegionsOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us", Peers: []string{"fake"}}, false)
		seq := a.put(t, "k1", "v")

		p := ln.accept()
		h := fakeHello(fakeID)
		h.Region = "us"
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		dataAs[*wire.Ops](t, p)
		p.send(&wire.Ack{Origin: 1, Seq: seq})
		synctest.Wait()
		if l := a.link(t, "fake"); l.Acked != seq {
			t.Fatalf("acked %d, want %d", l.Acked, seq)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if n, err := a.r.Wait(ctx, seq, nil, 1); n != 0 || err == nil {
			t.Errorf("Wait = %d, %v; want 0 and a timeout: the peer is in this node's region", n, err)
		}
		if got := a.r.Regions(); got != 1 {
			t.Errorf("Regions() = %d, want 1", got)
		}
	})
}
