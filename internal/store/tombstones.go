package store

import (
	"math"
	"sync"
	"time"
)

// tombstones is the exact, bounded table of deleted keys: (key, version)
// for every key whose latest known state is "no value" (a Delete, a Set
// that had already expired when it arrived, or an entry that expired here).
// A key never has both a live entry and a tombstone: a newer Set removes the
// tombstone, a newer Delete removes the entry.
//
// Each tombstone has a start: the wall time (Unix ns) from which the horizon
// counts — its version's wall time for a delete, the expiry time for an
// expired Set (which lived, and could be overwritten by older writes in
// flight, until then).
//
// Layout: tombstones live in a slab whose positions stay put while they
// live (so Snapshot can walk the slab in chunks, unlocking in between, and
// still see every tombstone that lives throughout exactly once); a map finds
// a key's slab position; a binary min-heap of slab positions, ordered by
// start, finds the oldest tombstone in O(1) for the horizon and the size
// bound, and removes any tombstone in O(log n).
type tombstones struct {
	// mu guards all fields below. Lock order: an lru shard lock, then mu;
	// never the other way round (see doc.go).
	mu      sync.Mutex
	index   map[string]int32 // key -> slab position
	slab    []tomb
	free    int32   // first free slab position, -1 if none
	heap    []int32 // slab positions; heap[0] is the oldest version
	dropped uint64  // tombstones moved to the ghost table

	max     int   // bound on len(heap)
	horizon int64 // nanoseconds
	ghosts  *ghostTable
}

type tomb struct {
	key   string
	ver   Version
	start int64 // Unix ns the horizon counts from
	pos   int32 // position in heap, or -1 if this slab slot is free
	// nextFree links free slab slots.
	nextFree int32
}

func newTombstones(max int, horizon int64, ghosts *ghostTable) *tombstones {
	return &tombstones{index: make(map[string]int32), free: -1, max: max, horizon: horizon, ghosts: ghosts}
}

// getLocked returns the version of key's tombstone.
func (t *tombstones) getLocked(key string) (Version, bool) {
	i, ok := t.index[key]
	if !ok {
		return Version{}, false
	}
	return t.slab[i].ver, true
}

// putLocked sets key's tombstone to ver, which the caller has checked is
// newer than any tombstone key has, with the horizon counting from
// expireAt (Unix ns) if that is later than ver's wall time, and then drops
// the oldest tombstones into the ghost table while the table is over its
// bound.
func (t *tombstones) putLocked(key string, ver Version, expireAt int64) {
	start := tombStart(ver, expireAt)
	if i, ok := t.index[key]; ok {
		t.slab[i].ver, t.slab[i].start = ver, start
		p := int(t.slab[i].pos)
		t.down(p)
		t.up(p)
		return
	}
	i := t.free
	if i >= 0 {
		t.free = t.slab[i].nextFree
	} else {
		i = int32(len(t.slab))
		t.slab = append(t.slab, tomb{})
	}
	t.slab[i] = tomb{key: key, ver: ver, start: start, pos: int32(len(t.heap))}
	t.index[key] = i
	t.heap = append(t.heap, i)
	t.up(len(t.heap) - 1)
	for len(t.heap) > t.max {
		t.dropLocked(t.heap[0])
	}
}

// removeLocked deletes key's tombstone without a ghost: the caller is
// replacing it with a newer live entry.
func (t *tombstones) removeLocked(key string) {
	if i, ok := t.index[key]; ok {
		t.deleteLocked(i)
	}
}

// dropLocked moves the tombstone at slab position i to the ghost table. The
// ghost is recorded before the tombstone goes, and Apply reads both under
// mu, so no Apply can see the key with neither.
func (t *tombstones) dropLocked(i int32) {
	t.ghosts.record(t.slab[i].key, t.slab[i].ver.HLC)
	t.deleteLocked(i)
	t.dropped++
}

func (t *tombstones) deleteLocked(i int32) {
	tb := &t.slab[i]
	delete(t.index, tb.key)
	p := int(tb.pos)
	last := len(t.heap) - 1
	if p != last {
		t.swap(p, last)
	}
	t.heap = t.heap[:last]
	if p != last {
		t.down(p)
		t.up(p)
	}
	*tb = tomb{pos: -1, nextFree: t.free}
	t.free = i
}

// tombStart is the wall time (Unix ns) a tombstone's horizon counts from:
// the later of ver's wall time and expireAt (0 for a delete).
func tombStart(ver Version, expireAt int64) int64 {
	const nsPerMs = int64(time.Millisecond)
	start := int64(math.MaxInt64) // a version far in the future never ages
	if ms := ver.HLC.WallMillis(); ms <= math.MaxInt64/nsPerMs {
		start = ms * nsPerMs
	}
	return max(start, expireAt)
}

// pruneLocked drops up to budget tombstones older than the horizon at now
// (Unix nanoseconds) and returns how many it dropped.
func (t *tombstones) pruneLocked(now int64, budget int) int {
	n := 0
	for n < budget && len(t.heap) > 0 && now-t.slab[t.heap[0]].start > t.horizon {
		t.dropLocked(t.heap[0])
		n++
	}
	return n
}

// purgeLocked drops every tombstone and releases the table's memory.
func (t *tombstones) purgeLocked() int {
	n := len(t.heap)
	for _, i := range t.heap {
		t.ghosts.record(t.slab[i].key, t.slab[i].ver.HLC)
	}
	t.dropped += uint64(n)
	t.index = make(map[string]int32)
	t.slab, t.heap, t.free = nil, nil, -1
	return n
}

// copyLocked appends to buf, as Delete ops, the tombstones at slab positions
// from start on until buf is full, and returns where to continue (or -1 at
// the end).
func (t *tombstones) copyLocked(start int, buf []Op) ([]Op, int) {
	i := start
	for ; i < len(t.slab) && len(buf) < cap(buf); i++ {
		if tb := &t.slab[i]; tb.pos >= 0 {
			buf = append(buf, Op{Kind: KindDelete, Key: tb.key, Version: tb.ver})
		}
	}
	if i >= len(t.slab) {
		return buf, -1
	}
	return buf, i
}

func (t *tombstones) less(a, b int) bool {
	x, y := &t.slab[t.heap[a]], &t.slab[t.heap[b]]
	if x.start != y.start {
		return x.start < y.start
	}
	return x.ver.Compare(y.ver) < 0
}

func (t *tombstones) swap(a, b int) {
	t.heap[a], t.heap[b] = t.heap[b], t.heap[a]
	t.slab[t.heap[a]].pos = int32(a)
	t.slab[t.heap[b]].pos = int32(b)
}

func (t *tombstones) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !t.less(j, p) {
			return
		}
		t.swap(j, p)
		j = p
	}
}

func (t *tombstones) down(j int) {
	n := len(t.heap)
	for {
		c := 2*j + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && t.less(r, c) {
			c = r
		}
		if !t.less(c, j) {
			return
		}
		t.swap(j, c)
		j = c
	}
}
