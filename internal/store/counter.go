package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/lru"
)

// Counters. A key that INCR (IncrBy) has written holds a counter: a state
// that merges instead of being replaced, so that increments made at once on
// different nodes all count.
//
// A counter is a reset and contributions. The reset is the write the
// counter counts from: the SET whose integer value is its base, the delete
// or expiry that left nothing (base 0), or none known (base 0). Each
// contribution is a slot of one node's increments since that reset: the
// slot (origin, start) is written only by the node origin, in the process
// that created it at version start, so its sum and the version of its
// latest increment grow together and a newer copy includes an older one.
// The value is the base plus the slots' sums.
//
// Merging two states (join):
//
//   - The newer reset wins, with its base: a counter built on an older
//     reset is replaced, including the increments counted on it. So a
//     SET, DEL or expiry resets the counter in every region, ordered by
//     version, and an increment made by a node that had not yet seen a
//     newer reset is discarded with the state it was counted on.
//   - On the same reset, slots merge one by one: the copy with the later
//     increment wins. The expiry is a register of its own (EXPIRE and
//     PERSIST set it without resetting), the later write winning.
//
// The join is commutative, associative and idempotent, so a counter
// converges however its states travel: streamed, in a full sync, or in an
// anti-entropy repair, in any order, any number of times.
//
// A node continues a slot of its own only if it created it in this process
// (start at or after boot) and the key has not left this store at or after
// the slot's latest increment (its ghost): a copy that came back from a
// peer after an eviction or a restart may lag behind what this node had
// counted, and continuing it would lose increments. Otherwise the node
// opens a new slot. Slots are bounded (maxCounterSlots); a reset clears
// them.
//
// A plain write (SET, DEL) to a counter is compared with the counter's
// reset, not its newest increment: a SET newer than the reset replaces the
// counter, as its join would.

// KindCounter is a counter's state (Op.Value holds the encoded state; the
// op's Version and ExpireAt are the state's own). Its Apply merges instead
// of replacing (see counter.go).
const KindCounter Kind = 5

// KindExpire asks Update to change the expiry of the key's live entry to
// the op's ExpireAt, keeping the value (or the counter's contributions).
// Update turns it into the Set or Counter op that it applies; it is never
// logged or replicated, and Apply answers it Invalid.
const KindExpire Kind = 6

// Counter errors.
var (
	// ErrNotInteger: the key holds a value that is not a base-10 64-bit
	// integer.
	ErrNotInteger = errors.New("store: value is not an integer or out of range")
	// ErrOverflow: the increment would take the value out of int64.
	ErrOverflow = errors.New("store: increment or decrement would overflow")
	// ErrVersionBehind: the key's state holds a version newer than the one
	// the increment was given (another write on this node, or a
	// replicated one, came first): a counter's contributions must grow
	// with their versions. Try again with a new version.
	ErrVersionBehind = errors.New("store: the key has a newer version than the increment's; retry with a new one")
	// ErrCounterSlots: the counter has maxNewSlots contributions already;
	// a reset (SET, DEL) starts it afresh.
	ErrCounterSlots = errors.New("store: the counter has too many contributions (SET or DEL it to start afresh)")
)

const (
	// counterFormat is the first byte of an encoded counter state.
	counterFormat = 1
	// maxCounterSlots bounds the slots a counter state may hold: decoding
	// refuses more, and a join keeps the newest of them.
	maxCounterSlots = 1024
	// maxNewSlots is the number of slots beyond which IncrBy opens no new
	// one (it returns ErrCounterSlots): far below maxCounterSlots, so
	// that the states of nodes that each opened slots up to it still join.
	maxNewSlots = 256
	// counterFlag marks a counter item in item.ghost, whose ghost hash uses
	// the low 18 bits at most (maxGhostSlots).
	counterFlag = 1 << 31
)

