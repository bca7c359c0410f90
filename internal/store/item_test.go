package store

import (
	"testing"
	"unsafe"
)

// TestItemSize: the ghost hash an item carries (so that an eviction records
// its ghost without reading the key) fits in what would be Version's
// padding; the engine charges every entry its item's size.
func TestItemSize(t *testing.T) {
	if got, want := unsafe.Sizeof(item{}), unsafe.Sizeof(struct {
		value    []byte
		ver      Version
		expireAt int64
	}{}); got != want {
		t.Errorf("item is %d bytes, want %d (a value, a Version and an expiry)", got, want)
	}
}

// TestItemGhostIsKeyHash: the ghost hash an entry carries is its key's,
// whether the entry was created by Apply or Update, and kept by later
// writes of the key.
func TestItemGhostIsKeyHash(t *testing.T) {
	s, _ := newStore(t)
	check := func(key string) {
		t.Helper()
		it, ok := s.cache.Peek(key)
		if !ok {
			t.Fatalf("%q not stored", key)
		}
		// The top bit is the counter flag; the ghost table indexes with
		// fewer bits (maxGhostSlots).
		if want := uint32(ghostHash(key)) &^ counterFlag; it.ghost != want {
			t.Errorf("%q carries ghost hash %#x, want %#x", key, it.ghost, want)
		}
	}
	apply(t, s, set("a", "1", v(1)), Applied)
	check("a")
	apply(t, s, set("a", "2", v(2)), Applied)
	check("a")
	s.Update("b", v(3), func(Entry, bool) (Op, bool) { return Op{Kind: KindSet, Value: []byte("x")}, true })
	check("b")
	s.Update("b", v(4), func(Entry, bool) (Op, bool) { return Op{Kind: KindSet, Value: []byte("y")}, true })
	check("b")
}
