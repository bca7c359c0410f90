package store

import (
	"hash/maphash"
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
	seed  maphash.Seed
}

func newGhostTable(n int) *ghostTable {
	return &ghostTable{
		slots: make([]atomic.Uint64, n),
		mask:  uint64(n - 1),
		seed:  maphash.MakeSeed(),
	}
}

func (g *ghostTable) slot(key string) *atomic.Uint64 {
	return &g.slots[maphash.String(g.seed, key)&g.mask]
}

// record raises key's slot to at least ts.
func (g *ghostTable) record(key string, ts hlc.Timestamp) {
	p := g.slot(key)
	for {
		old := p.Load()
		if old >= uint64(ts) || p.CompareAndSwap(old, uint64(ts)) {
			return
		}
	}
}

// covers reports whether a version of key with HLC ts may be older than (or
// as old as) one that left the store. The comparison is on HLC alone, which
// errs on the side of refusing: a slot holding t refuses (t, any origin).
func (g *ghostTable) covers(key string, ts hlc.Timestamp) bool {
	return uint64(ts) <= g.slot(key).Load()
}
