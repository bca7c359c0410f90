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

// Tests of relays (relay.go): a co-owner of a slot takes the writes of
// other regions' origins from the slot's primary in its region.

// standInOf is the fake origin's stand-in of a write of key stamped ts.
func standInOf(key string, ts hlc.Timestamp) wire.Op {
	return wire.Op{Kind: wire.KindRelayed, ExpireAt: int64(cluster.KeySlot(key)), HLC: uint64(ts), VOrigin: fakeID}
}

// primaryID is the fake primary's node id: a peer of the receiver's region.
const primaryID = 98

// fakePrimary connects to node "a" as a peer of a's region, which relays.
func fakePrimary(t *testing.T, mem *testkit.Network) *fakePeer {
	t.Helper()
	p := dialFake(t, mem, "primary", "a")
	h := fakeHello(primaryID)
	h.Region, h.NodeName = "local", "primary"
	p.open(h)
	p.emptySync(primaryID)
	return p
}

// relayedSlots is a receiver's slots taken relayed, which a test can
// change: RelayedSlots reads it.
type relayedSlots struct{ set atomic.Pointer[[]byte] }

// newRelayedSlots returns the slots of keys (none: nil, no slot).
func newRelayedSlots(keys ...string) *relayedSlots {
	r := &relayedSlots{}
	r.store(keys...)
	return r
}

func (r *relayedSlots) store(keys ...string) {
	var set []byte
	if len(keys) > 0 {
		set = slotsOf(keys...)
	}
	r.set.Store(&set)
}

func (r *relayedSlots) config(cfg Config) Config {
	cfg.RelayedSlots = func() []byte { return *r.set.Load() }
	return cfg
}

// relayingConfig keeps "mine" and "rel" (kept) and takes "rel"'s slot
// relayed (relayed), with a RelayWait of 2 s.
func relayingConfig() (cfg Config, kept *keptSlots, relayed *relayedSlots) {
	kept, relayed = newKeptSlots(slotsOf("mine", "rel")), newRelayedSlots("rel")
	return relayed.config(kept.config(Config{NodeID: 1, RelayWait: 2 * time.Second})), kept, relayed
}

// relayingReceiver starts node a keeping "mine" and "rel" and taking
// "rel"'s slot relayed, streamed to by the fake origin (region "fake").
func relayingReceiver(t *testing.T, mem *testkit.Network) (*node, *fakePeer, *wire.Resume) {
	t.Helper()
	cfg, _, _ := relayingConfig()
	return keepingReceiver(t, mem, cfg)
}

// The origin sends whole the writes of the slots its peer keeps, and a
// stand-in (version and slot) for each write of a slot the peer takes
// relayed, except inside a batch and for a value too large for a frame.
func TestSenderSendsStandInsOfRelayedSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		fl := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, BatchBytes: 64 << 10}, false)
		p := fl.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS()), Keeps: slotsOf("mine", "rel"), Relayed: slotsOf("rel")})

		a.put(t, "mine", "1")
		a.put(t, "rel", "2")
		f := dataAs[*wire.Ops](t, p)
		ops := f.Ops
		if len(ops) < 2 {
			ops = append(ops, dataAs[*wire.Ops](t, p).Ops...)
		}
		if w := ops[0]; w.Kind != wire.KindSet || w.Key != "mine" {
			t.Errorf("op 1: %+v, want the set of mine whole", w)
		}
		if w := ops[1]; w.Kind != wire.KindRelayed || w.Key != "" || w.Value != nil || w.ExpireAt != int64(cluster.KeySlot("rel")) || w.VOrigin != a.id {
			t.Errorf("op 2: %+v, want a stand-in of slot %d", w, cluster.KeySlot("rel"))
		}

		// A batch goes whole: its ops apply as one unit.
		ts, err := a.clock.Now()
		if err != nil {
			t.Fatal(err)
		}
		a.r.AppendBatch([]store.Op{
			{Kind: store.KindSet, Key: "rel", Value: []byte("3"), Version: store.Version{HLC: ts, Origin: a.id}},
			{Kind: store.KindSet, Key: "mine", Value: []byte("3"), Version: store.Version{HLC: ts, Origin: a.id}},
		})
		var batch []wire.Op
		for len(batch) < 3 {
			batch = append(batch, dataAs[*wire.Ops](t, p).Ops...)
		}
		if w := batch[1]; w.Kind != wire.KindSet || w.Key != "rel" {
			t.Errorf("rel inside a batch: %+v, want it whole", w)
		}

		// A value too large for a frame goes whole, in parts.
		big := strings.Repeat("x", 100<<10)
		a.put(t, "rel", big)
		if lo := dataAs[*wire.LargeOp](t, p); lo.Op.Key != "rel" {
			t.Errorf("large op %+v, want rel's whole", lo.Op)
		}
		if st := a.r.Stats(); st.Links[0].StandIns != 1 {
			t.Errorf("link stats: %d stand-ins, want 1", st.Links[0].StandIns)
		}
	})
}

