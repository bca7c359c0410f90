package repl

import (
	"bytes"
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

// Tests of skips (wire.KindSkip): a receiver that keeps only some slots
// says which in its Resume, and the origin sends the writes of the other
// slots' keys as their version and slot alone.

// keptSlots is a receiver's kept slots that a test can grow: KeptSlots and
// KeepsSlot read it.
type keptSlots struct{ set atomic.Pointer[[]byte] }

func newKeptSlots(set []byte) *keptSlots {
	k := &keptSlots{}
	k.set.Store(&set)
	return k
}

func (k *keptSlots) config(cfg Config) Config {
	cfg.KeptSlots = func() []byte { return bytes.Clone(*k.set.Load()) }
	cfg.KeepsSlot = func(slot int) bool { return slotIn(*k.set.Load(), slot) }
	cfg.Keeps = func(key string) bool { return slotIn(*k.set.Load(), cluster.KeySlot(key)) }
	return cfg
}

// skippingOrigin starts node a streaming its log to the fake peer, whose
// Resume names keeps (nil: every key).
func skippingOrigin(t *testing.T, mem *testkit.Network, keeps []byte) (*node, *fakePeer) {
	t.Helper()
	fl := listenFake(t, mem, "fake")
	a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
	p := fl.accept()
	p.answer(fakeHello(fakeID))
	p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS()), Keeps: keeps})
	return a, p
}

// keepingReceiver starts node a with cfg, which the fake peer streams to
// as an origin after an empty first sync; it returns a's Resume too.
func keepingReceiver(t *testing.T, mem *testkit.Network, cfg Config) (*node, *fakePeer, *wire.Resume) {
	t.Helper()
	a := startTestNode(t, mem, "a", cfg, true)
	p := dialFake(t, mem, "fake", "a")
	_, r := p.open(fakeHello(fakeID))
	p.emptySync(fakeID)
	return a, p, r
}

// skipOf is the fake origin's skip of a write of key stamped ts.
func skipOf(key string, ts hlc.Timestamp) wire.Op {
	return wire.Op{Kind: wire.KindSkip, ExpireAt: int64(cluster.KeySlot(key)), HLC: uint64(ts), VOrigin: fakeID}
}

// The origin sends whole the writes of the slots its peer keeps, deletes
// whatever their slot, and every other write as a skip: the write's
// version and slot, no key, no value.
func TestSenderSkipsWritesOfSlotsThePeerDoesNotKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p := skippingOrigin(t, mem, slotsOf("mine"))
		a.put(t, "mine", "1")
		a.put(t, "theirs", "2")
		ts, err := a.clock.Now()
		if err != nil {
			t.Fatal(err)
		}
		del := store.Op{Kind: store.KindDelete, Key: "theirs", Version: store.Version{HLC: ts, Origin: a.id}}
		a.st.Apply(del)
		a.r.Append(del)

		var ops []wire.Op
		for len(ops) < 3 {
			f := dataAs[*wire.Ops](t, p)
			if f.FirstSeq != uint64(len(ops))+1 {
				t.Fatalf("Ops from %d after %d ops", f.FirstSeq, len(ops))
			}
			ops = append(ops, f.Ops...)
		}
		if w := ops[0]; w.Kind != wire.KindSet || w.Key != "mine" || string(w.Value) != "1" {
			t.Errorf("op 1: %+v, want the set of mine", w)
		}
		skip := ops[1]
		if skip.Kind != wire.KindSkip || skip.Key != "" || skip.Value != nil || skip.ExpireAt != int64(cluster.KeySlot("theirs")) ||
			skip.HLC <= ops[0].HLC || skip.VOrigin != a.id {
			t.Errorf("op 2: %+v, want a skip of slot %d after op 1's version", skip, cluster.KeySlot("theirs"))
		}
		if w := ops[2]; w.Kind != wire.KindDelete || w.Key != "theirs" {
			t.Errorf("op 3: %+v, want the delete of theirs, whole", w)
		}
		if st := a.r.Stats(); st.Links[0].Skipped != 1 {
			t.Errorf("link stats: %d skipped, want 1", st.Links[0].Skipped)
		}
	})
}

