package lru

import (
	"math"
	"sync"
	"unsafe"
)

// A shard is an exact LRU with expiry, guarded by one mutex. Its parts are
// intrusive and index-linked, so an entry costs one arena slot and one table
// slot and a steady-state Set allocates nothing:
//
//   - entries is an arena of entry structs; entries[0] is the sentinel of the
//     circular recency list (next = most recently used, prev = least).
//     Free slots form a list through next.
//   - slots is an open-addressing hash table with linear probing. A slot holds
//     tag<<32 | index, where tag is the high half of the key's hash and also
//     picks the slot's home, so the table can be grown and entries removed
//     (backward-shift deletion) without touching the arena.
//   - wheel is a timing wheel of wheelSize buckets of one tick (~1.07 s)
//     each, linking every entry that has an expiry through wprev/wnext. It
//     lets expired entries be reclaimed in bounded steps without a timer or
//     goroutine per entry.
//
// Indices are uint32 to halve the links; the top bit of wprev marks a
// bucket's first entry and holds the bucket number instead of a
// predecessor, which is how removal finds the bucket head.
type shard[K comparable, V any] struct {
	_ [64]byte // keep neighbouring shards' locks off this cache line

	mu sync.Mutex

	entries    []entry[K, V]
	slots      []uint64
	mask       uint32 // len(slots) - 1
	free       uint32 // first free arena index, 0 if none
	len        int    // live entries
	bytes      int64  // sum of entry costs (size + overhead)
	maxEntries int    // 0 = no limit
	maxBytes   int64  // 0 = no limit
	overhead   int64  // per-entry engine overhead in bytes
	onLocked   func(K, V, Reason)

	wheel  [wheelSize]uint32 // first entry of each bucket, 0 if empty
	cursor int64             // first wheel tick not yet reclaimed
	timed  int               // entries in the wheel

	hits, misses, sets, deletes, evictions, expirations uint64
}

type entry[K comparable, V any] struct {
	key          K
	value        V
	expireAt     int64  // Unix nanoseconds; 0 = never
	prev, next   uint32 // recency list; next also links free slots
	wprev, wnext uint32 // expiry wheel bucket list
	size         uint32 // Size(key, value)
	tag          uint32 // high half of the key's hash
}

const (
	wheelBits = 8
	wheelSize = 1 << wheelBits
	tickShift = 30 // a wheel tick is 2^30 ns, about 1.07 s
	headFlag  = 1 << 31
	maxIndex  = headFlag - 1
	// slotOverhead is the hash table's share of an entry's cost: 8 bytes a
	// slot at a load factor between 3/8 and 3/4.
	slotOverhead = 16
	minSlots     = 8
)

// entryOverhead is the engine's memory per entry beyond what Size reports.
func entryOverhead[K comparable, V any]() int {
	return int(unsafe.Sizeof(entry[K, V]{})) + slotOverhead
}

// dropped is an entry that left the cache, held until the lock is released
// so that OnEvict never runs under it.
type dropped[K comparable, V any] struct {
	key    K
	value  V
	reason Reason
}

func (s *shard[K, V]) init(maxEntries int, maxBytes int64, now int64, onLocked func(K, V, Reason)) {
	s.onLocked = onLocked
	s.maxEntries = maxEntries
	s.maxBytes = maxBytes
	s.overhead = int64(entryOverhead[K, V]())
	s.cursor = now >> tickShift
	s.reset(0)
}

// reset empties the shard, sizing the arena and table for n entries.
func (s *shard[K, V]) reset(n int) {
	s.entries = make([]entry[K, V], 1, n+1)
	nslots := minSlots
	for nslots*3 < n*4 {
		nslots <<= 1
	}
	s.slots = make([]uint64, nslots)
	s.mask = uint32(nslots - 1)
	s.free = 0
	s.len = 0
	s.bytes = 0
	s.wheel = [wheelSize]uint32{}
	s.timed = 0
}

// findLocked returns the arena index of key, or 0.
func (s *shard[K, V]) findLocked(tag uint32, key K) uint32 {
	for i := tag & s.mask; ; i = (i + 1) & s.mask {
		sl := s.slots[i]
		if sl == 0 {
			return 0
		}
		if uint32(sl>>32) == tag {
			if idx := uint32(sl); s.entries[idx].key == key {
				return idx
			}
		}
	}
}

func (s *shard[K, V]) insertSlotLocked(tag, idx uint32) {
	if (s.len+1)*4 > len(s.slots)*3 {
		s.growTableLocked()
	}
	i := tag & s.mask
	for s.slots[i] != 0 {
		i = (i + 1) & s.mask
	}
	s.slots[i] = uint64(tag)<<32 | uint64(idx)
}

func (s *shard[K, V]) growTableLocked() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	s.mask = uint32(len(s.slots) - 1)
	for _, sl := range old {
		if sl == 0 {
			continue
		}
		i := uint32(sl>>32) & s.mask
		for s.slots[i] != 0 {
			i = (i + 1) & s.mask
		}
		s.slots[i] = sl
	}
}

