package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
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

// A slot sync brings the owner's entries, tombstones and large values of
// the slots asked for and nothing of the others, takes in the owner's
// tombstone ghosts, and drops what they say a delete superseded.
func TestSlotSyncTakesTheSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, -1, Config{BatchBytes: 64 << 10})
		ts := at(0)
		big := string(bytes.Repeat([]byte("L"), 300<<10))
		b.hold(t, "{s}k", "v", ts, 7)
		b.hold(t, "{s}big", big, ts+1, 7)
		b.hold(t, "{other}k", "no", ts+2, 7)
		if res := b.st.Apply(store.Op{Kind: store.KindDelete, Key: "{s}gone", Version: store.Version{HLC: ts + 3, Origin: 8}}); res != store.Applied {
			t.Fatal(res)
		}
		// a holds a key of the slot that the owner deleted, and whose
		// tombstone is gone there: only the owner's ghost table says so.
		a.hold(t, "{s}stale", "old", ts+4, 7)
		b.hold(t, "{s}stale", "old", ts+4, 7)
		if res := b.st.Apply(store.Op{Kind: store.KindDelete, Key: "{s}stale", Version: store.Version{HLC: ts + 5, Origin: 8}}); res != store.Applied {
			t.Fatal(res)
		}
		time.Sleep(store.DefaultTombstoneHorizon + time.Second)
		b.st.Reclaim() // the tombstones leave; their ghosts stay

		got, err := a.r.SlotSync(context.Background(), "b", slotsOf("{s}"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Entries != 2 || got.Dropped != 1 {
			t.Errorf("took %+v; want 2 entries, 1 dropped", got)
		}
		if a.value("{s}k") != "v" || a.value("{s}big") != big {
			t.Errorf("after the slot sync: %q and a value of %d bytes; want v and %d bytes", a.value("{s}k"), len(a.value("{s}big")), len(big))
		}
		if a.has("{other}k") {
			t.Error("a key of a slot not asked for came along")
		}
		if a.has("{s}stale") {
			t.Error("an entry the owner's ghosts say a delete superseded stayed")
		}
		if st := a.r.Stats(); st.SlotSyncs != 1 || st.SlotSyncFailures != 0 {
			t.Errorf("asker's stats: %d taken, %d failed; want 1, 0", st.SlotSyncs, st.SlotSyncFailures)
		}
		if st := b.r.Stats(); st.SlotSyncsServed != 1 {
			t.Errorf("owner's stats: %d served; want 1", st.SlotSyncsServed)
		}
	})
}

// The barrier: an owner answers only once it has applied each origin's
// stream as far as the asker had received it, so the writes the asker
// passed over before it kept the slot are in the answer. With the owner's
// link from the origin cut, the owner refuses after its wait, and answers
// once the link is back.
func TestSlotSyncWaitsForTheOwnersStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		var keeping atomic.Bool // whether a keeps every key yet
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Keeps: func(string) bool { return keeping.Load() }}, true)
		b := startTestNode(t, mem, "b", Config{NodeID: 2, Holds: func(int) bool { return true }}, true)
		x := startTestNode(t, mem, "x", Config{NodeID: 3, Peers: []string{"a", "b"}}, false)
		<-a.r.Synced()
		<-b.r.Synced()
		mem.Cut("x", "b")
		seq := x.put(t, "k", "v")
		waitApplied(t, a, 3, seq)
		if a.has("k") {
			t.Fatal("a kept a write of a key it does not keep")
		}
		keeping.Store(true)

		// The owner never gets the write: refused, and still serving.
		_, err := a.r.SlotSync(context.Background(), "b", slotsOf("k"))
		if err == nil || !strings.Contains(err.Error(), wire.RejectBehind.String()) {
			t.Fatalf("slot sync from an owner behind: %v; want a refusal for being behind", err)
		}
		if a.has("k") {
			t.Fatal("the refused slot sync brought the key")
		}
		if _, err := a.r.Fetch(context.Background(), "b", "k", false); err != nil {
			t.Fatalf("the owner stopped serving after refusing: %v", err)
		}

		// The link comes back while the owner waits: it answers with the
		// write.
		done := make(chan error, 1)
		go func() {
			_, err := a.r.SlotSync(context.Background(), "b", slotsOf("k"))
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the owner answered before it had applied the origin's stream: %v", err)
		default:
		}
		mem.Heal("x", "b")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if a.value("k") != "v" {
			t.Errorf("after the slot sync a holds %q; want v", a.value("k"))
		}
		if st := a.r.Stats(); st.SlotSyncs != 1 || st.SlotSyncFailures != 1 {
			t.Errorf("asker's stats: %d taken, %d failed; want 1, 1", st.SlotSyncs, st.SlotSyncFailures)
		}
	})
}

