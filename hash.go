package geocache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/geocache/geocache/internal/store"
)

// Hashes: a key may hold a hash, a map of fields to values that merges
// field by field across regions. Each field is last-writer-wins on its
// own, so fields written at once in different regions all survive; a
// Delete of the key removes the fields written before it, not after; an
// expiry removes the whole hash. A key's type is its newest write's: a Set
// newer than every field of a hash replaces it, a field written after the
// Set makes the key a hash again with only the fields written after the
// Set. A hash whose last field was deleted reads as absent everywhere.
// docs/compatibility.md states the rules.

// Hash errors.
var (
	// ErrWrongType: the key holds a value of another type: Get (and
	// Update) of a hash, a hash operation on a string or a counter (as
	// Redis's WRONGTYPE).
	ErrWrongType = errors.New("geocache: the key holds a value of another type")
	// ErrHashFull: the write would give the hash more than
	// MaxHashFields fields (deleted fields count until a Delete of the key
	// clears them).
	ErrHashFull = errors.New("geocache: the hash has too many fields; delete the key to start afresh")
)

// MaxHashFields bounds the fields of one hash, deleted ones (which a hash
// remembers, so that they merge) included. The whole hash is also bounded
// by Config.MaxValueBytes.
const MaxHashFields = store.MaxNewHashFields

// Type is the type of a key's value, as Redis's TYPE names it.
type Type uint8

const (
	// TypeString is a string (a counter is one too).
	TypeString Type = iota + 1
	// TypeHash is a hash.
	TypeHash
)

// String returns "string", "hash" or "none".
func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeHash:
		return "hash"
	}
	return "none"
}

// Field is one field of a hash and its value.
type Field struct {
	Name, Value []byte
}

// HashTx is a hash being changed by UpdateHash's callback. Each change is
// a write of the field with the call's version.
type HashTx struct {
	e     *store.HashEdit
	ev    Event
	wrote bool // Set was called
}

// Len returns the number of fields.
func (h *HashTx) Len() int { return h.e.Len() }

// Get returns the value of field; the bytes are the node's and are valid
// until the callback returns.
func (h *HashTx) Get(field []byte) ([]byte, bool) { return h.e.Get(field) }

// Set writes field and reports whether it is new. field and value must not
// change until the callback returns (the write copies them).
func (h *HashTx) Set(field, value []byte) bool {
	h.wrote = true
	return h.e.Set(field, value)
}

// Delete deletes field and reports whether it existed.
func (h *HashTx) Delete(field []byte) bool { return h.e.Delete(field) }

// SetEvent names the keyspace notification the change announces, if
// enabled (SetKeyspaceEvents): EventHincrBy or EventHincrByFloat for a
// read-modify-write of one field, as Redis names them. By default
// (EventAuto, or an event other than EventHset, EventHdel, EventHincrBy
// and EventHincrByFloat) a change that wrote a field announces "hset",
// one that only deleted fields "hdel". A change that deletes the hash's
// last field announces "del" after its event.
func (h *HashTx) SetEvent(ev Event) { h.ev = ev }

// event is the change's Event, as SetEvent says.
func (h *HashTx) event() store.Event {
	switch h.ev {
	case EventHset, EventHdel, EventHincrBy, EventHincrByFloat:
		return store.Event(h.ev)
	}
	if h.wrote {
		return store.Event(EventHset)
	}
	return store.Event(EventHdel)
}

// Type returns the type of key's value on this node, or false if it holds
// none.
func (n *Node) Type(key string) (Type, bool) {
	e, ok, err := n.readEntry(key, false)
	switch {
	case err != nil || !ok || e.Empty:
		return 0, false
	case e.Kind == store.KindHash:
		return TypeHash, true
	}
	return TypeString, true
}

// HGetAll returns a copy of the fields of the hash under key, in the order
// of their names, and makes the key most recently used. Errors:
// ErrNotFound, ErrWrongType.
func (n *Node) HGetAll(key string) ([]Field, error) {
	fields, err := n.HGetAllShared(key)
	if err != nil {
		return nil, err
	}
	out := make([]Field, len(fields))
	for i, f := range fields {
		out[i] = Field{Name: append([]byte(nil), f.Name...), Value: append([]byte(nil), f.Value...)}
	}
	return out, nil
}

// HGetAllShared is HGetAll without the copies: the bytes are the node's
// own and must not be modified (the node never modifies them in place), as
// GetShared's.
func (n *Node) HGetAllShared(key string) ([]Field, error) {
	fs, found, err := n.hashFields(key)
	switch {
	case err != nil:
		return nil, err
	case !found:
		n.keyMiss(key)
		return nil, ErrNotFound
	}
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field(f)
	}
	return out, nil
}

// hashFields returns the live fields of the hash under key, making it most
// recently used; err is ErrWrongType for a key of another type, or
// readEntry's.
func (n *Node) hashFields(key string) ([]store.Field, bool, error) {
	if slot, ask := n.askOwners(key); ask {
		e, ok, err := n.ownersEntry(key, slot, true)
		switch {
		case err != nil:
			return nil, false, err
		case !ok || e.Empty:
			return nil, false, nil
		case e.Kind != store.KindHash:
			return nil, false, ErrWrongType
		}
		return store.HashFields(e.State), true, nil
	}
	fs, _, found, err := n.store.Hash(key, true)
	if err != nil {
		err = ErrWrongType
	}
	return fs, found, err
}

