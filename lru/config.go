package lru

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"time"
	"unsafe"

	"github.com/geocache/geocache/internal/clock"
)

// DefaultMaxEntries is the entry limit of a cache whose Config sets neither
// MaxEntries nor MaxBytes: a cache is never unbounded.
const DefaultMaxEntries = 100_000

// DefaultReclaimInterval is how often the background sweep reclaims expired
// entries when Config.ReclaimInterval is zero.
const DefaultReclaimInterval = time.Second

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("lru: invalid config")

// Clock supplies the current time: its one method, UnixNano() int64,
// returns nanoseconds since the Unix epoch. Tests inject a manual clock;
// nil in Config means the real clock. It is geocache's one clock interface
// (geocache.Clock is the same type).
type Clock = clock.Clock

// Reason tells an OnEvict callback why an entry left the cache.
type Reason uint8

const (
	// Evicted: the entry was the least recently used when the cache needed room.
	Evicted Reason = iota + 1
	// Expired: the entry's expiry time passed.
	Expired
	// Deleted: the entry was removed by Delete, Compute or Purge, or by a
	// write whose expiry time had already passed.
	Deleted
)

// String returns the reason's name in lower case.
func (r Reason) String() string {
	switch r {
	case Evicted:
		return "evicted"
	case Expired:
		return "expired"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Config configures a Cache. The zero value of every field is a sensible
// default; New validates the whole struct once.
type Config[K comparable, V any] struct {
	// MaxEntries bounds the number of entries. 0 means no entry limit, unless
	// MaxBytes is 0 too, in which case the limit is DefaultMaxEntries.
	MaxEntries int

	// MaxBytes bounds the memory held by entries, in bytes: the sum over all
	// entries of Size(key, value) plus the engine's own per-entry overhead
	// (see Cache.EntryOverhead). 0 means no byte limit.
	MaxBytes int64

	// Size returns the bytes that a key and value hold, excluding the engine's
	// overhead. nil means: len() for string and []byte keys and values, and
	// unsafe.Sizeof for any other type (which does not follow pointers: set
	// Size for values that do).
	Size func(key K, value V) int64

	// DefaultTTL is the time to live of entries stored with Set. 0 means they
	// never expire. Negative is an error.
	DefaultTTL time.Duration

	// Shards is the number of independently locked shards, rounded up to a
	// power of two. 0 chooses from GOMAXPROCS and the limits: small caches get
	// one shard, which makes them exactly LRU overall. Each shard holds an
	// equal part of MaxEntries and MaxBytes and is exactly LRU within itself.
	Shards int

	// LargestEntry is the size (as Size counts it) of the largest entry the
	// cache must always be able to hold. With Shards 0, the automatic shard
	// count is lowered, down to one shard, until one shard's part of
	// MaxBytes holds such an entry. 0 means no such requirement; an entry
	// larger than a shard's part is never stored (Cache.MaxEntrySize).
	LargestEntry int64

	// Clock supplies the time for expiry. nil means the real clock.
	Clock Clock

	// OnEvict, if set, is called for every entry that leaves the cache other
	// than by being overwritten, with the reason. It is never called while an
	// internal lock is held, so it may call the cache. Cache.SetOnEvict
	// replaces it.
	OnEvict func(key K, value V, reason Reason)

	// OnEvictLocked, if set, is called like OnEvict but while the shard's
	// lock is held, before any other operation on the shard can observe the
	// entry gone. It is for layers that must keep their own state in step
	// with the cache (geocache's store records the version of every removed
	// entry with it). It must be quick and must not call the cache.
	OnEvictLocked func(key K, value V, reason Reason)

	// Hash overrides the hash of keys. nil means hash/maphash with a random
	// seed. A custom hash must spread its output over all 64 bits.
	Hash func(key K) uint64

	// ReclaimInterval is the period of the background sweep that reclaims
	// expired entries that nobody reads. 0 means DefaultReclaimInterval;
	// negative means no background goroutine (writes still reclaim a bounded
	// number of expired entries each, and Reclaim can be called directly).
	ReclaimInterval time.Duration
}

// Per-shard sizing targets for the automatic shard count.
const (
	maxAutoShards      = 64
	minEntriesPerShard = 1024
	minBytesPerShard   = 1 << 20
)

// validated is a Config after defaults are applied.
type validated[K comparable, V any] struct {
	Config[K, V]
	shards int
}

func (cfg Config[K, V]) validate() (validated[K, V], error) {
	v := validated[K, V]{Config: cfg}
	switch {
	case cfg.MaxEntries < 0:
		return v, fmt.Errorf("%w: MaxEntries %d is negative", ErrInvalidConfig, cfg.MaxEntries)
	case cfg.MaxEntries > math.MaxInt32:
		return v, fmt.Errorf("%w: MaxEntries %d exceeds %d", ErrInvalidConfig, cfg.MaxEntries, math.MaxInt32)
	case cfg.MaxBytes < 0:
		return v, fmt.Errorf("%w: MaxBytes %d is negative", ErrInvalidConfig, cfg.MaxBytes)
	case cfg.DefaultTTL < 0:
		return v, fmt.Errorf("%w: DefaultTTL %v is negative", ErrInvalidConfig, cfg.DefaultTTL)
	case cfg.LargestEntry < 0:
		return v, fmt.Errorf("%w: LargestEntry %d is negative", ErrInvalidConfig, cfg.LargestEntry)
	case cfg.Shards < 0 || cfg.Shards > 1<<16:
		return v, fmt.Errorf("%w: Shards %d is outside [0, 65536]", ErrInvalidConfig, cfg.Shards)
	}
	if v.MaxEntries == 0 && v.MaxBytes == 0 {
		v.MaxEntries = DefaultMaxEntries
	}
	if v.Size == nil {
		v.Size = defaultSize[K, V]()
	}
	if v.Hash == nil {
		v.Hash = defaultHash[K]()
	}
	if v.ReclaimInterval == 0 {
		v.ReclaimInterval = DefaultReclaimInterval
	}
	v.shards = v.Shards
	if v.shards == 0 {
		v.shards = autoShards(v.MaxEntries, v.MaxBytes)
		for v.shards > 1 && v.LargestEntry > 0 && v.MaxBytes > 0 &&
			v.MaxBytes/int64(v.shards)-int64(entryOverhead[K, V]()) < v.LargestEntry {
			v.shards /= 2
		}
	}
	v.shards = nextPow2(v.shards)
	if v.MaxEntries > 0 && v.shards > v.MaxEntries {
		return v, fmt.Errorf("%w: %d shards for MaxEntries %d leaves shards with no room", ErrInvalidConfig, v.shards, v.MaxEntries)
	}
	if v.MaxBytes > 0 && v.MaxBytes/int64(v.shards) < int64(entryOverhead[K, V]()) {
		return v, fmt.Errorf("%w: MaxBytes %d over %d shards cannot hold one entry", ErrInvalidConfig, v.MaxBytes, v.shards)
	}
	return v, nil
}

// autoShards picks enough shards to keep two cores from contending, but keeps
// every shard large enough that per-shard LRU order approximates global LRU
// order closely (and a small cache exactly: one shard).
func autoShards(maxEntries int, maxBytes int64) int {
	n := nextPow2(8 * runtime.GOMAXPROCS(0))
	n = min(n, maxAutoShards)
	for n > 1 && maxEntries > 0 && maxEntries/n < minEntriesPerShard {
		n /= 2
	}
	for n > 1 && maxBytes > 0 && maxBytes/int64(n) < minBytesPerShard {
		n /= 2
	}
	return n
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// defaultSize measures strings and byte slices by length and other types by
// their shallow size. It is chosen once, at New.
func defaultSize[K comparable, V any]() func(K, V) int64 {
	ks := sizer[K]()
	vs := sizer[V]()
	return func(k K, v V) int64 { return ks(k) + vs(v) }
}

func sizer[T any]() func(T) int64 {
	var zero T
	switch any(zero).(type) {
	case string:
		return func(t T) int64 { return int64(len(*(*string)(unsafe.Pointer(&t)))) }
	case []byte:
		return func(t T) int64 { return int64(len(*(*[]byte)(unsafe.Pointer(&t)))) }
	}
	n := int64(unsafe.Sizeof(zero))
	return func(T) int64 { return n }
}

// defaultHash uses maphash's fast string path for string keys and
// maphash.Comparable for the rest.
func defaultHash[K comparable]() func(K) uint64 {
	seed := maphash.MakeSeed()
	var zero K
	if _, ok := any(zero).(string); ok {
		return func(k K) uint64 { return maphash.String(seed, *(*string)(unsafe.Pointer(&k))) }
	}
	return func(k K) uint64 { return maphash.Comparable(seed, k) }
}
