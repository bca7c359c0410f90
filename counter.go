package geocache

import (
	"context"
	"errors"
	"fmt"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
)

// Counter errors.
var (
	// ErrNotInteger: IncrBy found a value that is not a base-10 integer
	// within int64 (as Redis's "value is not an integer or out of range").
	ErrNotInteger = errors.New("geocache: value is not an integer or out of range")
	// ErrOverflow: the increment would take the value out of int64.
	ErrOverflow = errors.New("geocache: increment or decrement would overflow")
	// ErrCounterFull: the counter holds contributions from too many node
	// processes (restarts and evictions each may open one); SET or DELETE
	// the key to start it afresh.
	ErrCounterFull = errors.New("geocache: the counter has too many contributions; set or delete it to start afresh")
)

// IncrBy adds delta (negative to decrement) to the integer counter under
// key and returns its new value here. An absent key counts from 0 (with
// the default TTL, if the node has one); a key holding a string counts
// from its integer value (ErrNotInteger if it is not one); the expiry is
// kept.
//
// Unlike a read-modify-write with Update, increments made at the same time
// in different regions all count: each node's increments are its own
// contribution to the key, and every region reads the sum once the
// contributions have reached it. A Set, Delete or expiry of the key resets
// the counter everywhere (the newest by version wins); an increment made
// by a node that had not yet seen the reset is discarded with it. Reading
// the key (Get) returns the value in base 10, as Redis does.
//
// Errors: ErrNotInteger, ErrOverflow, ErrCounterFull, ErrWrongType (the
// key holds a hash), ErrContended, and those of Set.
func (n *Node) IncrBy(ctx context.Context, key string, delta int64, opts ...Option) (int64, error) {
	return n.incrBy(ctx, nil, key, delta, opts)
}

// IncrBy is Node.IncrBy in the session.
func (s *Session) IncrBy(ctx context.Context, key string, delta int64, opts ...Option) (int64, error) {
	return s.n.incrBy(ctx, s, key, delta, opts)
}

func (n *Node) incrBy(ctx context.Context, s *Session, key string, delta int64, opts []Option) (int64, error) {
	if len(key) > MaxKeyBytes {
		return 0, fmt.Errorf("%w: key of %d bytes", ErrTooLarge, len(key))
	}
	if err := n.pull(ctx, key); err != nil {
		return 0, err
	}
	o := n.options(s, opts)
	for range maxWriteAttempts {
		ver, now, err := n.versionAt(ctx)
		if err != nil {
			return 0, err
		}
		var exp int64
		if o.expiry != expiryDefault || n.cfg.DefaultTTL > 0 {
			exp = n.expireAt(o, now)
		}
		v, op, res, err := n.store.IncrBy(key, ver, delta, hlc.Timestamp(n.boot.Load()), exp)
		switch {
		case errors.Is(err, store.ErrVersionBehind):
			continue
		case errors.Is(err, store.ErrNotInteger):
			return 0, ErrNotInteger
		case errors.Is(err, store.ErrOverflow):
			return 0, ErrOverflow
		case errors.Is(err, store.ErrCounterSlots):
			return 0, ErrCounterFull
		case errors.Is(err, store.ErrWrongType):
			return 0, ErrWrongType
		case err != nil:
			return 0, err
		case res == store.TooLarge:
			return 0, fmt.Errorf("%w: the entry does not fit in one shard of the memory budget", ErrTooLarge)
		}
		return v, n.await(ctx, n.publish(s, op), o.ack, key)
	}
	return 0, fmt.Errorf("%w: IncrBy of %q, %d attempts", ErrContended, key, maxWriteAttempts)
}
