// Package store keeps geocache's versioned entries on the lru engine: every
// write carries a Version (hybrid logical clock time, origin node id), and
// the store merges writes by last-writer-wins, remembers deletes as
// tombstones and remembers what it evicted as ghosts, so that replicated
// writes can arrive late, twice or out of order without bringing old data
// back.
//
// It is a deterministic core: time comes only from Config.Clock, and it
// starts no goroutine of its own (the lru engine's reclaim sweep is the only
// one, controlled by Config.ReclaimInterval and stopped by Close).
//
// # Merge
//
// A key's state is one of: a live entry (value, version, expiry), a
// tombstone (version), or absent. Apply changes it only with an op whose
// version is strictly newer than the live entry's or the tombstone's, so
// applying a set of ops in any order and any number of times ends in the
// same state: for each key, the state of its newest op (a live entry for a
// Set whose expiry is ahead; a tombstone for a Delete or for a Set that had
// already expired). A key never has both a live entry and a tombstone.
//
// Counters (counter.go) and hashes (hash.go) are the exceptions: their
// ops carry a state that Apply merges with the key's by a join
// (commutative, associative, idempotent) instead of replacing it, so that
// increments, or fields, written at once on different nodes all count. A
// plain write meets them by the same lattice: a counter stands at its
// reset, a hash stays a hash raised to a plain write's reset if it holds a
// newer write. A hash whose fields are all deleted keeps its state and
// reads as absent (Len, Scan and RandomKey leave it out).
//
// Eviction, expiry and the bounds on tombstones are local and make keys
// absent, which is always allowed (a miss). What is never allowed is an
// older write filling the hole (invariant I3 of docs/design.md).
//
// # Tombstones and ghosts
//
// Tombstones are exact and bounded: by MaxTombstones (the oldest goes
// first) and by TombstoneHorizon (a tombstone goes that long after its
// delete's wall time, or after the expiry of an expired Set). An entry that
// expires leaves a tombstone of its version, not just a ghost, so that
// anti-entropy and full syncs can remove an older version another region
// still holds. Every version that leaves the store without an exact record
// taking its place goes to a ghost table: a fixed array of slots indexed by
// a hash of the key, each holding the largest HLC that left for any key
// hashing there. There are two. Local departures (an evicted entry, an
// entry removed by DropUnvouched, Purge or a too-large write) go to the
// local ghosts, which never leave the node: eviction and flushes are
// local. Dropped tombstones (deletes and expiries past the horizon, over
// the bound, or purged) go to the tombstone ghosts, which travel with full
// syncs (TombstoneGhosts, MergeTombstoneGhosts), since they record that a
// write superseded what they cover. An op for a key with neither a live
// entry nor a tombstone is Refused if its HLC is not above the key's slot
// in either table. Keys share slots, so this may refuse a legitimate write
// (a miss), never admit an older one.
//
// # Locks
//
// The lock order is:
//
//	lru shard lock  →  tombstone table lock (tombstones.mu)
//
// Apply runs inside lru's Compute, under the key's shard lock, and takes
// the tombstone lock inside it when it needs the key's tombstone. Nothing
// takes a shard lock while holding the tombstone lock: Reclaim, Purge, Tombstones and Snapshot's tombstone pass take only the
// tombstone lock. Ghost slots are atomics and take no lock.
//
// Two rules make the ghost check airtight. A ghost is recorded before its
// key's exact record goes, under the lock that guards that record: the lru
// shard lock for entries (through lru's OnEvictLocked hook), the tombstone
// lock for tombstones. And Apply reads a key's entry under the shard lock
// and its tombstone and ghost under the tombstone lock. So no Apply can
// find a key with neither its record nor its ghost.
package store