// A receiver taking a slot relayed names it in its Resume, owes each
// stand-in of it until the slot's primary in its region relays the write,
// and acknowledges nothing from the write owed on meanwhile; the relay's
// arrival acknowledges at once. A relay that arrives before its stand-in
// settles it when it comes.
func TestReceiverOwesStandInsUntilRelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p, r := relayingReceiver(t, mem)
		if !bytes.Equal(r.Relayed, slotsOf("rel")) || !bytes.Equal(r.Keeps, slotsOf("mine", "rel")) {
			t.Fatalf("Resume names relayed %v and kept %v, want rel's slot and both", r.Relayed != nil, r.Keeps != nil)
		}
		prim := fakePrimary(t, mem)
		ts := at(time.Millisecond)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp("mine", "1", ts, fakeID),
			standInOf("rel", ts+1),
			setOp("mine", "3", ts+2, fakeID),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1: write 2 is owed", ack.Seq)
		}
		if a.value("mine") != "3" {
			t.Errorf("mine = %q: the writes after the one owed are applied all the same", a.value("mine"))
		}
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{2}, Ops: []wire.Op{setOp("rel", "2", ts+1, fakeID)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 3 {
			t.Fatalf("Ack %d after the relay, want 3", ack.Seq)
		}
		if a.value("rel") != "2" {
			t.Errorf("rel = %q after its relay, want 2", a.value("rel"))
		}

		// The relay first, then the stand-in: acknowledged at once.
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{4}, Ops: []wire.Op{setOp("rel", "4", ts+3, fakeID)}})
		synctest.Wait()
		if a.value("rel") != "4" {
			t.Errorf("rel = %q, want the early relay's 4", a.value("rel"))
		}
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 4, Ops: []wire.Op{standInOf("rel", ts+3)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 4 {
			t.Fatalf("Ack %d, want 4: the relay came first", ack.Seq)
		}
		// A relay of a write applied whole, or of another incarnation,
		// settles nothing.
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{3}, Ops: []wire.Op{setOp("mine", "3", ts+2, fakeID)}})
		synctest.Wait()
		if st := a.r.Stats(); st.RelaysApplied != 2 || st.RelaysIgnored != 1 || st.RelaysMissed != 0 {
			t.Errorf("relays applied %d, ignored %d, missed %d; want 2, 1, 0", st.RelaysApplied, st.RelaysIgnored, st.RelaysMissed)
		}
	})
}

// A write owed longer than RelayWait (its primary died, or sees another
// map) ends the stream: it resumes from the write with every slot whole,
// and names the slot relayed again once past where it stood and after a
// backoff.
func TestMissedRelayResumesWithTheWriteWhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p, _ := relayingReceiver(t, mem)
		ts := at(time.Millisecond)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp("mine", "1", ts, fakeID),
			standInOf("rel", ts+1),
			setOp("mine", "3", ts+2, fakeID),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		time.Sleep(a.r.cfg.RelayWait + time.Millisecond)
		p.send(&wire.Ping{SentNanos: time.Now().UnixNano()})
		p.expectReject(wire.RejectKeeps)
		p.expectClosed()

		p2 := dialFake(t, mem, "fake", "a")
		_, r := p2.open(fakeHello(fakeID))
		if r.NextSeq != 2 || r.Relayed != nil || !bytes.Equal(r.Keeps, slotsOf("mine", "rel")) {
			t.Fatalf("Resume at %d naming relayed slots %v; want 2 and none", r.NextSeq, r.Relayed != nil)
		}
		p2.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{setOp("rel", "2", ts+1, fakeID), setOp("mine", "3", ts+2, fakeID)}})
		if ack := recvAs[*wire.Ack](t, p2); ack.Seq != 3 {
			t.Fatalf("Ack %d, want 3", ack.Seq)
		}
		if a.value("rel") != "2" {
			t.Errorf("rel = %q, want 2 (whole)", a.value("rel"))
		}
		// Past the point of the miss, and after a backoff of RelayWait
		// (doubling at each miss in a row), the slot is named relayed
		// again.
		p2.send(&wire.Ping{SentNanos: time.Now().UnixNano()})
		recvAs[*wire.Pong](t, p2)
		time.Sleep(a.r.cfg.RelayWait)
		p2.send(&wire.Ping{SentNanos: time.Now().UnixNano()})
		if k := recvAs[*wire.Keeps](t, p2); !bytes.Equal(k.Relayed, slotsOf("rel")) {
			t.Fatalf("Keeps after the point of the miss names relayed %v, want rel's slot again", k.Relayed != nil)
		}
		if st := a.r.Stats(); st.RelaysMissed != 1 {
			t.Errorf("relays missed %d, want 1", st.RelaysMissed)
		}
	})
}

