package cluster

import (
	"cmp"
	"slices"
)

// A Transfer is a run of adjacent slots that changes hands, with the peers
// on the other side of the hand-over.
type Transfer struct {
	SlotRange
	// Peers are, for a gain, the slots' owners in the previous map,
	// primary first: the nodes to take them warm from (some may be gone).
	// For a loss they are the slots' owners in the next map: the nodes to
	// hand them to. Nil when there is no such map.
	Peers []Member
}

// A Change is what one node gains and loses between two maps.
type Change struct {
	// Node is the node, as the next map knows it (as the previous one did
	// if it left).
	Node Member
	// Gained are the slots Node owns in the next map and did not own in
	// the previous one, by slot; adjacent slots are merged while their
	// Peers are the same.
	Gained []Transfer
	// Lost are the slots Node owned in the previous map and does not own
	// in the next, by slot, merged the same way.
	Lost []Transfer
}

// Diff returns, for every node that gains or loses slots from the map prev
// to the map next, by node id, the slots it gains and loses. A node that
// only moves within a slot's owner list (becomes or stops being its
// primary) changes nothing here: every owner holds the data. prev may be
// nil (a node's first map): every owner of next then gains all its slots,
// from no one; next may be nil: every owner of prev loses all its slots,
// to no one.
func Diff(prev, next *Map) []Change {
	byID := make(map[uint32]*Change)
	change := func(mb Member) *Change {
		ch, ok := byID[mb.ID]
		if !ok {
			if next != nil {
				if now, ok := next.Member(mb.ID); ok {
					mb = now
				}
			}
			ch = &Change{Node: mb}
			byID[mb.ID] = ch
		}
		return ch
	}
	for r := range numRanges {
		sr := SlotRange{First: r * slotsPerRange, Last: (r+1)*slotsPerRange - 1}
		var was, is []Member
		if prev != nil {
			was = prev.Owners(sr.First)
		}
		if next != nil {
			is = next.Owners(sr.First)
		}
		if sameIDs(was, is) {
			continue
		}
		for _, mb := range is {
			if !containsID(was, mb.ID) {
				ch := change(mb)
				ch.Gained = addTransfer(ch.Gained, sr, was)
			}
		}
		for _, mb := range was {
			if !containsID(is, mb.ID) {
				ch := change(mb)
				ch.Lost = addTransfer(ch.Lost, sr, is)
			}
		}
	}
	out := make([]Change, 0, len(byID))
	for _, ch := range byID {
		out = append(out, *ch)
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.Node.ID, b.Node.ID) })
	return out
}

// addTransfer appends sr with peers to ts, extending the last transfer
// instead when sr follows it and has the same peers.
func addTransfer(ts []Transfer, sr SlotRange, peers []Member) []Transfer {
	if k := len(ts) - 1; k >= 0 && ts[k].Last+1 == sr.First && sameIDs(ts[k].Peers, peers) {
		ts[k].Last = sr.Last
		return ts
	}
	return append(ts, Transfer{SlotRange: sr, Peers: peers})
}
