package store

import "fmt"

// Resize changes the store's limits while it runs, with Config's meaning
// (MaxBytes and MaxEntries; 0 is no limit, but not both 0): a lower limit
// evicts least recently used entries down to it at once, each recorded as
// any eviction is (a local ghost, reported to OnChange as ChangeEvicted
// after the locks are released); a higher one applies to the writes that
// follow. The shard count stays as Open chose it, so a byte limit must
// leave every shard room for one entry. It returns an error wrapping
// ErrInvalidConfig (and lru.ErrInvalidConfig for what the engine refuses),
// changing nothing, for limits Open would refuse. Calls are serialized.
func (s *Store) Resize(maxEntries int, maxBytes int64) error {
	switch {
	case maxBytes < 0:
		return fmt.Errorf("%w: MaxBytes %d is negative", ErrInvalidConfig, maxBytes)
	case maxEntries < 0:
		return fmt.Errorf("%w: MaxEntries %d is negative", ErrInvalidConfig, maxEntries)
	}
	s.resizeMu.Lock()
	defer s.resizeMu.Unlock()
	if err := s.cache.Resize(maxEntries, maxBytes); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// EntryOverhead returns the bytes the memory limit charges every entry on
// top of its key and value (the engine's slot, its share of the hash
// table, and the store's fixed per-item fields): an entry of key k and
// value v counts len(k) + len(v) + EntryOverhead() against MaxBytes.
func (s *Store) EntryOverhead() int64 { return s.cache.EntryOverhead() }
