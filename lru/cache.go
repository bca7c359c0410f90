package lru

import (
	"fmt"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/clock"
)

// Budgets of the bounded reclaim steps, in wheel entries and buckets visited
// per shard: a write does a little, the background sweep more.
const (
	writeReclaimBudget = 8
	sweepReclaimBudget = 1024
	sweepMaxRounds     = 16
)

// Action tells Compute what to do with a key.
type Action uint8

const (
	// Keep leaves the key as it was (absent stays absent) and does not count
	// as a use.
	Keep Action = iota
	// Store sets the key to the returned value and expiry and makes it the
	// most recently used.
	Store
	// Remove deletes the key if it is present.
	Remove
)

// Stats are cumulative counters since New (Purge does not reset them).
type Stats struct {
	Hits        uint64 // Get and Peek calls that found a live entry
	Misses      uint64 // Get and Peek calls that found none
	Sets        uint64 // entries stored by Set, SetWithTTL, SetExpireAt or Compute
	Deletes     uint64 // entries removed by Delete, Compute or Purge
	Evictions   uint64 // entries removed to respect the limits
	Expirations uint64 // entries removed because their expiry passed
}

// Cache is a concurrency-safe LRU cache with per-entry expiry and limits in
// entries and bytes. Create it with New; the methods of one Cache may be
// called from any number of goroutines.
type Cache[K comparable, V any] struct {
	cfg       validated[K, V]
	shards    []shard[K, V]
	shardMask uint64
	clock     Clock
	real      *clock.Real  // the clock when Config.Clock is nil: called directly, not through the interface
	anyTimed  atomic.Bool  // set once any entry has an expiry; until then reads skip the clock
	maxEntry  atomic.Int64 // largest Size(key, value) one shard can hold (Resize changes it under concurrent Sets)

	// onEvict is Config.OnEvict, or what SetOnEvict set; nil when nobody
	// listens, and then no operation collects what it removes.
	onEvict atomic.Pointer[func(K, V, Reason)]

	test testHooks // set only by this package's tests

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// testHooks are switches for this package's tests (cache_test.go,
// model_test.go). They are unexported, so no user of the package can set
// them, and production code only reads them; Config carries nothing of the
// kind.
type testHooks struct {
	// noWriteReclaim turns off the reclaim step of writes, so that tests can
	// compare eviction choices with a model that has no wheel.
	noWriteReclaim bool
}

// New returns a cache configured by cfg, or an error wrapping
// ErrInvalidConfig. Unless cfg.ReclaimInterval is negative it starts one
// background goroutine, which Close stops.
func New[K comparable, V any](cfg Config[K, V]) (*Cache[K, V], error) {
	v, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	c := &Cache[K, V]{
		cfg:       v,
		shards:    make([]shard[K, V], v.shards),
		shardMask: uint64(v.shards - 1),
		clock:     v.Clock,
	}
	if c.clock == nil {
		// Wall time at New plus the monotonic time since: one clock read,
		// and never back.
		c.real = clock.NewMonotonic()
		c.clock = c.real
	}
	if v.DefaultTTL > 0 {
		c.anyTimed.Store(true)
	}
	c.SetOnEvict(v.OnEvict)
	now := c.clock.UnixNano()
	limits := splitLimits(v.MaxEntries, v.MaxBytes, v.shards)
	for i := range c.shards {
		c.shards[i].init(limits[i].entries, limits[i].bytes, now, v.OnEvictLocked)
	}
	c.maxEntry.Store(c.maxEntrySize())
	if v.ReclaimInterval > 0 {
		c.stop = make(chan struct{})
		c.done = make(chan struct{})
		go c.sweep(v.ReclaimInterval)
	}
	return c, nil
}

type shardLimit struct {
	entries int
	bytes   int64
}

// splitLimits divides the limits evenly, giving remainders to the first shards.
func splitLimits(maxEntries int, maxBytes int64, n int) []shardLimit {
	out := make([]shardLimit, n)
	for i := range out {
		if maxEntries > 0 {
			out[i].entries = maxEntries / n
			if i < maxEntries%n {
				out[i].entries++
			}
		}
		if maxBytes > 0 {
			out[i].bytes = maxBytes / int64(n)
			if int64(i) < maxBytes%int64(n) {
				out[i].bytes++
			}
		}
	}
	return out
}

func (c *Cache[K, V]) maxEntrySize() int64 {
	limit := int64(maxIndex)
	for i := range c.shards {
		if b := c.shards[i].maxBytes; b > 0 {
			limit = min(limit, b-c.shards[i].overhead)
		}
	}
	return limit
}

func (c *Cache[K, V]) now() int64 {
	if c.real != nil {
		return c.real.UnixNano()
	}
	return c.clock.UnixNano()
}

// nowIfTimed reads the clock only if some entry may have an expiry. A zero
// result is never later than an expiry, so untimed caches skip the read.
func (c *Cache[K, V]) nowIfTimed() int64 {
	if c.anyTimed.Load() {
		return c.now()
	}
	return 0
}

func (c *Cache[K, V]) shardOf(h uint64) *shard[K, V] {
	return &c.shards[h&c.shardMask]
}

// EntryOverhead returns the bytes the engine charges each entry on top of
// Config.Size: its arena slot and its share of the hash table.
func (c *Cache[K, V]) EntryOverhead() int64 { return int64(entryOverhead[K, V]()) }

// MaxEntrySize returns the largest Size(key, value) that the cache accepts:
// each shard holds an equal part of MaxBytes, and an entry must fit in one.
func (c *Cache[K, V]) MaxEntrySize() int64 { return c.maxEntry.Load() }

// Get returns the value of key and makes it the most recently used. It
// never returns an entry whose expiry has passed.
func (c *Cache[K, V]) Get(key K) (value V, ok bool) {
	return c.get(key, true)
}

// Peek returns the value of key without making it more recently used.
func (c *Cache[K, V]) Peek(key K) (value V, ok bool) {
	return c.get(key, false)
}

func (c *Cache[K, V]) get(key K, touch bool) (value V, ok bool) {
	h := c.cfg.Hash(key)
	s := c.shardOf(h)
	now := c.nowIfTimed()
	s.mu.Lock()
	idx := s.findLocked(uint32(h>>32), key)
	if idx == 0 {
		s.misses++
		s.mu.Unlock()
		return value, false
	}
	e := &s.entries[idx]
	if e.expireAt != 0 && e.expireAt <= now {
		s.misses++
		c.removeAndUnlock(s, idx, Expired)
		return value, false
	}
	if touch {
		s.moveToFrontLocked(idx)
	}
	s.hits++
	value = e.value
	s.mu.Unlock()
	return value, true
}

// removeAndUnlock removes idx from the locked shard s, unlocks it and then
// tells OnEvict.
func (c *Cache[K, V]) removeAndUnlock(s *shard[K, V], idx uint32, reason Reason) {
	if c.onEvict.Load() == nil {
		s.removeLocked(idx, reason, nil)
		s.mu.Unlock()
		return
	}
	var drops []dropped[K, V]
	s.removeLocked(idx, reason, &drops)
	s.mu.Unlock()
	c.notify(drops)
}

func (c *Cache[K, V]) notify(drops []dropped[K, V]) {
	if len(drops) == 0 {
		return
	}
	fn := c.onEvict.Load()
	if fn == nil {
		return // SetOnEvict(nil) since they were collected
	}
	for _, d := range drops {
		(*fn)(d.key, d.value, d.reason)
	}
}

// dropBuffer returns where a locked operation records what it removes: nil
// when nobody listens, so that the common case collects nothing.
func (c *Cache[K, V]) dropBuffer(buf *[]dropped[K, V]) *[]dropped[K, V] {
	if c.onEvict.Load() == nil {
		return nil
	}
	return buf
}

// SetOnEvict replaces Config.OnEvict; nil stops the reports, and with them
// the work of collecting what each operation removes, for a caller whose
// interest in removals comes and goes while the cache runs. Removals under
// way during the call are reported to the old callback, to the new one, or
// to none. OnEvictLocked is not affected.
func (c *Cache[K, V]) SetOnEvict(fn func(key K, value V, reason Reason)) {
	if fn == nil {
		c.onEvict.Store(nil)
		return
	}
	c.onEvict.Store(&fn)
}

// lookupLocked returns the live entry of key, removing it first if it has
// expired (recording the removal in drops).
func (c *Cache[K, V]) lookupLocked(s *shard[K, V], tag uint32, key K, now int64, drops *[]dropped[K, V]) uint32 {
	idx := s.findLocked(tag, key)
	if idx != 0 {
		if exp := s.entries[idx].expireAt; exp != 0 && exp <= now {
			s.removeLocked(idx, Expired, drops)
			return 0
		}
	}
	return idx
}

// Contains reports whether key holds a live entry, without making it more
// recently used.
func (c *Cache[K, V]) Contains(key K) bool {
	h := c.cfg.Hash(key)
	s := c.shardOf(h)
	now := c.nowIfTimed()
	s.mu.Lock()
	idx := s.findLocked(uint32(h>>32), key)
	ok := idx != 0 && (s.entries[idx].expireAt == 0 || s.entries[idx].expireAt > now)
	s.mu.Unlock()
	return ok
}

// Set stores value under key with the default TTL and makes it the most
// recently used, evicting least recently used entries as the limits need.
// It returns false, and removes any old value of key, if the entry is larger
// than MaxEntrySize.
func (c *Cache[K, V]) Set(key K, value V) bool {
	var exp int64
	if ttl := c.cfg.DefaultTTL; ttl > 0 {
		exp = c.now() + int64(ttl)
	}
	return c.set(key, value, exp)
}

// SetWithTTL is Set with a time to live: ttl > 0 expires the entry after
// ttl, ttl == 0 stores it without expiry, and ttl < 0 stores nothing and
// removes any old value (the entry is already expired).
func (c *Cache[K, V]) SetWithTTL(key K, value V, ttl time.Duration) bool {
	switch {
	case ttl == 0:
		return c.set(key, value, 0)
	case ttl < 0:
		c.Delete(key)
		return true
	}
	return c.set(key, value, c.now()+int64(ttl))
}

// SetExpireAt is Set with an absolute expiry time: the zero time means no
// expiry, and a time not after now stores nothing and removes any old value.
func (c *Cache[K, V]) SetExpireAt(key K, value V, at time.Time) bool {
	if at.IsZero() {
		return c.set(key, value, 0)
	}
	return c.set(key, value, at.UnixNano())
}

func (c *Cache[K, V]) set(key K, value V, expireAt int64) bool {
	size, ok := clampSize(c.cfg.Size(key, value))
	fits := ok && int64(size) <= c.maxEntry.Load()
	if expireAt != 0 && !c.anyTimed.Load() {
		c.anyTimed.Store(true)
	}
	h := c.cfg.Hash(key)
	s := c.shardOf(h)
	tag := uint32(h >> 32)
	now := c.nowIfTimed()
	var buf []dropped[K, V]
	drops := c.dropBuffer(&buf)
	s.mu.Lock()
	idx := c.lookupLocked(s, tag, key, now, drops)
	switch {
	case !fits:
		if idx != 0 {
			s.removeLocked(idx, Deleted, drops)
		}
	case expireAt != 0 && expireAt <= now:
		if idx != 0 {
			s.removeLocked(idx, Deleted, drops)
		}
	default:
		s.storeLocked(idx, tag, key, value, size, expireAt, now, drops)
		c.writeReclaimLocked(s, now, drops)
	}
	s.mu.Unlock()
	c.notify(buf)
	return fits
}

// writeReclaimLocked is the small reclaim step every write to a shard
// does, so that expired entries are reclaimed even without the sweep.
func (c *Cache[K, V]) writeReclaimLocked(s *shard[K, V], now int64, drops *[]dropped[K, V]) {
	if s.timed > 0 && now>>tickShift > s.cursor && !c.test.noWriteReclaim {
		s.reclaimLocked(now, writeReclaimBudget, drops)
	}
}

// Compute reads and changes key in one step under the key's lock: fn gets
// the current value and expiry (Unix nanoseconds, 0 = never) if found, and
// returns the new value and expiry and what to do with them. A returned
// expiry not after now removes the key. Compute returns the value the key
// holds afterwards and whether it holds one; an entry larger than
// MaxEntrySize is not stored (and the key is removed).
//
// fn runs while the shard's lock is held: it must be quick and must not call
// the cache.
func (c *Cache[K, V]) Compute(key K, fn func(value V, expireAt int64, found bool) (V, int64, Action)) (V, bool) {
	return c.ComputeNow(key, func(value V, expireAt int64, found bool, _ int64) (V, int64, Action) {
		return fn(value, expireAt, found)
	})
}

// ComputeNow is Compute that also gives fn now, the clock's reading
// (Unix nanoseconds) that the call judges expiry by: the entry fn gets has
// not expired by now, and a returned expiry after now is stored. A caller
// that makes its own expiry decisions under the lock uses it rather than
// reading the clock again, so that its decisions and the cache's agree
// whatever the clock does in between (and saves the read).
func (c *Cache[K, V]) ComputeNow(key K, fn func(value V, expireAt int64, found bool, now int64) (V, int64, Action)) (V, bool) {
	h := c.cfg.Hash(key)
	s := c.shardOf(h)
	tag := uint32(h >> 32)
	now := c.now()
	var buf []dropped[K, V]
	drops := c.dropBuffer(&buf)
	s.mu.Lock()
	idx := c.lookupLocked(s, tag, key, now, drops)
	var old V
	var oldExp int64
	if idx != 0 {
		old, oldExp = s.entries[idx].value, s.entries[idx].expireAt
	}
	value, exp, op := fn(old, oldExp, idx != 0, now)
	var result V
	present := false
	switch op {
	case Keep:
		result, present = old, idx != 0
	case Remove:
		if idx != 0 {
			s.removeLocked(idx, Deleted, drops)
		}
	case Store:
		size, ok := clampSize(c.cfg.Size(key, value))
		switch {
		case !ok || int64(size) > c.maxEntry.Load():
			if idx != 0 {
				s.removeLocked(idx, Deleted, drops)
			}
		case exp != 0 && exp <= now:
			if idx != 0 {
				s.removeLocked(idx, Deleted, drops)
			}
		default:
			if exp != 0 && !c.anyTimed.Load() {
				c.anyTimed.Store(true)
			}
			s.storeLocked(idx, tag, key, value, size, exp, now, drops)
			c.writeReclaimLocked(s, now, drops)
			result, present = value, true
		}
	default:
		s.mu.Unlock()
		panic(fmt.Sprintf("lru: Compute callback returned unknown Action %d", op))
	}
	s.mu.Unlock()
	c.notify(buf)
	return result, present
}

// Delete removes key and reports whether it held a live entry.
func (c *Cache[K, V]) Delete(key K) bool {
	h := c.cfg.Hash(key)
	s := c.shardOf(h)
	now := c.nowIfTimed()
	s.mu.Lock()
	idx := s.findLocked(uint32(h>>32), key)
	if idx == 0 {
		s.mu.Unlock()
		return false
	}
	reason := Deleted
	if exp := s.entries[idx].expireAt; exp != 0 && exp <= now {
		reason = Expired
	}
	c.removeAndUnlock(s, idx, reason)
	return reason == Deleted
}

// TTL returns the time key has left to live, and whether key holds a live
// entry. A live entry without expiry has a TTL of 0.
func (c *Cache[K, V]) TTL(key K) (time.Duration, bool) {
	exp, ok := c.expiry(key)
	if !ok || exp == 0 {
		return 0, ok
	}
	return time.Duration(exp - c.now()), true
}

// ExpiresAt returns the expiry time of key (the zero time if it has none)
// and whether key holds a live entry.
func (c *Cache[K, V]) ExpiresAt(key K) (time.Time, bool) {
	exp, ok := c.expiry(key)
	if !ok || exp == 0 {
		return time.Time{}, ok
	}
	return time.Unix(0, exp), true
}

func (c *Cache[K, V]) expiry(key K) (int64, bool) {
	var exp int64
	found := false
	c.Compute(key, func(_ V, e int64, ok bool) (V, int64, Action) {
		exp, found = e, ok
		var zero V
		return zero, 0, Keep
	})
	return exp, found
}

// Expire sets key to expire after ttl (ttl <= 0 removes it) and reports
// whether key held a live entry. It does not change the entry's recency.
func (c *Cache[K, V]) Expire(key K, ttl time.Duration) bool {
	if ttl <= 0 {
		return c.Delete(key)
	}
	return c.changeExpiry(key, c.now()+int64(ttl))
}

// ExpireAt sets key to expire at t (a time not after now removes it) and
// reports whether key held a live entry.
func (c *Cache[K, V]) ExpireAt(key K, t time.Time) bool {
	return c.changeExpiry(key, t.UnixNano())
}

// Persist removes the expiry of key and reports whether key held a live
// entry.
func (c *Cache[K, V]) Persist(key K) bool {
	return c.changeExpiry(key, 0)
}

func (c *Cache[K, V]) changeExpiry(key K, expireAt int64) bool {
	if expireAt != 0 && !c.anyTimed.Load() {
		c.anyTimed.Store(true)
	}
	h := c.cfg.Hash(key)
	s := c.shardOf(h)
	now := c.now()
	var buf []dropped[K, V]
	drops := c.dropBuffer(&buf)
	s.mu.Lock()
	idx := c.lookupLocked(s, uint32(h>>32), key, now, drops)
	if idx != 0 {
		if expireAt != 0 && expireAt <= now {
			s.removeLocked(idx, Deleted, drops)
		} else {
			s.setExpiryLocked(idx, expireAt)
		}
	}
	s.mu.Unlock()
	c.notify(buf)
	return idx != 0
}

// Len returns the number of entries, including expired ones not yet
// reclaimed.
func (c *Cache[K, V]) Len() int {
	return int(c.sumShards(func(s *shard[K, V]) int64 { return int64(s.len) }))
}

// sumShards adds up f over the shards, each under its lock.
func (c *Cache[K, V]) sumShards(f func(*shard[K, V]) int64) int64 {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += f(s)
		s.mu.Unlock()
	}
	return n
}

