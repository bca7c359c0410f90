package repl

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Anti-entropy against a fake peer: the node's probes, and its answers to
// the peer's.

// After its link comes up, the node probes with the versions it holds
// (no values); it takes the peer's newer versions from the Repair, and
// neither an equal nor an older one, nor one too far ahead of its clock.
func TestProbeGetsRepair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
		const other = 5
		old := nowTS()
		held := map[string]hlc.Timestamp{"stale": old, "same": old + 1, "ahead": old + 2, "held": old + 3}
		for k, ts := range held {
			a.hold(t, k, "old", ts, other)
		}
		time.Sleep(time.Second)

		p := ln.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		probed := map[string]wire.Op{}
		for len(probed) < len(held) {
			f, err := p.recv()
			if err != nil {
				t.Fatalf("waiting for probes: %v", err)
			}
			probe, ok := f.(*wire.Probe)
			if !ok {
				continue // pings
			}
			if probe.Origin != 1 {
				t.Errorf("probe of origin %d", probe.Origin)
			}
			for _, op := range probe.Ops {
				probed[op.Key] = op
			}
		}
		for k, ts := range held {
			op := probed[k]
			if op.Kind != wire.KindSet || op.HLC != uint64(ts) || op.VOrigin != other || op.Value != nil {
				t.Errorf("probe of %s: %+v; want the version held, without the value", k, op)
			}
		}

		p.send(&wire.Repair{Origin: fakeID, Ops: []wire.Op{
			setOp("stale", "new", nowTS(), fakeID),         // newer: taken
			setOp("same", "other", old+1, other),           // the same version: not taken
			setOp("ahead", "older", old, other),            // older: not taken
			setOp("held", "future", at(time.Hour), fakeID), // ahead of a's clock: held
		}})
		testkit.Eventually(t, "the repair applied", func() bool { return a.value("stale") == "new" })
		synctest.Wait()
		for k, want := range map[string]string{"same": "old", "ahead": "old", "held": "old"} {
			if got := a.value(k); got != want {
				t.Errorf("%s = %q after the repair, want %q", k, got, want)
			}
		}
		if l := a.link(t, "fake"); l.Repaired != 1 || l.Rounds != 1 {
			t.Errorf("link: %d repaired, %d rounds; want 1 and 1", l.Repaired, l.Rounds)
		}
		if got := a.r.Stats().RepairsHeld; got != 1 {
			t.Errorf("RepairsHeld %d, want 1", got)
		}
	})
}