// A stand-in of a slot the receiver no longer takes relayed (it became the
// slot's primary) ends the stream at once, which resumes from it whole; a
// stand-in of a slot it no longer keeps is a skip.
func TestStandInOfASlotTakenWholeNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cfg, kept, relayed := relayingConfig()
		a, p, _ := keepingReceiver(t, mem, cfg)
		ts := at(time.Millisecond)
		shrunk := slotsOf("mine")
		kept.set.Store(&shrunk)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{standInOf("rel", ts)}})
		if k := recvAs[*wire.Keeps](t, p); !bytes.Equal(k.Slots, shrunk) {
			t.Fatalf("Keeps naming %v, want mine's slot alone", k.Slots != nil)
		}
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1: a stand-in of a slot not kept owes nothing", ack.Seq)
		}

		grown := slotsOf("mine", "rel")
		kept.set.Store(&grown)
		relayed.store()
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{standInOf("rel", ts+1)}})
		if k := recvAs[*wire.Keeps](t, p); !bytes.Equal(k.Slots, grown) || k.Relayed != nil {
			t.Fatalf("Keeps naming the grown slots %v and relayed %v; want true and none", bytes.Equal(k.Slots, grown), k.Relayed != nil)
		}
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		p.expectReject(wire.RejectKeeps)
		_, r := dialFake(t, mem, "fake", "a").open(fakeHello(fakeID))
		if r.NextSeq != 2 || r.Relayed != nil {
			t.Fatalf("Resume at %d naming relayed %v; want 2 and none", r.NextSeq, r.Relayed != nil)
		}
		if a.r.Stats().KeepsGrew != 1 {
			t.Errorf("keeps grew %d, want 1", a.r.Stats().KeepsGrew)
		}
	})
}

// Relays come only from this region's nodes, of another node's writes, of
// kinds relayed: anything else ends the connection, and the node serves on.
func TestRelaysRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		region string
		relay  wire.Relay
	}{
		"from another region": {"fake", wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{1}, Ops: []wire.Op{setOp("rel", "x", 1, fakeID)}}},
		"of the relayer":      {"local", wire.Relay{Origin: primaryID, Incarnation: 7, Seqs: []uint64{1}, Ops: []wire.Op{setOp("rel", "x", 1, fakeID)}}},
		"of this node":        {"local", wire.Relay{Origin: 1, Incarnation: 7, Seqs: []uint64{1}, Ops: []wire.Op{setOp("rel", "x", 1, 1)}}},
		"of a delete":         {"local", wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{1}, Ops: []wire.Op{{Kind: wire.KindDelete, Key: "rel", HLC: 1, VOrigin: fakeID}}}},
		"of sequence 0":       {"local", wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{0}, Ops: []wire.Op{setOp("rel", "x", 1, fakeID)}}},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				a, p, _ := relayingReceiver(t, mem)
				q := dialFake(t, mem, "other", "a")
				h := fakeHello(primaryID)
				h.Region = tc.region
				q.open(h)
				q.emptySync(primaryID)
				f := tc.relay
				q.send(&f)
				q.expectReject(wire.RejectBadFrame)
				if a.value("rel") != "" {
					t.Errorf("rel = %q from a refused relay", a.value("rel"))
				}
				// The node still serves the origin's stream.
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", at(time.Millisecond), fakeID)}})
				if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 || a.value("mine") != "1" {
					t.Fatalf("Ack %d, mine %q; want 1 and 1", ack.Seq, a.value("mine"))
				}
			})
		})
	}
}