// waitApplied waits until n has applied origin's stream through seq.
func waitApplied(t *testing.T, n *node, origin uint32, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		for _, o := range n.r.Stats().Origins {
			if o.NodeID == origin && o.Applied >= seq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("origin %d not applied through %d", origin, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An owner that does not hold a slot asked for refuses at once, and a
// peer of protocol 10 is not asked at all: the caller takes the slots
// another way.
func TestSlotSyncRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, cluster.KeySlot("{cold}"), Config{})
		b.hold(t, "{cold}k", "v", at(0), 7)
		_, err := a.r.SlotSync(context.Background(), "b", slotsOf("{cold}", "{warm}"))
		if err == nil || !strings.Contains(err.Error(), "not held whole") {
			t.Fatalf("slot sync of a slot the owner fills: %v; want a refusal", err)
		}
		if a.has("{cold}k") {
			t.Error("the refused slot sync brought an entry")
		}

		// A peer of protocol 10 answers the FetchHello with 10.
		ln := listenFake(t, mem, "old")
		errs := make(chan error, 1)
		go func() {
			_, err := a.r.SlotSync(context.Background(), "old", slotsOf("k"))
			errs <- err
		}()
		old := fakeHello(fakeID)
		old.Proto = slotSyncProto - 1
		acceptFetcher(ln, old)
		if err := <-errs; !errors.Is(err, ErrPeerTooOld) {
			t.Errorf("slot sync from a peer of protocol 10: %v; want ErrPeerTooOld", err)
		}
	})
}

// A node refuses a SlotSync on a fetch connection opened at protocol 10,
// and an answer that brings a slot not asked for ends the slot sync.
func TestSlotSyncBadFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		b := startTestNode(t, mem, "b", Config{NodeID: 2}, true)
		b.hold(t, "k", "v", at(0), 7)
		p := dialFake(t, mem, "fake", "b")
		h := fakeHello(fakeID)
		h.Proto = slotSyncProto - 1
		p.send(&wire.FetchHello{Hello: *h})
		recvAs[*wire.Hello](t, p)
		p.send(&wire.SlotSync{Slots: slotsOf("k")})
		if rej := recvAs[*wire.Reject](t, p); rej.Code != wire.RejectBadFrame {
			t.Errorf("a slot sync at protocol 10: %v; want a bad frame", rej)
		}

		a := startTestNode(t, mem, "a", Config{NodeID: 1}, false)
		own := a.put(t, "{mine}k", "x") // a's own stream is one of the positions
		ln := listenFake(t, mem, "liar")
		errs := make(chan error, 1)
		go func() {
			_, err := a.r.SlotSync(context.Background(), "liar", slotsOf("{s}"))
			errs <- err
		}()
		liar := acceptFetcher(ln, fakeHello(fakeID))
		q := recvAs[*wire.SlotSync](t, liar)
		if !bytes.Equal(q.Slots, slotsOf("{s}")) {
			t.Errorf("slot sync asked for other slots")
		}
		if want := (wire.Position{Origin: 1, Incarnation: a.r.Stats().Incarnation, Seq: own}); !slices.Contains(q.Since, want) {
			t.Errorf("positions %+v; want the asker's own stream, %+v, among them", q.Since, want)
		}
		liar.send(&wire.SnapshotBegin{Origin: fakeID, HLC: uint64(at(0))})
		liar.send(&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{setOp("{other}k", "x", at(0), fakeID)}})
		if err := <-errs; err == nil || !errors.Is(err, errProtocol) {
			t.Errorf("an answer with a slot not asked for: %v; want a protocol error", err)
		}
		if a.has("{other}k") {
			t.Error("the entry of a slot not asked for was taken")
		}

		// An owner that vouches for fewer slots than asked for.
		go func() {
			_, err := a.r.SlotSync(context.Background(), "liar", slotsOf("{s}"))
			errs <- err
		}()
		liar = acceptFetcher(ln, fakeHello(fakeID))
		recvAs[*wire.SlotSync](t, liar)
		liar.send(&wire.SnapshotBegin{Origin: fakeID, HLC: uint64(at(0)), Vouched: slotsOf("{other}")})
		if err := <-errs; err == nil || !errors.Is(err, errProtocol) {
			t.Errorf("an answer vouching for fewer slots than asked for: %v; want a protocol error", err)
		}
	})
}

