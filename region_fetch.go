package geocache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/repl"
	"github.com/geocache/geocache/internal/store"
)

// Reads of other nodes' slots (GossipConfig.SlotsOnly). A node that keeps
// only its own slots answers a read of a key of a slot it does not hold
// (another node's, or one of its own it is still filling: Node.ColdSlot)
// with an owner's entry: it asks the slot's other owners in the map's
// order, on a fetch connection to each one's replication address (the
// replication layer's, so with its TLS and identity checks, and not queued
// behind a link's bulk transfers), until one that holds the whole slot
// answers. A write of such a key made here and not yet applied at the
// owner is not lost to the read: a key this node holds an entry or a
// tombstone of takes the owner's version into its store, where the two
// merge as replicated writes do, and the read is of the result.

// fetchTimeout bounds the wait for one owner's answer.
const fetchTimeout = 2 * time.Second

// ErrUnavailable is returned by a read that had to be answered by another
// node of the region (GossipConfig.SlotsOnly) when no owner of the key's
// slot answered: the key's state is unknown here, which a miss would hide.
var ErrUnavailable = errors.New("geocache: no owner of the key's slot answered")

// holdsSlot reports whether this node holds every write its region holds
// of slot's keys: it keeps every key, or keeps slot, is not filling it,
// and has taken its first syncs (repl.Config.Holds; as vouched).
func (n *Node) holdsSlot(slot int) bool {
	k := n.keep.Load()
	if k == nil {
		return true
	}
	if !k.has(slot) {
		return false
	}
	if c := n.cold.Load(); c != nil && c.gen[slot] != 0 {
		return false
	}
	select {
	case <-n.repl.Synced():
		return true
	default:
		return false
	}
}

// askOwners reports whether key's slot's owners answer for it (this node
// does not hold every write of the slot), and the slot.
func (n *Node) askOwners(key string) (int, bool) {
	if n.keep.Load() == nil {
		return 0, false
	}
	slot := cluster.KeySlot(key)
	return slot, !n.holdsSlot(slot)
}

// readEntry returns key's live entry for a read (making it most recently
// used if touch): this node's, or its owners' if this node does not hold
// every write of its slot. The error is ErrUnavailable's.
func (n *Node) readEntry(key string, touch bool) (store.Entry, bool, error) {
	if slot, ask := n.askOwners(key); ask {
		return n.ownersEntry(key, slot, touch)
	}
	return n.localEntry(key, touch)
}

func (n *Node) localEntry(key string, touch bool) (store.Entry, bool, error) {
	var e store.Entry
	var ok bool
	if touch {
		e, ok = n.store.Get(key)
	} else {
		e, ok = n.store.Peek(key)
	}
	return e, ok, nil
}

// ownersEntry is readEntry's answer from the slot's other owners (see
// fetchOwners), merged into this node's own entry or tombstone of key if
// it has one.
func (n *Node) ownersEntry(key string, slot int, touch bool) (store.Entry, bool, error) {
	got, err := n.fetchOwners(context.Background(), key, slot, touch)
	if err != nil || got == nil {
		if err == nil {
			return n.localEntry(key, touch)
		}
		return store.Entry{}, false, err
	}
	if n.holdsKey(key) {
		// This node has its own say on the key (a write made here): the
		// owner's version merges into it, as a replicated one would (the
		// ghost tables do not judge a key with an entry or a tombstone; a
		// version too far ahead is left out, and the read is of this
		// node's own).
		n.merge(got, false)
		return n.localEntry(key, touch)
	}
	if !got.Found {
		return store.Entry{}, false, nil
	}
	e, ok := store.EntryOfOp(&got.Op)
	if !ok || e.ExpireAt != 0 && e.ExpireAt <= n.phys.UnixNano() {
		return store.Entry{}, false, nil
	}
	return e, true, nil
}

// holdsKey reports whether this node's store has an entry or a tombstone
// of key.
func (n *Node) holdsKey(key string) bool {
	if _, ok := n.store.Peek(key); ok {
		return true
	}
	_, ok := n.store.TombstoneOp(key)
	return ok
}