// removeSlotLocked deletes the slot of (tag, idx) by backward shifting, so
// the table never holds tombstones and lookups stay short.
func (s *shard[K, V]) removeSlotLocked(tag, idx uint32) {
	want := uint64(tag)<<32 | uint64(idx)
	i := tag & s.mask
	for s.slots[i] != want {
		i = (i + 1) & s.mask
	}
	for j := i; ; {
		j = (j + 1) & s.mask
		sl := s.slots[j]
		if sl == 0 {
			s.slots[i] = 0
			return
		}
		// sl may fill the hole at i unless its home lies cyclically in (i, j].
		home := uint32(sl>>32) & s.mask
		if (j-home)&s.mask >= (j-i)&s.mask {
			s.slots[i] = sl
			i = j
		}
	}
}

func (s *shard[K, V]) unlinkLocked(idx uint32) {
	e := &s.entries[idx]
	s.entries[e.prev].next = e.next
	s.entries[e.next].prev = e.prev
}

func (s *shard[K, V]) pushFrontLocked(idx uint32) {
	head := &s.entries[0]
	e := &s.entries[idx]
	e.prev = 0
	e.next = head.next
	s.entries[head.next].prev = idx
	head.next = idx
}

func (s *shard[K, V]) moveToFrontLocked(idx uint32) {
	if s.entries[0].next != idx {
		s.unlinkLocked(idx)
		s.pushFrontLocked(idx)
	}
}

// wheelAddLocked links idx into the bucket of its expiry tick. Ticks already
// reclaimed go to the cursor's bucket; ticks a full turn or more ahead go to
// the last bucket of the turn and are re-filed when it is reached. So every
// bucket holds only entries due by its tick or waiting to be re-filed, and a
// reclaim step never has to skip an entry it cannot act on.
func (s *shard[K, V]) wheelAddLocked(idx uint32) {
	e := &s.entries[idx]
	t := max(e.expireAt>>tickShift, s.cursor)
	t = min(t, s.cursor+wheelSize-1)
	b := uint32(t) & (wheelSize - 1)
	e.wprev = headFlag | b
	e.wnext = s.wheel[b]
	if e.wnext != 0 {
		s.entries[e.wnext].wprev = idx
	}
	s.wheel[b] = idx
	s.timed++
}

func (s *shard[K, V]) wheelRemoveLocked(idx uint32) {
	e := &s.entries[idx]
	if e.wprev&headFlag != 0 {
		s.wheel[e.wprev&^headFlag] = e.wnext
	} else {
		s.entries[e.wprev].wnext = e.wnext
	}
	if e.wnext != 0 {
		s.entries[e.wnext].wprev = e.wprev
	}
	s.timed--
}

// setExpiryLocked changes the expiry of a live entry.
func (s *shard[K, V]) setExpiryLocked(idx uint32, expireAt int64) {
	e := &s.entries[idx]
	if e.expireAt == expireAt {
		return
	}
	if e.expireAt != 0 {
		s.wheelRemoveLocked(idx)
	}
	e.expireAt = expireAt
	if expireAt != 0 {
		s.wheelAddLocked(idx)
	}
}

// allocLocked takes a free arena slot. The arena grows by a quarter at a
// time (amortized O(1) copies, at most 25% of slots unused while it fills),
// and never past the shard's entry limit, so an entry-bounded cache never
// holds more than it needs.
func (s *shard[K, V]) allocLocked() uint32 {
	if idx := s.free; idx != 0 {
		s.free = s.entries[idx].next
		return idx
	}
	if len(s.entries) == cap(s.entries) {
		n := max(cap(s.entries)+cap(s.entries)/4, 16)
		if s.maxEntries > 0 {
			n = min(n, s.maxEntries+1)
		}
		n = min(n, maxIndex)
		grown := make([]entry[K, V], len(s.entries), max(n, len(s.entries)+1))
		copy(grown, s.entries)
		s.entries = grown
	}
	s.entries = s.entries[:len(s.entries)+1]
	return uint32(len(s.entries) - 1)
}

// removeLocked unlinks idx from every structure and frees its slot.
func (s *shard[K, V]) removeLocked(idx uint32, reason Reason, drops *[]dropped[K, V]) {
	e := &s.entries[idx]
	s.removeSlotLocked(e.tag, idx)
	s.unlinkLocked(idx)
	if e.expireAt != 0 {
		s.wheelRemoveLocked(idx)
	}
	s.len--
	s.bytes -= int64(e.size) + s.overhead
	switch reason {
	case Evicted:
		s.evictions++
	case Expired:
		s.expirations++
	case Deleted:
		s.deletes++
	}
	if s.onLocked != nil {
		s.onLocked(e.key, e.value, reason)
	}
	if drops != nil {
		*drops = append(*drops, dropped[K, V]{e.key, e.value, reason})
	}
	*e = entry[K, V]{next: s.free}
	s.free = idx
}