// The barrier's judgement, origin by origin: the owner's applied position
// for the same incarnation, short of an overtaken large op still arriving,
// and its own stream up to its last write.
func TestSlotSyncBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		y := startTestNode(t, mem, "y", Config{NodeID: 2}, false)
		own := y.put(t, "k", "v")
		y.r.mu.Lock()
		y.r.origins[5] = &originState{id: 5, incarnation: 7, applied: 10, synced: true}
		y.r.origins[6] = &originState{id: 6, incarnation: 7, applied: 12, hole: 11, synced: true}
		y.r.origins[8] = &originState{id: 8, incarnation: 7, applied: 10} // a full sync asked of it has not landed
		y.r.mu.Unlock()
		inc := y.r.Stats().Incarnation
		for _, tc := range []struct {
			p      wire.Position
			behind bool
		}{
			{wire.Position{Origin: 5, Incarnation: 7, Seq: 10}, false},
			{wire.Position{Origin: 5, Incarnation: 7, Seq: 11}, true},
			{wire.Position{Origin: 5, Incarnation: 8, Seq: 1}, true}, // another incarnation
			{wire.Position{Origin: 6, Incarnation: 7, Seq: 10}, false},
			{wire.Position{Origin: 6, Incarnation: 7, Seq: 11}, true}, // the large op is not here yet
			{wire.Position{Origin: 9, Incarnation: 7, Seq: 1}, true},  // no stream of it here
			{wire.Position{Origin: 8, Incarnation: 7, Seq: 1}, true},  // its full sync pending here
			{wire.Position{Origin: 2, Incarnation: inc, Seq: own}, false},
			{wire.Position{Origin: 2, Incarnation: inc, Seq: own + 1}, true},
			{wire.Position{Origin: 2, Incarnation: inc + 1, Seq: 1}, true},
		} {
			why := y.r.behind(&wire.SlotSync{Slots: slotsOf("k"), Since: []wire.Position{tc.p}})
			if (why != "") != tc.behind {
				t.Errorf("position %+v: behind %q; want behind %v", tc.p, why, tc.behind)
			}
		}
	})
}

