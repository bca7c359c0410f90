package store

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/clock"
	"github.com/geocache/geocache/lru"
)

// Defaults for the zero values of Config's fields.
const (
	DefaultMaxTombstones    = 100_000
	DefaultTombstoneHorizon = time.Hour
	DefaultGhostSlots       = 1 << 16
)

// MaxTombstonesLimit is the largest Config.MaxTombstones: it keeps the
// tables' indices in 32 bits.
const MaxTombstonesLimit = math.MaxInt32 - 1

// maxGhostSlots keeps the ghost table's memory sane: 2 MiB, as the table
// travels in one replication frame.
const maxGhostSlots = 1 << 18

// ErrInvalidConfig is wrapped by every error Open returns for a bad Config.
// Errors found by the lru engine wrap lru.ErrInvalidConfig as well.
var ErrInvalidConfig = errors.New("store: invalid config")

// Config configures a Store. The zero value of every field is a sensible
// default; Open validates the whole struct once.
type Config struct {
	// MaxBytes bounds the memory of the live entries, in bytes: each entry is
	// charged len(key)+len(value) plus the lru engine's per-entry overhead,
	// which includes the store's fixed per-item fields (they live inline in
	// the engine's arena). 0 means no byte limit.
	MaxBytes int64

	// MaxEntries bounds the number of live entries. 0 means no entry limit,
	// unless MaxBytes is 0 too, in which case lru.DefaultMaxEntries applies.
	MaxEntries int

	// Shards is the lru engine's shard count (see lru.Config.Shards); 0
	// chooses from GOMAXPROCS and the limits.
	Shards int

	// LargestEntry is the key and value bytes of the largest entry the store
	// must be able to hold: with Shards 0, the shard count is lowered until
	// one shard holds it (lru.Config.LargestEntry).
	LargestEntry int64

	// Clock supplies physical time in Unix nanoseconds, for expiry and for
	// the age of tombstones. nil means the real clock. The store never lets
	// time go back: a reading earlier than one it has already made counts as
	// that one.
	Clock lru.Clock

	// MaxTombstones bounds each of the two tombstone tables: deletes, and
	// expiries. When one is full, its oldest tombstone (by the time its
	// horizon started) moves to the tombstone-ghost table. 0 means
	// DefaultMaxTombstones.
	MaxTombstones int

	// TombstoneHorizon is how long a tombstone is kept: one whose start (its
	// version's wall time for a delete, the expiry time for an expiry) is
	// older than this (by Clock) moves to the tombstone-ghost table. 0 means
	// DefaultTombstoneHorizon.
	TombstoneHorizon time.Duration

	// GhostSlots is the size of each of the two ghost tables (local and
	// tombstone), a power of two. 0 means
	// DefaultGhostSlots. Each slot costs 8 bytes; fewer slots refuse more
	// legitimate writes of keys that share a slot with a departed key.
	GhostSlots int

	// ReclaimInterval is passed to the lru engine: the period of its
	// background sweep of expired entries, 0 for lru's default, negative for
	// none (then expired entries are reclaimed by writes, reads and Reclaim).
	ReclaimInterval time.Duration

	// OnChange, if set, is called after every change of a live key: a Set
	// stored (Notice.Created says the key held no live entry), a Delete or
	// an already-expired Set removed one, the entry expired or was
	// evicted, or a full sync's drop rule removed it; and after every
	// already-expired Set of a key without one (ChangeLapsed). It runs
	// after the store's locks are released, on the goroutine that made
	// the change, so it may call the store; two changes of one key made at
	// once by two goroutines may reach it in either order.
	// Store.ReportRemovals turns the reports of expiries and evictions
	// found by the engine off and on.
	OnChange func(key string, n Notice)
}

// Notice is one report of OnChange: what happened to a key, and the code
// of the command that made it happen, if its caller gave one.
type Notice struct {
	Change Change
	// Created: a ChangeSet of a key that held no live entry (a hash
	// without fields counts as none); a ChangeLapsed of a key that held
	// none (so nothing was removed).
	Created bool
	// Event is the caller's code for the command that made the change:
	// Op.Event of the op given to Apply or returned by Update's callback,
	// HashEdit.Event. The store gives it no meaning and carries it only
	// to OnChange; it is 0 for replicated ops (it is never encoded), for
	// IncrBy, and for the store's own removals (ChangeExpired,
	// ChangeEvicted, the drops of DropUnvouched).
	Event Event
	// Kind is the kind of the op the change stored (ChangeSet: KindSet,
	// KindCounter or KindHash), 0 for the other changes.
	Kind Kind
}

