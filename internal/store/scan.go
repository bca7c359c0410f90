package store

// Scan appends to dst about count live keys from cursor on and returns the
// next cursor (0: the walk is complete), with Redis SCAN's guarantee: a key
// live from the first call to the last is returned exactly once, however
// other keys are written, deleted, expired or evicted meanwhile. The order
// is the lru engine's (lru.Cache.Scan): fixed by the keys' hashes, so a
// cursor is only meaningful to the store that issued it. Each call holds
// one engine shard's lock at a time, for a bounded number of buckets.
func (s *Store) Scan(cursor uint64, count int, dst []string) ([]string, uint64) {
	return s.cache.Scan(cursor, count, dst)
}

// RandomKey returns a live key chosen at random (lru.Cache.RandomKey), or
// false if the store holds none.
func (s *Store) RandomKey() (string, bool) { return s.cache.RandomKey() }
