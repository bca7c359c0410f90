package repl

import (
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// Store is what the replicator needs of the node's store: apply a peer's
// write, walk every entry and tombstone (full syncs and anti-entropy
// probes), look one key up without touching its recency (answering a
// probe), and the tombstone-ghost table and drop rule of a full sync.
// *store.Store implements it.
type Store interface {
	// Apply merges a replicated write by its version.
	Apply(op store.Op) store.Result
	// Snapshot calls yield with every live entry as a KindSet op (a
	// counter's as a KindCounter op, a hash's as a KindHash op), then
	// every tombstone as a KindDelete op, until yield returns false.
	Snapshot(yield func(store.Op) bool)
	// Peek returns key's live entry without making it more recently used.
	Peek(key string) (store.Entry, bool)
	// Get returns key's live entry and makes it most recently used
	// (answering a Fetch that reads).
	Get(key string) (store.Entry, bool)
	// TombstoneOp returns key's tombstone as the Delete op that reproduces
	// it, if key has one.
	TombstoneOp(key string) (store.Op, bool)
	// TombstoneGhosts returns the table of versions of the deletes and
	// expiries whose exact tombstones left the store.
	TombstoneGhosts() []uint64
	// MergeTombstoneGhosts merges a peer's table into this store's.
	MergeTombstoneGhosts(ghosts []uint64) bool
	// DropUnvouched removes every entry keep returns false for and returns
	// how many it removed.
	DropUnvouched(keep func(key string, v store.Version) bool) int
}

var _ Store = (*store.Store)(nil)

// The store and the wire protocol each number operation kinds: the wire's
// numbers are the protocol and never change, the store's are its own.
// These two functions are the only mapping between them (kind_test.go
// checks that it is total and round-trips).

// wireKind returns the wire kind of a store kind, and false for a kind the
// protocol cannot carry.
func wireKind(k store.Kind) (wire.Kind, bool) {
	switch k {
	case store.KindSet:
		return wire.KindSet, true
	case store.KindDelete:
		return wire.KindDelete, true
	case store.KindPublish:
		return wire.KindPublish, true
	case store.KindBatch:
		return wire.KindBatch, true
	case store.KindCounter:
		return wire.KindCounter, true
	case store.KindHash:
		return wire.KindHash, true
	}
	return 0, false
}

// storeKind returns the store kind of a wire kind (the decoder refuses
// every other value, so a decoded op always maps).
func storeKind(k wire.Kind) (store.Kind, bool) {
	switch k {
	case wire.KindSet:
		return store.KindSet, true
	case wire.KindDelete:
		return store.KindDelete, true
	case wire.KindPublish:
		return store.KindPublish, true
	case wire.KindBatch:
		return store.KindBatch, true
	case wire.KindCounter:
		return store.KindCounter, true
	case wire.KindHash:
		return store.KindHash, true
	}
	return 0, false
}

// toWireOp converts a store op for the wire. Every op the replicator sends
// comes from the store's own log or walk, whose kinds all map.
func toWireOp(op *store.Op) wire.Op {
	k, _ := wireKind(op.Kind)
	return wire.Op{
		Kind:     k,
		Key:      op.Key,
		Value:    op.Value,
		ExpireAt: op.ExpireAt,
		HLC:      uint64(op.Version.HLC),
		VOrigin:  op.Version.Origin,
	}
}

func toWire(ops []store.Op, dst []wire.Op) []wire.Op {
	for i := range ops {
		dst = append(dst, toWireOp(&ops[i]))
	}
	return dst
}

// fromWireOp converts a decoded op for the store. An unmapped kind becomes
// kind 0, which the store refuses as invalid.
func fromWireOp(op *wire.Op) store.Op {
	k, _ := storeKind(op.Kind)
	return store.Op{
		Kind:     k,
		Key:      op.Key,
		Value:    op.Value,
		ExpireAt: op.ExpireAt,
		Version:  store.Version{HLC: hlc.Timestamp(op.HLC), Origin: op.VOrigin},
	}
}