// Three replicators: the origin o of region "far", and p and s of region
// "local" which both keep the slot of "k"; p is its primary and relays to
// s (RelayTo), s takes it relayed. o's writes of k reach s as stand-ins
// and are relayed by p; s's acks count them once relayed. When p stops
// relaying, s's wait ends and the write reaches it whole.
func TestRelayBetweenReplicators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		k := slotsOf("k")
		var relayTo atomic.Pointer[[]string]
		to := []string{"s"}
		relayTo.Store(&to)
		s := startTestNode(t, mem, "s", Config{NodeID: 3,
			KeptSlots: func() []byte { return k }, KeepsSlot: func(slot int) bool { return slotIn(k, slot) },
			Keeps:        func(key string) bool { return slotIn(k, cluster.KeySlot(key)) },
			RelayedSlots: func() []byte { return k },
		}, true)
		p := startTestNode(t, mem, "p", Config{NodeID: 2, Peers: []string{"s"},
			RelayTo: func(slot int) []string {
				if slotIn(k, slot) {
					return *relayTo.Load()
				}
				return nil
			},
		}, true)
		o := startTestNode(t, mem, "o", Config{NodeID: 1, Region: "far", Peers: []string{"p", "s"}}, false)
		time.Sleep(time.Minute) // links up, first syncs done
		synctest.Wait()

		o.put(t, "k", "1")
		testkit.Eventually(t, "k on s", func() bool { return s.value("k") == "1" })
		testkit.Eventually(t, "o's writes acknowledged by s", func() bool { return o.link(t, "s").Lag == 0 })
		if l := o.link(t, "s"); l.StandIns != 1 {
			t.Errorf("o sent s %d stand-ins, want 1", l.StandIns)
		}
		if st := p.r.Stats(); st.RelaysSent != 1 {
			t.Errorf("p relayed %d writes, want 1", st.RelaysSent)
		}
		if st := s.r.Stats(); st.RelaysApplied != 1 || st.RelaysMissed != 0 {
			t.Errorf("s applied %d relays and missed %d, want 1 and 0", st.RelaysApplied, st.RelaysMissed)
		}

		relayTo.Store(new([]string)) // p stops relaying: s's wait ends, and k comes whole
		o.put(t, "k", "2")
		testkit.Eventually(t, "k 2 on s", func() bool { return s.value("k") == "2" })
		testkit.Eventually(t, "o's writes acknowledged by s", func() bool { return o.link(t, "s").Lag == 0 })
		if st := s.r.Stats(); st.RelaysMissed != 1 {
			t.Errorf("s missed %d relays, want 1", st.RelaysMissed)
		}
	})
}

// A write owed of a slot the node no longer takes relayed (the map
// changed: it became the slot's primary) ends the stream at once, without
// waiting for RelayWait, and the stream resumes from it with the slot
// whole.
func TestOwedWriteOfASlotTakenWholeNowResumesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cfg, _, relayed := relayingConfig()
		a, p, _ := keepingReceiver(t, mem, cfg)
		ts := at(time.Millisecond)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", ts, fakeID), standInOf("rel", ts+1)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		relayed.store()
		p.send(&wire.Ping{SentNanos: time.Now().UnixNano()})
		if k := recvAs[*wire.Keeps](t, p); k.Relayed != nil {
			t.Fatal("Keeps still names slots relayed")
		}
		p.expectReject(wire.RejectKeeps)
		_, r := dialFake(t, mem, "fake", "a").open(fakeHello(fakeID))
		if r.NextSeq != 2 || r.Relayed != nil {
			t.Fatalf("Resume at %d naming relayed %v; want 2 and none", r.NextSeq, r.Relayed != nil)
		}
		if st := a.r.Stats(); st.RelaysMissed != 0 || st.KeepsGrew != 1 {
			t.Errorf("relays missed %d, keeps grew %d; want 0 and 1", st.RelaysMissed, st.KeepsGrew)
		}
	})
}