// HGet returns a copy of field's value in the hash under key. Errors:
// ErrNotFound (no such key or field), ErrWrongType.
func (n *Node) HGet(key, field string) ([]byte, error) {
	fields, err := n.HGetAllShared(key)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		if string(f.Name) == field {
			return append([]byte(nil), f.Value...), nil
		}
	}
	return nil, ErrNotFound
}

// HSet writes fields (name, value pairs) into the hash under key,
// creating it (with the default TTL, if the node has one) if absent, and
// returns how many fields are new. Errors: those of UpdateHash.
func (n *Node) HSet(ctx context.Context, key string, fields []Field, opts ...Option) (int, error) {
	return n.hset(ctx, nil, key, fields, opts)
}

// HDel deletes fields from the hash under key and returns how many
// existed. Errors: those of UpdateHash.
func (n *Node) HDel(ctx context.Context, key string, fields [][]byte, opts ...Option) (int, error) {
	return n.hdel(ctx, nil, key, fields, opts)
}

// UpdateHash changes the hash under key atomically on this node: fn reads
// and writes its fields through h, and the fields it writes are
// replicated (the whole hash's state travels; each region merges it field
// by field). An absent key starts an empty hash, with the default TTL (or
// the expiry option given) if fn writes to it. fn may run more than once
// (when a replicated write of the key comes between the version and the
// write); it must be quick and must not call the node. If fn returns an
// error, nothing is written and UpdateHash returns it. A read-modify-write
// of one field (HINCRBY) is last-writer-wins across regions: two made at
// once in two regions keep one of them.
//
// Errors: ErrWrongType (the key holds a string or a counter), ErrHashFull,
// ErrTooLarge (the hash would exceed Config.MaxValueBytes), ErrContended,
// fn's, and those of Set.
func (n *Node) UpdateHash(ctx context.Context, key string, fn func(h *HashTx) error, opts ...Option) error {
	return n.updateHash(ctx, nil, key, fn, opts)
}

// HSet is Node.HSet in the session.
func (s *Session) HSet(ctx context.Context, key string, fields []Field, opts ...Option) (int, error) {
	return s.n.hset(ctx, s, key, fields, opts)
}

// HDel is Node.HDel in the session.
func (s *Session) HDel(ctx context.Context, key string, fields [][]byte, opts ...Option) (int, error) {
	return s.n.hdel(ctx, s, key, fields, opts)
}

// UpdateHash is Node.UpdateHash in the session.
func (s *Session) UpdateHash(ctx context.Context, key string, fn func(h *HashTx) error, opts ...Option) error {
	return s.n.updateHash(ctx, s, key, fn, opts)
}

func (n *Node) hset(ctx context.Context, s *Session, key string, fields []Field, opts []Option) (int, error) {
	added := 0
	err := n.updateHash(ctx, s, key, func(h *HashTx) error {
		added = 0
		for _, f := range fields {
			if h.Set(f.Name, f.Value) {
				added++
			}
		}
		return nil
	}, opts)
	return added, err
}

func (n *Node) hdel(ctx context.Context, s *Session, key string, fields [][]byte, opts []Option) (int, error) {
	removed := 0
	err := n.updateHash(ctx, s, key, func(h *HashTx) error {
		removed = 0
		for _, f := range fields {
			if h.Delete(f) {
				removed++
			}
		}
		return nil
	}, opts)
	return removed, err
}

func (n *Node) updateHash(ctx context.Context, s *Session, key string, fn func(h *HashTx) error, opts []Option) error {
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: key of %d bytes", ErrTooLarge, len(key))
	}
	if err := n.pull(ctx, key); err != nil {
		return err
	}
	o := n.options(s, opts)
	for range maxWriteAttempts {
		ver, now, err := n.versionAt(ctx)
		if err != nil {
			return err
		}
		var exp int64
		if o.expiry != expiryDefault || n.cfg.DefaultTTL > 0 {
			exp = n.expireAt(o, now)
		}
		op, res, err := n.store.HashUpdate(key, ver, exp, n.cfg.MaxValueBytes, func(e *store.HashEdit) error {
			h := HashTx{e: e}
			err := fn(&h)
			e.Event = h.event()
			return err
		})
		switch {
		case errors.Is(err, store.ErrVersionBehind):
			continue
		case errors.Is(err, store.ErrWrongType):
			return ErrWrongType
		case errors.Is(err, store.ErrHashFields):
			return fmt.Errorf("%w (%s)", ErrHashFull, strings.TrimPrefix(err.Error(), store.ErrHashFields.Error()+" "))
		case errors.Is(err, store.ErrHashTooLarge):
			return fmt.Errorf("%w: the hash%s", ErrTooLarge, strings.TrimPrefix(err.Error(), store.ErrHashTooLarge.Error()))
		case err != nil:
			return err
		case res == store.Declined:
			return nil
		case res == store.TooLarge:
			return fmt.Errorf("%w: the entry does not fit in one shard of the memory budget", ErrTooLarge)
		}
		return n.await(ctx, n.publish(s, op), o.ack, key)
	}
	return fmt.Errorf("%w: UpdateHash of %q, %d attempts", ErrContended, key, maxWriteAttempts)
}