// The node answers a Probe with its newer versions of the probed keys
// only — a live entry with its value, a tombstone as a Delete — in Repair
// frames of at most BatchBytes of ops each.
func TestProbeAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		const batch = 1024
		a := startTestNode(t, mem, "a", Config{NodeID: 1, BatchBytes: batch}, true)
		const other = 5
		t1 := nowTS()
		t2 := t1 + 10
		a.hold(t, "newer-here", "v2", t2, other)
		a.hold(t, "older-here", "v1", t1, other)
		a.hold(t, "equal", "v1", t1, other)
		a.hold(t, "deleted-here", "v1", t1, other)
		if res := a.st.Apply(store.Op{Kind: store.KindDelete, Key: "deleted-here", Version: store.Version{HLC: t2, Origin: other}}); res != store.Applied {
			t.Fatalf("delete: %v", res)
		}
		var big []string
		for i := range 20 {
			k := fmt.Sprint("big", i)
			a.hold(t, k, strings.Repeat("x", 200), t2, other)
			big = append(big, k)
		}

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		probe := []wire.Op{
			{Kind: wire.KindSet, Key: "newer-here", HLC: uint64(t1), VOrigin: other},
			{Kind: wire.KindSet, Key: "older-here", HLC: uint64(t2), VOrigin: other},
			{Kind: wire.KindSet, Key: "equal", HLC: uint64(t1), VOrigin: other},
			{Kind: wire.KindSet, Key: "deleted-here", HLC: uint64(t1), VOrigin: other},
			{Kind: wire.KindSet, Key: "absent-here", HLC: uint64(t1), VOrigin: other},
		}
		for _, k := range big {
			probe = append(probe, wire.Op{Kind: wire.KindSet, Key: k, HLC: uint64(t1), VOrigin: other})
		}
		p.send(&wire.Probe{Origin: fakeID, Ops: probe})
		p.send(&wire.Ping{SentNanos: 1}) // its Pong follows the last Repair

		got := map[string]wire.Op{}
		frames := 0
		for {
			f, err := p.recv()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.(*wire.Pong); ok {
				break
			}
			r, ok := f.(*wire.Repair)
			if !ok {
				t.Fatalf("want Repair or Pong, got %T", f)
			}
			frames++
			size := 0
			for _, op := range r.Ops {
				size += op.Size()
				if _, dup := got[op.Key]; dup {
					t.Errorf("%s repaired twice", op.Key)
				}
				got[op.Key] = op
			}
			if r.Origin != 1 || size > batch {
				t.Errorf("Repair of origin %d with %d bytes of ops (batch %d)", r.Origin, size, batch)
			}
		}
		want := append([]string{"deleted-here", "newer-here"}, big...)
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Fatalf("repaired %v, want %v", keys, want)
		}
		if op := got["newer-here"]; op.Kind != wire.KindSet || string(op.Value) != "v2" || op.HLC != uint64(t2) || op.VOrigin != other {
			t.Errorf("repair of newer-here: %+v", op)
		}
		if op := got["deleted-here"]; op.Kind != wire.KindDelete || op.HLC != uint64(t2) || op.Value != nil {
			t.Errorf("repair of deleted-here: %+v", op)
		}
		if frames < 2 {
			t.Errorf("%d Repair frames for %d bytes of values with a batch of %d", frames, 20*200, batch)
		}

		// A probe on another origin's behalf is a protocol error.
		p.send(&wire.Probe{Origin: fakeID + 1, Ops: probe[:1]})
		if rej := p.expectReject(wire.RejectBadFrame); !strings.Contains(rej.Message, "probe") {
			t.Errorf("Reject %q", rej.Message)
		}
	})
}

// A probed tombstone is a whole delete: the node applies one newer than
// what it holds (live or deleted), answers an older one with its newer
// version, does not add one for a key it does not hold, and holds one too
// far ahead of its clock for a later round.
func TestProbedTombstonesApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		const other = 5
		t1 := nowTS()
		t2, t3 := t1+10, t1+20
		for _, k := range []string{"live", "newer-here", "ahead"} {
			a.hold(t, k, "v", t1, other)
		}
		a.hold(t, "newer-here", "v2", t3, other)
		a.hold(t, "deleted", "v", t1, other)
		if res := a.st.Apply(store.Op{Kind: store.KindDelete, Key: "deleted", Version: store.Version{HLC: t1 + 1, Origin: other}}); res != store.Applied {
			t.Fatalf("delete: %v", res)
		}

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		del := func(key string, ts hlc.Timestamp) wire.Op {
			return wire.Op{Kind: wire.KindDelete, Key: key, HLC: uint64(ts), VOrigin: fakeID}
		}
		var repaired []string
		for _, op := range probeExchange(t, p, []wire.Op{
			del("live", t2), del("deleted", t2), del("newer-here", t2),
			del("absent", t2), del("ahead", at(time.Hour)),
		}) {
			repaired = append(repaired, op.Key)
		}
		if !slices.Equal(repaired, []string{"newer-here"}) {
			t.Errorf("repaired %v; want [newer-here]", repaired)
		}
		for k, want := range map[string]string{"live": "", "newer-here": "v2", "ahead": "v"} {
			if got := a.value(k); got != want {
				t.Errorf("%s = %q after the probe; want %q", k, got, want)
			}
		}
		for k, want := range map[string]hlc.Timestamp{"live": t2, "deleted": t2} {
			if op, ok := a.st.TombstoneOp(k); !ok || op.Version != (store.Version{HLC: want, Origin: fakeID}) {
				t.Errorf("tombstone of %s: %+v, %v; want the probed one", k, op, ok)
			}
		}
		if _, ok := a.st.TombstoneOp("absent"); ok {
			t.Error("a probed tombstone of a key not held was added")
		}
		if st := a.r.Stats(); st.ProbedDeletes != 2 || st.RepairsHeld != 1 {
			t.Errorf("ProbedDeletes %d, RepairsHeld %d; want 2 and 1", st.ProbedDeletes, st.RepairsHeld)
		}
	})
}

