package repl

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// A node that keeps only some keys (Config.Keeps) applies the others'
// deletes but not their writes; once it keeps them too, Resync brings what
// the origin holds of them by a full sync, and a delete it applied while
// not keeping the key still refuses an older write of it.
func TestKeepsAndResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var all atomic.Bool
		keeps := func(key string) bool { return all.Load() || strings.HasPrefix(key, "mine") }
		_, a, b := linkedPair(t, Config{}, Config{Keeps: keeps})
		ctx := context.Background()

		a.put(t, "mine1", "v1")
		a.put(t, "other1", "v1")
		a.put(t, "other2", "v1")
		old := a.clock.Last() // before the delete below: an older version of other2
		ts, err := a.clock.Now()
		if err != nil {
			t.Fatal(err)
		}
		del := store.Op{Kind: store.KindDelete, Key: "other2", Version: store.Version{HLC: ts, Origin: a.id}}
		a.st.Apply(del)
		a.r.Append(del)
		if err := a.r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if b.value("mine1") != "v1" || b.has("other1") {
			t.Fatalf("b holds mine1=%q, other1 %v; want v1, not held", b.value("mine1"), b.has("other1"))
		}
		if _, ok := b.st.Tombstone("other2"); !ok {
			t.Fatal("the delete of a key b does not keep was not applied")
		}
		if got := b.r.Stats().NotKept; got != 2 {
			t.Fatalf("NotKept %d; want 2 (other1, other2's set)", got)
		}

		all.Store(true)
		<-b.r.Resync()
		if got := b.origin(t, a.id).FullSyncs; got != 2 {
			t.Fatalf("full syncs from a: %d; want 2 (the first, then the one Resync asked for)", got)
		}
		if b.value("other1") != "v1" {
			t.Fatalf("after Resync b holds other1=%q; want v1", b.value("other1"))
		}
		late := store.Op{Kind: store.KindSet, Key: "other2", Value: []byte("stale"), Version: store.Version{HLC: old, Origin: a.id}}
		if res := b.st.Apply(late); res == store.Applied || b.has("other2") {
			t.Fatalf("a write older than other2's delete was applied (%v)", res)
		}
		if st := b.r.Stats(); st.Resyncs != 1 {
			t.Fatalf("Resyncs %d; want 1", st.Resyncs)
		}
		// The origin heard why its stream ended: no warning, a reconnection.
		if logs := a.logs.String(); strings.Contains(logs, "replication link down") || !strings.Contains(logs, "asks for a full sync") {
			t.Errorf("the origin's logs after a Resync:\n%s", logs)
		}
		// And the stream goes on after the resync.
		a.put(t, "other3", "v3")
		if err := a.r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if b.value("other3") != "v3" {
			t.Fatalf("after Resync the stream did not resume: other3=%q", b.value("other3"))
		}
	})
}

// Resync does not wait for an origin this node's own link no longer
// reaches, and returns a closed channel once the replicator is closed.
func TestResyncDoesNotWaitForAGoneOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := linkedPair(t, Config{}, Config{})
		resynced := b.r.Resync() // a is connected: it is waited for
		a.r.Close()
		<-resynced
		if b.origin(t, a.id).FullSyncs != 1 {
			t.Fatal("a full sync from a closed origin")
		}
		if strings.Contains(b.logs.String(), "not complete in time") {
			t.Fatal("Resync waited for the closed origin until SyncTimeout")
		}
	})
}

// linkedPair starts nodes a (id 1, cfgA) and b (id 2, cfgB) linked both
// ways on a network of their own, and returns once both links are up and
// the first (empty) full syncs done. Call it inside a synctest bubble.
func linkedPair(t *testing.T, cfgA, cfgB Config) (mem *testkit.Network, a, b *node) {
	t.Helper()
	mem = testkit.NewNetwork()
	t.Cleanup(func() { mem.Close() }) // after the nodes' Close (cleanups run last first)
	cfgA.NodeID, cfgA.Peers = 1, []string{"b"}
	cfgB.NodeID, cfgB.Peers = 2, []string{"a"}
	b = startTestNode(t, mem, "b", cfgB, true)
	a = startTestNode(t, mem, "a", cfgA, true)
	time.Sleep(time.Second) // b's first dial, before a listened, backs off
	synctest.Wait()
	return mem, a, b
}

// Resync on a closed replicator returns a closed channel.
func TestResyncAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		b := startTestNode(t, mem, "b", Config{NodeID: 2}, true)
		b.r.Close()
		<-b.r.Resync()
	})
}

// Two nodes that gain keys at once each cut the other's link by their
// Resync: each still waits for the other's full sync (a link down for
// less than DeadTimeout is not a gone peer).
func TestResyncOnBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var all atomic.Bool
		keeps := func(string) bool { return all.Load() }
		_, a, b := linkedPair(t, Config{Keeps: keeps}, Config{Keeps: keeps})
		a.put(t, "x", "from a")
		b.put(t, "y", "from b")
		ctx := context.Background()
		if err := a.r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if b.has("x") || a.has("y") {
			t.Fatal("a write of a key not kept was applied")
		}
		all.Store(true)
		resyncedA, resyncedB := a.r.Resync(), b.r.Resync()
		<-resyncedA
		<-resyncedB
		if b.value("x") != "from a" || a.value("y") != "from b" {
			t.Fatalf("a Resync reported done before the other side's full sync: b holds x=%q, a holds y=%q", b.value("x"), a.value("y"))
		}
	})
}

// An origin that restarted (a new incarnation) while a fill is pending is
// asked for a full sync of every slot kept, not only of those gained:
// nothing of the new incarnation's log is here, and its writes of the
// other slots before its snapshot would never be streamed.
func TestResyncFillOfANewIncarnationWantsEverySlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		cold := cluster.KeySlot("{c}")
		g := startTestNode(t, mem, "g", Config{NodeID: 1,
			Wanted: func(fill bool) []byte {
				if fill {
					set := make([]byte, wire.SlotSetLen)
					set[cold>>3] |= 1 << (cold & 7)
					return set
				}
				return nil // every key
			},
		}, true)
		x := dialFake(t, mem, "x", "g")
		x.open(fakeHello(fakeID))
		x.send(&wire.SnapshotBegin{Origin: fakeID, HLC: uint64(at(0))})
		x.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)})
		recvAs[*wire.Ack](t, x)
		g.r.Resync()
		x.expectReject(wire.RejectResync)
		// The same incarnation is asked for the gained slots only...
		same := dialFake(t, mem, "x", "g")
		if _, res := same.open(fakeHello(fakeID)); res.NextSeq != 0 || res.Wanted == nil {
			t.Fatalf("the same incarnation: resume %d, wanted every key %v; want 0, the gained slots", res.NextSeq, res.Wanted == nil)
		}
		same.c.Close()
		// ...a new one for every key.
		h := fakeHello(fakeID)
		h.Incarnation++
		restarted := dialFake(t, mem, "x", "g")
		if _, res := restarted.open(h); res.NextSeq != 0 || res.Wanted != nil {
			t.Errorf("a new incarnation during a fill: resume %d, wanted every key %v; want 0, true", res.NextSeq, res.Wanted == nil)
		}
	})
}
