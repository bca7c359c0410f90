package store

import (
	"sync/atomic"

	"github.com/geocache/geocache/internal/hlc"
)

// ghostTable remembers, per hash slot, the largest HLC of any version that
// left the store without an exact record staying behind: evicted or expired
// entries, dropped tombstones, entries removed by DropUnvouched, Purge or a
// too-large write. It is lossy (keys share slots) but conservative: a slot
// only ever grows, so a write refused because of it is at worst a miss.
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

func (g *ghostTable) slot(key string) *atomic.Uint64 {
	return &g.slots[ghostHash(key)&g.mask]
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

// GhostCovers reports whether ghosts — a ghost table as Store.Ghosts
// returns it, possibly another node's — says a version of key with HLC ts
// may have been superseded by one that left that store. An empty or
// malformed table covers everything (the caller cannot rule anything out).
func GhostCovers(ghosts []uint64, key string, ts hlc.Timestamp) bool {
	n := uint64(len(ghosts))
	if n == 0 || n&(n-1) != 0 {
		return true
	}
	return uint64(ts) <= ghosts[ghostHash(key)&(n-1)]
}

// Ghosts returns a copy of the ghost table, for a full sync.
func (s *Store) Ghosts() []uint64 {
	out := make([]uint64, len(s.ghosts.slots))
	for i := range out {
		out[i] = s.ghosts.slots[i].Load()
	}
	return out
}

// MergeGhosts raises this store's ghost slots to cover everything another
// node's ghost table (as Ghosts returns it, sent with a full sync) covers:
// afterwards a write the sender's table would refuse is refused here too.
// A table of another size is folded conservatively (each slot here takes
// the largest of the sender's slots its keys may map to); an empty or
// malformed table is ignored. It reports whether it merged.
//
// Why: a node refilling from several peers must not take from one of them
// a version that another's ghost table says was superseded — the first
// peer may have been cut off while the write that superseded it was made,
// and the second, having dropped that write's tombstone past the horizon,
// has only the ghost left to say so.
func (s *Store) MergeGhosts(ghosts []uint64) bool {
	m, n := len(ghosts), len(s.ghosts.slots)
	if m == 0 || m&(m-1) != 0 {
		return false
	}
	if m >= n {
		for i, v := range ghosts {
			s.ghosts.raise(i&(n-1), v)
		}
	} else {
		for j := range n {
			s.ghosts.raise(j, ghosts[j&(m-1)])
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
	g.raise(int(ghostHash(key)&g.mask), uint64(ts))
}

// covers reports whether a version of key with HLC ts may be older than (or
// as old as) one that left the store. The comparison is on HLC alone, which
// errs on the side of refusing: a slot holding t refuses (t, any origin).
func (g *ghostTable) covers(key string, ts hlc.Timestamp) bool {
	return uint64(ts) <= g.slot(key).Load()
}
