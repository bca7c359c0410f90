package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/geocache/geocache/lru"
)

// HashEdit is a hash being changed by HashUpdate's callback: every change
// is a write of the field with HashUpdate's version.
//
// It edits the key's encoded state in place of decoding it: lookups walk
// the encoding (or, after a few, binary-search an index of its fields),
// and the changes are kept aside, sorted by name, each with the place of
// its field in the encoding. The new state is then written in one pass:
// the unchanged runs of fields copied as they are, the changed fields
// spliced in between, into a buffer of the exact size.
type HashEdit struct {
	// The new state's header: the key's, or a new hash's.
	reset, ttl Version
	expireAt   int64
	// fields holds the encoded fields of the state being edited (nBase of
	// them), shared with the store and never modified.
	fields []byte
	nBase  int
	ver    Version
	// edits are the changes, sorted by name; inline is their first
	// backing array (most writes change a field or two).
	edits   []fieldEdit
	inline  [2]fieldEdit
	index   []int32 // offsets of the fields, once lookups is over indexAfter
	lookups int
	live    int // fields holding a value before the edits; -1 until counted
	changed bool
	added   int // edits of names the state does not hold

	// Event is the caller's code for the command, which the callback may
	// set: OnChange receives it (Notice.Event) with the change.
	Event Event
}

// fieldEdit is a write of a field: its name and its value or tombstone,
// and where the field lies in HashEdit.fields (off < end) or would go
// (off == end).
type fieldEdit struct {
	name, value []byte
	off, end    int
	del         bool
	wasLive     bool // the field held a value before the edit
}

// indexAfter is the number of walks of a state's fields after which a
// HashEdit indexes them (a state of more than indexMin fields).
const (
	indexAfter = 4
	indexMin   = 16
)

// findEdit is the position of name among the edits.
func (e *HashEdit) findEdit(name []byte) (int, bool) {
	return slices.BinarySearchFunc(e.edits, name, func(ed fieldEdit, n []byte) int { return bytes.Compare(ed.name, n) })
}

// lookup finds name among the fields of the state being edited: the field
// if found, and its offset in e.fields (where it would go if not).
func (e *HashEdit) lookup(name []byte) (f rawField, off int, found bool) {
	e.lookups++
	if e.index == nil && e.lookups > indexAfter && e.nBase > indexMin {
		e.index = make([]int32, 0, e.nBase)
		for off := 0; off < len(e.fields); off = mustParseField(e.fields, off).end {
			e.index = append(e.index, int32(off))
		}
	}
	if e.index != nil {
		i, found := slices.BinarySearchFunc(e.index, name, func(off int32, name []byte) int {
			return bytes.Compare(mustParseField(e.fields, int(off)).name, name)
		})
		if i == len(e.index) {
			return rawField{}, len(e.fields), false
		}
		off := int(e.index[i])
		if !found {
			return rawField{}, off, false
		}
		return mustParseField(e.fields, off), off, true
	}
	for off < len(e.fields) {
		f := mustParseField(e.fields, off)
		switch c := bytes.Compare(f.name, name); {
		case c == 0:
			return f, off, true
		case c > 0:
			return rawField{}, off, false
		}
		off = f.end
	}
	return rawField{}, off, false
}

// record inserts an edit of a field not edited yet at position i of the
// edits, where it sorts.
func (e *HashEdit) record(i int, name, value []byte, del bool, f *rawField, off int, found bool) {
	ed := fieldEdit{name: name, value: value, off: off, end: off, del: del}
	if found {
		ed.name, ed.end, ed.wasLive = f.name, f.end, !f.del
	} else {
		e.added++
	}
	if e.edits == nil {
		e.edits = e.inline[:0]
	}
	e.edits = slices.Insert(e.edits, i, ed)
}

// Len returns the number of live fields.
func (e *HashEdit) Len() int {
	if e.live < 0 {
		e.live = 0
		for off := 0; off < len(e.fields); {
			f := mustParseField(e.fields, off)
			if !f.del {
				e.live++
			}
			off = f.end
		}
	}
	n := e.live
	for i := range e.edits {
		if !e.edits[i].del {
			n++
		}
		if e.edits[i].wasLive {
			n--
		}
	}
	return n
}

// Get returns the value of a live field (shared: not to be modified or
// kept past the callback).
func (e *HashEdit) Get(name []byte) ([]byte, bool) {
	if i, ok := e.findEdit(name); ok {
		ed := &e.edits[i]
		return ed.value, !ed.del
	}
	f, _, found := e.lookup(name)
	if !found || f.del {
		return nil, false
	}
	return f.value, true
}

// Set writes a field and reports whether it is new (held no value). The
// name and value must stay unchanged until the callback returns.
func (e *HashEdit) Set(name, value []byte) bool {
	e.changed = true
	if value == nil {
		value = []byte{}
	}
	i, ok := e.findEdit(name)
	if ok {
		ed := &e.edits[i]
		added := ed.del
		ed.value, ed.del = value, false
		return added
	}
	f, off, found := e.lookup(name)
	e.record(i, name, value, false, &f, off, found)
	return !found || f.del
}

