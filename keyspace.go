package geocache

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/geocache/geocache/internal/store"
)

// Keyspace operations: walking the keys (Scan, RandomKey) and the commands
// that write more than one key (Rename, RenameIfAbsent, Copy,
// SetAllIfAbsent).
//
// A multi-key write is a sequence of ordinary versioned writes, one per key,
// each atomic under its key's lock; there is no lock over several keys. The
// writes reach every region in the order they were made here (one origin's
// writes apply in order), and in each region last-writer-wins decides every
// key on its own, so a concurrent write of one of the keys in another region
// may win for that key alone. docs/compatibility.md states the rule per
// command.

// Scan appends to dst about count of the keys live on this node from
// cursor on (count is a hint, as Redis's SCAN COUNT; each call does a
// bounded amount of work) and returns the cursor of the next call, 0 when
// the walk is complete; start with 0. A key live on this node from the
// first call to the last is returned exactly once, however other keys are
// written, deleted, expired or evicted meanwhile; keys written or removed
// during the walk may or may not be. A cursor is meaningful only to the
// node that issued it (and only until it restarts): the order follows the
// node's hash seed.
func (n *Node) Scan(cursor uint64, count int, dst []string) ([]string, uint64) {
	return n.store.Scan(cursor, count, dst)
}

// RandomKey returns a key live on this node, chosen at random, or
// ErrNotFound if there is none.
func (n *Node) RandomKey() (string, error) {
	k, ok := n.store.RandomKey()
	if !ok {
		return "", ErrNotFound
	}
	return k, nil
}

// Rename moves key's value and expiry to newKey, replacing what newKey
// held: a write of newKey, then a delete of key (unless a newer write
// replaced key in between, which then stays). Between the two a reader on
// this node may see both keys; never neither. Renaming a key to itself
// changes nothing. Errors: ErrNotFound if key holds no live entry here,
// ErrContended, and those of Set.
func (n *Node) Rename(ctx context.Context, key, newKey string, opts ...Option) error {
	_, err := n.rename(ctx, nil, key, newKey, false, opts)
	return err
}

// RenameIfAbsent is Rename, done only if newKey holds no live entry here;
// it reports whether it renamed (false also for a key renamed to itself,
// as Redis's RENAMENX). Errors as Rename.
func (n *Node) RenameIfAbsent(ctx context.Context, key, newKey string, opts ...Option) (bool, error) {
	return n.rename(ctx, nil, key, newKey, true, opts)
}

// Copy writes src's value and expiry to dst, if src holds a live entry
// here and, unless replace, dst holds none, and reports whether it wrote.
// Errors: ErrSameKey if src and dst are the same key, ErrContended, and
// those of Set.
func (n *Node) Copy(ctx context.Context, src, dst string, replace bool, opts ...Option) (bool, error) {
	return n.copyKey(ctx, nil, src, dst, replace, opts)
}

// SetAllIfAbsent stores every pair of kvs, with the default expiry, if none
// of the keys holds a live entry here, and reports whether it did (Redis's
// MSETNX). On this node it is all or nothing: the keys are written one by
// one in sorted order, each only if still absent, and if one has been
// written meanwhile (by another client, or replicated from another region)
// the keys already written are deleted again (unless a newer write replaced
// them) and the call reports false. A reader may see some of the keys
// before that. Across regions each key is its own write: last-writer-wins
// per key. Errors: ErrContended, and those of Set; a key or value over its
// limit writes nothing.
func (n *Node) SetAllIfAbsent(ctx context.Context, kvs map[string][]byte, opts ...Option) (bool, error) {
	return n.setAllIfAbsent(ctx, nil, kvs, opts)
}

// ErrSameKey: Copy was asked to copy a key onto itself.
var ErrSameKey = errors.New("geocache: source and destination are the same key")

// Rename is Node.Rename in the session.
func (s *Session) Rename(ctx context.Context, key, newKey string, opts ...Option) error {
	_, err := s.n.rename(ctx, s, key, newKey, false, opts)
	return err
}

// RenameIfAbsent is Node.RenameIfAbsent in the session.
func (s *Session) RenameIfAbsent(ctx context.Context, key, newKey string, opts ...Option) (bool, error) {
	return s.n.rename(ctx, s, key, newKey, true, opts)
}

// Copy is Node.Copy in the session.
func (s *Session) Copy(ctx context.Context, src, dst string, replace bool, opts ...Option) (bool, error) {
	return s.n.copyKey(ctx, s, src, dst, replace, opts)
}

// SetAllIfAbsent is Node.SetAllIfAbsent in the session.
func (s *Session) SetAllIfAbsent(ctx context.Context, kvs map[string][]byte, opts ...Option) (bool, error) {
	return s.n.setAllIfAbsent(ctx, s, kvs, opts)
}

// writeIf is one write of a multi-key command: fn decides under key's lock,
// as store.Update's callback. It returns the entry before, whether there
// was one, the op written and its replication sequence (0 if fn declined).
// It does not wait for acknowledgements: the command waits once, for its
// last write, which covers the ones before it (one origin's writes apply
// in order).
func (n *Node) writeIf(ctx context.Context, s *Session, key string, fn func(cur store.Entry, found bool) (store.Op, bool)) (store.Entry, bool, store.Op, uint64, error) {
	if len(key) > MaxKeyBytes {
		return store.Entry{}, false, store.Op{}, 0, fmt.Errorf("%w: key of %d bytes", ErrTooLarge, len(key))
	}
	prev, found, op, res, err := n.storeUpdate(ctx, key, fn)
	if err != nil {
		return prev, found, op, 0, err
	}
	switch res {
	case store.Declined:
		return prev, found, op, 0, nil
	case store.TooLarge:
		return prev, found, op, 0, fmt.Errorf("%w: the entry does not fit in one shard of the memory budget", ErrTooLarge)
	}
	return prev, found, op, n.publish(s, op), nil
}

