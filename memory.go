package geocache

import "github.com/geocache/geocache/internal/store"

// SetMaxBytes changes the memory budget of the entries (Config.MaxBytes)
// while the node runs, as Redis's CONFIG SET maxmemory: a smaller budget
// evicts least recently used entries down to it at once (local evictions,
// announced as "evicted" keyspace events; other regions keep their
// copies), a larger one takes effect for the writes that follow. 0 removes
// the byte limit, which needs Config.MaxEntries: a node is never
// unbounded. One shard of the budget must hold at least one entry, and a
// write larger than one shard's part is refused (ErrTooLarge). It returns
// a *ConfigError for MaxBytes (wrapping ErrInvalidConfig), changing
// nothing, for a budget it refuses. Config reports the budget in force.
func (n *Node) SetMaxBytes(maxBytes int64) error {
	n.maxBytesMu.Lock()
	defer n.maxBytesMu.Unlock()
	switch {
	case maxBytes < 0:
		return &ConfigError{Field: "MaxBytes", Reason: "must not be negative"}
	case maxBytes == 0 && n.cfg.MaxEntries == 0:
		return &ConfigError{"MaxBytes", maxBytes, "cannot be 0 (no byte limit) without MaxEntries: the node would be unbounded"}
	}
	if err := n.store.Resize(n.cfg.MaxEntries, maxBytes); err != nil {
		return &ConfigError{"MaxBytes", maxBytes, "is too small: each shard of the store must hold one entry"}
	}
	n.maxBytes.Store(maxBytes)
	return nil
}

// MemoryUsage returns what key's entry counts against the memory budget:
// its key, its value and the store's fixed overhead per entry (Config.MaxBytes
// counts the same). It does not make the entry more recently used. It returns
// ErrNotFound if key holds no live entry here.
func (n *Node) MemoryUsage(key string) (int64, error) {
	e, ok := n.store.Peek(key)
	if !ok || e.Empty {
		return 0, ErrNotFound
	}
	size := len(e.Value)
	if e.Kind == store.KindHash {
		size = len(e.State) // the whole hash, as the budget charges it
	}
	return int64(len(key)) + int64(size) + n.store.EntryOverhead(), nil
}
