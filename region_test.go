package geocache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
)

// Region tests run real gossip and replication on loopback: they wait for
// events (a minute only catches a hang) and assert outcomes.

func openRegionNode(t *testing.T, id uint32, join ...string) *Node {
	t.Helper()
	return openRegionNodeWith(t, id, &GossipConfig{ClientAddr: "127.0.0.1:6380"}, join...)
}

// openRegionNodeWith opens node id of region eu with gossip g (its Addr and
// Join filled in here), closed when the test ends.
func openRegionNodeWith(t *testing.T, id uint32, g *GossipConfig, join ...string) *Node {
	t.Helper()
	g.Addr, g.Join = "127.0.0.1:0", join
	n, err := Open(Config{Region: "eu", NodeID: id, PeerAddr: "127.0.0.1:0", PeerTimeout: time.Second, Gossip: g})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Three nodes of a region find each other by gossip, link to each other,
// agree on one slot map, and replicate; a fourth that joins later refills
// before it reports Synced; one that closes leaves the map and the links.
func TestRegionOfSeveralNodes(t *testing.T) {
	a := openRegionNode(t, 1)
	join := a.members.Addr()
	b := openRegionNode(t, 2, join)
	c := openRegionNode(t, 3, join)
	nodes := []*Node{a, b, c}
	for _, n := range nodes {
		testkit.Eventually(t, "three members linked and serving", func() bool {
			m, _ := n.SlotMap()
			return m != nil && len(m.Members()) == 3 && len(n.repl.Peers()) == 2 && allServing(m)
		})
	}
	version := func(n *Node) uint64 { m, _ := n.SlotMap(); return m.Version() }
	if version(a) != version(b) || version(a) != version(c) {
		t.Fatal("the members computed different slot maps")
	}
	for i := range 20 {
		if err := nodes[i%3].Set(context.Background(), key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		testkit.Eventually(t, "every write on every member", func() bool { return n.Stats().Entries == 20 })
	}

	d := openRegionNode(t, 4, join)
	<-d.Synced()
	if got := d.Stats().Entries; got != 20 {
		t.Errorf("the fourth member reported Synced holding %d of 20 entries", got)
	}
	for _, n := range nodes {
		testkit.Eventually(t, "four members", func() bool { m, _ := n.SlotMap(); return len(m.Members()) == 4 })
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b, d} {
		testkit.Eventually(t, "the closed member gone from the map and the links", func() bool {
			m, _ := n.SlotMap()
			return len(m.Members()) == 3 && len(n.repl.Peers()) == 2
		})
		m, epoch := n.SlotMap()
		if epoch < 2 {
			t.Errorf("epoch %d after membership changes", epoch)
		}
		for slot := 0; slot < 16384; slot += 97 {
			if len(m.Owners(slot)) != 2 {
				t.Fatalf("slot %d has owners %v", slot, m.Owners(slot))
			}
		}
	}
}

func allServing(m *cluster.Map) bool {
	for _, mb := range m.Members() {
		if mb.State != cluster.Serving {
			return false
		}
	}
	return true
}

func key(i int) string { return "k" + string(rune('a'+i)) }

// A node that joins owns no slot until it holds what the others hold: no
// map of the region sends clients to it while it would answer misses. A
// node that leaves gives its slots up at once and still replicates until
// it closes, so what it takes meanwhile reaches the others.
func TestRegionJoinsWarmAndLeavesFirst(t *testing.T) {
	a := openRegionNode(t, 1)
	join := a.members.Addr()
	b := openRegionNode(t, 2, join)
	testkit.Eventually(t, "two members linked", func() bool { return len(a.repl.Peers()) == 1 && len(b.repl.Peers()) == 1 })
	const entries = 20000
	ctx := context.Background()
	value := make([]byte, 256)
	for i := range entries {
		if err := a.Set(ctx, fmt.Sprint("user:", i), value); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "b holds every entry", func() bool { return b.Stats().Entries == entries })

	c := openRegionNode(t, 3, join)
	ownsSlots := func(n *Node, id uint32) bool { m, _ := n.SlotMap(); return m.RangesOf(id) != nil }
	held := -1
	testkit.Eventually(t, "a gives the joined node its share", func() bool {
		if !ownsSlots(a, 3) {
			return false
		}
		held = c.Stats().Entries
		return true
	})
	if held != entries {
		t.Errorf("a gave the joined node slots while it held %d of %d entries", held, entries)
	}
	for _, n := range []*Node{a, b, c} {
		testkit.Eventually(t, "three owners", func() bool { return ownsSlots(n, 1) && ownsSlots(n, 2) && ownsSlots(n, 3) })
	}

	if err := c.LeaveRegion(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b, c} {
		testkit.Eventually(t, "the leaving node owns nothing", func() bool { return !ownsSlots(n, 3) && ownsSlots(n, 1) && ownsSlots(n, 2) })
		m, _ := n.SlotMap()
		if mb, ok := m.Member(3); !ok || mb.State != cluster.Leaving {
			t.Errorf("the leaving node listed as %+v, %v", mb, ok)
		}
	}
	if err := c.Set(ctx, "after-leave", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		if _, err := n.Get("after-leave"); err != nil {
			t.Errorf("a write on the leaving node, drained, is not on the others: %v", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.LeaveRegion(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("LeaveRegion after Close: %v, want ErrClosed", err)
	}
}

// A region node refuses a config it cannot run with.
func TestRegionConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no gossip addr", Config{NodeID: 1, PeerAddr: "127.0.0.1:0", Gossip: &GossipConfig{}}},
		{"no replication address", Config{NodeID: 1, Gossip: &GossipConfig{Addr: "127.0.0.1:0"}}},
		{"bad key", Config{NodeID: 1, PeerAddr: "127.0.0.1:0", Gossip: &GossipConfig{Addr: "127.0.0.1:0", Key: []byte("short")}}},
		{"negative copies", Config{NodeID: 1, PeerAddr: "127.0.0.1:0", Gossip: &GossipConfig{Addr: "127.0.0.1:0", Copies: -1}}},
		{"wildcard replication address", Config{NodeID: 1, PeerAddr: "0.0.0.0:0", Gossip: &GossipConfig{Addr: "127.0.0.1:0"}}},
	} {
		if n, err := Open(tc.cfg); err == nil {
			n.Close()
			t.Errorf("%s: opened", tc.name)
		} else if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	// A wildcard listener is fine with the address to announce.
	n, err := Open(Config{NodeID: 1, Region: "eu", PeerAddr: "0.0.0.0:0",
		Gossip: &GossipConfig{Addr: "127.0.0.1:0", ReplAddr: "127.0.0.1:7380", ClientAddr: "127.0.0.1:6380"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if m, _ := n.SlotMap(); m.Members()[0].ReplAddr != "127.0.0.1:7380" {
		t.Errorf("announced %q", m.Members()[0].ReplAddr)
	}
}
