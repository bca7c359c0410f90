package store

// Scan appends to dst about count live keys from cursor on and returns the
// next cursor (0: the walk is complete), with Redis SCAN's guarantee: a key
// live from the first call to the last is returned exactly once, however
// other keys are written, deleted, expired or evicted meanwhile. The order
// is the lru engine's (lru.Cache.Scan): fixed by the keys' hashes, so a
// cursor is only meaningful to the store that issued it. Each call holds
// one engine shard's lock at a time, for a bounded number of buckets. A
// hash without a field reads as absent and is left out.
func (s *Store) Scan(cursor uint64, count int, dst []string) ([]string, uint64) {
	start := len(dst)
	dst, next := s.cache.Scan(cursor, count, dst)
	if s.emptyHashes.Load() > 0 {
		kept := dst[:start]
		for _, k := range dst[start:] {
			if !s.isEmptyHashKey(k) {
				kept = append(kept, k)
			}
		}
		dst = kept
	}
	return dst, next
}

// randomKeyTries bounds how many keys RandomKey draws past hashes without
// a field before it reports none.
const randomKeyTries = 16

// RandomKey returns a live key chosen at random (lru.Cache.RandomKey), or
// false if the store holds none. A hash without a field reads as absent:
// RandomKey draws again (a bounded number of times) when it picks one.
func (s *Store) RandomKey() (string, bool) {
	for range randomKeyTries {
		k, ok := s.cache.RandomKey()
		if !ok || s.emptyHashes.Load() == 0 || !s.isEmptyHashKey(k) {
			return k, ok
		}
	}
	return "", false
}