// A Keeps frame changes what the origin skips from then on: a peer that
// kept a slot and stops keeping it gets its writes as skips.
func TestSenderFollowsKeepsFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p := skippingOrigin(t, mem, slotsOf("mine", "theirs"))
		a.put(t, "theirs", "1")
		if f := dataAs[*wire.Ops](t, p); f.Ops[0].Kind != wire.KindSet {
			t.Fatalf("op 1 %+v, want the set of theirs: the peer keeps its slot", f.Ops[0])
		}
		p.send(&wire.Keeps{Origin: 1, Slots: slotsOf("mine")})
		synctest.Wait() // the frame read
		a.put(t, "theirs", "2")
		if f := dataAs[*wire.Ops](t, p); f.Ops[0].Kind != wire.KindSkip {
			t.Fatalf("op 2 %+v, want a skip: the peer no longer keeps the slot", f.Ops[0])
		}
		p.send(&wire.Keeps{Origin: 1})
		synctest.Wait()
		a.put(t, "theirs", "3")
		if f := dataAs[*wire.Ops](t, p); f.Ops[0].Kind != wire.KindSet {
			t.Fatalf("op 3 %+v, want the set of theirs: the peer keeps every key", f.Ops[0])
		}
		p.send(&wire.Keeps{Origin: 5})
		p.expectReject(wire.RejectBadFrame)
	})
}

// A peer that keeps every key (no Keeps in its Resume) gets every write.
func TestSenderSkipsNothingForAPeerKeepingEveryKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p := skippingOrigin(t, mem, nil)
		a.put(t, "theirs", "2")
		if f := dataAs[*wire.Ops](t, p); len(f.Ops) != 1 || f.Ops[0].Kind != wire.KindSet || f.Ops[0].Key != "theirs" {
			t.Fatalf("Ops %+v, want the set of theirs", f.Ops)
		}
	})
}

// A receiver keeping only some slots names them in its Resume, and takes
// a skip of a slot it does not keep as the write it would have dropped:
// merged into its clock, counted, acknowledged.
func TestReceiverNamesItsSlotsAndTakesSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, p, r := keepingReceiver(t, mem, newKeptSlots(slotsOf("mine")).config(Config{NodeID: 1}))
		if !bytes.Equal(r.Keeps, slotsOf("mine")) {
			t.Fatalf("Resume names %d kept bytes, not the slot of mine", len(r.Keeps))
		}
		top := at(50 * time.Millisecond)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp("mine", "1", nowTS(), fakeID),
			skipOf("theirs", top),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 2 {
			t.Fatalf("Ack %d, want 2", ack.Seq)
		}
		if a.value("mine") != "1" {
			t.Errorf("mine not applied")
		}
		if a.clock.Last() < top {
			t.Errorf("the skip's version %v is not merged into the clock (%v)", top, a.clock.Last())
		}
		if st := a.r.Stats(); st.NotKept != 1 || st.KeepsGrew != 0 {
			t.Errorf("stats: not kept %d, keeps grew %d; want 1 and 0", st.NotKept, st.KeepsGrew)
		}
	})
}

// A skip of a slot the receiver has come to keep since it resumed is a
// write it is missing: it applies nothing from there, acknowledges what
// came before, ends the stream with RejectKeeps, and resumes from the skip
// with the slots it keeps now. In a batch, the whole batch waits.
func TestReceiverResumesAtASkipOfASlotItNowKeeps(t *testing.T) {
	for _, inBatch := range []bool{false, true} {
		name := "stream"
		if inBatch {
			name = "batch"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				kept := newKeptSlots(slotsOf("mine"))
				a, p, _ := keepingReceiver(t, mem, kept.config(Config{NodeID: 1}))
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("mine", "1", at(time.Millisecond), fakeID)}})
				if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
					t.Fatalf("Ack %d, want 1", ack.Seq)
				}

				grown := slotsOf("mine", "theirs")
				kept.set.Store(&grown)
				skip := skipOf("theirs", at(3*time.Millisecond))
				ops := []wire.Op{setOp("mine", "2", at(2*time.Millisecond), fakeID), skip}
				want := uint64(3) // resume at the skip
				if inBatch {
					ops = []wire.Op{{Kind: wire.KindBatch, ExpireAt: 2, HLC: uint64(at(2 * time.Millisecond)), VOrigin: fakeID}, setOp("mine", "2", at(2*time.Millisecond), fakeID), skip}
					want = 2 // resume at the batch's marker
				}
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: ops})
				// Before the ack of what came before the skip, the
				// receiver names the slots it keeps now.
				if k := recvAs[*wire.Keeps](t, p); k.Origin != fakeID || !bytes.Equal(k.Slots, grown) {
					t.Fatalf("Keeps %d naming the grown slots %v", k.Origin, bytes.Equal(k.Slots, grown))
				}
				p.expectReject(wire.RejectKeeps)
				p.expectClosed()
				if got, wantV := a.value("mine"), map[bool]string{false: "2", true: "1"}[inBatch]; got != wantV {
					t.Errorf("mine = %q, want %q (a batch applies whole or not at all)", got, wantV)
				}

				p2 := dialFake(t, mem, "fake", "a")
				_, r := p2.open(fakeHello(fakeID))
				if r.NextSeq != want || !bytes.Equal(r.Keeps, grown) {
					t.Fatalf("Resume at %d naming the grown slots %v; want %d and true", r.NextSeq, bytes.Equal(r.Keeps, grown), want)
				}
				if st := a.r.Stats(); st.KeepsGrew != 1 {
					t.Errorf("keeps grew %d, want 1", st.KeepsGrew)
				}
			})
		})
	}
}

