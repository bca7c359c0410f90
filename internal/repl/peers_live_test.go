package repl

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Peers added and removed while the replicator runs (AddPeer, RemovePeer,
// Peers), against fake peers.

// streamedKeys reads what a sending node streams on p — Ops or a full
// sync, whichever it chooses — until every key of want has come, and
// returns the sequence number that follows.
func streamedKeys(t *testing.T, p *fakePeer, want []string) uint64 {
	t.Helper()
	missing := map[string]bool{}
	for _, k := range want {
		missing[k] = true
	}
	var next uint64
	inSync := false
	for len(missing) > 0 || inSync {
		switch f := p.recvData().(type) {
		case *wire.Ops:
			for _, op := range f.Ops {
				delete(missing, op.Key)
			}
			next = f.FirstSeq + uint64(len(f.Ops))
		case *wire.SnapshotBegin:
			next, inSync = f.Seq+1, true
		case *wire.SnapshotChunk:
			for _, op := range f.Ops {
				delete(missing, op.Key)
			}
		case *wire.SnapshotEnd:
			inSync = false
		default:
			t.Fatalf("unexpected %T while streaming", f)
		}
	}
	return next
}

// ackedPeer is node a peered with the fake p1 (node 11), which took a's
// writes and acknowledged them up to seq (ackingPeer).
type ackedPeer struct {
	a   *node
	ln  *fakeListener
	p   *fakePeer
	h   *wire.Hello
	seq uint64
}

// ackingPeer starts node a (id 1, cfg otherwise) with the fake peer p1 of
// region, writes keys on a, and has p1 receive and acknowledge them.
func ackingPeer(t *testing.T, mem *testkit.Network, cfg Config, region string, keys ...string) *ackedPeer {
	t.Helper()
	ap := &ackedPeer{ln: listenFake(t, mem, "p1"), h: fakeHello(11)}
	cfg.NodeID, cfg.Peers = 1, []string{"p1"}
	ap.a = startTestNode(t, mem, "a", cfg, false)
	ap.h.Region = region
	ap.p = ap.ln.accept()
	ap.p.answer(ap.h)
	ap.p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
	for _, k := range keys {
		ap.seq = ap.a.put(t, k, "v")
	}
	for got := uint64(0); got < ap.seq; {
		ops := dataAs[*wire.Ops](t, ap.p)
		got = ops.FirstSeq + uint64(len(ops.Ops)) - 1
	}
	ap.p.send(&wire.Ack{Origin: 1, Seq: ap.seq})
	synctest.Wait()
	return ap
}

// askFullSync has the same p1 process connect again and ask for a full
// sync (of wanted slots; nil: all).
func (ap *ackedPeer) askFullSync(wanted []byte) *fakePeer {
	ap.p = ap.ln.accept()
	ap.p.answer(ap.h)
	ap.p.send(&wire.Resume{Origin: 1, NextSeq: 0, HLC: uint64(nowTS()), Wanted: wanted})
	return ap.p
}

// recvSnapshot reads a full sync on p: its SnapshotBegin and the keys of
// its chunks.
func recvSnapshot(t *testing.T, p *fakePeer) (*wire.SnapshotBegin, map[string]bool) {
	t.Helper()
	begin := dataAs[*wire.SnapshotBegin](t, p)
	keys := map[string]bool{}
	for {
		switch f := p.recvData().(type) {
		case *wire.SnapshotChunk:
			for _, op := range f.Ops {
				keys[op.Key] = true
			}
		case *wire.SnapshotEnd:
			return begin, keys
		}
	}
}

// A peer added to a running node is dialed at once and gets every write the
// node made, those before it was added included; adding it twice changes
// nothing.
func TestAddPeerLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us"}, false)
		for i := 1; i <= 3; i++ {
			a.put(t, fmt.Sprint("k", i), "v")
		}
		if got := a.r.Peers(); len(got) != 0 {
			t.Fatalf("Peers() = %v, want none", got)
		}

		ln := listenFake(t, mem, "p1")
		if !a.r.AddPeer("p1") {
			t.Fatal("AddPeer(p1) = false")
		}
		if a.r.AddPeer("p1") {
			t.Error("AddPeer(p1) twice = true")
		}
		if got := a.r.Peers(); !slices.Equal(got, []string{"p1"}) {
			t.Errorf("Peers() = %v, want [p1]", got)
		}
		if got := a.r.Regions(); got != 2 {
			t.Errorf("Regions() = %d, want 2 (us and p1's, not known yet)", got)
		}

		p := ln.accept() // dialed without waiting for anything else
		h := fakeHello(fakeID)
		h.Region = "eu"
		p.answer(h)
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		p.send(&wire.Vouched{Origin: 1}) // its acks speak for every key
		if next := streamedKeys(t, p, kN(1, 3)); next != 4 {
			t.Errorf("streamed up to %d, want 4", next)
		}
		seq := a.put(t, "k4", "v")
		if ops := dataAs[*wire.Ops](t, p); ops.FirstSeq != seq {
			t.Errorf("Ops from %d, want %d", ops.FirstSeq, seq)
		}
		p.send(&wire.Ack{Origin: 1, Seq: seq})
		if n, err := a.r.Wait(context.Background(), seq, nil, 1); n != 1 || err != nil {
			t.Errorf("Wait = %d, %v; want 1, nil", n, err)
		}
		if l := a.link(t, "p1"); !l.Connected || l.Region != "eu" || l.Acked != seq {
			t.Errorf("link %+v", l)
		}

		a.r.Close()
		if a.r.AddPeer("p2") {
			t.Error("AddPeer after Close = true")
		}
	})
}

