package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
)

// Hashes. A key that HSET (HashUpdate) has written holds a hash: a state
// that merges field by field instead of being replaced, so that fields
// written at once in different regions all survive.
//
// A hash is a reset, an expiry register and fields. The reset is the
// newest write the hash counts from that was not a hash write: a DEL, a
// string SET, an expiry, a counter's reset. Fields written at or before it
// are gone. Each field is a last-writer-wins register: its value, or a
// tombstone left by HDEL, with the version of the write that set it; every
// field is newer than the reset. The expiry register is the key's expiry
// (EXPIRE, PERSIST, and HSET creating the hash with a default TTL) with the
// version of its write; it is never older than the reset.
//
// Merging two states (joinHash):
//
//   - the newer reset wins, and the fields not newer than it are dropped;
//   - per field, the newer version wins;
//   - the expiry register with the newer version wins.
//
// That is a join (commutative, associative, idempotent): every input is a
// set of max-registers filtered by a max-register, so a hash converges
// however its states travel.
//
// A string, a counter and a tombstone are the same lattice with no hash
// fields: a reset (the string's version, the counter's reset, the delete's
// version; for an expiry the later of the expired write's version and the
// expiry time) and its contents. So a plain write meets a hash by one rule,
// whichever arrives first: if the hash holds a write newer than the plain
// write's reset, the key stays a hash with the reset raised to it (the
// fields written before it are gone, the string or counter is lost);
// otherwise the plain write replaces the hash. In short: the key's type is
// its newest write's, and a DEL or SET removes the fields written before
// it, not after.
//
// A hash whose fields are all deleted (HDEL of the last field) keeps its
// state: turning it into a plain tombstone would drop a concurrent older
// write of another field, which the join keeps. Such an empty hash reads
// as absent to every command, and is bounded and evictable as any entry.

// KindHash is a hash's state (Op.Value holds the encoded state; the op's
// Version and ExpireAt are the state's own). Its Apply merges instead of
// replacing (see hash.go).
const KindHash Kind = 7

// Hash errors.
var (
	// ErrWrongType: a hash operation on a key that holds a string or a
	// counter, or a string read of a hash.
	ErrWrongType = errors.New("store: the key holds a value of another type")
	// ErrHashFields: the write would give the hash more than
	// MaxNewHashFields fields (deleted fields count until a DEL of the
	// hash clears them).
	ErrHashFields = errors.New("store: the hash has too many fields")
	// ErrHashTooLarge: the hash's encoded state would exceed the size the
	// caller allows (the node's value limit).
	ErrHashTooLarge = errors.New("store: the hash would be too large")
)

const (
	// hashFormat is the first byte of an encoded hash state.
	hashFormat = 1
	// MaxHashFields bounds the fields (values and HDEL tombstones) a hash
	// state may hold: decoding refuses more, and a join keeps the newest
	// of them.
	MaxHashFields = 1 << 16
	// MaxNewHashFields is the number of fields beyond which a write adds
	// no new field (ErrHashFields): half of MaxHashFields, so that two
	// states that each grew up to it still join within the bound.
	MaxNewHashFields = MaxHashFields / 2
	// hashFlag marks a hash item in item.ghost, emptyHashFlag one with no
	// live field (the ghost hash uses the low 18 bits at most).
	hashFlag      = 1 << 30
	emptyHashFlag = 1 << 29
	// minFieldLen is the smallest encoded field: a name length, a version,
	// the deleted flag.
	minFieldLen = 1 + 12 + 1
)

type hashField struct {
	name  []byte
	value []byte // nil for a deleted field
	ver   Version
	del   bool
}

// hashState is a decoded hash state. Names and values may share the bytes
// of the encoding they came from, which is never modified.
type hashState struct {
	reset    Version
	ttl      Version // the expiry's write; not older than reset
	expireAt int64
	fields   []hashField // sorted by name, each newer than reset
}

