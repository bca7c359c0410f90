package store

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/lru"
)

const (
	// pruneBudget is how many tombstones past the horizon an Apply that
	// takes the tombstone lock drops on the way: enough to keep up with any
	// rate of deletes, small enough to keep Apply's latency flat.
	pruneBudget = 4
	// snapshotChunk is how many tombstones Snapshot copies per lock hold.
	snapshotChunk = 256
)

// item is what the store keeps in the lru engine for a live key. It lives
// inline in the engine's arena, so the engine's per-entry overhead already
// charges its fixed size; expireAt duplicates the engine's own expiry so
// that Get can return it without a second lookup. The version is spelled
// out (hlc, origin) so that ghost fits in what would be Version's padding.
type item struct {
	value  []byte
	hlc    hlc.Timestamp
	origin uint32
	// ghost is the key's ghost hash (ghostHash; its low 32 bits index any
	// ghost table here, of at most maxGhostSlots). The eviction hook
	// records the key's ghost with it instead of hashing the key: the
	// least recently used entry's key bytes are seldom in the CPU's cache,
	// and reading them was the most costly part of an eviction. Apply
	// hashes a key that has no entry anyway (for the ghost checks) and
	// later writes carry it over.
	ghost    uint32
	expireAt int64
}

func (it *item) version() Version { return Version{HLC: it.hlc, Origin: it.origin} }

// newItem is the entry op (a Set) stores; ghost is its key's ghost hash.
func newItem(op *Op, ghost uint32) item {
	ghost &^= counterFlag | hashFlag | emptyHashFlag
	switch op.Kind {
	case KindCounter:
		ghost |= counterFlag
	case KindHash:
		ghost |= hashFlag
		if !hashHasLive(op.Value) {
			ghost |= emptyHashFlag
		}
	}
	return item{value: op.Value, hlc: op.Version.HLC, origin: op.Version.Origin, ghost: ghost, expireAt: op.ExpireAt}
}

// Store is a versioned key-value store on the lru engine: last-writer-wins
// by Version, tombstones for deletes and expiries, and ghosts for versions
// that left without an exact record. All methods are safe for concurrent
// use.
type Store struct {
	clock lru.Clock
	cache *lru.Cache[string, item]
	tombs *tombstones
	// ghosts holds this node's local departures: evicted entries, Purge,
	// DropUnvouched, too-large writes. They refuse late older writes here
	// and never leave the node: that this region evicted or flushed a key
	// says nothing about the key elsewhere.
	ghosts *ghostTable
	// tombGhosts holds what is left of tombstones that left the exact
	// tables (past the horizon, over the bound, purged): knowledge that a
	// delete or an expiry superseded the versions it covers. It refuses
	// here too, and it travels with full syncs (TombstoneGhosts).
	tombGhosts *ghostTable

	// purging is non-zero while Purge runs, so that the eviction hook
	// records ghosts for the engine's Deleted removals (see onEvictLocked).
	purging atomic.Int32

	resizeMu sync.Mutex // serializes Resize (resize.go)

	onChange func(key string, n Notice) // Config.OnChange

	counts [KindHash + 1][numResults]atomic.Uint64 // Apply results by Kind (0 = invalid kind)

	// emptyHashes counts the hash items without a live field, which read
	// as absent: Len and the keyspace walks leave them out.
	emptyHashes atomic.Int64
}