// A removed peer's link stops and its connection closes; it is not
// redialed, leaves Stats, Peers and Regions, and no longer holds up Drain;
// the other links go on.
func TestRemovePeerLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln1 := listenFake(t, mem, "p1")
		ln2 := listenFake(t, mem, "p2")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Region: "us", Peers: []string{"p1", "p2", "down"}}, false)
		peers := map[string]*fakePeer{}
		for name, ln := range map[string]*fakeListener{"p1": ln1, "p2": ln2} {
			p := ln.accept()
			h := fakeHello(map[string]uint32{"p1": 11, "p2": 12}[name])
			h.Region = name + "-region"
			p.answer(h)
			p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
			peers[name] = p
		}
		synctest.Wait()
		if got := a.r.Regions(); got != 4 {
			t.Errorf("Regions() = %d, want 4 (us, p1's, p2's, and one for the peer never reached)", got)
		}

		seq := a.put(t, "k1", "v")
		for _, p := range peers {
			dataAs[*wire.Ops](t, p)
		}
		peers["p2"].send(&wire.Ack{Origin: 1, Seq: seq}) // p1 does not ack
		drained := make(chan error, 1)
		go func() { drained <- a.r.Drain(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with p1 behind", err)
		default:
		}

		if !a.r.RemovePeer("p1") {
			t.Fatal("RemovePeer(p1) = false")
		}
		peers["p1"].expectClosed()
		if err := <-drained; err != nil {
			t.Errorf("Drain after p1 left: %v", err)
		}
		if a.r.RemovePeer("p1") || a.r.RemovePeer("nobody") {
			t.Error("RemovePeer of an address that is not a peer = true")
		}
		if !a.r.RemovePeer("down") {
			t.Error("RemovePeer(down) = false")
		}
		if got := a.r.Peers(); !slices.Equal(got, []string{"p2"}) {
			t.Errorf("Peers() = %v, want [p2]", got)
		}
		var addrs []string
		for _, l := range a.r.Stats().Links {
			addrs = append(addrs, l.Addr)
		}
		if !slices.Equal(addrs, []string{"p2"}) {
			t.Errorf("links in Stats: %v, want [p2]", addrs)
		}
		if got := a.r.Regions(); got != 2 {
			t.Errorf("Regions() = %d after the removals, want 2 (us, p2's)", got)
		}

		// p1 is not dialed again; p2 streams on.
		redial := make(chan net.Conn, 1)
		go func() {
			if c, err := ln1.ln.Accept(); err == nil {
				redial <- c
			}
		}()
		seq = a.put(t, "k2", "v")
		if ops := dataAs[*wire.Ops](t, peers["p2"]); ops.FirstSeq != seq {
			t.Errorf("p2: Ops from %d, want %d", ops.FirstSeq, seq)
		}
		time.Sleep(3 * time.Second) // many reconnect backoffs
		synctest.Wait()
		select {
		case c := <-redial:
			c.Close()
			t.Error("the removed peer was dialed again")
		default:
		}
		ln1.ln.Close() // ends the Accept above
	})
}