// Field is one live field of a hash, as Hash returns it. The bytes are
// shared with the store and must not be modified.
type Field struct {
	Name, Value []byte
}

// version is the state's newest version: the item's version in the store
// and its op's Version.
func (h *hashState) version() Version {
	v := h.reset
	if h.ttl.Compare(v) > 0 {
		v = h.ttl
	}
	for i := range h.fields {
		if h.fields[i].ver.Compare(v) > 0 {
			v = h.fields[i].ver
		}
	}
	return v
}

// oldest is the oldest version of the state's contents (fields and a
// written expiry), the reset if it has none.
func (h *hashState) oldest() Version {
	var v Version
	first := true
	if h.ttl.Compare(h.reset) > 0 {
		v, first = h.ttl, false
	}
	for i := range h.fields {
		if first || h.fields[i].ver.Compare(v) < 0 {
			v, first = h.fields[i].ver, false
		}
	}
	if first {
		return h.reset
	}
	return v
}

// live returns the number of fields that hold a value.
func (h *hashState) live() int {
	n := 0
	for i := range h.fields {
		if !h.fields[i].del {
			n++
		}
	}
	return n
}

func (h *hashState) find(name []byte) (int, bool) {
	return slices.BinarySearchFunc(h.fields, name, func(f hashField, n []byte) int { return bytes.Compare(f.name, n) })
}

func (h *hashState) encodedLen() int {
	n := 1 + 12 + 12 + binary.MaxVarintLen64 + binary.MaxVarintLen64
	for i := range h.fields {
		f := &h.fields[i]
		n += 2*binary.MaxVarintLen64 + len(f.name) + 12 + 1 + len(f.value)
	}
	return n
}

func (h *hashState) encode() []byte {
	b := make([]byte, 0, h.encodedLen())
	b = append(b, hashFormat)
	b = appendVersion(b, h.reset)
	b = appendVersion(b, h.ttl)
	b = binary.AppendVarint(b, h.expireAt)
	b = binary.AppendUvarint(b, uint64(len(h.fields)))
	for i := range h.fields {
		f := &h.fields[i]
		b = binary.AppendUvarint(b, uint64(len(f.name)))
		b = append(b, f.name...)
		b = appendVersion(b, f.ver)
		if f.del {
			b = append(b, 1)
			continue
		}
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(f.value)))
		b = append(b, f.value...)
	}
	return b
}

// errBadHash is a hash state that does not decode: Apply answers Invalid
// for it.
var errBadHash = errors.New("store: malformed hash state")

// decodeHash decodes and checks a hash state: every field present, nothing
// after them, fields in strictly increasing name order and within the
// bound, each newer than the reset, the expiry's version not before it, and
// something newer than the reset (a state with nothing newer than its reset
// is that reset: a string or a tombstone, never a hash). Names and values
// share b.
func decodeHash(b []byte) (hashState, error) {
	var h hashState
	if len(b) < 1 || b[0] != hashFormat {
		return h, errBadHash
	}
	d := counterDecoder{b: b[1:]}
	h.reset = d.version()
	h.ttl = d.version()
	h.expireAt = d.varint()
	n := d.uvarint()
	if d.bad || n > MaxHashFields || n > uint64(len(d.b))/minFieldLen {
		return h, errBadHash
	}
	if n > 0 {
		h.fields = make([]hashField, n)
	}
	for i := range h.fields {
		f := &h.fields[i]
		l := d.uvarint()
		if d.bad || l > uint64(len(d.b)) {
			return h, errBadHash
		}
		f.name = d.take(int(l))
		f.ver = d.version()
		switch flag := d.take(1); {
		case flag == nil:
			return h, errBadHash
		case flag[0] == 1:
			f.del = true
		case flag[0] == 0:
			l := d.uvarint()
			if d.bad || l > uint64(len(d.b)) {
				return h, errBadHash
			}
			f.value = d.take(int(l))
			if f.value == nil {
				f.value = []byte{}
			}
		default:
			return h, errBadHash
		}
		if d.bad || f.ver.Compare(h.reset) <= 0 || i > 0 && bytes.Compare(h.fields[i-1].name, f.name) >= 0 {
			return h, errBadHash
		}
	}
	if d.bad || len(d.b) != 0 || h.expireAt < 0 || h.ttl.Compare(h.reset) < 0 || h.ttl == h.reset && h.expireAt != 0 ||
		h.version().Compare(h.reset) <= 0 {
		return h, errBadHash
	}
	return h, nil
}

