package store

import (
	"math"
	"sync"
	"time"
)

// tombstones is the exact, bounded record of keys whose latest known state
// is "no value": (key, version) for a Delete, and for a Set that expired —
// here, or before it arrived. A key never has both a live entry and a
// tombstone: a newer Set removes the tombstone, a newer Delete removes the
// entry.
//
// Deletes and expiries are kept in two tables, each bounded by MaxTombstones
// on its own, so that a workload of short TTLs (one tombstone per expiry)
// cannot push deletes out early. A key has a tombstone in at most one.
//
// Each tombstone has a start: the wall time (Unix ns) from which the horizon
// counts — its version's wall time for a delete, the expiry time for an
// expired Set (which lived, and could be overwritten by older writes in
// flight, until then). Snapshots send an expiry's tombstone as a Delete op
// whose ExpireAt is that start, so every region ages it alike.
type tombstones struct {
	// mu guards both tables. Lock order: an lru shard lock, then mu; never
	// the other way round (see doc.go).
	mu     sync.Mutex
	tables [2]tombTable // tableDeletes, tableExpiries
}

const (
	tableDeletes  = 0
	tableExpiries = 1

	// tableStride separates the two tables' positions in a copyLocked cursor.
	tableStride = 1 << 32
)

func newTombstones(max int, horizon int64, ghosts *ghostTable) *tombstones {
	t := &tombstones{}
	for i := range t.tables {
		t.tables[i] = tombTable{index: make(map[string]int32), free: -1, max: max, horizon: horizon, ghosts: ghosts}
	}
	return t
}

// getLocked returns the version of key's tombstone.
func (t *tombstones) getLocked(key string) (Version, bool) {
	op, ok := t.opLocked(key)
	return op.Version, ok
}

// opLocked returns key's tombstone as the Delete op that reproduces it.
func (t *tombstones) opLocked(key string) (Op, bool) {
	for k := range t.tables {
		tt := &t.tables[k]
		if i, ok := tt.index[key]; ok {
			return tt.slab[i].op(k), true
		}
	}
	return Op{}, false
}

// putLocked sets key's tombstone to ver, which the caller has checked is
// newer than any tombstone key has: a delete's if expireAt is 0, else an
// expiry's whose horizon counts from expireAt (Unix ns) if that is later
// than ver's wall time. The oldest tombstones of its table are then dropped
// into the ghost table while the table is over its bound.
func (t *tombstones) putLocked(key string, ver Version, expireAt int64) {
	k := tableDeletes
	if expireAt != 0 {
		k = tableExpiries
	}
	t.tables[1-k].removeLocked(key)
	t.tables[k].putLocked(key, ver, tombStart(ver, expireAt))
}

// removeLocked deletes key's tombstone without a ghost: the caller is
// replacing it with a newer live entry.
func (t *tombstones) removeLocked(key string) {
	for k := range t.tables {
		t.tables[k].removeLocked(key)
	}
}

// pruneLocked drops up to budget tombstones older than the horizon at now
// (Unix nanoseconds) and returns how many it dropped.
func (t *tombstones) pruneLocked(now int64, budget int) int {
	n := t.tables[tableDeletes].pruneLocked(now, budget)
	return n + t.tables[tableExpiries].pruneLocked(now, budget-n)
}

// purgeLocked drops every tombstone and returns how many it dropped.
func (t *tombstones) purgeLocked() int {
	return t.tables[tableDeletes].purgeLocked() + t.tables[tableExpiries].purgeLocked()
}

// copyLocked appends to buf, as Delete ops, the tombstones from cursor on
// (0 to start) until buf is full, and returns where to continue, or -1 at
// the end.
func (t *tombstones) copyLocked(cursor int, buf []Op) ([]Op, int) {
	for k := cursor / tableStride; k < len(t.tables); k++ {
		next := t.tables[k].copyLocked(k, cursor%tableStride, &buf)
		if next >= 0 {
			return buf, k*tableStride + next
		}
		cursor = 0
	}
	return buf, -1
}