// overLocked reports whether adding an entry of cost extra would break a limit.
func (s *shard[K, V]) overLocked(extra int64, extraEntries int) bool {
	return (s.maxEntries > 0 && s.len+extraEntries > s.maxEntries) ||
		(s.maxBytes > 0 && s.bytes+extra > s.maxBytes)
}

// evictLocked removes least recently used entries until the shard can take
// extra more bytes and extraEntries more entries, sparing keep.
func (s *shard[K, V]) evictLocked(extra int64, extraEntries int, keep uint32, now int64, drops *[]dropped[K, V]) {
	for s.overLocked(extra, extraEntries) {
		tail := s.entries[0].prev
		if tail == 0 || tail == keep {
			return
		}
		reason := Evicted
		if exp := s.entries[tail].expireAt; exp != 0 && exp <= now {
			reason = Expired
		}
		s.removeLocked(tail, reason, drops)
	}
}

// storeLocked makes key hold value until expireAt (0 = never); idx is the
// key's entry, or 0 to insert one. The caller has checked that the entry
// fits in an empty shard.
func (s *shard[K, V]) storeLocked(idx, tag uint32, key K, value V, size uint32, expireAt, now int64, drops *[]dropped[K, V]) {
	s.sets++
	if idx != 0 {
		e := &s.entries[idx]
		s.bytes += int64(size) - int64(e.size)
		e.value = value
		e.size = size
		s.setExpiryLocked(idx, expireAt)
		s.moveToFrontLocked(idx)
		s.evictLocked(0, 0, idx, now, drops)
		return
	}
	cost := int64(size) + s.overhead
	s.evictLocked(cost, 1, 0, now, drops)
	if len(s.entries) > maxIndex-1 && s.free == 0 {
		// The arena cannot grow: make room by eviction.
		tail, reason := s.entries[0].prev, Evicted
		if exp := s.entries[tail].expireAt; exp != 0 && exp <= now {
			reason = Expired
		}
		s.removeLocked(tail, reason, drops)
	}
	idx = s.allocLocked()
	e := &s.entries[idx]
	e.key = key
	e.value = value
	e.size = size
	e.tag = tag
	e.expireAt = expireAt
	s.insertSlotLocked(tag, idx)
	s.pushFrontLocked(idx)
	if expireAt != 0 {
		s.wheelAddLocked(idx)
	}
	s.len++
	s.bytes += cost
}

// reclaimLocked removes expired entries, visiting at most budget wheel
// entries and buckets, and returns the unused budget. It only processes
// ticks that have entirely passed, so it never has to look at an entry that
// is not yet due, except far-future entries that it re-files once a turn.
func (s *shard[K, V]) reclaimLocked(now int64, budget int, drops *[]dropped[K, V]) int {
	nowTick := now >> tickShift
	for s.cursor < nowTick && budget > 0 {
		if s.timed == 0 {
			s.cursor = nowTick
			break
		}
		b := uint32(s.cursor) & (wheelSize - 1)
		budget--
		for s.wheel[b] != 0 && budget > 0 {
			idx := s.wheel[b]
			budget--
			if s.entries[idx].expireAt <= now {
				s.removeLocked(idx, Expired, drops)
				continue
			}
			s.wheelRemoveLocked(idx)
			s.wheelAddLocked(idx)
		}
		if s.wheel[b] == 0 {
			s.cursor++
		}
	}
	return budget
}

// resizeLocked sets new limits, evicts down to them and compacts the arena
// and table if they are much larger than what remains.
func (s *shard[K, V]) resizeLocked(maxEntries int, maxBytes int64, now int64, drops *[]dropped[K, V]) {
	s.maxEntries = maxEntries
	s.maxBytes = maxBytes
	s.evictLocked(0, 0, 0, now, drops)
	if cap(s.entries) > 2*(s.len+1)+16 {
		s.compactLocked()
	}
}

// compactLocked rebuilds the arena, table and wheel to fit the live entries,
// keeping their recency order.
func (s *shard[K, V]) compactLocked() {
	old := s.entries
	s.reset(s.len)
	for idx := old[0].prev; idx != 0; idx = old[idx].prev {
		e := &old[idx]
		n := s.allocLocked()
		s.entries[n] = entry[K, V]{key: e.key, value: e.value, expireAt: e.expireAt, size: e.size, tag: e.tag}
		s.insertSlotLocked(e.tag, n)
		s.pushFrontLocked(n)
		if e.expireAt != 0 {
			s.wheelAddLocked(n)
		}
		s.len++
		s.bytes += int64(e.size) + s.overhead
	}
}

// clampSize converts a Size result to the stored width; ok is false for a
// negative size or one too large to account.
func clampSize(n int64) (uint32, bool) {
	if n < 0 || n > math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}