// A stream that resumes from a write owed sends again the writes after
// it, as stand-ins: those already relayed are settled by the relays
// remembered, and only the one owed waits.
func TestResumedStandInsSettledByEarlierRelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p, _ := relayingReceiver(t, mem)
		prim := fakePrimary(t, mem)
		ts := at(time.Millisecond)
		stand := []wire.Op{standInOf("rel", ts+1), standInOf("rel", ts+2)}
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", ts, fakeID), stand[0], stand[1]}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{3}, Ops: []wire.Op{setOp("rel", "3", ts+2, fakeID)}})
		synctest.Wait()
		p.c.Close() // the origin's connection drops with write 2 owed

		p2 := dialFake(t, mem, "fake", "a")
		_, r := p2.open(fakeHello(fakeID))
		if r.NextSeq != 2 || r.Relayed == nil {
			t.Fatalf("Resume at %d naming relayed %v; want 2 and rel's slot", r.NextSeq, r.Relayed != nil)
		}
		p2.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: stand})
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{2}, Ops: []wire.Op{setOp("rel", "2", ts+1, fakeID)}})
		for {
			ack := recvAs[*wire.Ack](t, p2)
			if ack.Seq == 3 {
				break
			}
			if ack.Seq != 1 {
				t.Fatalf("Ack %d, want 1 (write 2 owed) then 3", ack.Seq)
			}
		}
		if a.value("rel") != "3" || a.r.Stats().RelaysMissed != 0 {
			t.Errorf("rel = %q, relays missed %d; want 3 and 0", a.value("rel"), a.r.Stats().RelaysMissed)
		}
	})
}

// A full sync this node sends does not vouch for a slot with a write owed:
// it does not hold that write yet, and the receiver's drop rule, judging
// by this snapshot, could drop it (the receiver's own write, sent to this
// node as a stand-in and not relayed yet).
func TestSnapshotDoesNotVouchForSlotsWithWritesOwed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		kept := slotsOf("mine", "rel")
		cfg := newKeptSlots(kept).config(Config{NodeID: 1, Peers: []string{"asker"}})
		relayed := slotsOf("rel")
		cfg.RelayedSlots = func() []byte { return relayed }
		cfg.Vouched = func() []byte { return kept }
		fl := listenFake(t, mem, "asker")
		startTestNode(t, mem, "a", cfg, true)
		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		ts := at(time.Millisecond)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{standInOf("rel", ts)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 0 {
			t.Fatalf("Ack %d, want 0: write 1 is owed", ack.Seq)
		}

		q := fl.accept()
		q.answer(fakeHello(fakeID + 1))
		q.send(&wire.Resume{Origin: 1, NextSeq: 0, HLC: uint64(nowTS())})
		b := dataAs[*wire.SnapshotBegin](t, q)
		if b.Vouched == nil || slotIn(b.Vouched, cluster.KeySlot("rel")) || !slotIn(b.Vouched, cluster.KeySlot("mine")) {
			t.Fatalf("the snapshot vouches for rel's slot %v and mine's %v; want false and true",
				b.Vouched == nil || slotIn(b.Vouched, cluster.KeySlot("rel")), b.Vouched != nil && slotIn(b.Vouched, cluster.KeySlot("mine")))
		}
		if !slotIn(kept, cluster.KeySlot("rel")) {
			t.Fatal("the node's own vouched set was modified")
		}
	})
}

// A relay of a write whose slot this node does not keep (the primary saw
// a map change first) is not held, so it is not remembered: when the node
// comes to keep the slot and take it relayed, the write's stand-in is
// owed, never acknowledged without the write.
func TestRelayOfAnUnkeptSlotSettlesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cfg, kept, relayed := relayingConfig()
		mine := slotsOf("mine")
		kept.set.Store(&mine)
		relayed.store()
		a, p, _ := keepingReceiver(t, mem, cfg)
		prim := fakePrimary(t, mem)
		ts := at(time.Millisecond)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", ts, fakeID)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{2}, Ops: []wire.Op{setOp("rel", "2", ts+1, fakeID)}})
		synctest.Wait()
		grown := slotsOf("mine", "rel")
		kept.set.Store(&grown)
		relayed.store("rel")
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{standInOf("rel", ts+1)}})
		recvAs[*wire.Keeps](t, p)
		if ack := recvAs[*wire.Ack](t, p); ack.Seq >= 2 {
			t.Fatalf("write 2 acknowledged (Ack %d), rel = %q here", ack.Seq, a.value("rel"))
		}
	})
}

