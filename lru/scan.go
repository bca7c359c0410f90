package lru

import (
	"math/bits"
	"math/rand/v2"
)

// Scan walks the keys in a fixed order that does not depend on what else
// the cache holds, a bounded step at a time, as Redis's SCAN does.
//
// The order: shard by shard, and within a shard by the bit-reversed tag
// (the high half of the key's hash, which is fixed for a key's lifetime).
// A cursor is shard<<32 | position, and one step collects every key whose
// reversed tag lies in [position, next). It finds them through their home
// bucket: with a table of 2^m slots, the keys whose reversed tag shares
// its top m bits with the position are exactly the keys whose tag's low m
// bits are one bucket b, and linear probing keeps each of them between b
// and the first empty slot after b. So a step is "walk the run from b,
// take the keys whose home is b", whatever the table's size now: growth
// (more bits, narrower ranges), compaction after Resize or Purge (fewer
// bits, wider ranges, where keys before the position are skipped), the
// backward shifts of deletion and eviction all move keys between slots
// but never change a key's home or its place in the order. Hence Redis's
// guarantee: a key that is live from the first call to the last is
// returned, exactly once; keys written or removed meanwhile may or may not
// be.
const (
	// scanChunk is how many buckets one lock hold visits at most, so that
	// a large COUNT does not hold a shard for long.
	scanChunk = 128
	// scanWork is the bucket visits a call makes per key asked for, at
	// most: a sparse table costs bounded work per call (Redis: 10).
	scanWork = 10
	posBits  = 32
)

// Scan appends to dst the live keys at cursor and after, about count of
// them (a hint, as Redis's COUNT: a call visits at most 10·count buckets
// and may return fewer keys, or more), and returns the cursor of the next
// call: 0 when the walk is complete. Start with cursor 0. Every key live
// for the whole walk is returned exactly once; keys added, removed or
// evicted during it may or may not be. A cursor is meaningful only to the
// cache that issued it (the order follows the cache's hash seed); one the
// cache did not issue is taken as a position all the same, and one past
// the last shard ends the walk. Scan holds one shard's lock at a time, for
// at most a bounded number of buckets, and never while appending outside
// it.
func (c *Cache[K, V]) Scan(cursor uint64, count int, dst []K) ([]K, uint64) {
	count = max(count, 1)
	work := count * scanWork
	if count > (1<<31)/scanWork {
		work = 1 << 31
	}
	want := len(dst) + count
	si := cursor >> posBits
	pos := uint64(uint32(cursor))
	for si < uint64(len(c.shards)) && len(dst) < want && work > 0 {
		s := &c.shards[si]
		now := c.nowIfTimed()
		var done bool
		s.mu.Lock()
		dst, pos, done, work = s.scanLocked(pos, now, want, work, dst)
		s.mu.Unlock()
		if done {
			si, pos = si+1, 0
		}
	}
	if si >= uint64(len(c.shards)) {
		return dst, 0
	}
	return dst, si<<posBits | pos
}

// scanLocked runs Scan's step on one shard from position pos: it visits
// buckets until dst holds want keys, work runs out or scanChunk buckets are
// done, and returns the next position, whether the shard is finished, and
// the work left. An empty shard costs one unit.
func (s *shard[K, V]) scanLocked(pos uint64, now int64, want, work int, dst []K) ([]K, uint64, bool, int) {
	if s.len == 0 {
		return dst, 0, true, work - 1
	}
	width := uint64(1) << (posBits - bits.OnesCount32(s.mask))
	for n := 0; n < scanChunk && work > 0 && len(dst) < want; n++ {
		work--
		start := pos &^ (width - 1)
		b := bits.Reverse32(uint32(start)) & s.mask
		// The table is never full (load at most 3/4): the run ends.
		for i := b; s.slots[i] != 0; i = (i + 1) & s.mask {
			sl := s.slots[i]
			tag := uint32(sl >> 32)
			if tag&s.mask != b || uint64(bits.Reverse32(tag)) < pos {
				continue
			}
			if e := &s.entries[uint32(sl)]; e.expireAt == 0 || e.expireAt > now {
				dst = append(dst, e.key)
			}
		}
		pos = start + width
		if pos >= 1<<posBits {
			return dst, 0, true, work
		}
	}
	return dst, pos, false, work
}

// RandomKey returns a live key chosen at random, or ok == false if the
// cache holds none. Keys are not all equally likely (one after a run of
// empty buckets is likelier, as in Redis), but every live key can be
// chosen. It walks from a random place in Scan's order, a bounded step per
// lock hold, so its cost grows with the emptiness of the tables, not with
// the number of keys.
func (c *Cache[K, V]) RandomKey() (key K, ok bool) {
	if c.Len() == 0 {
		return key, false
	}
	start := uint64(rand.IntN(len(c.shards)))<<posBits | uint64(rand.Uint32())
	var buf []K
	cur := start
	for wrapped := false; ; {
		buf, cur = c.Scan(cur, 1, buf[:0])
		if len(buf) > 0 {
			return buf[rand.IntN(len(buf))], true
		}
		if cur == 0 {
			if wrapped {
				return key, false
			}
			wrapped = true
		}
		if wrapped && cur >= start {
			return key, false
		}
	}
}
