package repl

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Acknowledgements count per region: two nodes of one other region that
// both applied a write count once, a peer of this node's own region never
// counts, and a peer address never reached counts as a region of its own
// in Regions but applies nothing.
func TestAcksCountPerRegion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		startNode(t, mem, "b1", Config{NodeID: 2, Region: "b"}, false)
		startNode(t, mem, "b2", Config{NodeID: 3, Region: "b"}, false)
		startNode(t, mem, "a2", Config{NodeID: 4, Region: "a"}, false)
		a := startNode(t, mem, "a1", Config{NodeID: 1, Region: "a", Peers: []string{"b1", "b2", "a2", "c1"}}, false)
		for _, p := range []string{"b1", "b2", "a2"} {
			for !a.link(t, p).Connected {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if got := a.r.Regions(); got != 3 {
			t.Errorf("Regions() = %d, want 3 (a, b, and the unknown c1)", got)
		}
		op := store.Op{Kind: store.KindSet, Key: "k", Value: []byte("v"),
			Version: store.Version{HLC: hlc.Timestamp(uint64(time.Now().UnixMilli()) << 16), Origin: 1}}
		a.st.Apply(op)
		seq := a.r.Append(op)
		if n, err := a.r.Wait(context.Background(), seq, nil, 1); err != nil || n != 1 {
			t.Fatalf("Wait(1 region) = %d, %v", n, err)
		}
		// Every reachable peer has applied it now: b1, b2 and a2.
		for _, p := range []string{"b1", "b2", "a2"} {
			for a.link(t, p).Acked < seq {
				time.Sleep(10 * time.Millisecond)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := a.r.Wait(ctx, seq, nil, 2)
		if err == nil || n != 1 {
			t.Fatalf("Wait(2 regions) with only region b applying = %d, %v; want 1 and a timeout", n, err)
		}
	})
}

// A peer of a region that keeps only its own slots speaks, in its acks,
// for the slots it vouches for: a write of another slot is not counted
// applied in its region by its ack, and "every write so far" needs every
// slot vouched for by some node of the region that acknowledged it.
func TestAcksCountOnlyForVouchedSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln1, ln2 := listenFake(t, mem, "eu1"), listenFake(t, mem, "eu2")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us", Peers: []string{"eu1", "eu2"}}, false)
		seq := a.put(t, "theirs", "v")
		mine, theirs := uint16(cluster.KeySlot("mine")), uint16(cluster.KeySlot("theirs"))

		peers := map[string]*fakePeer{}
		for name, ln := range map[string]*fakeListener{"eu1": ln1, "eu2": ln2} {
			p := ln.accept()
			h := fakeHello(fakeID + uint32(len(peers)))
			h.Region, h.NodeName = "eu", name
			p.answer(h)
			p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
			dataAs[*wire.Ops](t, p)
			peers[name] = p
		}
		applied := func(slots []uint16) int {
			t.Helper()
			synctest.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, _ := a.r.Wait(ctx, seq, slots, 1)
			return n
		}
		// eu1 holds "mine"'s slot only, and applied the write.
		peers["eu1"].send(&wire.Vouched{Origin: 1, Slots: slotsOf("mine")})
		peers["eu1"].send(&wire.Ack{Origin: 1, Seq: seq})
		if n := applied([]uint16{theirs}); n != 0 {
			t.Errorf("a write of %q counted in %d regions by the ack of a node that does not hold its slot", "theirs", n)
		}
		if n := applied([]uint16{mine}); n != 1 {
			t.Errorf("a write of %q counted in %d regions by the ack of its slot's node; want 1", "mine", n)
		}
		if n := applied(nil); n != 0 {
			t.Errorf("every write so far counted in %d regions with one slot vouched for; want 0", n)
		}
		// eu2 holds every slot but "mine"'s: together they cover the region.
		peers["eu2"].send(&wire.Vouched{Origin: 1, Slots: slotsExcept("mine")})
		peers["eu2"].send(&wire.Ack{Origin: 1, Seq: seq})
		for _, slots := range [][]uint16{{theirs}, {mine, theirs}, nil} {
			if n := applied(slots); n != 1 {
				t.Errorf("slots %v: counted in %d regions; want 1", slots, n)
			}
		}
		// eu2 stops holding "theirs"'s slot (it moved): its ack no longer
		// speaks for that slot.
		peers["eu2"].send(&wire.Vouched{Origin: 1, Slots: slotsExcept("mine", "theirs")})
		if n := applied([]uint16{theirs}); n != 0 {
			t.Errorf("after its node stopped vouching for it: counted in %d regions; want 0", n)
		}

		// Slots vouched for another origin's writes are a protocol error:
		// the link closes, and what eu1 vouched for before stays.
		peers["eu1"].send(&wire.Vouched{Origin: 7})
		if rej := dataAs[*wire.Reject](t, peers["eu1"]); rej.Code != wire.RejectBadFrame || !strings.Contains(rej.Message, "vouched") {
			t.Errorf("Reject %v %q", rej.Code, rej.Message)
		}
		if n := applied([]uint16{mine}); n != 1 {
			t.Errorf("after eu1's link closed: counted in %d regions; want 1 (it applied the write)", n)
		}
	})
}