// joinHash merges two states (see the top of this file). Ties that two
// honest states never produce (one field version with two contents, one
// expiry version with two times) are broken deterministically.
func joinHash(a, b hashState) hashState {
	out := hashState{reset: a.reset, ttl: a.ttl, expireAt: a.expireAt}
	if b.reset.Compare(a.reset) > 0 {
		out.reset = b.reset
	}
	if c := b.ttl.Compare(a.ttl); c > 0 || c == 0 && b.expireAt > a.expireAt {
		out.ttl, out.expireAt = b.ttl, b.expireAt
	}
	out.fields = make([]hashField, 0, max(len(a.fields), len(b.fields)))
	keep := func(f hashField) {
		if f.ver.Compare(out.reset) > 0 {
			out.fields = append(out.fields, f)
		}
	}
	i, j := 0, 0
	for i < len(a.fields) || j < len(b.fields) {
		switch {
		case j == len(b.fields):
			keep(a.fields[i])
			i++
		case i == len(a.fields):
			keep(b.fields[j])
			j++
		default:
			x, y := a.fields[i], b.fields[j]
			switch c := bytes.Compare(x.name, y.name); {
			case c < 0:
				keep(x)
				i++
			case c > 0:
				keep(y)
				j++
			default:
				if fieldNewer(&y, &x) {
					x = y
				}
				keep(x)
				i++
				j++
			}
		}
	}
	if out.ttl.Compare(out.reset) <= 0 {
		// An expiry not newer than the reset is gone with it. (At the
		// reset's own version: a reset taken from a state's newest
		// version, an EXPIRE's, supersedes that EXPIRE.)
		out.ttl, out.expireAt = out.reset, 0
	}
	if len(out.fields) > MaxHashFields {
		// Keep the newest fields, in name order: the same choice on every
		// node.
		byVer := slices.Clone(out.fields)
		slices.SortFunc(byVer, func(x, y hashField) int { return -x.ver.Compare(y.ver) })
		byVer = byVer[:MaxHashFields]
		slices.SortFunc(byVer, func(x, y hashField) int { return bytes.Compare(x.name, y.name) })
		out.fields = byVer
	}
	return out
}

// fieldNewer reports whether y wins over x for the same name.
func fieldNewer(y, x *hashField) bool {
	switch c := y.ver.Compare(x.ver); {
	case c != 0:
		return c > 0
	case x.del != y.del:
		return !y.del // a value over a tombstone
	}
	return bytes.Compare(y.value, x.value) > 0
}

// raise applies a reset r to h: if r is newer than h's reset, it becomes
// the reset and the fields (and expiry) not newer than it go.
func (h *hashState) raise(r Version) {
	if r.Compare(h.reset) <= 0 {
		return
	}
	h.reset = r
	h.fields = slices.DeleteFunc(slices.Clone(h.fields), func(f hashField) bool { return f.ver.Compare(r) <= 0 })
	if h.ttl.Compare(r) <= 0 {
		h.ttl, h.expireAt = r, 0
	}
}

func (h *hashState) equal(o *hashState) bool {
	return h.reset == o.reset && h.ttl == o.ttl && h.expireAt == o.expireAt &&
		slices.EqualFunc(h.fields, o.fields, func(x, y hashField) bool {
			return x.ver == y.ver && x.del == y.del && bytes.Equal(x.name, y.name) && bytes.Equal(x.value, y.value)
		})
}

