package store

// Keyspace is what Redis's INFO keyspace reports of a store: its keys, how
// many have an expiry, and their mean time to live.
type Keyspace struct {
	// Keys is the number of entries, including expired ones not yet
	// reclaimed (as Len).
	Keys int
	// Sampled is the number of entries examined for Expires and the TTL
	// figures: all of them when Keys is at most the sample asked for.
	Sampled int
	// Expires is the number of entries with an expiry (expired ones not yet
	// reclaimed included, as Redis counts them): exact when Sampled equals
	// Keys, otherwise the sample's proportion applied to Keys.
	Expires int
	// TTLSum and TTLCount are the sum of the time left (ns) of the sampled
	// entries whose expiry is in the future, and their number: Redis's
	// avg_ttl is TTLSum/TTLCount.
	TTLSum   int64
	TTLCount int
}

// Keyspace walks up to maxSample entries (maxSample <= 0: all of them) and
// returns the keyspace figures. Entries sit in the engine's shards by the
// hash of their key, and the walk takes the shards in order, so a partial
// walk samples keys without regard to their expiry. It costs one copy of
// each shard it visits (the engine's iterator copies a shard under its lock
// and yields outside it) and holds no lock while counting.
func (s *Store) Keyspace(maxSample int) Keyspace {
	ks := Keyspace{Keys: s.Len()}
	now := s.clock.UnixNano()
	expires := 0
	for _, it := range s.cache.AllIncludingExpired() {
		if maxSample > 0 && ks.Sampled >= maxSample {
			break
		}
		ks.Sampled++
		if it.expireAt == 0 {
			continue
		}
		expires++
		if left := it.expireAt - now; left > 0 {
			ks.TTLSum += left
			ks.TTLCount++
		}
	}
	switch {
	case ks.Sampled == 0:
	case ks.Sampled >= ks.Keys:
		ks.Expires = expires
	default:
		ks.Expires = int((int64(expires)*int64(ks.Keys) + int64(ks.Sampled)/2) / int64(ks.Sampled))
	}
	return ks
}