// Bytes returns the memory charged to the entries: the sum of their sizes
// and the engine's per-entry overhead.
func (c *Cache[K, V]) Bytes() int64 {
	return c.sumShards(func(s *shard[K, V]) int64 { return s.bytes })
}

// Stats returns the cumulative counters.
func (c *Cache[K, V]) Stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Sets += s.sets
		st.Deletes += s.deletes
		st.Evictions += s.evictions
		st.Expirations += s.expirations
		s.mu.Unlock()
	}
	return st
}

// Purge removes every entry, telling OnEvict with reason Deleted, and
// releases the memory the cache held.
func (c *Cache[K, V]) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		var drops []dropped[K, V]
		listen := c.onEvict.Load() != nil
		s.mu.Lock()
		for idx := s.entries[0].next; idx != 0; idx = s.entries[idx].next {
			e := &s.entries[idx]
			if s.onLocked != nil {
				s.onLocked(e.key, e.value, Deleted)
			}
			if listen {
				drops = append(drops, dropped[K, V]{e.key, e.value, Deleted})
			}
		}
		s.deletes += uint64(s.len)
		s.reset(0)
		s.mu.Unlock()
		c.notify(drops)
	}
}

// Resize changes the limits (with Config's meaning: 0 = none, but not both
// 0) and evicts least recently used entries down to them. The shard count
// stays as it was, so the limits must leave every shard room for an entry.
func (c *Cache[K, V]) Resize(maxEntries int, maxBytes int64) error {
	cfg := c.cfg.Config
	cfg.MaxEntries, cfg.MaxBytes, cfg.Shards = maxEntries, maxBytes, len(c.shards)
	if maxEntries == 0 && maxBytes == 0 {
		return fmt.Errorf("%w: Resize needs MaxEntries or MaxBytes", ErrInvalidConfig)
	}
	if _, err := cfg.validate(); err != nil {
		return err
	}
	now := c.now()
	limits := splitLimits(maxEntries, maxBytes, len(c.shards))
	for i := range c.shards {
		s := &c.shards[i]
		var buf []dropped[K, V]
		drops := c.dropBuffer(&buf)
		s.mu.Lock()
		s.resizeLocked(limits[i].entries, limits[i].bytes, now, drops)
		s.mu.Unlock()
		c.notify(buf)
	}
	c.cfg.MaxEntries, c.cfg.MaxBytes = maxEntries, maxBytes
	c.maxEntry.Store(c.maxEntrySize())
	return nil
}