// Event is a caller's code for the command behind a change, for its
// keyspace notifications (Notice.Event); 0 means none.
type Event uint8

// Change is what happened to a live key (Config.OnChange).
type Change uint8

// Changes.
const (
	ChangeSet     Change = iota + 1 // a Set stored a value
	ChangeDelete                    // a Delete or a drop removed the entry
	ChangeExpired                   // the entry's expiry passed and it was removed
	ChangeEvicted                   // the engine evicted the entry for room
	// ChangeLapsed: a Set whose expiry had already passed stored nothing
	// and removed the key's live entry, if any (Notice.Created: there was
	// none).
	ChangeLapsed
)

// String returns the change's name: "set", "del", "expired" or "evicted",
// the event names of Redis's keyspace notifications, or "lapsed".
func (c Change) String() string {
	switch c {
	case ChangeSet:
		return "set"
	case ChangeDelete:
		return "del"
	case ChangeExpired:
		return "expired"
	case ChangeEvicted:
		return "evicted"
	case ChangeLapsed:
		return "lapsed"
	}
	return fmt.Sprintf("Change(%d)", uint8(c))
}

func (cfg Config) validate() (Config, error) {
	switch {
	case cfg.MaxBytes < 0:
		return cfg, fmt.Errorf("%w: MaxBytes %d is negative", ErrInvalidConfig, cfg.MaxBytes)
	case cfg.MaxEntries < 0:
		return cfg, fmt.Errorf("%w: MaxEntries %d is negative", ErrInvalidConfig, cfg.MaxEntries)
	case cfg.MaxTombstones < 0 || cfg.MaxTombstones > MaxTombstonesLimit:
		return cfg, fmt.Errorf("%w: MaxTombstones %d is outside [0, %d]", ErrInvalidConfig, cfg.MaxTombstones, MaxTombstonesLimit)
	case cfg.TombstoneHorizon < 0:
		return cfg, fmt.Errorf("%w: TombstoneHorizon %v is negative", ErrInvalidConfig, cfg.TombstoneHorizon)
	case cfg.GhostSlots < 0 || cfg.GhostSlots > maxGhostSlots:
		return cfg, fmt.Errorf("%w: GhostSlots %d is outside [0, %d]", ErrInvalidConfig, cfg.GhostSlots, maxGhostSlots)
	case cfg.GhostSlots&(cfg.GhostSlots-1) != 0:
		return cfg, fmt.Errorf("%w: GhostSlots %d is not a power of two", ErrInvalidConfig, cfg.GhostSlots)
	}
	if cfg.MaxTombstones == 0 {
		cfg.MaxTombstones = DefaultMaxTombstones
	}
	if cfg.TombstoneHorizon == 0 {
		cfg.TombstoneHorizon = DefaultTombstoneHorizon
	}
	if cfg.GhostSlots == 0 {
		cfg.GhostSlots = DefaultGhostSlots
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewMonotonic() // never goes back by itself
	} else {
		cfg.Clock = &monoClock{src: cfg.Clock}
	}
	return cfg, nil
}

// The store passes its clock to its lru engine too, so that both agree on
// what has expired, and the clock never goes back: an entry seen expired
// stays expired (the engine reads the clock before it locks a shard, and a
// reading that went back would find such an entry live again). Apply and
// Update decide under the lock by the engine's own reading for the call
// (lru's ComputeNow), so an op they judge live the engine stores: a later
// reading of their own, if it were earlier, would have them store an op the
// engine drops as expired, without a trace of its version.

// monoClock makes an injected clock monotonic: a reading earlier than one
// already returned counts as that one.
type monoClock struct {
	src  lru.Clock
	last atomic.Int64
}

func (m *monoClock) UnixNano() int64 {
	n := m.src.UnixNano()
	for {
		old := m.last.Load()
		if n <= old {
			return old
		}
		if m.last.CompareAndSwap(old, n) {
			return n
		}
	}
}