// A skip is a stream op only: in a full sync it ends the stream, as a
// message or a batch marker there does.
func TestSkipInASnapshotRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", newKeptSlots(slotsOf("mine")).config(Config{NodeID: 1}), true)

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 0, HLC: uint64(nowTS())})
		p.send(&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{{Kind: wire.KindSkip, HLC: uint64(nowTS()), VOrigin: fakeID}}})
		p.expectClosed()
		if st := a.r.Stats(); st.NotKept != 0 {
			t.Errorf("not kept %d: the skip was taken", st.NotKept)
		}
	})
}

// Between two replicators: the receiver keeps one slot, the origin's
// writes of the others cross as skips; when the receiver comes to keep
// another slot, the next write of it makes the stream resume, and the
// write arrives whole.
func TestSkipsBetweenReplicators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		kept := newKeptSlots(slotsOf("mine"))
		b := startTestNode(t, mem, "b", kept.config(Config{NodeID: 2}), true)
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b"}}, false)
		// The first full sync first: the writes below go by the stream.
		testkit.Eventually(t, "b's first full sync from a", func() bool {
			for _, o := range b.r.Stats().Origins {
				if o.NodeID == a.id && o.FullSyncs > 0 {
					return true
				}
			}
			return false
		})

		a.put(t, "mine", "1")
		a.put(t, "theirs", "1")
		testkit.Eventually(t, "b applying a's writes", func() bool { return b.value("mine") == "1" && a.r.Stats().Links[0].Lag == 0 })
		if b.value("theirs") != "" {
			t.Fatalf("b keeps theirs")
		}
		if st := a.r.Stats(); st.Links[0].Skipped != 1 {
			t.Fatalf("a skipped %d writes, want 1", st.Links[0].Skipped)
		}

		// The first connection's anti-entropy round, done before the
		// reconnection below.
		testkit.Eventually(t, "a's first round", func() bool { return a.r.Stats().Links[0].Rounds > 0 })
		rounds := a.r.Stats().Links[0].Rounds

		grown := slotsOf("mine", "theirs")
		kept.set.Store(&grown)
		a.put(t, "theirs", "2")
		testkit.Eventually(t, "theirs on b", func() bool { return b.value("theirs") == "2" })
		if st := b.r.Stats(); st.KeepsGrew != 1 {
			t.Errorf("b: keeps grew %d, want 1", st.KeepsGrew)
		}
		a.put(t, "theirs", "3")
		testkit.Eventually(t, "theirs 3 on b", func() bool { return b.value("theirs") == "3" })
		if st := a.r.Stats(); st.Links[0].Skipped != 2 {
			t.Errorf("a skipped %d writes, want 2 (the first theirs, and the second once)", st.Links[0].Skipped)
		}
		// The stream resumed where b stood, nothing lost: the reconnection
		// it asked for starts no anti-entropy round (a walk of a's store).
		time.Sleep(3 * a.r.cfg.DeadTimeout)
		if got := a.r.Stats().Links[0].Rounds; got != rounds {
			t.Errorf("%d anti-entropy rounds after the reconnection b asked for; want none", got-rounds)
		}
	})
}