// A probed delete newer than a counter's reset but older than a later
// increment (counted on that reset) ends the counter, as the same delete
// streamed does (the store compares a delete with the reset, not with the
// newest increment).
func TestProbedDeleteOfACounterJudgedByItsReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		t0 := nowTS()
		if res := a.st.Apply(store.Op{Kind: store.KindSet, Key: "c", Value: []byte("5"), Version: store.Version{HLC: t0, Origin: 5}}); res != store.Applied {
			t.Fatal(res)
		}
		if _, _, _, err := a.st.IncrBy("c", store.Version{HLC: t0 + 20, Origin: 7}, 1, 0, 0); err != nil {
			t.Fatal(err)
		}
		// What a stream would do with the same delete, in a scratch store.
		st, _ := store.Open(store.Config{MaxBytes: 1 << 20})
		defer st.Close()
		st.Apply(store.Op{Kind: store.KindSet, Key: "c", Value: []byte("5"), Version: store.Version{HLC: t0, Origin: 5}})
		st.IncrBy("c", store.Version{HLC: t0 + 20, Origin: 7}, 1, 0, 0)
		streamRes := st.Apply(store.Op{Kind: store.KindDelete, Key: "c", Version: store.Version{HLC: t0 + 10, Origin: fakeID}})
		_, streamLive := st.Peek("c")
		if streamRes != store.Applied || streamLive {
			t.Fatalf("test setup: the streamed delete: %v, live after it %v", streamRes, streamLive)
		}

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		probeExchange(t, p, []wire.Op{{Kind: wire.KindDelete, Key: "c", HLC: uint64(t0 + 10), VOrigin: fakeID}})
		_, live := a.st.Peek("c")
		if live != streamLive {
			t.Errorf("after the probed delete a holds c: %v; the same delete streamed leaves it %v", live, streamLive)
		}
	})
}

// A probed delete older than a hash's newest field removes the fields
// written before it, as the same delete streamed does.
func TestProbedDeleteOfAHashJudgedByItsFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		t0 := nowTS()
		h := scratchHash(t, []hset{{7, t0, "old"}, {5, t0 + 20, "new"}})
		h.Key = "h"
		if res := a.st.Apply(h); res != store.Applied {
			t.Fatal(res)
		}
		st, _ := store.Open(store.Config{MaxBytes: 1 << 20})
		defer st.Close()
		h2 := scratchHash(t, []hset{{7, t0, "old"}, {5, t0 + 20, "new"}})
		h2.Key = "h"
		st.Apply(h2)
		st.Apply(store.Op{Kind: store.KindDelete, Key: "h", Version: store.Version{HLC: t0 + 10, Origin: fakeID}})
		se, _ := st.Peek("h")
		if string(se.State) == string(h2.Value) {
			t.Fatal("test setup: the streamed delete removed no field")
		}

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		probeExchange(t, p, []wire.Op{{Kind: wire.KindDelete, Key: "h", HLC: uint64(t0 + 10), VOrigin: fakeID}})
		ae, _ := a.st.Peek("h")
		if string(ae.State) != string(se.State) {
			t.Errorf("hash after the probed delete differs from the same delete streamed (field \"old\" older than the delete kept)")
		}
	})
}

// probeExchange sends the node behind p a Probe of fakeID's with ops and
// returns the ops of the Repair frames it answers with (a Ping after the
// probe: its Pong follows the last Repair).
func probeExchange(t *testing.T, p *fakePeer, ops []wire.Op) []wire.Op {
	t.Helper()
	p.send(&wire.Probe{Origin: fakeID, Ops: ops})
	p.send(&wire.Ping{SentNanos: 1})
	var got []wire.Op
	for {
		f, err := p.recv()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *wire.Pong:
			return got
		case *wire.Repair:
			got = append(got, f.Ops...)
		}
	}
}