// While a full sync this node asked an origin for is under way (asked
// before it kept the slots, so it carries only the slots wanted then), a
// slot sync waits before asking: once that snapshot lands, the node's
// position passes the origin's writes of the slots it did not want, which
// no position named before would cover. It gives up with its context.
func TestSlotSyncNotWhileAFullSyncIsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		g := startTestNode(t, mem, "g", Config{NodeID: 1}, true)
		y := startTestNode(t, mem, "y", Config{NodeID: 2, Holds: func(int) bool { return true }}, true)
		x := dialFake(t, mem, "x", "g")
		if _, res := x.open(fakeHello(fakeID)); res.NextSeq != 0 {
			t.Fatalf("a new origin resumed at %d, not asked for a full sync", res.NextSeq)
		}
		x.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 5, HLC: uint64(at(time.Millisecond))})
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := g.r.SlotSync(ctx, "y", slotsOf("{s}")); !errors.Is(err, errFullSyncPending) {
			t.Fatalf("slot sync during a full sync, its context ended: %v; want errFullSyncPending", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := g.r.SlotSync(context.Background(), "y", slotsOf("{s}"))
			done <- err
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the slot sync ended while the full sync was pending: %v", err)
		default:
		}
		if served := y.r.Stats().SlotSyncsServed; served != 0 {
			t.Fatalf("the owner was asked %d slot syncs while the full sync was pending", served)
		}
		x.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)})
		recvAs[*wire.Ack](t, x)
		// Now the origin's position is named (the owner has no stream of
		// it: refused for that).
		if err := <-done; err == nil || !strings.Contains(err.Error(), fmt.Sprint("origin ", fakeID)) {
			t.Fatalf("slot sync once the full sync landed: %v; want a refusal naming origin %d", err, fakeID)
		}
	})
}

// A slot sync ends with its context, however slowly the owner answers.
func TestSlotSyncEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, false)
		ln := listenFake(t, mem, "slow")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := a.r.SlotSync(ctx, "slow", slotsOf("{s}"))
			done <- err
		}()
		p := acceptFetcher(ln, fakeHello(fakeID))
		recvAs[*wire.SlotSync](t, p)
		p.send(&wire.SnapshotBegin{Origin: fakeID, HLC: uint64(at(0))})
		giveUp := time.After(10 * time.Minute) // only catches a slot sync that never ends
		for {
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("a slot sync past its context: %v; want its deadline", err)
				}
				return
			case <-giveUp:
				t.Fatal("a slot sync fed a chunk every 3.5 s outlived its context")
			case <-time.After(3500 * time.Millisecond): // a chunk within each read's deadline
				// A write may find the connection closed by the deadline:
				// the slot sync's error says why.
				p.c.Write((&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{setOp("{s}k", "v", at(0), fakeID)}}).Append(nil))
			}
		}
	})
}

// An origin that died does not stop slot syncs: a full sync asked of it
// that never came (a fallback Resync) is not pending while it is away, and
// once it has been away longer than the tombstone horizon it is not named
// at all, so an owner that never heard of it (started since) answers.
func TestSlotSyncAfterAnOriginDied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		g := startTestNode(t, mem, "g", Config{NodeID: 1, TombstoneHorizon: time.Minute}, true)
		y := startTestNode(t, mem, "y", Config{NodeID: 2, Holds: func(int) bool { return true }}, true)
		x := startTestNode(t, mem, "x", Config{NodeID: 3, Peers: []string{"g", "y"}}, false)
		<-g.r.Synced()
		<-y.r.Synced()
		seq := x.put(t, "k", "v")
		waitApplied(t, g, 3, seq)
		waitApplied(t, y, 3, seq)
		x.r.Close() // x dies
		time.Sleep(10 * time.Second)
		<-g.r.Resync() // a fallback: asks x too, which never answers
		if _, err := g.r.SlotSync(context.Background(), "y", slotsOf("{s}")); err != nil {
			t.Fatalf("slot sync after a fallback, x dead: %v", err)
		}

		// z starts after x has been gone past the horizon.
		time.Sleep(2 * time.Minute)
		startTestNode(t, mem, "z", Config{NodeID: 4, Holds: func(int) bool { return true }}, true)
		g.r.AddPeer("z")
		time.Sleep(10 * time.Second)
		if _, err := g.r.SlotSync(context.Background(), "z", slotsOf("{s}")); err != nil {
			t.Fatalf("slot sync from an owner that never heard of x, gone past the horizon: %v", err)
		}
	})
}