// A batch waits at its gate (Config.ApplyBatch: the node holds back its
// clients' commands on the batch's keys) before it applies, and the slots
// kept may grow meanwhile: its writes are judged when they apply, so a
// whole write of the slot gained is kept, and a skip of it holds the whole
// batch, which resumes from its marker.
func TestBatchJudgedAtItsGate(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(map[bool]string{true: "whole", false: "skip"}[whole], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				kept := newKeptSlots(slotsOf("mine"))
				grown := slotsOf("mine", "theirs")
				cfg := kept.config(Config{NodeID: 1})
				cfg.ApplyBatch = func(keys []string, apply func()) {
					kept.set.Store(&grown) // the slot gained while the batch waits
					apply()
				}
				a, p, _ := keepingReceiver(t, mem, cfg)
				op := skipOf("theirs", at(3*time.Millisecond))
				if whole {
					op = setOp("theirs", "x", at(3*time.Millisecond), fakeID)
				}
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
					{Kind: wire.KindBatch, ExpireAt: 2, HLC: uint64(at(2 * time.Millisecond)), VOrigin: fakeID},
					setOp("mine", "1", at(2*time.Millisecond), fakeID), op}})
				if whole {
					if ack := recvAs[*wire.Ack](t, p); ack.Seq != 3 || a.value("theirs") != "x" || a.value("mine") != "1" {
						t.Fatalf("Ack %d, theirs %q, mine %q; want 3, x and 1", ack.Seq, a.value("theirs"), a.value("mine"))
					}
					return
				}
				p.expectReject(wire.RejectKeeps)
				if a.value("mine") != "" || a.r.Stats().NotKept != 0 {
					t.Errorf("mine %q, not kept %d: part of the batch applied", a.value("mine"), a.r.Stats().NotKept)
				}
				_, r := dialFake(t, mem, "fake", "a").open(fakeHello(fakeID))
				if r.NextSeq != 1 || !bytes.Equal(r.Keeps, grown) {
					t.Errorf("resume at %d naming the grown slots %v; want 1 (the batch's marker) and true", r.NextSeq, bytes.Equal(r.Keeps, grown))
				}
			})
		})
	}
}

// b keeps only the slot of "mine" but holds a newer tombstone of "theirs"
// (every node applies every delete, here from an origin that crashed
// before delivering it to a). a's rounds to b do not probe "theirs" (b does
// not keep its slot), so b's round to a must bring a the delete: a applies
// a probed tombstone newer than what it holds. Before that, probing only
// the peer's kept slots lost the delete.
func TestRoundBringsANewerDeleteOfASlotThePeerDoesNotKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		kept := slotsOf("mine")
		ks := cluster.KeySlot("mine")
		b := startTestNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"},
			Keeps:     func(k string) bool { return cluster.KeySlot(k) == ks },
			KeptSlots: func() []byte { return kept },
			KeepsSlot: func(s int) bool { return s == ks },
		}, true)
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b"}}, true)
		time.Sleep(time.Minute) // both links up, first syncs done
		synctest.Wait()
		ts := nowTS()
		const x = 9 // the crashed origin
		a.hold(t, "theirs", "v1", ts, x)
		if res := b.st.Apply(store.Op{Kind: store.KindDelete, Key: "theirs", Version: store.Version{HLC: ts + 2, Origin: x}}); res != store.Applied {
			t.Fatal(res)
		}
		time.Sleep(25 * time.Minute)
		synctest.Wait()
		if l := a.link(t, "b"); l.Rounds < 2 {
			t.Fatalf("no round: %+v", l)
		}
		if v := a.value("theirs"); v != "" {
			t.Errorf("a still holds theirs=%q after the rounds with b, which holds a newer delete", v)
		}
	})
}

// An anti-entropy round to a peer that keeps only some slots probes only
// the live entries of those, and tombstones whatever their slot.
func TestProbesOnlyOfSlotsThePeerKeeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		fl := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
		ts := nowTS()
		a.hold(t, "mine", "1", ts, 5)
		a.hold(t, "theirs", "2", ts, 5)
		if res := a.st.Apply(store.Op{Kind: store.KindDelete, Key: "gone", Version: store.Version{HLC: ts + 1, Origin: 5}}); res != store.Applied {
			t.Fatal(res)
		}
		p := fl.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS()), Keeps: slotsOf("mine")})
		probed := map[string]bool{}
		for !probed["mine"] || !probed["gone"] {
			f, err := p.recv()
			if err != nil {
				t.Fatalf("waiting for probes (probed so far: %v): %v", probed, err)
			}
			if probe, ok := f.(*wire.Probe); ok {
				for _, op := range probe.Ops {
					probed[op.Key] = true
				}
			}
		}
		synctest.Wait()
		if probed["theirs"] {
			t.Error("probed a live entry of a slot the peer does not keep")
		}
		if l := a.link(t, "fake"); l.Rounds != 1 {
			t.Errorf("%d rounds; want 1", l.Rounds)
		}
	})
}