// A peer reached at start that never syncs this node holds up Synced;
// removing it settles Synced.
func TestRemovePeerSettlesSynced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "p1")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"p1"}}, false)
		p := ln.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		<-a.r.ClockMerged()
		synctest.Wait()
		if isClosed(a.r.Synced()) {
			t.Fatal("synced before the peer's full sync, with the peer reached")
		}
		a.r.RemovePeer("p1")
		select {
		case <-a.r.Synced():
		case <-time.After(10 * time.Second): // well before SyncTimeout (1 min)
			t.Error("Synced still open after the only pending peer was removed")
		}
	})
}

// A peer removed and added again (a region member declared dead, then
// back after a partition) that asks for a full sync gets the log replayed
// from its last ack after the snapshot: what this node wrote meanwhile
// reaches it even if this node has since stopped holding it (a slot-owned
// node forgets the slots it no longer keeps before the full sync).
func TestReaddedPeerReplaysFromItsLastAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ap := ackingPeer(t, mem, Config{Region: "us"}, "us", "k1")
		a, seq := ap.a, ap.seq

		if !a.r.RemovePeer("p1") {
			t.Fatal("RemovePeer(p1) = false")
		}
		a.put(t, "k2", "written while p1 was cut off")
		if !a.r.AddPeer("p1") {
			t.Fatal("AddPeer(p1) = false")
		}
		p := ap.askFullSync(nil) // the same process
		recvSnapshot(t, p)
		ops := dataAs[*wire.Ops](t, p)
		if ops.FirstSeq != seq+1 || len(ops.Ops) == 0 || ops.Ops[0].Key != "k2" {
			t.Fatalf("after the snapshot: Ops from seq %d (%d ops); want the log replayed from %d, k2 first", ops.FirstSeq, len(ops.Ops), seq+1)
		}
	})
}

// A full sync cut off before the peer acknowledges it (a flaky network
// after a heal, or a second Resync) replays from the same last ack when
// the same process asks again, on the same link or on one removed and
// added back: the ack that starts the peer's counting over is not where
// the replay starts. Before, the second snapshot replayed nothing, and
// with a partial full sync (Wanted) the writes of the peer's other slots
// in between were in neither the snapshot nor the stream.
func TestFullSyncCutOffReplaysAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		readd  bool
		wanted bool
	}{{"same link", false, false}, {"removed and added", true, false}, {"wanted slots", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				ap := ackingPeer(t, mem, Config{Region: "us", Log: LogConfig{MaxRecords: 2}}, "eu", "k1", "k2")
				a, seq := ap.a, ap.seq
				ap.p.c.Close()
				synctest.Wait()
				a.put(t, "k3", "written while p1 was away")
				a.put(t, "k4", "written while p1 was away")
				synctest.Wait()
				var wanted []byte
				if tc.wanted {
					wanted = slotsOf("gained")
				}
				for attempt := 1; attempt <= 2; attempt++ {
					if attempt == 2 && tc.readd {
						a.r.RemovePeer("p1")
						a.r.AddPeer("p1")
					}
					p := ap.askFullSync(wanted) // the same process
					if b := dataAs[*wire.SnapshotBegin](t, p); b.Seq != seq {
						t.Fatalf("attempt %d: snapshot at seq %d; want %d, the log replayed from the last ack", attempt, b.Seq, seq)
					}
					p.c.Close() // cut off before the peer acknowledges it
					synctest.Wait()
				}
			})
		})
	}
}

// A partial full sync (Wanted slots) to a peer whose last ack the log no
// longer reaches back to carries every slot: the peer resumes after the
// snapshot for its other slots too, and their writes since its last ack
// would be in neither the snapshot nor the stream.
func TestPartialFullSyncPastTheLogCarriesEverySlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ap := ackingPeer(t, mem, Config{Region: "us", Log: LogConfig{MaxRecords: 2}}, "eu", "k1")
		a := ap.a
		ap.p.c.Close()
		synctest.Wait()
		for _, k := range []string{"k2", "k3", "k4"} { // the log keeps k3 and k4 only
			a.put(t, k, "written while p1 was away")
		}
		synctest.Wait()

		_, got := recvSnapshot(t, ap.askFullSync(slotsOf("gained")))
		if !got["k2"] {
			t.Errorf("snapshot keys %v: k2, written after p1's last ack and gone from the log, is missing", got)
		}
	})
}