type counterSlot struct {
	origin uint32
	start  hlc.Timestamp // HLC of the slot's first increment: (origin, start) names it
	sum    int64
	last   hlc.Timestamp // HLC of its latest increment, version (last, origin)
}

func (sl *counterSlot) version() Version { return Version{HLC: sl.last, Origin: sl.origin} }

// counter is a decoded counter state.
type counter struct {
	reset    Version // zero: no reset known
	base     int64
	ttl      Version // version of the expiry's latest write; not older than reset
	expireAt int64
	slots    []counterSlot // sorted by (origin, start), at most maxCounterSlots
}

func slotLess(a, b *counterSlot) int {
	if a.origin != b.origin {
		if a.origin < b.origin {
			return -1
		}
		return 1
	}
	switch {
	case a.start < b.start:
		return -1
	case a.start > b.start:
		return 1
	}
	return 0
}

// version is the state's newest version: the item's version in the store,
// its op's Version, and what ghosts and anti-entropy compare.
func (c *counter) version() Version {
	v := c.reset
	if c.ttl.Compare(v) > 0 {
		v = c.ttl
	}
	for i := range c.slots {
		if sv := c.slots[i].version(); sv.Compare(v) > 0 {
			v = sv
		}
	}
	return v
}

// value returns the base plus the sums, clamped to int64's range: slots
// counted on different nodes may together pass it, each within it.
func (c *counter) value() int64 {
	v := c.base
	for i := range c.slots {
		s := c.slots[i].sum
		switch {
		case s > 0 && v > math.MaxInt64-s:
			v = math.MaxInt64
		case s < 0 && v < math.MinInt64-s:
			v = math.MinInt64
		default:
			v += s
		}
	}
	return v
}

func (c *counter) encode() []byte {
	b := make([]byte, 0, 1+12+10+12+10+2+len(c.slots)*30)
	b = append(b, counterFormat)
	b = appendVersion(b, c.reset)
	b = binary.AppendVarint(b, c.base)
	b = appendVersion(b, c.ttl)
	b = binary.AppendVarint(b, c.expireAt)
	b = binary.AppendUvarint(b, uint64(len(c.slots)))
	for i := range c.slots {
		sl := &c.slots[i]
		b = binary.BigEndian.AppendUint32(b, sl.origin)
		b = binary.BigEndian.AppendUint64(b, uint64(sl.start))
		b = binary.AppendVarint(b, sl.sum)
		b = binary.BigEndian.AppendUint64(b, uint64(sl.last))
	}
	return b
}

func appendVersion(b []byte, v Version) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(v.HLC))
	return binary.BigEndian.AppendUint32(b, v.Origin)
}

// errBadCounter is a counter state that does not decode: Apply answers
// Invalid for it.
var errBadCounter = errors.New("store: malformed counter state")

// decodeCounter decodes and checks a counter state: every field present,
// nothing after them, slots in order and within the bound, each slot's
// increments after the reset, the expiry's version not before it.
func decodeCounter(b []byte) (counter, error) {
	var c counter
	if len(b) < 1 || b[0] != counterFormat {
		return c, errBadCounter
	}
	d := counterDecoder{b: b[1:]}
	c.reset = d.version()
	c.base = d.varint()
	c.ttl = d.version()
	c.expireAt = d.varint()
	n := d.uvarint()
	if d.bad || n > maxCounterSlots || n > uint64(len(d.b))/(4+8+1+8) {
		return c, errBadCounter
	}
	if n > 0 {
		c.slots = make([]counterSlot, n)
	}
	for i := range c.slots {
		sl := &c.slots[i]
		sl.origin = d.u32()
		sl.start = hlc.Timestamp(d.u64())
		sl.sum = d.varint()
		sl.last = hlc.Timestamp(d.u64())
		if d.bad || sl.last < sl.start || (Version{HLC: sl.start, Origin: sl.origin}).Compare(c.reset) <= 0 ||
			i > 0 && slotLess(&c.slots[i-1], sl) >= 0 {
			return c, errBadCounter
		}
	}
	if d.bad || len(d.b) != 0 || c.expireAt < 0 || c.ttl.Compare(c.reset) < 0 {
		return c, errBadCounter
	}
	return c, nil
}

