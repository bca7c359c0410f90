package cluster

import (
	"slices"
	"testing"
)

// expand checks that ts is in slot order with no two mergeable neighbours
// and returns, per slot it covers, the ids of its peers.
func expand(t *testing.T, what string, ts []Transfer) map[int][]uint32 {
	t.Helper()
	out := make(map[int][]uint32)
	for i, tr := range ts {
		if i > 0 {
			prev := ts[i-1]
			if tr.First <= prev.Last {
				t.Fatalf("%s: transfer %d-%d after %d-%d", what, tr.First, tr.Last, prev.First, prev.Last)
			}
			if tr.First == prev.Last+1 && sameIDs(tr.Peers, prev.Peers) {
				t.Fatalf("%s: transfers %d-%d and %d-%d not merged", what, prev.First, prev.Last, tr.First, tr.Last)
			}
		}
		var ids []uint32
		for _, p := range tr.Peers {
			ids = append(ids, p.ID)
		}
		for slot := tr.First; slot <= tr.Last; slot++ {
			out[slot] = ids
		}
	}
	return out
}

// checkDiff compares Diff(prev, next) with what a slot-by-slot comparison
// of the two maps says.
func checkDiff(t *testing.T, prev, next *Map) []Change {
	t.Helper()
	changes := Diff(prev, next)
	byID := make(map[uint32]Change)
	for i, ch := range changes {
		if i > 0 && changes[i-1].Node.ID >= ch.Node.ID {
			t.Fatalf("changes not by node id: %d then %d", changes[i-1].Node.ID, ch.Node.ID)
		}
		if len(ch.Gained) == 0 && len(ch.Lost) == 0 {
			t.Fatalf("node %d listed with no change", ch.Node.ID)
		}
		if next != nil {
			if mb, ok := next.Member(ch.Node.ID); ok && mb != ch.Node {
				t.Fatalf("node %d: Change.Node %+v, next map says %+v", ch.Node.ID, ch.Node, mb)
			}
		}
		byID[ch.Node.ID] = ch
	}
	owners := func(m *Map, slot int) []uint32 {
		if m == nil {
			return nil
		}
		return ownerIDs(m, slot)
	}
	ids := make(map[uint32]bool)
	for _, m := range []*Map{prev, next} {
		if m != nil {
			for _, mb := range m.Members() {
				ids[mb.ID] = true
			}
		}
	}
	for id := range ids {
		ch := byID[id]
		gained := expand(t, "gained", ch.Gained)
		lost := expand(t, "lost", ch.Lost)
		for slot := range Slots {
			was, is := owners(prev, slot), owners(next, slot)
			switch {
			case !slices.Contains(was, id) && slices.Contains(is, id):
				if peers, ok := gained[slot]; !ok || !slices.Equal(peers, was) {
					t.Fatalf("node %d gains slot %d from %v; Diff says %v (listed %v)", id, slot, was, peers, ok)
				}
			case slices.Contains(was, id) && !slices.Contains(is, id):
				if peers, ok := lost[slot]; !ok || !slices.Equal(peers, is) {
					t.Fatalf("node %d loses slot %d to %v; Diff says %v (listed %v)", id, slot, is, peers, ok)
				}
			default:
				if _, ok := gained[slot]; ok {
					t.Fatalf("node %d: Diff says it gains slot %d; owners %v -> %v", id, slot, was, is)
				}
				if _, ok := lost[slot]; ok {
					t.Fatalf("node %d: Diff says it loses slot %d; owners %v -> %v", id, slot, was, is)
				}
			}
		}
	}
	return changes
}

func TestDiff(t *testing.T) {
	rng := newRNG(t)
	ids := randomIDs(rng, 8)
	three := mustNew(t, members(ids[:3]...), 2)
	four := mustNew(t, members(ids[:4]...), 2)
	swapped := mustNew(t, members(ids[1], ids[2], ids[3], ids[4]), 2)
	moved := members(ids[:4]...)
	moved[2].Addr = "10.0.0.9:6379"
	readdressed := mustNew(t, moved, 2)

	t.Run("join", func(t *testing.T) {
		changes := checkDiff(t, three, four)
		for _, ch := range changes {
			if ch.Node.ID == ids[3] && (len(ch.Gained) == 0 || len(ch.Lost) > 0) {
				t.Fatalf("joiner: %d gained, %d lost", len(ch.Gained), len(ch.Lost))
			}
			if ch.Node.ID != ids[3] && len(ch.Gained) > 0 {
				t.Fatalf("node %d gains slots when another joins", ch.Node.ID)
			}
		}
	})
	t.Run("leave", func(t *testing.T) {
		changes := checkDiff(t, four, three)
		for _, ch := range changes {
			if ch.Node.ID != ids[3] && len(ch.Lost) > 0 {
				t.Fatalf("node %d loses slots when another leaves", ch.Node.ID)
			}
		}
	})
	t.Run("replace", func(t *testing.T) { checkDiff(t, four, swapped) })
	t.Run("first map", func(t *testing.T) {
		changes := checkDiff(t, nil, three)
		if len(changes) != 3 {
			t.Fatalf("%d changes, want 3", len(changes))
		}
	})
	t.Run("last map", func(t *testing.T) { checkDiff(t, three, nil) })
	t.Run("same", func(t *testing.T) {
		if changes := Diff(four, four); len(changes) != 0 {
			t.Fatalf("Diff of a map with itself: %d changes", len(changes))
		}
	})
	t.Run("address only", func(t *testing.T) {
		if changes := Diff(four, readdressed); len(changes) != 0 {
			t.Fatalf("an address change moves slots: %d changes", len(changes))
		}
	})
	t.Run("copies", func(t *testing.T) { checkDiff(t, mustNew(t, members(ids[:4]...), 1), four) })
}