// fetchOwners asks the slot's other owners for key's entry, in the map's
// order, until one that holds the whole slot answers, and returns the
// newest answer. It returns nil, and no error, when this node should
// answer itself: no other owner is known, or none answered and this node
// keeps the slot (it is filling it); ErrUnavailable if none answered and
// this node does not keep the slot, or ctx's error.
func (n *Node) fetchOwners(ctx context.Context, key string, slot int, touch bool) (*repl.Fetched, error) {
	var owners []cluster.Member
	if sm := n.slots.Load(); sm != nil {
		owners = sm.m.Owners(slot)
	}
	var got *repl.Fetched
	var asked int
	var lastErr error
	for _, o := range owners {
		if o.ID == n.id || o.ReplAddr == "" {
			continue
		}
		asked++
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		f, err := n.repl.Fetch(fctx, o.ReplAddr, key, touch)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = fmt.Errorf("%s: %w", o.Name, err)
			continue
		}
		if got == nil || newerAnswer(&f, got) {
			got = &f
		}
		if !f.Partial {
			break
		}
	}
	switch {
	case got == nil && (asked == 0 || n.keepsSlot(slot)):
		return nil, nil
	case got == nil:
		n.fetchUnavailable.Add(1)
		return nil, fmt.Errorf("%w (slot %d; %d asked; last error: %v)", ErrUnavailable, slot, asked, lastErr)
	}
	n.fetchedReads.Add(1)
	return got, nil
}

// newerAnswer reports whether a is to be preferred to b: an owner's answer
// that holds the whole slot to one that may not, else the newer version
// (an entry or tombstone to nothing).
func newerAnswer(a, b *repl.Fetched) bool {
	switch {
	case a.Partial != b.Partial:
		return !a.Partial
	case a.Found != b.Found:
		return a.Found
	}
	return a.Op.Version.Compare(b.Op.Version) > 0
}

// merge applies an owner's answer here as a replicated write merges (its
// version merged into this node's clock first), or as the region's state
// of the key (adopt: past the ghost tables). It fails if the answer was
// not applied (a version too far ahead of this node's clock, a state that
// does not check, or refused by the ghost tables) and reports the store's
// result.
func (n *Node) merge(got *repl.Fetched, adopt bool) (store.Result, error) {
	if !got.Found {
		return store.Stale, nil
	}
	if _, err := n.clock.Merge(got.Op.Version.HLC); err != nil {
		return store.Invalid, fmt.Errorf("%w: the owner's version of %q: %v", ErrClockSkew, got.Op.Key, err)
	}
	op := got.Op
	op.Adopt = adopt
	switch res := n.store.Apply(op); res {
	case store.Invalid, store.Refused, store.TooLarge:
		return res, fmt.Errorf("%w: the owner's entry of %q not applied here (%v)", ErrUnavailable, op.Key, res)
	default:
		return res, nil
	}
}

// adoptPoll is how often pull looks whether an owner has acknowledged
// this node's writes (a rare path: see pull).
const adoptPoll = time.Millisecond

// pull brings the owners' entry of key into this node's store before a
// write that reads key's state here (Update and what builds on it,
// IncrBy, UpdateHash, Rename, Copy), if this node does not hold every
// write of key's slot: the write then starts from the region's state, as
// on an owner. The entry stays until the next change of the slot map, as
// the write's own. It fails with ctx's error, ErrUnavailable, or
// ErrClockSkew, and the write is then not made.
func (n *Node) pull(ctx context.Context, key string) error {
	slot, ask := n.askOwners(key)
	if !ask {
		return nil
	}
	got, err := n.fetchOwners(ctx, key, slot, true)
	if err != nil || got == nil {
		return err
	}
	res, err := n.merge(got, false)
	if res != store.Refused || got.Partial {
		return err
	}
	// The ghost tables refuse the owner's entry: a newer version of the key
	// left this store (the node forgot the slot, or evicted the key). If
	// it was a write made here that the owner has not applied yet, taking
	// the owner's entry in would lose it; so wait until the owner has
	// acknowledged every write made here so far, ask again, and take its
	// answer in as the region's state.
	seq := n.repl.LastSeq()
	wctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	poll := time.NewTicker(adoptPoll)
	defer poll.Stop()
	for {
		acked, ok := n.repl.Acked(got.Addr)
		if ok && acked >= seq {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%w: the owner has not acknowledged this node's writes: %v", ErrUnavailable, wctx.Err())
		case <-poll.C:
		}
	}
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	f, err := n.repl.Fetch(fctx, got.Addr, key, true)
	cancel()
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case f.Partial:
		return fmt.Errorf("%w: the owner of %q no longer holds its slot", ErrUnavailable, key)
	}
	_, err = n.merge(&f, true)
	return err
}
