// Package lru is geocache's local cache engine: an exact least-recently-used
// cache with per-entry expiry and limits in entries and in bytes, safe for
// concurrent use, usable on its own.
//
// # Semantics
//
// Get makes a key the most recently used; Peek and Contains do not. When a
// write would break a limit, the least recently used entries are evicted
// first. A read never returns an entry whose expiry time has passed (by the
// cache's Clock), and expired entries that nobody reads are reclaimed in
// bounded steps by writes and by one background sweep, so dead entries do
// not hold memory for long. There is no goroutine or timer per entry.
//
// The byte limit is a real memory budget: each entry is charged its
// Config.Size plus the engine's own overhead (Cache.EntryOverhead), which is
// about 90 bytes for string keys and []byte values.
//
// # Sharding
//
// A cache is split into independently locked shards by key hash, each
// holding an equal part of the limits and each exactly LRU within itself.
// Small caches get one shard and are then exactly LRU overall; large ones get
// a few shards per core, which keeps two cores from waiting on one lock
// while per-shard order stays very close to global LRU order.
//
// # Callbacks
//
// OnEvict is called for entries that leave the cache (evicted, expired or
// deleted), always after the internal lock is released. Compute is the one
// place where user code runs under a lock: it is the atomic read-modify-write
// that geocache's replicated store builds its version check on.
//
// See docs/engine.md in the repository for the design and its reasons.
package lru