func isHash(it *item) bool      { return it.ghost&hashFlag != 0 }
func isEmptyHash(it *item) bool { return it.ghost&(hashFlag|emptyHashFlag) == hashFlag|emptyHashFlag }

// hashOf decodes a hash item's state; the store wrote it, so it decodes.
func hashOf(it *item) hashState {
	h, err := decodeHash(it.value)
	if err != nil {
		panic("store: a stored hash does not decode: " + err.Error())
	}
	return h
}

// hashTombReset is the reset that tombstone t stands for to a hash: the
// later of its version and, for an expiry, the expiry's reset. (A hash
// field written before the expired write, or before its expiry time, is
// gone with it.)
func hashTombReset(t Op) Version {
	r := t.Version
	if t.ExpireAt != 0 {
		if e := expiryReset(t.ExpireAt); e.Compare(r) > 0 {
			r = e
		}
	}
	return r
}

// plainReset is the reset a non-hash op stands for when it meets a hash: a
// Set's version (an already expired Set's as a tombstone's), a Delete's as
// its tombstone's, a Counter's reset. ok is false for a Counter op whose
// state does not decode.
func plainReset(op *Op, now int64) (Version, bool) {
	switch op.Kind {
	case KindCounter:
		c, err := decodeCounter(op.Value)
		return c.reset, err == nil
	case KindSet:
		if op.ExpireAt != 0 && op.ExpireAt <= now {
			return hashTombReset(*op), true
		}
		return op.Version, true
	}
	return hashTombReset(*op), true
}

// setHashOp makes op carry state h.
func setHashOp(op *Op, h *hashState) {
	op.Kind = KindHash
	op.Value, op.Version, op.ExpireAt = h.encode(), h.version(), h.expireAt
}

// checkHashOp reports whether a Hash op from outside is well formed: its
// state decodes and its Version and ExpireAt are the state's.
func checkHashOp(op *Op) bool {
	h, ok := scanHash(op.Value)
	return ok && h.version == op.Version && h.expireAt == op.ExpireAt
}

// mergeHashLocked is the first step of applyLocked for a Hash op (found:
// the key has a live entry old): it decodes the op's state and merges it
// into the key's hash, or raises it to the reset of the key's string or
// counter, leaving the result in op. ok is false with the result when the
// op changes nothing (Invalid, Stale). An absent key's tombstone is
// applied later, by applyLocked.
func (s *Store) mergeHashLocked(op *Op, old item, found bool) (res Result, ok bool) {
	switch {
	case found && isHash(&old):
		// Most states supersede the key's (a local edit, a replicated one
		// made over the same state): the join is op's state itself,
		// found in one walk without decoding or encoding.
		sum, ok, valid := supersedes(old.value, op.Value)
		switch {
		case !valid:
			return Invalid, false
		case ok && bytes.Equal(op.Value, old.value):
			return Stale, false // encodings are canonical
		case ok && sum.version == op.Version && sum.expireAt == op.ExpireAt:
			return 0, true
		}
	case !found:
		if _, ok := scanHash(op.Value); !ok {
			return Invalid, false
		}
		return 0, true
	}
	in, err := decodeHash(op.Value)
	if err != nil {
		return Invalid, false
	}
	switch {
	case found && isHash(&old):
		cur := hashOf(&old)
		next := joinHash(cur, in)
		if next.equal(&cur) {
			return Stale, false
		}
		setHashOp(op, &next)
	case found:
		r := resetOf(&old)
		if in.version().Compare(r) <= 0 {
			return Stale, false // the string or counter is newer than all of it
		}
		in.raise(r)
		setHashOp(op, &in)
	}
	return 0, true
}

