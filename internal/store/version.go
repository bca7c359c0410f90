package store

import (
	"cmp"
	"strconv"

	"github.com/geocache/geocache/internal/hlc"
)

// Version orders the writes of one key across the cluster: the hybrid
// logical clock time of the write, then the numeric id of the node where it
// originated as the tie-break. Versions compare lexicographically.
type Version struct {
	HLC    hlc.Timestamp
	Origin uint32
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.HLC, w.HLC); c != 0 {
		return c
	}
	return cmp.Compare(v.Origin, w.Origin)
}

// IsZero reports whether v is the zero Version, which is older than every
// version a clock issues.
func (v Version) IsZero() bool { return v == Version{} }

// String formats v as "<ms>.<logical>@<origin>", for example
// "1732580000123.5@3".
func (v Version) String() string {
	var buf [48]byte
	b := strconv.AppendInt(buf[:0], v.HLC.WallMillis(), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(v.HLC.Logical()), 10)
	b = append(b, '@')
	b = strconv.AppendUint(b, uint64(v.Origin), 10)
	return string(b)
}

// Kind is the kind of an Op.
type Kind uint8

const (
	// KindSet stores a value with an optional expiry time.
	KindSet Kind = 1
	// KindDelete removes a key and leaves a tombstone.
	KindDelete Kind = 2
	// KindPublish is a pub/sub message (Key the channel, Value the
	// payload). The store never applies it (Apply answers Invalid): it
	// travels in the replication log only, in order with the writes.
	KindPublish Kind = 3
	// KindBatch marks the start of a batch in the replication log: the
	// Count ops that follow it are one transaction, which receivers apply
	// as one unit. The store never applies it (Apply answers Invalid).
	KindBatch Kind = 4
)

// String returns "set", "delete", "publish", "batch", "counter", "expire",
// "hash" or "Kind(n)".
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindHash:
		return "hash"
	case KindExpire:
		return "expire"
	case KindSet:
		return "set"
	case KindDelete:
		return "delete"
	case KindPublish:
		return "publish"
	case KindBatch:
		return "batch"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Op is one versioned write, local or replicated.
type Op struct {
	Kind Kind
	// Event is the local caller's code for the command that made the op,
	// passed to OnChange (Notice.Event) when Apply or Update applies it.
	// It is not part of the write: replication never carries it.
	Event Event
	Key   string
	Value []byte // Set only; the store takes ownership of it
	// ExpireAt is the absolute expiry time of a Set in Unix nanoseconds; 0
	// means never. Every region expires the key at the same instant.
	ExpireAt int64
	Version  Version
	// Adopt marks an op that carries another node's current entry or
	// tombstone of a key whose slot that node holds whole (an owner's
	// answer to a fetch): the ghost tables, which speak of what left this
	// store, do not refuse it. Local only, like Event.
	Adopt bool
}

// Entry is a live value as the store holds it. Value is shared with the
// store: callers must not modify it.
type Entry struct {
	Value    []byte // a counter's: its value in base 10 (a new slice)
	Version  Version
	ExpireAt int64 // Unix nanoseconds; 0 = never
	// Kind is KindSet for a string, KindCounter for a counter or KindHash
	// for a hash, whose encoded state (shared with the store) is State. A
	// hash's Value is nil (Store.Hash reads its fields).
	Kind  Kind
	State []byte
	// Empty marks a hash without a live field, which reads as absent.
	Empty bool
}

// Result says what Apply did with an Op.
type Result uint8

const (
	// Applied: the op was newer than everything the store knew of its key and
	// is now the key's state (a live entry, or a tombstone for a Delete).
	Applied Result = iota + 1
	// Stale: the op is not newer than the key's live entry or tombstone.
	// Nothing changed.
	Stale
	// Refused: the key is absent and has no tombstone, but the ghost table
	// says a version at least as new may have left the store (evicted,
	// expired, dropped). Nothing changed. This may refuse a legitimate write,
	// which costs a miss (invariant I2 of docs/design.md) but never lets an older write back in.
	Refused
	// AlreadyExpired: a Set newer than the key's state whose ExpireAt is not
	// after now. No value is stored; the version is remembered as a tombstone
	// (an expired value and a deleted one read alike), so an older write
	// arriving later is refused exactly as after a Delete.
	AlreadyExpired
	// TooLarge: a Set newer than the key's state that can never fit in the
	// store's byte budget. No value is stored, any older value of the key is
	// removed (it would be a stale hit) and the version goes to the ghost
	// table, as if the value had been stored and evicted at once.
	TooLarge
	// Invalid: the op has an unknown Kind. Nothing changed.
	Invalid
	// Declined: Update's callback chose not to write. Nothing changed.
	// Apply never returns it, and the store's counters do not count it.
	Declined
)

// numResults sizes the counters of Apply's results (Declined is not one).
const numResults = int(Invalid) + 1

// String returns the result's name in lower case.
func (r Result) String() string {
	switch r {
	case Applied:
		return "applied"
	case Stale:
		return "stale"
	case Refused:
		return "refused"
	case AlreadyExpired:
		return "already-expired"
	case TooLarge:
		return "too-large"
	case Invalid:
		return "invalid"
	case Declined:
		return "declined"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}