// Open returns a store configured by cfg, or an error wrapping
// ErrInvalidConfig. Unless cfg.ReclaimInterval is negative, the lru engine
// starts one background goroutine, which Close stops.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Store{clock: cfg.Clock, ghosts: newGhostTable(cfg.GhostSlots), tombGhosts: newGhostTable(cfg.GhostSlots), onChange: cfg.OnChange}
	var onEvict func(string, item, lru.Reason)
	if cfg.OnChange != nil {
		onEvict = s.onEvict
	}
	s.tombs = newTombstones(cfg.MaxTombstones, int64(cfg.TombstoneHorizon), s.tombGhosts)
	s.cache, err = lru.New(lru.Config[string, item]{
		MaxEntries:      cfg.MaxEntries,
		MaxBytes:        cfg.MaxBytes,
		Shards:          cfg.Shards,
		LargestEntry:    cfg.LargestEntry,
		Clock:           cfg.Clock,
		Size:            itemSize,
		OnEvictLocked:   s.onEvictLocked,
		OnEvict:         onEvict,
		ReclaimInterval: cfg.ReclaimInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return s, nil
}

// storeItem is the item that op (stored by applyLocked) makes over old
// (found: old is in the engine, which replaces it), keeping emptyHashes.
// A hash without fields reads as absent, so n reports a hash that loses
// its last field as deleted, and one that gains a first field as created.
func (s *Store) storeItem(op *Op, old item, found bool, ghost uint32, n *notice) item {
	it := newItem(op, ghost)
	wasEmpty, isEmpty := found && isEmptyHash(&old), isEmptyHash(&it)
	if wasEmpty {
		s.emptyHashes.Add(-1)
	}
	if isEmpty {
		s.emptyHashes.Add(1)
	}
	switch {
	case isEmpty && n.change == ChangeSet:
		n.change, n.created = 0, false
		if found && !wasEmpty {
			n.change = ChangeDelete
		}
	case wasEmpty && n.change == ChangeSet:
		n.created = true
	}
	n.kind = op.Kind
	return it
}

func itemSize(key string, it item) int64 { return int64(len(key)) + int64(len(it.value)) }

// onEvictLocked records what is left of every entry the engine removes,
// while the engine still holds the shard lock: an exact tombstone for an
// expired entry, a ghost for an evicted one.
//
// Why under the lock: if the record were made after the lock is released
// (as an ordinary OnEvict callback would), this interleaving resurrects old
// data:
//
//	G1: Apply(set k v9) evicts the LRU key k0, which holds v5; unlocks
//	G2: Apply(set k0 v3): k0 is absent, no tombstone, its ghost slot is
//	    still below 5, so v3 is stored: an older value is back (I3)
//	G1: records ghost(k0) = 5, too late
//
// Recorded under the lock, the record is in place before any Apply on k0
// (which needs the same lock) can find k0 absent.
//
// Why an expired entry leaves a tombstone: its version is the key's state
// everywhere it expired, and other regions may still hold an older version
// that the expired write never reached (its origin died first). A ghost
// would only refuse that older version here; a tombstone also answers it
// in anti-entropy and full syncs, so the older version is removed there
// too (I3). The tombstone's horizon counts from the expiry.
//
// An entry purged after its expiry passed is an expiry too (FLUSHALL takes
// expired entries with the rest): it leaves the same tombstone, which the
// purge then turns into a tombstone ghost. As a local ghost, the expiry
// would be lost to full syncs, and a peer away since would keep a version
// older than the expired write for good. An eviction needs no such check:
// the engine reports an entry expired by the reading it evicts by as
// Expired itself, and the store goes by the engine's reading (as Apply
// does), without reading the clock again for every eviction.
//
// The engine's Deleted removals are the store's own doing, and each already
// leaves an exact or newer record: a Delete or an expired Set removes the
// entry and writes a newer tombstone; a too-large Set records the newer
// version's ghost; DropUnvouched records the ghost itself. Recording those
// again is not wrong but costs exactness: a ghost refuses every key sharing
// its slot, which would make the final state depend on arrival order even
// when nothing was evicted. Purge is the exception, flagged by purging.
func (s *Store) onEvictLocked(key string, it item, reason lru.Reason) {
	if isEmptyHash(&it) {
		s.emptyHashes.Add(-1)
	}
	switch {
	case reason == lru.Deleted && s.purging.Load() == 0:
	case reason == lru.Expired || reason == lru.Deleted && it.expireAt != 0 && it.expireAt <= s.clock.UnixNano():
		s.tombs.mu.Lock()
		s.tombs.putLocked(key, it.version(), it.expireAt)
		s.tombs.mu.Unlock()
	default:
		s.ghosts.recordHash(uint64(it.ghost), it.hlc)
	}
}

// ReportRemovals sets whether OnChange hears of the entries the engine
// expires or evicts (ChangeExpired, ChangeEvicted); Open turns it on when
// OnChange is set. A caller that nobody listens to for those turns it off:
// the engine then collects nothing for each eviction (an allocation) to
// report it after its lock. Changes the store makes itself (ChangeSet,
// ChangeDelete, and an expired entry that Apply or Update replaces) are
// reported either way. Removals under way during the call may be reported
// or not.
func (s *Store) ReportRemovals(on bool) {
	if on && s.onChange != nil {
		s.cache.SetOnEvict(s.onEvict)
	} else {
		s.cache.SetOnEvict(nil)
	}
}

// onEvict reports the engine's expiries and evictions to OnChange, after
// the engine's locks are released. Its Deleted removals are the store's
// own, reported by the methods that make them.
func (s *Store) onEvict(key string, _ item, reason lru.Reason) {
	switch reason {
	case lru.Expired:
		s.onChange(key, Notice{Change: ChangeExpired})
	case lru.Evicted:
		s.onChange(key, Notice{Change: ChangeEvicted})
	}
}

// notice is what applyLocked did to a live key, for OnChange: reported by
// the caller once the engine's lock is released.
type notice struct {
	expired bool   // the key's entry had expired and was removed first
	change  Change // then this, 0 for nothing
	created bool   // ChangeSet of a key with no live entry, ChangeLapsed of a key without one
	event   Event  // the caller's (Notice.Event)
	kind    Kind   // the kind stored, for ChangeSet
}

func (s *Store) report(key string, n notice) {
	if s.onChange == nil {
		return
	}
	if n.expired {
		s.onChange(key, Notice{Change: ChangeExpired})
	}
	if n.change != 0 {
		s.onChange(key, Notice{Change: n.change, Created: n.created, Event: n.event, Kind: n.kind})
	}
}

// Apply merges op into the store, for local and replicated writes alike,
// and says what it did. It takes ownership of op.Value, which must not be
// modified afterwards.
//
// An op takes effect only if its version is strictly newer than the key's
// live entry or tombstone, so applying the same ops in any order, any number
// of times, gives the same state (as long as nothing is evicted). For a key
// with neither, the ghost tables decide: an op whose HLC is not above the
// key's slot in either is Refused.
func (s *Store) Apply(op Op) Result {
	switch {
	case op.Kind == KindSet, op.Kind == KindDelete:
	case op.Kind == KindCounter && checkCounterOp(&op):
	case op.Kind == KindHash && checkHashOp(&op):
	default:
		s.counts[0][Invalid].Add(1)
		return Invalid
	}
	kind := op.Kind // a plain op that meets a hash may become the hash's op
	var res Result
	n := notice{event: op.Event}
	s.cache.ComputeNow(op.Key, func(old item, _ int64, found bool, now int64) (item, int64, lru.Action) {
		r, what, ghost := s.applyLocked(&op, old, found, now, &n)
		res = r
		if what == lru.Store {
			return s.storeItem(&op, old, found, ghost, &n), op.ExpireAt, lru.Store
		}
		return item{}, 0, what
	})
	s.counts[kind][res].Add(1)
	s.report(op.Key, n)
	return res
}

// Update is the read-modify-write behind conditional writes (SET NX, XX
// and GET, EXPIRE and PERSIST, GETDEL): under the key's lock, fn sees the
// key's live entry, if any, and returns the op to apply — Update gives it
// the key and version ver — or false to leave the key alone. Update returns
// the entry before the change and whether there was one, and the op and its
// result: Declined when fn returned false, Invalid when it returned an op
// of an unknown Kind (neither writes anything). Reading and writing in one
// step matters: a separate read and write would let a concurrent Set be
// overwritten by a value computed from an older one.
//
// fn may return a KindExpire op for a live key: the key keeps its value (a
// counter its contributions, a hash its fields) with the op's expiry; res
// is Declined if the key is a counter or a hash with a write newer than
// ver (the expiry would lose to it). fn may return a KindHash op whose
// Value is another key's hash state (Entry.State): the key becomes a copy
// of that hash's fields, written at ver, with the op's expiry (COPY,
// RENAME). A hash without fields is found false.
//
// fn runs under the engine's shard lock: it must be quick and must not call
// the store.
func (s *Store) Update(key string, ver Version, fn func(cur Entry, found bool) (Op, bool)) (prev Entry, found bool, op Op, res Result) {
	res = Declined
	var n notice
	defer func() { s.report(key, n) }()
	s.cache.ComputeNow(key, func(old item, _ int64, ok bool, now int64) (item, int64, lru.Action) {
		live := ok && (old.expireAt == 0 || old.expireAt > now)
		if live && !isEmptyHash(&old) { // a hash without fields reads as absent
			prev, found = entryOf(&old), true
		}
		next, write := fn(prev, found)
		if !write {
			return item{}, 0, lru.Keep
		}
		ev := next.Event // the conversions below make new ops
		switch {
		case next.Kind == KindExpire && live && isCounter(&old):
			// The expiry is the counter's own register: its contributions
			// stay, and merge with concurrent ones elsewhere.
			c := counterOf(&old)
			if ver.Compare(c.ttl) <= 0 || ver.Compare(c.reset) <= 0 {
				// A newer write came first, which the expiry's write would
				// lose to anyway: nothing to write or replicate.
				return item{}, 0, lru.Keep
			}
			c.ttl, c.expireAt = ver, next.ExpireAt
			next = Op{Kind: KindCounter}
			s.setCounterOp(&next, &c)
		case next.Kind == KindExpire && found && isHash(&old):
			// The expiry is the hash's own register: its fields stay, and
			// merge with concurrent ones elsewhere.
			h := hashOf(&old)
			if ver.Compare(h.ttl) <= 0 || ver.Compare(h.reset) <= 0 {
				return item{}, 0, lru.Keep
			}
			h.ttl, h.expireAt = ver, next.ExpireAt
			next = Op{}
			setHashOp(&next, &h)
		case next.Kind == KindExpire && found:
			next = Op{Kind: KindSet, Value: old.value, ExpireAt: next.ExpireAt}
		case next.Kind == KindHash:
			h, ok := copyHash(next.Value, ver, next.ExpireAt)
			if !ok {
				res = Invalid
				return item{}, 0, lru.Keep
			}
			next = Op{}
			setHashOp(&next, &h)
		case next.Kind != KindSet && next.Kind != KindDelete:
			res = Invalid
			return item{}, 0, lru.Keep
		}
		n.event = ev
		op = next
		op.Key = key
		if op.Kind != KindCounter && op.Kind != KindHash {
			op.Version = ver // a counter's or a hash's is its state's newest
		}
		r, what, ghost := s.applyLocked(&op, old, ok, now, &n)
		res = r
		if what == lru.Store {
			return s.storeItem(&op, old, ok, ghost, &n), op.ExpireAt, lru.Store
		}
		return item{}, 0, what
	})
	switch res {
	case Declined:
	case Invalid:
		s.counts[0][Invalid].Add(1) // as Apply counts an unknown kind
	default:
		s.counts[op.Kind][res].Add(1)
	}
	return prev, found, op, res
}

// applyLocked decides op against the key's current state; it runs under the
// key's lru shard lock. A Counter op is first merged into the key's counter
// (counter.go) and then decided as a Set of the merged state; a Set or
// Delete must be newer than a counter's reset to replace it. old is the key's entry if found. It records in n
// what it did to a live entry, and returns with lru.Store the ghost hash of
// op.Key for the new item.
//
// now is the engine's reading for this call (lru's ComputeNow): by it the
// engine removed the entry first if it had expired, and by it the engine
// stores what it is given only if its expiry is after it. Judging by the
// same reading, an op judged live here is stored, and one judged expired
// leaves its tombstone.
func (s *Store) applyLocked(op *Op, old item, found bool, now int64, n *notice) (Result, lru.Action, uint32) {
	leave := lru.Keep // what to do with the key's entry if op is not stored
	if found && old.expireAt != 0 && old.expireAt <= now {
		// The engine removes an entry expired by now before calling fn;
		// should one come through, it is absent, after its tombstone is
		// written, as when the engine removes it.
		s.tombs.mu.Lock()
		s.tombs.putLocked(op.Key, old.version(), old.expireAt)
		s.tombs.mu.Unlock()
		found = false
		leave = lru.Remove
		n.expired = true
	}
	// decided: the op was already compared with the key's live entry.
	decided := false
	switch {
	case op.Kind == KindHash:
		if res, ok := s.mergeHashLocked(op, old, found); !ok {
			return res, leave, 0
		}
		// From here a Hash op is decided as a Set of its (merged) state.
		decided = true
	case found && isHash(&old):
		// A plain write meets a hash: the hash stays, raised to the
		// write's reset, if it holds a newer write (hash.go).
		res, replace := s.plainOnHashLocked(op, old, now)
		if !replace {
			if res == Applied {
				n.change = ChangeSet
				return Applied, lru.Store, old.ghost
			}
			return res, leave, 0
		}
		decided = true
	}
	var reset Version // a Counter op's
	if op.Kind == KindCounter {
		var res Result
		var ok bool
		if reset, res, ok = s.mergeCounterLocked(op, old, found && !decided); !ok {
			return res, leave, 0
		}
		// From here a Counter op is decided as a Set of its (merged) state.
	}
	expiredSet := op.Kind != KindDelete && op.ExpireAt != 0 && op.ExpireAt <= now

	if found {
		// A counter is replaced by a write newer than its reset (counter.go).
		if !decided && op.Version.Compare(resetOf(&old)) <= 0 {
			return Stale, lru.Keep, 0
		}
		switch {
		case op.Kind == KindDelete || expiredSet:
			s.tombs.mu.Lock()
			s.tombs.putLocked(op.Key, op.Version, op.ExpireAt)
			s.tombs.pruneLocked(now, pruneBudget)
			s.tombs.mu.Unlock()
			if expiredSet {
				n.change = ChangeLapsed
				return AlreadyExpired, lru.Remove, 0
			}
			n.change = ChangeDelete
			return Applied, lru.Remove, 0
		case s.tooLarge(op):
			s.ghosts.recordHash(uint64(old.ghost), op.Version.HLC)
			n.change = ChangeDelete
			return TooLarge, lru.Remove, 0
		}
		n.change = ChangeSet
		return Applied, lru.Store, old.ghost // a live key has no tombstone to remove
	}

	// The key is absent: its tombstone, else its ghosts, decide. All are
	// read under the tombstone lock, under which a dropped tombstone's ghost
	// is recorded before the tombstone goes.
	gh := ghostHash(op.Key)
	s.tombs.mu.Lock()
	defer s.tombs.mu.Unlock()
	s.tombs.pruneLocked(now, pruneBudget)
	t, hasTomb := s.tombs.opLocked(op.Key)
	if hasTomb && op.Kind == KindHash {
		// The tombstone is the hash's reset if the hash holds newer
		// writes; otherwise it stays (hash.go).
		h, _ := decodeHash(op.Value) // checked by mergeHashLocked
		r := hashTombReset(t)
		if h.version().Compare(r) <= 0 {
			return Stale, leave, 0
		}
		h.raise(r)
		setHashOp(op, &h)
	}
	// A hash whose oldest write a ghost covers may hold a field older than
	// one that left this store: refused whole (a miss).
	ghostAt := op.Version.HLC
	if op.Kind == KindHash && !hasTomb {
		h, _ := decodeHash(op.Value)
		ghostAt = h.oldest().HLC
	}
	switch {
	case hasTomb && op.Kind == KindCounter && reset.Compare(tombReset(t)) < 0:
		return Stale, leave, 0 // counted on a reset older than the tombstone's
	case hasTomb && op.Version.Compare(t.Version) <= 0:
		return Stale, leave, 0
	case !hasTomb && !op.Adopt && (s.ghosts.coversHash(gh, ghostAt) || s.tombGhosts.coversHash(gh, ghostAt)):
		return Refused, leave, 0
	case op.Kind == KindDelete:
		s.tombs.putLocked(op.Key, op.Version, op.ExpireAt)
		return Applied, leave, 0
	case expiredSet:
		s.tombs.putLocked(op.Key, op.Version, op.ExpireAt)
		n.change, n.created = ChangeLapsed, true
		return AlreadyExpired, leave, 0
	case s.tooLarge(op):
		// The ghost of op's version covers the tombstone's older one; the
		// tombstone must go, or a version between the two would pass it.
		s.ghosts.recordHash(gh, op.Version.HLC)
		s.tombs.removeLocked(op.Key)
		return TooLarge, leave, 0
	}
	s.tombs.removeLocked(op.Key) // the live entry's newer version replaces it
	n.change, n.created = ChangeSet, true
	return Applied, lru.Store, uint32(gh)
}

// tooLarge reports whether a Set can never fit in one lru shard. It is the
// engine's own test, so that a Set the store decides to store is stored.
func (s *Store) tooLarge(op *Op) bool {
	return int64(len(op.Key))+int64(len(op.Value)) > s.cache.MaxEntrySize()
}

// Get returns the live entry of key and makes it the most recently used. It
// never returns an entry at or after its expiry time. The returned Value is
// shared with the store and must not be modified.
func (s *Store) Get(key string) (Entry, bool) {
	it, ok := s.cache.Get(key)
	if !ok {
		return Entry{}, false
	}
	return entryOf(&it), true
}

// Peek is Get without making key more recently used.
func (s *Store) Peek(key string) (Entry, bool) {
	it, ok := s.cache.Peek(key)
	if !ok {
		return Entry{}, false
	}
	return entryOf(&it), true
}

// Tombstone returns the version of key's tombstone, if it has one.
func (s *Store) Tombstone(key string) (Version, bool) {
	s.tombs.mu.Lock()
	defer s.tombs.mu.Unlock()
	return s.tombs.getLocked(key)
}

// TombstoneOp returns key's tombstone as the Delete op that reproduces it
// in another store (with the expiry's time in ExpireAt if an expiry left
// it), if key has one.
func (s *Store) TombstoneOp(key string) (Op, bool) {
	s.tombs.mu.Lock()
	defer s.tombs.mu.Unlock()
	return s.tombs.opLocked(key)
}

// Snapshot calls yield with every entry as a KindSet op, then every
// tombstone as a KindDelete op, until yield returns false. Applying them to
// an empty store reproduces this one's entries and tombstones. Entries that
// have expired but are not reclaimed yet are included, with their past
// ExpireAt: applied elsewhere they leave the expiry's tombstone, as they
// will here once reclaimed (otherwise a receiver would learn of the expiry
// from neither pass if it were reclaimed into a tombstone slot the walk had
// passed). It copies
// one lru shard, or one chunk of tombstones, at a time and never holds a
// lock while calling yield, so yield may call the store. Writes made during
// the walk may or may not be seen, and a key that changes between a live
// entry and a tombstone meanwhile may be seen as both or neither; every
// entry and tombstone that lives throughout is seen exactly once. Values are
// shared with the store and must not be modified.
func (s *Store) Snapshot(yield func(Op) bool) {
	for key, it := range s.cache.AllIncludingExpired() {
		kind := KindSet
		switch {
		case isCounter(&it):
			kind = KindCounter
		case isHash(&it):
			kind = KindHash
		}
		if !yield(Op{Kind: kind, Key: key, Value: it.value, ExpireAt: it.expireAt, Version: it.version()}) {
			return
		}
	}
	now := s.clock.UnixNano()
	buf := make([]Op, 0, snapshotChunk)
	for next := 0; next >= 0; {
		s.tombs.mu.Lock()
		if next == 0 {
			s.tombs.pruneLocked(now, math.MaxInt)
		}
		buf, next = s.tombs.copyLocked(next, buf[:0])
		s.tombs.mu.Unlock()
		for _, op := range buf {
			if !yield(op) {
				return
			}
		}
	}
}

// DropUnvouched removes the live entries for which keep returns false,
// recording their ghosts so that late older writes of them are refused, and
// returns how many it removed. keep is called without a lock held. An entry
// that a newer write replaced after keep saw it is left alone.
func (s *Store) DropUnvouched(keep func(key string, v Version) bool) int {
	n := 0
	for key, it := range s.cache.All() {
		if keep(key, it.version()) {
			continue
		}
		seen := it.version()
		dropped := false
		s.cache.Compute(key, func(cur item, _ int64, found bool) (item, int64, lru.Action) {
			if !found || cur.version() != seen {
				return item{}, 0, lru.Keep
			}
			s.ghosts.recordHash(uint64(cur.ghost), cur.hlc) // under the shard lock: see onEvictLocked
			n++
			dropped = true
			return item{}, 0, lru.Remove
		})
		if dropped && s.onChange != nil {
			s.onChange(key, Notice{Change: ChangeDelete})
		}
	}
	return n
}

// Forget removes the live entries whose keys drop returns true for, on
// this node only, and returns how many it removed: a region node forgets
// the slots it no longer keeps. Unlike DropUnvouched and Purge it leaves
// no ghost (but a counter's), so a later full sync brings the same
// versions back in (a ghost would refuse them: a miss for nothing); the
// tombstones stay, and still refuse older writes. Nothing is reported to
// OnChange: no key changed, this node just stopped holding some. drop is
// called without a lock held.
func (s *Store) Forget(drop func(key string) bool) int {
	n := 0
	for key := range s.cache.All() {
		if !drop(key) {
			continue
		}
		s.cache.Compute(key, func(cur item, _ int64, found bool) (item, int64, lru.Action) {
			if !found {
				return item{}, 0, lru.Keep
			}
			if isCounter(&cur) {
				// IncrBy continues this node's own contribution only if no
				// ghost says the key left: a copy refilled later may lack
				// its last increments (see IncrBy).
				s.ghosts.recordHash(uint64(cur.ghost), cur.hlc) // under the shard lock: see onEvictLocked
			}
			n++
			return item{}, 0, lru.Remove
		})
	}
	return n
}

// Reclaim removes expired entries (a bounded step of the lru engine) and
// every tombstone past the horizon, and returns how many it removed. The
// engine's sweep and Apply do both in the background of normal traffic; the
// node layer's ticker, and tests, may call Reclaim directly.
func (s *Store) Reclaim() int {
	n := s.cache.Reclaim()
	now := s.clock.UnixNano()
	s.tombs.mu.Lock()
	n += s.tombs.pruneLocked(now, math.MaxInt)
	s.tombs.mu.Unlock()
	return n
}

// Purge removes every entry and tombstone, recording their ghosts so that
// late writes older than what was purged are still refused.
func (s *Store) Purge() {
	s.purging.Add(1)
	s.cache.Purge()
	s.purging.Add(-1)
	s.tombs.mu.Lock()
	s.tombs.purgeLocked()
	s.tombs.mu.Unlock()
}

// Len returns the number of live entries, including expired ones not yet
// reclaimed (which no read returns), and not counting hashes without a
// field (which read as absent).
func (s *Store) Len() int { return max(s.cache.Len()-int(s.emptyHashes.Load()), 0) }

// Bytes returns the memory charged to the live entries: their keys and
// values plus the engine's per-entry overhead.
func (s *Store) Bytes() int64 { return s.cache.Bytes() }

// Tombstones returns the number of tombstones.
func (s *Store) Tombstones() int {
	s.tombs.mu.Lock()
	defer s.tombs.mu.Unlock()
	return s.tombs.lenLocked()
}

// Close stops the lru engine's background sweep and waits for it. It is
// idempotent and returns nil. The store stays usable.
func (s *Store) Close() error { return s.cache.Close() }

// KindStats counts the results of Apply for one Kind.
type KindStats struct {
	Applied, Stale, Refused, AlreadyExpired, TooLarge uint64
}

// Stats are the store's counters (cumulative since Open) and sizes (now).
type Stats struct {
	Sets     KindStats // Apply results of KindSet ops
	Deletes  KindStats // Apply results of KindDelete ops
	Counters KindStats // Apply results of KindCounter ops (IncrBy's included)
	Hashes   KindStats // Apply results of KindHash ops (HashUpdate's included)
	Invalid  uint64    // ops of an unknown kind

	GhostRefusals uint64 // the Refused of every kind

	Entries    int   // live entries, as Len (hashes without a field left out)
	Bytes      int64 // as Bytes
	Tombstones int   // tombstones held

	TombstonesDropped uint64 // tombstones moved to the tombstone-ghost table
	Hits, Misses      uint64 // Get and Peek
	Evictions         uint64 // entries evicted for room
	Expirations       uint64 // expired entries reclaimed
}

// Stats returns the counters and sizes.
func (s *Store) Stats() Stats {
	kind := func(k Kind) KindStats {
		c := &s.counts[k]
		return KindStats{
			Applied:        c[Applied].Load(),
			Stale:          c[Stale].Load(),
			Refused:        c[Refused].Load(),
			AlreadyExpired: c[AlreadyExpired].Load(),
			TooLarge:       c[TooLarge].Load(),
		}
	}
	st := Stats{Sets: kind(KindSet), Deletes: kind(KindDelete), Counters: kind(KindCounter), Hashes: kind(KindHash), Invalid: s.counts[0][Invalid].Load()}
	st.GhostRefusals = st.Sets.Refused + st.Deletes.Refused + st.Counters.Refused + st.Hashes.Refused
	ls := s.cache.Stats()
	st.Hits, st.Misses, st.Evictions, st.Expirations = ls.Hits, ls.Misses, ls.Evictions, ls.Expirations
	st.Entries = s.Len()
	st.Bytes = s.cache.Bytes()
	s.tombs.mu.Lock()
	st.Tombstones = s.tombs.lenLocked()
	st.TombstonesDropped = s.tombs.droppedLocked()
	s.tombs.mu.Unlock()
	return st
}
