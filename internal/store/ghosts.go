package store

import (
	"sync/atomic"

	"github.com/geocache/geocache/internal/hlc"
)

// ghostTable remembers, per hash slot, the largest HLC of any version that
// left the store without an exact record staying behind. A store has two:
// one for local departures (evicted entries, entries removed by
// DropUnvouched, Purge or a too-large write), which never leaves the node,
// and one for dropped tombstones (deletes and expiries past the horizon or
// over the bound), which travels with full syncs. It is lossy (keys share
// slots) but conservative: a slot only ever grows, so a write refused
// because of it is at worst a miss.
//
// Slots are atomics and need no lock: recording takes the max with a CAS
// loop, and both recording and checking happen under the lock that also
// guards the key's exact state (see doc.go), which is what makes the check
// airtight.
type ghostTable struct {
	slots []atomic.Uint64
	mask  uint64
}

func newGhostTable(n int) *ghostTable {
	return &ghostTable{slots: make([]atomic.Uint64, n), mask: uint64(n - 1)}
}

// ghostHash is FNV-1a: the same on every node, so that a node can read
// another's ghost table (sent with a full sync).
func ghostHash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h
}

// GhostCovers reports whether ghosts — a table as Store.TombstoneGhosts
// returns it, possibly another node's — says a version of key with HLC ts
// may have been superseded by a delete or an expiry whose tombstone left
// that store. An empty or malformed table (its size not a power of two)
// covers nothing: a table proves supersession, and one that cannot be read
// proves none (the caller refuses it before asking).
func GhostCovers(ghosts []uint64, key string, ts hlc.Timestamp) bool {
	n := uint64(len(ghosts))
	if n == 0 || n&(n-1) != 0 {
		return false
	}
	return uint64(ts) <= ghosts[ghostHash(key)&(n-1)]
}

// TombstoneGhosts returns a copy of the tombstone-ghost table (what is left
// of deletes and expiries whose exact tombstones are gone), for a full
// sync. The local ghosts of evictions and flushes are not in it: they say
// nothing about the key in another region, and a peer that dropped its own
// copy because this node evicted one would lose data only this node let go
// of.
func (s *Store) TombstoneGhosts() []uint64 {
	out := make([]uint64, len(s.tombGhosts.slots))
	for i := range out {
		out[i] = s.tombGhosts.slots[i].Load()
	}
	return out
}

// MergeTombstoneGhosts raises this store's tombstone-ghost slots to cover
// everything another node's table (as TombstoneGhosts returns it, sent
// with a full sync) covers: afterwards a write the sender's table would
// refuse is refused here too, and this node passes the knowledge on in its
// own full syncs. A table of another size is folded conservatively (each
// slot here takes the largest of the sender's slots its keys may map to);
// an empty or malformed table is ignored. It reports whether it merged.
//
// Why: a node refilling from several peers must not take from one of them
// a version that another says was deleted — the first peer may have been
// cut off while the delete was made, and the second, having dropped the
// delete's tombstone past the horizon, has only the ghost left to say so.
func (s *Store) MergeTombstoneGhosts(ghosts []uint64) bool {
	m, n := len(ghosts), len(s.tombGhosts.slots)
	if m == 0 || m&(m-1) != 0 {
		return false
	}
	if m >= n {
		for i, v := range ghosts {
			s.tombGhosts.raise(i&(n-1), v)
		}
	} else {
		for j := range n {
			s.tombGhosts.raise(j, ghosts[j&(m-1)])
		}
	}
	return true
}

// raise raises slot j to at least v.
func (g *ghostTable) raise(j int, v uint64) {
	p := &g.slots[j]
	for {
		old := p.Load()
		if old >= v || p.CompareAndSwap(old, v) {
			return
		}
	}
}

// record raises key's slot to at least ts.
func (g *ghostTable) record(key string, ts hlc.Timestamp) {
	g.recordHash(ghostHash(key), ts)
}

// recordHash is record given the key's ghostHash, h (or its low 32 bits:
// a table has at most maxGhostSlots).
func (g *ghostTable) recordHash(h uint64, ts hlc.Timestamp) {
	g.raise(int(h&g.mask), uint64(ts))
}

// coversHash reports whether a version of the key whose ghostHash is h,
// with HLC ts, may be older than (or as old as) one that left the store.
// The comparison is on HLC alone, which errs on the side of refusing: a
// slot holding t refuses (t, any origin).
func (g *ghostTable) coversHash(h uint64, ts hlc.Timestamp) bool {
	return uint64(ts) <= g.slots[h&g.mask].Load()
}