// A receiving node says which keys its acks speak for right after its
// Resume, and again before the first ack after that changed: never an ack
// that speaks for slots it no longer holds all of.
func TestReceiverVouchesBeforeItsAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		var vouched atomic.Pointer[[]byte]
		first := bytes.Repeat([]byte{0xff}, wire.SlotSetLen)
		vouched.Store(&first)
		startTestNode(t, mem, "a", Config{NodeID: 1, Vouched: func() []byte { return *vouched.Load() }}, true)
		p := dialFake(t, mem, "fake", "a")
		p.vouches = true
		p.send(fakeHello(fakeID))
		recvAs[*wire.Hello](t, p)
		recvAs[*wire.Resume](t, p)
		if v := recvAs[*wire.Vouched](t, p); v.Origin != fakeID || !bytes.Equal(v.Slots, first) {
			t.Fatalf("after the Resume: %+v; want the node's slots", v)
		}
		p.emptySync(fakeID) // its ack follows at once: nothing changed

		ts := nowTS()
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("a", "1", ts, fakeID)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		next := make([]byte, wire.SlotSetLen) // it gave up every slot
		vouched.Store(&next)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("b", "1", ts, fakeID)}})
		if v := recvAs[*wire.Vouched](t, p); !bytes.Equal(v.Slots, next) {
			t.Fatalf("before the next ack: %d bytes vouched, not the new set", len(v.Slots))
		}
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 2 {
			t.Fatalf("Ack %d, want 2", ack.Seq)
		}
	})
}

// A peer that skipped a write (it did not hold the key's slot) and
// acknowledged it comes back asking for a full sync and vouching for every
// slot. Its old acks do not speak for it until the snapshot lands and it
// acknowledges again: before, the origin counted the write applied in the
// peer's region while the peer held nothing of it.
func TestFullSyncAskStartsAcksOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "eu1")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us", Peers: []string{"eu1"}}, false)
		seq := a.put(t, "theirs", "v")
		h := fakeHello(fakeID)
		h.Region, h.NodeName = "eu", "eu1"
		applied := func() int {
			t.Helper()
			synctest.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, _ := a.r.Wait(ctx, seq, []uint16{uint16(cluster.KeySlot("theirs"))}, 1)
			return n
		}

		p := ln.accept()
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		dataAs[*wire.Ops](t, p)
		p.send(&wire.Vouched{Origin: 1, Slots: slotsOf("mine")}) // not "theirs"'s slot
		p.send(&wire.Ack{Origin: 1, Seq: seq})                   // skipped, acknowledged
		if n := applied(); n != 0 {
			t.Fatalf("a skipped write counted in %d regions; want 0", n)
		}

		p.c.Close()
		p = ln.accept()
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 0, HLC: uint64(nowTS())})
		p.send(&wire.Vouched{Origin: 1}) // nil: every key
		if n := applied(); n != 0 {
			t.Errorf("counted in %d regions by a peer that asked for a full sync and holds none of it; want 0", n)
		}
		begin, _ := recvSnapshot(t, p)
		p.send(&wire.Ack{Origin: 1, Seq: begin.Seq})
		if n := applied(); n != 1 {
			t.Errorf("counted in %d regions once the snapshot is acknowledged; want 1", n)
		}
	})
}

// A receiver taking a long full sync keeps the origin's reader alive with
// acks of 0, not with its last ack: the origin started its acks over when
// it asked for the full sync, and a repeat of the old position would count
// again, for the slots it vouches for now, before the snapshot landed.
func TestSnapshotKeepAliveAcksNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		startTestNode(t, mem, "a", Config{NodeID: 1, TombstoneHorizon: time.Second, PingInterval: 100 * time.Millisecond}, true)

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("k", "v", nowTS(), fakeID)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		p.c.Close()

		time.Sleep(2 * time.Second) // past the horizon: a asks for a full sync
		p = dialFake(t, mem, "fake", "a")
		if _, r := p.open(fakeHello(fakeID)); r.NextSeq != 0 {
			t.Fatalf("Resume at %d after the horizon, want 0 (full sync)", r.NextSeq)
		}
		p.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 5, HLC: uint64(nowTS())})
		time.Sleep(time.Second) // a slow snapshot
		p.send(&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{setOp("k", "v2", nowTS(), fakeID)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 0 {
			t.Errorf("keep-alive during the snapshot acknowledges %d, want 0", ack.Seq)
		}
		p.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 5 {
			t.Errorf("ack after the snapshot %d, want 5", ack.Seq)
		}
	})
}
