package geocache

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
)

func openSlotsOnlyNode(t *testing.T, id uint32, join ...string) *Node {
	t.Helper()
	return openRegionNodeWith(t, id, &GossipConfig{ClientAddr: fmt.Sprint("127.0.0.1:", 6380+id), SlotsOnly: true}, join...)
}

// slotsOnlyRegion opens three SlotsOnly nodes of one region (ids 1 to 3),
// waits until they serve, and returns them with the gossip address
// others join at.
func slotsOnlyRegion(t *testing.T) (a, b, c *Node, join string) {
	t.Helper()
	a = openSlotsOnlyNode(t, 1)
	join = a.members.Addr()
	b = openSlotsOnlyNode(t, 2, join)
	c = openSlotsOnlyNode(t, 3, join)
	settled(t, "three members serving", a, b, c)
	return a, b, c, join
}

// With SlotsOnly each node keeps the entries of its own slots only. When a
// node goes, the others take over its slots and fill them from each other
// (cold until then); when one joins, it fills before it serves, and the
// others forget the slots it took.
func TestRegionKeepsOnlyItsSlots(t *testing.T) {
	a, b, c, join := slotsOnlyRegion(t)
	nodes := map[uint32]*Node{1: a, 2: b, 3: c}

	const keys = 3000
	ctx := context.Background()
	m, _ := a.SlotMap()
	for i := range keys {
		k := fmt.Sprint("user:", i)
		if err := nodes[m.Primary(cluster.KeySlot(k)).ID].Set(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	holds(t, keys, "each node its own slots", a, b, c)
	if a.Stats().NotKept == 0 {
		t.Error("a was sent no write of another node's slot")
	}
	// Once every link has carried writes (a receiver names the slots it
	// keeps now at the first frame after they changed), each write's
	// primary sends it whole to the slot's other owner and as a skip
	// (version and slot only) to the third node.
	skipped := func() (n uint64) {
		for _, nd := range nodes {
			for _, p := range nd.Stats().Peers {
				n += p.Skipped
			}
		}
		return n
	}
	acknowledged := func() {
		for _, nd := range nodes {
			testkit.Eventually(t, "the writes acknowledged", func() bool {
				for _, p := range nd.Stats().Peers {
					if p.Lag > 0 {
						return false
					}
				}
				return true
			})
		}
	}
	acknowledged()
	before := skipped()
	for i := range keys {
		k := userKey(i)
		if err := nodes[m.Primary(cluster.KeySlot(k)).ID].Set(ctx, k, []byte("w")); err != nil {
			t.Fatal(err)
		}
	}
	acknowledged() // every rewrite sent (the entries were all there before)
	holds(t, keys, "each node its own slots, rewritten", a, b, c)
	if d := skipped() - before; d < keys {
		t.Errorf("%d of %d rewrites sent as skips, want every one, to the node that does not keep it", d, keys)
	}

	before2 := map[*Node]RegionStats{a: *a.Stats().RegionNodes, b: *b.Stats().RegionNodes}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	settled(t, "two members, warm again", a, b)
	holds(t, keys, "the survivors hold every key", a, b)
	for _, n := range []*Node{a, b} {
		// Every write acknowledged before the member left: each survivor
		// takes the slots it gained from the other, which passes the
		// barrier at once, and asks no peer for a full sync.
		// (Counted from the leave: a gain while the region formed may
		// have fallen back, a member's first full sync being under way.)
		st, was := n.Stats().RegionNodes, before2[n]
		if st.SlotSyncs == was.SlotSyncs || st.SlotSyncFallbacks != was.SlotSyncFallbacks || st.Resyncs != was.Resyncs || st.KeptSlots != cluster.Slots {
			t.Errorf("node %d after a member left: %d slot syncs, %d fell back, %d resyncs, %d slots kept; want some, 0, 0, %d",
				n.id, st.SlotSyncs-was.SlotSyncs, st.SlotSyncFallbacks-was.SlotSyncFallbacks, st.Resyncs-was.Resyncs, st.KeptSlots, cluster.Slots)
		}
	}

	d := openSlotsOnlyNode(t, 4, join)
	settled(t, "three members again", a, b, d)
	holds(t, keys, "the joined node took its share, the others forgot it", a, b, d)
	// It took its share from the slots' owners after first syncs that
	// carried none of it.
	if st := d.Stats().RegionNodes; st.SlotSyncs == 0 || st.SlotSyncFallbacks != 0 || st.Resyncs != 0 {
		t.Errorf("the joined node: %d slot syncs, %d fell back, %d resyncs; want some, 0, 0", st.SlotSyncs, st.SlotSyncFallbacks, st.Resyncs)
	}
	if a.Stats().RegionNodes.Forgotten+b.Stats().RegionNodes.Forgotten == 0 {
		t.Error("nothing forgotten after a node joined")
	}
}

// settled waits until every node of live has every member of live serving
// in its map, keeps the slots it owns and has none cold.
func settled(t *testing.T, what string, live ...*Node) {
	t.Helper()
	for _, n := range live {
		testkit.Eventually(t, what, func() bool {
			m, _ := n.SlotMap()
			st := n.Stats().RegionNodes
			return m != nil && len(m.Members()) == len(live) && allServing(m) && st.ColdSlots == 0 && st.KeptSlots == st.Slots
		})
	}
}

// userKey is the i-th key of the tests.
func userKey(i int) string { return fmt.Sprint("user:", i) }

// holds checks that each node of live holds exactly the keys (of the
// first keys) of the slots it owns in its map.
func holds(t *testing.T, keys int, what string, live ...*Node) {
	t.Helper()
	for _, n := range live {
		want := 0
		testkit.Eventually(t, what, func() bool {
			m, _ := n.SlotMap()
			want = 0
			for i := range keys {
				if m.Owns(n.id, cluster.KeySlot(userKey(i))) {
					want++
				}
			}
			return n.Stats().Entries == want
		})
		m, _ := n.SlotMap()
		for i := range keys {
			_, held := n.store.Peek(userKey(i)) // Get would ask an owner
			if owns := m.Owns(n.id, cluster.KeySlot(userKey(i))); owns != held {
				t.Fatalf("%s: node %d owns %s's slot: %v; holds it: %v", what, n.id, userKey(i), owns, held)
			}
		}
		if want == keys && len(live) == 3 {
			t.Fatalf("%s: node %d owns every key of three nodes with two copies", what, n.id)
		}
	}
}

// writeAll writes every key (of the first keys) with value on its slot's
// primary in the first node's map.
func writeAll(t *testing.T, keys int, value string, live ...*Node) {
	t.Helper()
	m, _ := live[0].SlotMap()
	for i := range keys {
		p := m.Primary(cluster.KeySlot(userKey(i))).ID
		n := live[slices.IndexFunc(live, func(n *Node) bool { return n.id == p })]
		if err := n.Set(context.Background(), userKey(i), []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
}

// After a failover no read routed as a cluster client routes it (to the
// slot's primary, or where a cold slot's -ASK sends it) returns a version
// older than one every owner held before: the nodes that take a slot back
// forgot what they held of it when they lost it, and serve it from a
// co-owner that held it until they are warm.
func TestRegionNoStaleReadAfterFailover(t *testing.T) {
	a, b, c, join := slotsOnlyRegion(t)
	const keys = 2000
	writeAll(t, keys, "v1", a, b, c)
	holds(t, keys, "v1 on the owners", a, b, c)

	d := openSlotsOnlyNode(t, 4, join)
	settled(t, "four members serving", a, b, c, d)
	holds(t, keys, "the joined node took its share", a, b, c, d)
	live := []*Node{a, b, c, d}
	writeAll(t, keys, "v2", live...)
	for _, n := range live {
		testkit.Eventually(t, "v2 on every owner", func() bool {
			m, _ := n.SlotMap()
			for i := range keys {
				if v, err := n.Get(userKey(i)); m.Owns(n.id, cluster.KeySlot(userKey(i))) && (err != nil || string(v) != "v2") {
					return false
				}
			}
			return true
		})
	}

	byAddr := map[string]*Node{}
	for _, n := range live {
		byAddr[n.cfg.Gossip.ClientAddr] = n
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	live = live[:3]
	reads, asked := 0, 0
	readAll := func() {
		for i := range keys {
			k := userKey(i)
			slot := cluster.KeySlot(k)
			for _, n := range live {
				m, _ := n.SlotMap()
				if !m.Owns(n.id, slot) {
					continue
				}
				from := n
				if ask, cold := n.ColdSlot(slot); cold && ask != "" && byAddr[ask] != d {
					from, asked = byAddr[ask], asked+1
				}
				reads++
				if v, err := from.Get(k); err == nil && string(v) != "v2" {
					t.Fatalf("%s read %q from node %d (for node %d) after the failover", k, v, from.id, n.id)
				}
			}
		}
	}
	for !settledNow(live...) {
		readAll()
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	readAll()
	holds(t, keys, "every key on its owners after the failover", live...)
	t.Logf("%d reads during and after the failover, %d sent to a co-owner of a cold slot", reads, asked)
}

// settledNow reports whether settled would return at once.
func settledNow(live ...*Node) bool {
	for _, n := range live {
		m, _ := n.SlotMap()
		st := n.Stats().RegionNodes
		if m == nil || len(m.Members()) != len(live) || !allServing(m) || st.ColdSlots != 0 || st.KeptSlots != st.Slots {
			return false
		}
	}
	return true
}

// A slot gained is cold, and names a co-owner that owned it before: the
// server sends its commands there until the slot is warm.
func TestColdSlotsNameAFormerOwner(t *testing.T) {
	members := []cluster.Member{
		{ID: 1, Addr: "a:1", State: cluster.Serving},
		{ID: 2, Addr: "b:1", State: cluster.Serving},
		{ID: 3, Addr: "c:1", State: cluster.Serving},
	}
	before, err := cluster.New(members, 2)
	if err != nil {
		t.Fatal(err)
	}
	after, err := cluster.New(members[:2], 2) // 3 went: 1 and 2 own everything
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{id: 1, cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	kept, next := setOf(before.RangesOf(1)), setOf(after.RangesOf(1))
	gained, any := next.minus(kept)
	if !any {
		t.Fatal("node 1 gained nothing")
	}
	n.markCold(gained, before, after, false)
	for slot := range cluster.Slots {
		ask, cold := n.ColdSlot(slot)
		if cold != gained.has(slot) {
			t.Fatalf("slot %d cold %v, gained %v", slot, cold, gained.has(slot))
		}
		if cold && ask != "b:1" { // 2 owned every slot 1 gained (with 3)
			t.Fatalf("slot %d: ask %q, want b:1", slot, ask)
		}
	}
	n.warmUpTo(n.coldGen)
	if _, cold := n.ColdSlot(0); cold || n.cold.Load() != nil {
		t.Fatal("slots still cold after their warming round")
	}
}

// KeySlot is Redis Cluster's slot function, hash tags included.
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "{user1}.name": KeySlot("user1"), "": 0,
	} {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
	if KeySlot("{user1}.name") != KeySlot("{user1}.mail") {
		t.Error("keys of one hash tag in different slots")
	}
	if KeySlot("{}a") == KeySlot("{}b") {
		t.Error(`"{}" taken as a hash tag: an empty tag is none, the whole key is hashed`)
	}
}

// A warming round whose slot sync fails (here: the co-owner to ask is
// gone) asks every peer for a full sync instead.
func TestRegionWarmRoundFallsBack(t *testing.T) {
	a := openSlotsOnlyNode(t, 1)
	settled(t, "one member serving", a)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	c := &coldSlots{n: 1, replAddrs: []string{gone}}
	c.gen[5], c.from[5] = 1, 1
	a.cold.Store(c)
	<-a.warmRound()
	if st := a.Stats().RegionNodes; st.SlotSyncFailures != 1 || st.SlotSyncFallbacks != 1 || st.Resyncs != 1 {
		t.Errorf("after a failed slot sync: %d failures, %d fell back, %d resyncs; want 1 each", st.SlotSyncFailures, st.SlotSyncFallbacks, st.Resyncs)
	}
}
