package cluster

import (
	"encoding/hex"
	"slices"
	"testing"
)

func TestHexID(t *testing.T) {
	// Pinned: clients remember node ids, so they must not change between
	// versions of geocache.
	if got := HexID(1); got != "a7f46e62ac4ea737ee55130c27836927b1f57f2e" {
		t.Errorf("HexID(1) = %s", got)
	}
	seen := make(map[string]uint32)
	for id := range uint32(200000) {
		h := HexID(id)
		if len(h) != HexIDLen {
			t.Fatalf("HexID(%d) = %q: %d digits", id, h, len(h))
		}
		if _, err := hex.DecodeString(h); err != nil {
			t.Fatalf("HexID(%d) = %q: %v", id, h, err)
		}
		if other, ok := seen[h]; ok {
			t.Fatalf("HexID(%d) = HexID(%d) = %s", id, other, h)
		}
		seen[h] = id
	}
	for _, id := range []uint32{1 << 31, 1<<32 - 1} {
		if len(HexID(id)) != HexIDLen {
			t.Fatalf("HexID(%d) = %q", id, HexID(id))
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendHexID(buf[:0], 7) }); n != 0 {
		t.Fatalf("AppendHexID allocates %v times", n)
	}
}

func TestShards(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		m := mustNew(t, members(seqIDs(n)...), 2)
		covered := make([]int, Slots)
		for i, sh := range m.Shards() {
			if i > 0 && m.Shards()[i-1].Slots[0].First >= sh.Slots[0].First {
				t.Fatalf("%d nodes: shards not in slot order", n)
			}
			for j, sr := range sh.Slots {
				if j > 0 && sh.Slots[j-1].Last+1 >= sr.First {
					t.Fatalf("%d nodes: shard %d: runs %v, %v out of order or not merged", n, i, sh.Slots[j-1], sr)
				}
				for slot := sr.First; slot <= sr.Last; slot++ {
					covered[slot]++
					if !sameIDs(m.Owners(slot), sh.Owners) {
						t.Fatalf("%d nodes: slot %d owners %v, its shard says %v", n, slot, ownerIDs(m, slot), sh.Owners)
					}
				}
			}
			for _, other := range m.Shards()[:i] {
				if sameIDs(other.Owners, sh.Owners) {
					t.Fatalf("%d nodes: two shards with owners %v", n, sh.Owners)
				}
			}
		}
		for slot, c := range covered {
			if c != 1 {
				t.Fatalf("%d nodes: slot %d in %d shards", n, slot, c)
			}
		}
		t.Logf("%d nodes, copies 2: %d shards, %d ranges", n, len(m.Shards()), len(m.Ranges()))
	}
}

func TestPrimaryRanges(t *testing.T) {
	m := mustNew(t, members(seqIDs(5)...), 2)
	covered := make([]int, Slots)
	for _, mb := range m.Members() {
		for i, sr := range m.PrimaryRanges(mb.ID) {
			if i > 0 && m.PrimaryRanges(mb.ID)[i-1].Last+1 >= sr.First {
				t.Fatalf("node %d: runs out of order or not merged", mb.ID)
			}
			for slot := sr.First; slot <= sr.Last; slot++ {
				covered[slot]++
				if m.Primary(slot).ID != mb.ID {
					t.Fatalf("slot %d: PrimaryRanges says %d, Primary %d", slot, mb.ID, m.Primary(slot).ID)
				}
			}
		}
	}
	for slot, c := range covered {
		if c != 1 {
			t.Fatalf("slot %d listed for %d primaries", slot, c)
		}
	}
	if got := len(m.Primaries()); got != 5 {
		t.Fatalf("Primaries: %d, want 5", got)
	}
	if got := mustNew(t, members(1, 2, 3), 3).Primaries(); len(got) != 3 || got[0].ID != 1 || got[2].ID != 3 {
		t.Fatalf("Primaries of 3 nodes, copies 3: %v", got)
	}
}

// A member that owns no slot (joining or leaving) is a shard of its own
// without slots, after the shards with slots, as Redis lists a master
// without slots.
func TestShardsListSlotlessMembers(t *testing.T) {
	ms := members(1, 2, 3, 4)
	ms[0].State, ms[1].State, ms[2].State, ms[3].State = Serving, Joining, Serving, Leaving
	m := mustNew(t, ms, 2)
	shards := m.Shards()
	var slotless []uint32
	for i, sh := range shards {
		if len(sh.Slots) > 0 {
			if len(slotless) > 0 {
				t.Fatalf("shard %d with slots after a slotless one", i)
			}
			continue
		}
		if len(sh.Owners) != 1 {
			t.Fatalf("a slotless shard of %d nodes", len(sh.Owners))
		}
		slotless = append(slotless, sh.Owners[0].ID)
	}
	if !slices.Equal(slotless, []uint32{2, 4}) {
		t.Fatalf("slotless shards %v; want the joining and the leaving member, [2 4]", slotless)
	}
}