// deleteIfVersion deletes key if it still holds the write of version v,
// announcing ev.
func (n *Node) deleteIfVersion(ctx context.Context, s *Session, key string, v store.Version, ev Event) (uint64, error) {
	_, _, _, seq, err := n.writeIf(ctx, s, key, func(cur store.Entry, found bool) (store.Op, bool) {
		return store.Op{Kind: store.KindDelete, Event: store.Event(ev)}, found && cur.Version == v
	})
	return seq, err
}

// copyTo writes src (a live entry read before) to dst unless !replace and
// dst is live, announcing ev. It reports whether it wrote, and the
// write's sequence, or ErrNotFound if src expired since it was read.
func (n *Node) copyTo(ctx context.Context, s *Session, src store.Entry, dst string, replace bool, ev Event) (bool, uint64, error) {
	kind, value := store.KindSet, append([]byte(nil), src.Value...) // the store owns what it is given
	if src.Kind == store.KindHash {
		// A copy of the hash's fields, written now (store.Update).
		kind, value = store.KindHash, src.State
	}
	gone := false
	_, _, _, seq, err := n.writeIf(ctx, s, dst, func(_ store.Entry, found bool) (store.Op, bool) {
		if found && !replace {
			return store.Op{}, false
		}
		if src.ExpireAt != 0 && src.ExpireAt <= n.phys.UnixNano() {
			gone = true // it expired since it was read: nothing to copy
			return store.Op{}, false
		}
		return store.Op{Kind: kind, Value: value, ExpireAt: src.ExpireAt, Event: store.Event(ev)}, true
	})
	if gone && err == nil {
		err = ErrNotFound
	}
	return seq != 0, seq, err
}

func (n *Node) rename(ctx context.Context, s *Session, key, newKey string, nx bool, opts []Option) (bool, error) {
	if err := n.pull(ctx, key); err != nil {
		return false, err
	}
	src, ok := n.store.Peek(key)
	if !ok || src.Empty {
		return false, ErrNotFound
	}
	if key == newKey {
		return !nx, nil
	}
	// The destination first, then the source: a reader never finds the
	// value under neither key, and a failed write leaves the source as it
	// was. Each region applies them in this order too.
	wrote, seq, err := n.copyTo(ctx, s, src, newKey, !nx, eventRenameTo)
	if err != nil || !wrote {
		return false, err
	}
	// Delete the source only if it still holds what was moved: a newer
	// write of key, made after the read, is not the renamed value and stays
	// (as if the rename had come first).
	del, err := n.deleteIfVersion(ctx, s, key, src.Version, eventRenameFrom)
	// Announced even if the delete failed: newKey holds the value now,
	// and a listener must hear of it.
	n.announceRename(key, newKey)
	if err != nil {
		return false, err
	} else if del != 0 {
		seq = del
	}
	return true, n.await(ctx, seq, n.options(s, opts).ack, key, newKey)
}

func (n *Node) copyKey(ctx context.Context, s *Session, src, dst string, replace bool, opts []Option) (bool, error) {
	if src == dst {
		return false, ErrSameKey
	}
	if err := n.pull(ctx, src); err != nil {
		return false, err
	}
	e, ok := n.store.Peek(src)
	if !ok || e.Empty {
		return false, nil
	}
	wrote, seq, err := n.copyTo(ctx, s, e, dst, replace, eventCopyTo)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil || !wrote {
		return false, err
	}
	return true, n.await(ctx, seq, n.options(s, opts).ack, dst)
}

func (n *Node) setAllIfAbsent(ctx context.Context, s *Session, kvs map[string][]byte, opts []Option) (bool, error) {
	keys := make([]string, 0, len(kvs))
	for k, v := range kvs {
		if err := n.checkSizes(k, v); err != nil {
			return false, err
		}
		keys = append(keys, k)
	}
	// Sorted, so that two of these calls with common keys meet on the
	// first of them: one wins, the other writes nothing.
	slices.Sort(keys)
	for _, k := range keys {
		if n.Contains(k) {
			return false, nil // the common refusal writes nothing
		}
	}
	ack := n.options(s, opts).ack
	type written struct {
		key string
		ver store.Version
	}
	done := make([]written, 0, len(keys))
	// undo deletes what this call wrote (unless replaced since), so that it
	// leaves all or nothing, and waits for the deletes.
	undo := func(cause error) (bool, error) {
		var last uint64
		for _, w := range done {
			seq, err := n.deleteIfVersion(ctx, s, w.key, w.ver, EventDel)
			if err != nil && cause == nil {
				cause = err
			}
			last = max(last, seq)
		}
		if cause == nil && last != 0 {
			cause = n.await(ctx, last, ack, keys...)
		}
		return false, cause
	}
	exp := n.defaultExpireAt()
	var last uint64
	for _, k := range keys {
		value := append([]byte(nil), kvs[k]...)
		_, found, op, seq, err := n.writeIf(ctx, s, k, func(_ store.Entry, found bool) (store.Op, bool) {
			return store.Op{Kind: store.KindSet, Value: value, ExpireAt: exp}, !found
		})
		switch {
		case err != nil:
			return undo(err)
		case found:
			return undo(nil)
		}
		done = append(done, written{k, op.Version})
		last = seq
	}
	return true, n.await(ctx, last, ack, keys...)
}