// A relay that arrives while this node takes its full sync from the
// origin is remembered through it: the write's stand-in in the log
// replayed after the sync is settled at once.
func TestRelayDuringAFullSyncRemembered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cfg, _, _ := relayingConfig()
		a := startTestNode(t, mem, "a", cfg, true)
		prim := fakePrimary(t, mem)
		p := dialFake(t, mem, "fake", "a")
		if _, r := p.open(fakeHello(fakeID)); r.NextSeq != 0 || r.Relayed == nil {
			t.Fatalf("Resume at %d naming relayed %v; want 0 (a full sync) and rel's slot", r.NextSeq, r.Relayed != nil)
		}
		ts := at(time.Millisecond)
		p.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 0, HLC: uint64(nowTS())})
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{1}, Ops: []wire.Op{setOp("rel", "1", ts, fakeID)}})
		synctest.Wait()
		p.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)})
		recvAs[*wire.Ack](t, p)
		if a.value("rel") != "1" {
			t.Fatalf("rel = %q, want the relay's 1", a.value("rel"))
		}
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{standInOf("rel", ts)}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1: the write is held, relayed during the sync", ack.Seq)
		}
	})
}

// A relay remembered of a slot this node then stops keeping (it forgets
// the slot's entries) settles nothing when the slot comes back.
func TestRelayRememberedForgottenWithItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cfg, kept, _ := relayingConfig()
		_, p, _ := keepingReceiver(t, mem, cfg)
		prim := fakePrimary(t, mem)
		ts := at(time.Millisecond)
		prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{2}, Ops: []wire.Op{setOp("rel", "2", ts+1, fakeID)}})
		synctest.Wait()
		lost := slotsOf("mine")
		kept.set.Store(&lost)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", ts, fakeID)}})
		recvAs[*wire.Keeps](t, p)
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d, want 1", ack.Seq)
		}
		back := slotsOf("mine", "rel")
		kept.set.Store(&back)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{standInOf("rel", ts+1)}})
		recvAs[*wire.Keeps](t, p)
		if ack := recvAs[*wire.Ack](t, p); ack.Seq >= 2 {
			t.Fatalf("write 2 acknowledged (Ack %d) by a relay of a slot lost since", ack.Seq)
		}
	})
}

// The node layer forgets a slot's entries after ForgetRelayed: a relay
// remembered of the slot then settles nothing, even when the slot is lost
// and kept again between two frames of the origin, or while the origin
// is away.
func TestForgetRelayedWithTheSlotsEntries(t *testing.T) {
	for _, away := range []bool{false, true} {
		t.Run(map[bool]string{false: "between frames", true: "while away"}[away], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				cfg, kept, _ := relayingConfig()
				a, p, _ := keepingReceiver(t, mem, cfg)
				prim := fakePrimary(t, mem)
				ts := at(time.Millisecond)
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", ts, fakeID)}})
				if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
					t.Fatalf("Ack %d, want 1", ack.Seq)
				}
				prim.send(&wire.Relay{Origin: fakeID, Incarnation: 7, Seqs: []uint64{2}, Ops: []wire.Op{setOp("rel", "2", ts+1, fakeID)}})
				synctest.Wait()
				if away {
					p.c.Close()
					synctest.Wait()
				}
				lost := slotsOf("mine")
				kept.set.Store(&lost)
				keeps := func(slot int) bool { return slotIn(*kept.set.Load(), slot) }
				a.r.ForgetRelayed(keeps) // as the node layer does, then:
				a.st.Forget(func(key string) bool { return !keeps(cluster.KeySlot(key)) })
				back := slotsOf("mine", "rel")
				kept.set.Store(&back)
				if away {
					p = dialFake(t, mem, "fake", "a")
					if _, r := p.open(fakeHello(fakeID)); r.NextSeq != 2 {
						t.Fatalf("Resume at %d, want 2", r.NextSeq)
					}
				}
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{standInOf("rel", ts+1)}})
				for {
					f, err := p.recv()
					if err != nil {
						t.Fatal(err)
					}
					if ack, ok := f.(*wire.Ack); ok {
						if ack.Seq >= 2 {
							t.Fatalf("write 2 acknowledged (Ack %d) with rel = %q here", ack.Seq, a.value("rel"))
						}
						break
					}
				}
			})
		})
	}
}

