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
// of slot's keys: it keeps every key, or keeps slot and is not filling it
// (repl.Config.Holds).
func (n *Node) holdsSlot(slot int) bool {
	k := n.keep.Load()
	if k == nil {
		return true
	}
	if !k.has(slot) {
		return false
	}
	c := n.cold.Load()
	return c == nil || c.gen[slot] == 0
}

// readEntry returns key's live entry for a read (making it most recently
// used if touch): this node's, or its owners' if this node does not hold
// every write of its slot. The error is ErrUnavailable's.
func (n *Node) readEntry(key string, touch bool) (store.Entry, bool, error) {
	if n.keep.Load() != nil {
		if slot := cluster.KeySlot(key); !n.holdsSlot(slot) {
			return n.ownersEntry(key, slot, touch)
		}
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
	got, err := n.fetchOwners(key, slot, touch)
	if err != nil || got == nil {
		if err == nil {
			return n.localEntry(key, touch)
		}
		return store.Entry{}, false, err
	}
	if n.merged(key, got) {
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

// fetchOwners asks the slot's other owners for key's entry, in the map's
// order, and returns the first answer of one that holds the whole slot,
// else the first answer. It returns nil, and no error, when this node
// should answer itself: no other owner is known, or none answered and
// this node keeps the slot (it is filling it); ErrUnavailable if none
// answered and this node does not keep the slot.
func (n *Node) fetchOwners(key string, slot int, touch bool) (*repl.Fetched, error) {
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
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		f, err := n.repl.Fetch(ctx, o.ReplAddr, key, touch)
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", o.Name, err)
			continue
		}
		if got == nil || got.Partial {
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

// merged merges an owner's answer into this node's store if this node has
// its own say on the key (an entry or tombstone: a write made here), as a
// replicated write would merge, and reports whether it did.
func (n *Node) merged(key string, got *repl.Fetched) bool {
	if _, held := n.store.Peek(key); !held {
		if _, held = n.store.TombstoneOp(key); !held {
			return false
		}
	}
	n.applyFetched(got)
	return true
}

// applyFetched applies an owner's entry here, its version merged into
// this node's clock first (one too far ahead is not applied).
func (n *Node) applyFetched(got *repl.Fetched) {
	if !got.Found {
		return
	}
	if _, err := n.clock.Merge(got.Op.Version.HLC); err == nil {
		n.store.Apply(got.Op)
	}
}

// pull brings the owners' entry of key into this node's store before a
// write that reads key's state here (Update and what builds on it,
// IncrBy, UpdateHash, Rename, Copy), if this node does not hold every
// write of key's slot: the write then starts from the region's state, as
// on an owner. The entry stays until the next change of the slot map, as
// the write's own.
func (n *Node) pull(key string) error {
	if n.keep.Load() == nil {
		return nil
	}
	slot := cluster.KeySlot(key)
	if n.holdsSlot(slot) {
		return nil
	}
	got, err := n.fetchOwners(key, slot, true)
	if got != nil {
		n.applyFetched(got)
	}
	return err
}