// lenLocked returns the number of tombstones.
func (t *tombstones) lenLocked() int {
	return len(t.tables[tableDeletes].heap) + len(t.tables[tableExpiries].heap)
}

// droppedLocked returns how many tombstones went to the ghost table.
func (t *tombstones) droppedLocked() uint64 {
	return t.tables[tableDeletes].dropped + t.tables[tableExpiries].dropped
}

// tombTable is one bounded table of tombstones. Tombstones live in a slab
// whose positions stay put while they live (so Snapshot can walk the slab
// in chunks, unlocking in between, and still see every tombstone that lives
// throughout exactly once); a map finds a key's slab position; a binary
// min-heap of slab positions, ordered by start, finds the oldest tombstone
// in O(1) for the horizon and the size bound, and removes any tombstone in
// O(log n). Its owner's mu guards it.
type tombTable struct {
	index   map[string]int32 // key -> slab position
	slab    []tomb
	free    int32   // first free slab position, -1 if none
	heap    []int32 // slab positions; heap[0] has the oldest start
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

// op returns the Delete op that reproduces the tombstone, kept in table k.
func (tb *tomb) op(k int) Op {
	op := Op{Kind: KindDelete, Key: tb.key, Version: tb.ver}
	if k == tableExpiries {
		op.ExpireAt = tb.start
	}
	return op
}

// putLocked sets key's tombstone to (ver, start) and then drops the oldest
// tombstones into the ghost table while the table is over its bound.
func (t *tombTable) putLocked(key string, ver Version, start int64) {
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

// removeLocked deletes key's tombstone, if any, without a ghost.
func (t *tombTable) removeLocked(key string) {
	if i, ok := t.index[key]; ok {
		t.deleteLocked(i)
	}
}

// dropLocked moves the tombstone at slab position i to the ghost table. The
// ghost is recorded before the tombstone goes, and Apply reads both under
// mu, so no Apply can see the key with neither.
func (t *tombTable) dropLocked(i int32) {
	t.ghosts.record(t.slab[i].key, t.slab[i].ver.HLC)
	t.deleteLocked(i)
	t.dropped++
}

func (t *tombTable) deleteLocked(i int32) {
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
func (t *tombTable) pruneLocked(now int64, budget int) int {
	n := 0
	for n < budget && len(t.heap) > 0 && now-t.slab[t.heap[0]].start > t.horizon {
		t.dropLocked(t.heap[0])
		n++
	}
	return n
}

// purgeLocked drops every tombstone, releases the table's memory and
// returns how many it dropped.
func (t *tombTable) purgeLocked() int {
	n := len(t.heap)
	for _, i := range t.heap {
		t.ghosts.record(t.slab[i].key, t.slab[i].ver.HLC)
	}
	t.dropped += uint64(n)
	t.index = make(map[string]int32)
	t.slab, t.heap, t.free = nil, nil, -1
	return n
}

// copyLocked appends to *buf, as Delete ops, the tombstones at slab
// positions from start on until *buf is full, and returns where to
// continue, or -1 at the end. k is the table's number, for the ops.
func (t *tombTable) copyLocked(k, start int, buf *[]Op) int {
	i := start
	for ; i < len(t.slab) && len(*buf) < cap(*buf); i++ {
		if tb := &t.slab[i]; tb.pos >= 0 {
			*buf = append(*buf, tb.op(k))
		}
	}
	if i >= len(t.slab) {
		return -1
	}
	return i
}

func (t *tombTable) less(a, b int) bool {
	x, y := &t.slab[t.heap[a]], &t.slab[t.heap[b]]
	if x.start != y.start {
		return x.start < y.start
	}
	return x.ver.Compare(y.ver) < 0
}

func (t *tombTable) swap(a, b int) {
	t.heap[a], t.heap[b] = t.heap[b], t.heap[a]
	t.slab[t.heap[a]].pos = int32(a)
	t.slab[t.heap[b]].pos = int32(b)
}

func (t *tombTable) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !t.less(j, p) {
			return
		}
		t.swap(j, p)
		j = p
	}
}

func (t *tombTable) down(j int) {
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