// A slot sync is answered for every slot asked, whatever writes the owner
// owes: the asker is of its region, and the barrier has the owner hold
// every write the asker named.
func TestSlotSyncWhileTheOwnerOwesAWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		kept := slotsOf("mine", "rel")
		cfg := newKeptSlots(kept).config(Config{NodeID: 1, RelayWait: time.Minute})
		relayed := slotsOf("rel")
		cfg.RelayedSlots = func() []byte { return relayed }
		cfg.Vouched = func() []byte { return kept }
		startTestNode(t, mem, "a", cfg, true)
		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{standInOf("rel", at(time.Millisecond))}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 0 {
			t.Fatalf("Ack %d, want 0", ack.Seq)
		}
		b := startTestNode(t, mem, "b", Config{NodeID: 2}, false)
		if _, err := b.r.SlotSync(context.Background(), "a", slotsOf("rel")); err != nil {
			t.Fatalf("slot sync of rel's slot from a node owing one write of it: %v", err)
		}
	})
}

// An op too large for the origin's frames goes whole, in parts, even if
// under the stand-ins' bound: the primary gets it in parts and does not
// relay it.
func TestNoStandInOfAnOpLargeForTheOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		fl := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, BatchBytes: 16 << 10}, false)
		p := fl.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS()), Keeps: slotsOf("mine", "rel"), Relayed: slotsOf("rel")})
		a.put(t, "rel", strings.Repeat("x", 20<<10))
		if f := p.recvData(); func() bool { _, ok := f.(*wire.LargeOp); return !ok }() {
			t.Fatalf("a 20 KiB op with 16 KiB frames sent as %T, want a LargeOp", f)
		}
	})
}

// A peer that keeps every key (full copies) may take some slots relayed
// all the same: the origin sends their writes as stand-ins and the others
// whole; a full sync it sends while owing a write vouches for every slot
// but the write's.
func TestRelaysToAPeerKeepingEveryKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p := skippingOrigin(t, mem, nil)
		p.send(&wire.Keeps{Origin: 1, Relayed: slotsOf("rel")})
		synctest.Wait()
		a.put(t, "mine", "1")
		a.put(t, "rel", "2")
		var ops []wire.Op
		for len(ops) < 2 {
			ops = append(ops, dataAs[*wire.Ops](t, p).Ops...)
		}
		if ops[0].Kind != wire.KindSet || ops[1].Kind != wire.KindRelayed {
			t.Fatalf("ops %v and %v, want the set of mine whole and a stand-in of rel", ops[0].Kind, ops[1].Kind)
		}

		// The receiving side, keeping every key.
		startTestNode(t, mem, "b", newRelayedSlots("rel").config(Config{NodeID: 2, Peers: []string{"asker"}}), true)
		fl := listenFake(t, mem, "asker")
		q := dialFake(t, mem, "fake", "b")
		if _, r := q.open(fakeHello(fakeID)); r.Keeps != nil || !bytes.Equal(r.Relayed, slotsOf("rel")) {
			t.Fatalf("Resume naming kept %v and relayed %v; want every key and rel's slot", r.Keeps != nil, r.Relayed != nil)
		}
		q.emptySync(fakeID)
		q.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{standInOf("rel", at(time.Millisecond))}})
		if ack := recvAs[*wire.Ack](t, q); ack.Seq != 0 {
			t.Fatalf("Ack %d, want 0: write 1 is owed", ack.Seq)
		}
		asker := fl.accept()
		asker.answer(fakeHello(fakeID + 1))
		asker.send(&wire.Resume{Origin: 2, NextSeq: 0, HLC: uint64(nowTS())})
		sb := dataAs[*wire.SnapshotBegin](t, asker)
		if sb.Vouched == nil || slotIn(sb.Vouched, cluster.KeySlot("rel")) || !slotIn(sb.Vouched, cluster.KeySlot("mine")) {
			t.Fatalf("the snapshot of a node keeping every key and owing a write of rel vouches for every slot but rel's: %v", sb.Vouched != nil)
		}
	})
}
