package cluster

import (
	"cmp"
	"slices"
)

// HexIDLen is the length of a Redis Cluster node id: 40 hex digits.
const HexIDLen = 40

// AppendHexID appends to dst the 40-hex-digit id Redis Cluster clients
// know the node with the given id by (CLUSTER NODES, SLOTS, SHARDS, MYID).
// It depends on the node id alone, so it is the same on every node and
// across restarts, and distinct node ids give distinct hex ids (its first
// 16 digits are a bijection of the id).
func AppendHexID(dst []byte, id uint32) []byte {
	const digits = "0123456789abcdef"
	// Three outputs of a SplitMix64 stream seeded by the id: 24 bytes, of
	// which the first 20 are written.
	z := uint64(id) ^ 0x6765_6f63_6163_6865 // "geocache"
	n := 0
	for range 3 {
		z += 0x9e3779b97f4a7c15
		x := z
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		x ^= x >> 31
		for shift := 60; shift >= 0 && n < HexIDLen; shift -= 4 {
			dst = append(dst, digits[x>>uint(shift)&0xf])
			n++
		}
	}
	return dst
}

// HexID returns AppendHexID(nil, id) as a string.
func HexID(id uint32) string { return string(AppendHexID(make([]byte, 0, HexIDLen), id)) }

// A Shard is a set of slots with the same owners in the same order: a
// shard of CLUSTER SHARDS. Each node has one role per shard, so a node
// that is primary of some slots and a replica of others is in several.
type Shard struct {
	// Slots are the runs of slots the shard holds, by slot.
	Slots []SlotRange
	// Owners are the shard's nodes: the primary first, then the others.
	// Shared with the Map: do not modify.
	Owners []Member
}

// Shards groups the ranges by their owner list: one Shard per distinct
// ordered owner list, in the order of their first slot; then one shard
// without slots for each member that owns none (joining or leaving), by
// id, as Redis lists a master without slots.
func (m *Map) Shards() []Shard {
	var shards []Shard
	index := make(map[string]int)
	var key []byte
	for _, rg := range m.ranges {
		key = key[:0]
		for _, o := range rg.Owners {
			key = append(key, byte(o.ID>>24), byte(o.ID>>16), byte(o.ID>>8), byte(o.ID))
		}
		i, ok := index[string(key)]
		if !ok {
			i = len(shards)
			index[string(key)] = i
			shards = append(shards, Shard{Owners: rg.Owners})
		}
		sh := &shards[i]
		if k := len(sh.Slots) - 1; k >= 0 && sh.Slots[k].Last+1 == rg.First {
			sh.Slots[k].Last = rg.Last
		} else {
			sh.Slots = append(sh.Slots, rg.SlotRange)
		}
	}
	for i, mb := range m.members {
		if m.RangesOf(mb.ID) == nil {
			shards = append(shards, Shard{Owners: m.members[i : i+1 : i+1]})
		}
	}
	return shards
}

// PrimaryRanges returns the slots whose primary is the node with the
// given id, as runs of adjacent slots, by slot: the slots CLUSTER NODES
// lists for it. Nil if it is primary of none.
func (m *Map) PrimaryRanges(id uint32) []SlotRange {
	var out []SlotRange
	for _, rg := range m.ranges {
		if rg.Owners[0].ID != id {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].Last+1 == rg.First {
			out[k].Last = rg.Last
			continue
		}
		out = append(out, rg.SlotRange)
	}
	return out
}

// Primaries returns the members that are the primary of at least one slot,
// by id: the masters of Redis's view (cluster_size in CLUSTER INFO).
func (m *Map) Primaries() []Member {
	var out []Member
	for _, rg := range m.ranges {
		if !containsID(out, rg.Owners[0].ID) {
			out = append(out, rg.Owners[0])
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