// All iterates over the live entries, most recently used first within each
// shard, shard after shard; with one shard the order is exact overall. It
// copies one shard at a time and yields without holding a lock, so the loop
// body may call the cache; it sees each shard as of when it was copied.
func (c *Cache[K, V]) All() iter.Seq2[K, V] { return c.all(false) }

// AllIncludingExpired is All, but also yields the entries that have expired
// and not been reclaimed yet (which no read returns). A caller that copies
// the cache's state elsewhere uses it to learn of expiries the background
// sweep has not reached.
func (c *Cache[K, V]) AllIncludingExpired() iter.Seq2[K, V] { return c.all(true) }

func (c *Cache[K, V]) all(expired bool) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for i := range c.shards {
			s := &c.shards[i]
			now := c.now()
			s.mu.Lock()
			snap := make([]dropped[K, V], 0, s.len)
			for idx := s.entries[0].next; idx != 0; idx = s.entries[idx].next {
				e := &s.entries[idx]
				if expired || e.expireAt == 0 || e.expireAt > now {
					snap = append(snap, dropped[K, V]{key: e.key, value: e.value})
				}
			}
			s.mu.Unlock()
			for _, d := range snap {
				if !yield(d.key, d.value) {
					return
				}
			}
		}
	}
}

// Reclaim removes expired entries in a bounded step (a fixed budget per
// shard) and returns how many it removed. The background sweep calls it;
// callers with ReclaimInterval < 0 may call it themselves.
func (c *Cache[K, V]) Reclaim() int {
	n, _ := c.reclaim()
	return n
}

// reclaim runs one step on every shard; more reports whether some shard
// used its whole budget and may have more to do.
func (c *Cache[K, V]) reclaim() (n int, more bool) {
	now := c.now()
	for i := range c.shards {
		s := &c.shards[i]
		var buf []dropped[K, V]
		drops := c.dropBuffer(&buf)
		s.mu.Lock()
		before := s.expirations
		left := s.reclaimLocked(now, sweepReclaimBudget, drops)
		n += int(s.expirations - before)
		s.mu.Unlock()
		c.notify(buf)
		if left == 0 {
			more = true
		}
	}
	return n, more
}

func (c *Cache[K, V]) sweep(interval time.Duration) {
	defer close(c.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			for range sweepMaxRounds {
				if _, more := c.reclaim(); !more {
					break
				}
				runtime.Gosched()
			}
		}
	}
}

// Close stops the background sweep and waits for it. It is idempotent and
// always returns nil. The cache stays usable; expired entries are then
// reclaimed only by writes and Reclaim.
func (c *Cache[K, V]) Close() error {
	c.closeOnce.Do(func() {
		if c.stop != nil {
			close(c.stop)
			<-c.done
		}
	})
	return nil
}