// Delete removes a live field (leaving its tombstone) and reports whether
// it held a value.
func (e *HashEdit) Delete(name []byte) bool {
	i, ok := e.findEdit(name)
	if ok {
		ed := &e.edits[i]
		if ed.del {
			return false
		}
		e.changed = true
		ed.value, ed.del = nil, true
		return true
	}
	f, off, found := e.lookup(name)
	if !found || f.del {
		return false
	}
	e.changed = true
	e.record(i, name, nil, true, &f, off, found)
	return true
}

// edit makes e an edit of state b, one the store checked.
func (e *HashEdit) edit(b []byte) {
	h, ok := parseHashHeader(b)
	if !ok {
		panic("store: a stored hash does not decode")
	}
	e.reset, e.ttl, e.expireAt = h.reset, h.ttl, h.expireAt
	e.fields, e.nBase = b[h.off:], h.n
}

// fieldCount is the number of fields of the edited state.
func (e *HashEdit) fieldCount() int { return e.nBase + e.added }

// encodedLen is the exact length of the edited state's encoding.
func (e *HashEdit) encodedLen() int {
	n := 1 + 12 + 12 + varintLen(e.expireAt) + uvarintLen(uint64(e.fieldCount())) + len(e.fields)
	for i := range e.edits {
		ed := &e.edits[i]
		n += fieldLen(ed.name, ed.value, ed.del) - (ed.end - ed.off)
	}
	return n
}

// encode writes the edited state, of length size (encodedLen): the fields
// not edited are copied in runs, the edited ones written between them.
func (e *HashEdit) encode(size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, hashFormat)
	b = appendVersion(b, e.reset)
	b = appendVersion(b, e.ttl)
	b = binary.AppendVarint(b, e.expireAt)
	b = binary.AppendUvarint(b, uint64(e.fieldCount()))
	pos := 0
	for i := range e.edits {
		ed := &e.edits[i]
		b = append(b, e.fields[pos:ed.off]...)
		b = appendField(b, ed.name, ed.value, e.ver, ed.del)
		pos = ed.end
	}
	return append(b, e.fields[pos:]...)
}

// HashUpdate changes key's hash as a write of version ver: under the key's
// lock, fn sees the live fields through a HashEdit and changes them; the
// new state is applied and returned as the Hash op that carries it to
// other nodes. An absent key (or a hash without fields) starts a new hash,
// counting from its tombstone, with expiry expireAt (0: none). res is
// Declined if fn changed nothing (or returned an error, which HashUpdate
// returns), TooLarge if the state cannot be stored (nothing is written
// then). Errors: ErrWrongType for a key that holds a string or a counter;
// ErrVersionBehind if the key holds a write newer than ver (try again with
// a new version); ErrHashFields; ErrHashTooLarge if the state would exceed
// maxBytes (0: no limit); fn's.
func (s *Store) HashUpdate(key string, ver Version, expireAt int64, maxBytes int, fn func(e *HashEdit) error) (op Op, res Result, err error) {
	res = Declined
	var n notice
	s.cache.ComputeNow(key, func(old item, _ int64, found bool, now int64) (item, int64, lru.Action) {
		live := found && (old.expireAt == 0 || old.expireAt > now)
		e := &HashEdit{ver: ver, live: -1}
		var newest Version // the state's newest version
		fresh := true      // the key reads as absent: a new hash
		switch {
		case live && isHash(&old):
			e.edit(old.value)
			newest = old.version() // a hash item's version is its state's
			fresh = isEmptyHash(&old)
		case live:
			err = ErrWrongType
			return item{}, 0, lru.Keep
		case found: // expired: applyLocked leaves this tombstone
			e.reset = hashTombReset(Op{Version: old.version(), ExpireAt: old.expireAt})
		default:
			s.tombs.mu.Lock()
			if t, ok := s.tombs.opLocked(key); ok {
				e.reset = hashTombReset(t)
			}
			s.tombs.mu.Unlock()
		}
		if e.ttl.Compare(e.reset) < 0 {
			e.ttl = e.reset
		}
		newest = maxVersion(newest, e.ttl)
		if ver.Compare(newest) <= 0 {
			err = ErrVersionBehind
			return item{}, 0, lru.Keep
		}
		if fresh {
			// A new key: no expiry but the one given (an empty hash's
			// register would otherwise carry over).
			e.ttl, e.expireAt = ver, expireAt
		}
		if err = fn(e); err != nil || !e.changed {
			return item{}, 0, lru.Keep
		}
		if e.added > 0 && e.fieldCount() > MaxNewHashFields {
			err = fmt.Errorf("%w (%d; the limit is %d)", ErrHashFields, e.fieldCount(), MaxNewHashFields)
			return item{}, 0, lru.Keep
		}
		size := e.encodedLen()
		if maxBytes > 0 && size > maxBytes {
			err = fmt.Errorf("%w: %d bytes (the limit is %d)", ErrHashTooLarge, size, maxBytes)
			return item{}, 0, lru.Keep
		}
		// ver is newer than all the state held and some field is written
		// at it: it is the new state's version.
		op = Op{Key: key, Kind: KindHash, Value: e.encode(size), Version: ver, ExpireAt: e.expireAt}
		n.event = e.Event
		r, what, ghost := s.applyLocked(&op, old, found, now, &n)
		res = r
		if what == lru.Store {
			return s.storeItem(&op, old, found, ghost, &n), op.ExpireAt, lru.Store
		}
		return item{}, 0, what
	})
	if err == nil && res != Declined {
		s.counts[KindHash][res].Add(1)
		s.report(key, n)
	}
	return op, res, err
}