// plainOnHashLocked decides a non-hash op (Set, Delete, Counter) against a
// live hash old: when the hash holds a write newer than the op's reset it
// stays a hash, raised to that reset (op becomes the raised state's Hash
// op, or res is Stale if it changes nothing); otherwise the op replaces it
// (replace: applyLocked goes on with it).
func (s *Store) plainOnHashLocked(op *Op, old item, now int64) (res Result, replace bool) {
	r, ok := plainReset(op, now)
	if !ok {
		return Invalid, false
	}
	h := hashOf(&old)
	if h.version().Compare(r) <= 0 {
		return 0, true
	}
	if r.Compare(h.reset) <= 0 {
		return Stale, false
	}
	h.raise(r)
	setHashOp(op, &h)
	return Applied, false
}

// Hash returns the live fields of key's hash in name order, with the entry
// (its Version and ExpireAt; Kind KindHash), and makes the key most
// recently used if touch. found is false if the key holds no live entry or
// a hash without fields; err is ErrWrongType if it holds a string or a
// counter. The bytes are shared with the store and must not be modified.
func (s *Store) Hash(key string, touch bool) (fields []Field, e Entry, found bool, err error) {
	var it item
	var ok bool
	if touch {
		it, ok = s.cache.Get(key)
	} else {
		it, ok = s.cache.Peek(key)
	}
	switch {
	case !ok || isEmptyHash(&it):
		return nil, Entry{}, false, nil
	case !isHash(&it):
		return nil, Entry{}, false, ErrWrongType
	}
	return liveFields(it.value), entryOf(&it), true, nil
}

// liveFields returns the live fields of a state the store checked, in
// name order, sharing its bytes: one walk of the encoding, without the
// decoder's checks or its per-field records.
func liveFields(b []byte) []Field {
	d := counterDecoder{b: b[min(len(b), 1):]}
	d.version()
	d.version()
	d.varint()
	n := d.uvarint()
	fields := make([]Field, 0, min(n, uint64(len(d.b))/minFieldLen))
	for range n {
		name := d.take(int(min(d.uvarint(), uint64(len(d.b)))))
		d.take(12) // the version
		flag := d.take(1)
		if d.bad {
			break
		}
		if flag[0] != 0 {
			continue
		}
		value := d.take(int(min(d.uvarint(), uint64(len(d.b)))))
		if d.bad {
			break
		}
		fields = append(fields, Field{Name: name, Value: value})
	}
	return fields
}

// hashHasLive reports whether an encoded state (one the store checked)
// holds a live field, without decoding it whole.
func hashHasLive(b []byte) bool {
	d := counterDecoder{b: b[min(len(b), 1):]}
	d.version()
	d.version()
	d.varint()
	n := d.uvarint()
	for range n {
		d.take(int(min(d.uvarint(), uint64(len(d.b)))))
		d.version()
		flag := d.take(1)
		if d.bad {
			return false
		}
		if flag[0] == 0 {
			return true
		}
	}
	return false
}

// isEmptyHashKey reports whether key holds a hash without a live field.
func (s *Store) isEmptyHashKey(key string) bool {
	it, ok := s.cache.Peek(key)
	return ok && isEmptyHash(&it)
}

// copyHash is the state of a copy of src's live fields written at ver with
// expiry expireAt, as a write that replaces whatever its key held before
// ver: its reset is just below ver (every version with an earlier HLC
// goes). ok is false if src does not decode or holds no live field.
func copyHash(src []byte, ver Version, expireAt int64) (hashState, bool) {
	in, err := decodeHash(src)
	if err != nil || in.live() == 0 {
		return hashState{}, false
	}
	h := hashState{reset: Version{HLC: ver.HLC}, ttl: ver, expireAt: expireAt}
	if ver.Origin == 0 {
		h.reset = Version{HLC: ver.HLC - 1, Origin: math.MaxUint32}
	}
	h.fields = make([]hashField, 0, in.live())
	for _, f := range in.fields {
		if !f.del {
			f.ver = ver
			h.fields = append(h.fields, f)
		}
	}
	return h, true
}