// counterDecoder reads a counter state's fields; bad is set by the first
// that runs past the end or is not a shortest-form varint.
type counterDecoder struct {
	b   []byte
	bad bool
}

func (d *counterDecoder) take(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *counterDecoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *counterDecoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *counterDecoder) version() Version {
	h := d.u64()
	return Version{HLC: hlc.Timestamp(h), Origin: d.u32()}
}

func (d *counterDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if d.bad || n <= 0 || n > 1 && d.b[n-1] == 0 { // a trailing zero byte: not the shortest form
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *counterDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if d.bad || n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// join merges b into a and returns the result (which may share slots with
// either). See the top of this file for the rules; ties that two honest
// states never produce (same reset, different base; same slot and latest
// increment, different sums) are broken towards the larger value so that
// the join stays deterministic.
func join(a, b counter) counter {
	if c := a.reset.Compare(b.reset); c != 0 {
		if c < 0 {
			return b
		}
		return a
	}
	out := counter{reset: a.reset, base: max(a.base, b.base), ttl: a.ttl, expireAt: a.expireAt}
	if c := b.ttl.Compare(a.ttl); c > 0 || c == 0 && b.expireAt > a.expireAt {
		out.ttl, out.expireAt = b.ttl, b.expireAt
	}
	out.slots = make([]counterSlot, 0, max(len(a.slots), len(b.slots)))
	i, j := 0, 0
	for i < len(a.slots) || j < len(b.slots) {
		switch {
		case j == len(b.slots):
			out.slots = append(out.slots, a.slots[i])
			i++
		case i == len(a.slots):
			out.slots = append(out.slots, b.slots[j])
			j++
		default:
			x, y := a.slots[i], b.slots[j]
			switch c := slotLess(&x, &y); {
			case c < 0:
				out.slots = append(out.slots, x)
				i++
			case c > 0:
				out.slots = append(out.slots, y)
				j++
			default:
				if y.last > x.last || y.last == x.last && y.sum > x.sum {
					x = y
				}
				out.slots = append(out.slots, x)
				i++
				j++
			}
		}
	}
	if len(out.slots) > maxCounterSlots {
		// Keep the slots with the latest increments, in order: the same
		// choice on every node.
		byLast := slices.Clone(out.slots)
		slices.SortFunc(byLast, func(x, y counterSlot) int { return -x.version().Compare(y.version()) })
		byLast = byLast[:maxCounterSlots]
		slices.SortFunc(byLast, func(x, y counterSlot) int { return slotLess(&x, &y) })
		out.slots = byLast
	}
	return out
}

// equal reports whether a and b are the same state.
func (a *counter) equal(b *counter) bool {
	return a.reset == b.reset && a.base == b.base && a.ttl == b.ttl && a.expireAt == b.expireAt &&
		slices.Equal(a.slots, b.slots)
}

// counterOfString is the counter a live string entry counts from: the
// string's write is the reset, its integer value the base.
func counterOfString(it *item) (counter, error) {
	n, ok := parseInt(it.value)
	if !ok {
		return counter{}, ErrNotInteger
	}
	v := it.version()
	return counter{reset: v, base: n, ttl: v, expireAt: it.expireAt}, nil
}

// expiryReset is the reset an expiry at start (Unix ns: the tombstone's
// start, the expiry time) stands for: the same on every node that expired
// the key, whichever of its versions each held, so that counters begun
// after the expiry in different regions count from the same reset. Origin
// 0 is no node's.
func expiryReset(start int64) Version {
	ms := start / int64(time.Millisecond)
	if ms > hlc.MaxWallMillis {
		ms = hlc.MaxWallMillis
	}
	return Version{HLC: hlc.MakeTimestamp(ms, 0)}
}

// tombReset is the reset that a tombstone stands for.
func tombReset(t Op) Version {
	if t.ExpireAt != 0 {
		return expiryReset(t.ExpireAt)
	}
	return t.Version
}

// parseInt parses b as Redis's string2ll does: base 10, an optional minus
// sign, no leading zeros or plus sign, no spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' || len(b) > 1 && b[0] == '0' || len(b) > 1 && b[0] == '-' && b[1] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

func isCounter(it *item) bool { return it.ghost&counterFlag != 0 }

// counterOf decodes a counter item's state; the store wrote it, so it
// decodes.
func counterOf(it *item) counter {
	c, err := decodeCounter(it.value)
	if err != nil {
		panic("store: a stored counter does not decode: " + err.Error())
	}
	return c
}

// resetOf is what a plain write (Set, Delete) to the item must be newer
// than to replace it: its version, or a counter's reset.
func resetOf(it *item) Version {
	if isCounter(it) {
		c := counterOf(it)
		return c.reset
	}
	return it.version()
}

// entryOf is the Entry of a live item: a counter reads as its value in
// base 10, its state in State.
func entryOf(it *item) Entry {
	e := Entry{Value: it.value, Version: it.version(), ExpireAt: it.expireAt, Kind: KindSet}
	if isHash(it) {
		e.Kind, e.State, e.Value, e.Empty = KindHash, it.value, nil, isEmptyHash(it)
		return e
	}
	if isCounter(it) {
		c := counterOf(it)
		e.Kind, e.State = KindCounter, it.value
		e.Value = strconv.AppendInt(nil, c.value(), 10)
	}
	return e
}

// CounterDigest is what an anti-entropy probe carries for a counter in
// place of its state: two counters with the same version but different
// contributions differ in it.
func CounterDigest(state []byte) []byte {
	h := fnv.New64a()
	h.Write(state)
	return h.Sum(nil)
}

// SameCounter reports whether state's digest is digest.
func SameCounter(state, digest []byte) bool { return bytes.Equal(CounterDigest(state), digest) }

// IncrBy adds delta to key's counter, as a write of version ver made by
// this process, which started at boot (every version it issues is at or
// after boot), and returns the new value and the Counter op that carries
// the new state to other nodes. A key that holds a string counts from it
// (ErrNotInteger if it is not an integer); an absent key counts from its
// tombstone's reset, if any, with expiry expireAt (0: none). Errors:
// ErrNotInteger, ErrOverflow, ErrCounterSlots; res is TooLarge if the state
// cannot be stored (nothing is written then either).
func (s *Store) IncrBy(key string, ver Version, delta int64, boot hlc.Timestamp, expireAt int64) (value int64, op Op, res Result, err error) {
	var n notice
	s.cache.ComputeNow(key, func(old item, _ int64, found bool, now int64) (item, int64, lru.Action) {
		live := found && (old.expireAt == 0 || old.expireAt > now)
		var c counter
		switch {
		case live && isHash(&old) && !isEmptyHash(&old):
			err = ErrWrongType
			return item{}, 0, lru.Keep
		case live && isHash(&old):
			// A hash without fields reads as absent: the counter counts
			// from all of it, so that it replaces it everywhere.
			c.reset = old.version()
			c.ttl = c.reset
			if expireAt != 0 {
				c.ttl, c.expireAt = ver, expireAt
			}
		case live && isCounter(&old):
			c = counterOf(&old)
		case live:
			if c, err = counterOfString(&old); err != nil {
				return item{}, 0, lru.Keep
			}
		default:
			if found { // expired: applyLocked leaves this tombstone
				c.reset = expiryReset(tombStart(old.version(), old.expireAt))
			} else {
				s.tombs.mu.Lock()
				if t, ok := s.tombs.opLocked(key); ok {
					c.reset = tombReset(t)
				}
				s.tombs.mu.Unlock()
			}
			c.ttl = c.reset
			if expireAt != 0 {
				c.ttl, c.expireAt = ver, expireAt
			}
		}
		if ver.Compare(c.reset) <= 0 {
			err = ErrVersionBehind // the reset came after ver was taken
			return item{}, 0, lru.Keep
		}
		if err = c.add(delta, ver, boot, s.ghosts, ghostHash(key)); err != nil {
			return item{}, 0, lru.Keep
		}
		value = c.value()
		op = Op{Kind: KindCounter, Key: key}
		s.setCounterOp(&op, &c)
		r, what, ghost := s.applyLocked(&op, old, found, now, &n)
		res = r
		if what == lru.Store {
			return s.storeItem(&op, old, found, ghost, &n), op.ExpireAt, lru.Store
		}
		return item{}, 0, what
	})
	if err == nil {
		s.counts[KindCounter][res].Add(1)
		s.report(key, n)
	}
	return value, op, res, err
}

// add counts delta in this node's slot (opening one if it has none it may
// continue) as an increment of version ver.
func (c *counter) add(delta int64, ver Version, boot hlc.Timestamp, ghosts *ghostTable, gh uint64) error {
	if v := c.value(); delta > 0 && v > math.MaxInt64-delta || delta < 0 && v < math.MinInt64-delta {
		return ErrOverflow
	}
	k := -1
	for i := range c.slots {
		sl := &c.slots[i]
		if sl.origin == ver.Origin && sl.start >= boot && !ghosts.coversHash(gh, sl.last) {
			k = i // the latest such slot: slots are sorted by start
		}
	}
	if k < 0 {
		if len(c.slots) >= maxNewSlots {
			return ErrCounterSlots
		}
		sl := counterSlot{origin: ver.Origin, start: ver.HLC}
		k, _ = slices.BinarySearchFunc(c.slots, sl, func(x, y counterSlot) int { return slotLess(&x, &y) })
		c.slots = slices.Insert(c.slots, k, sl)
	}
	sl := &c.slots[k]
	if ver.HLC <= sl.last {
		return ErrVersionBehind // a later increment of this node came first
	}
	if delta > 0 && sl.sum > math.MaxInt64-delta || delta < 0 && sl.sum < math.MinInt64-delta {
		return ErrOverflow
	}
	sl.sum += delta
	sl.last = ver.HLC
	return nil
}

// mergeCounterLocked is the first step of applyLocked for a Counter op
// (found: the key has a live entry old): it decodes the op's state and, if
// the key holds a counter, merges it into the key's, leaving the merged
// state in op. It returns the op's reset, or ok false with the result when
// the op changes nothing (Invalid, Stale); applyLocked then decides the op
// as a Set of the merged state.
func (s *Store) mergeCounterLocked(op *Op, old item, found bool) (reset Version, res Result, ok bool) {
	in, err := decodeCounter(op.Value)
	if err != nil {
		return Version{}, Invalid, false
	}
	switch {
	case found && isCounter(&old):
		cur := counterOf(&old)
		next := join(cur, in)
		if next.equal(&cur) {
			return Version{}, Stale, false
		}
		s.setCounterOp(op, &next)
		return next.reset, 0, true
	case found && in.reset.Compare(old.version()) < 0:
		return Version{}, Stale, false // the string is a newer reset
	}
	return in.reset, 0, true
}

// setCounterOp makes op carry state c.
func (s *Store) setCounterOp(op *Op, c *counter) {
	op.Value, op.Version, op.ExpireAt = c.encode(), c.version(), c.expireAt
}

// checkCounterOp reports whether a Counter op from outside is well formed:
// its state decodes and its Version and ExpireAt are the state's (the
// replicator checks the op's version against the clock; the state may not
// hide a newer one).
func checkCounterOp(op *Op) bool {
	c, err := decodeCounter(op.Value)
	return err == nil && c.version() == op.Version && c.expireAt == op.ExpireAt
}
