package store

import (
	"bytes"
	"testing"
)

// EntryOfOp reads back what a peer's op carries, as the store that made it
// holds it: a string, a counter's value with its state, a hash's state
// (empty when no field is live); a delete, a state that does not decode,
// or a state whose version is not the op's is no entry.
func TestEntryOfOp(t *testing.T) {
	s, _ := newStore(t)
	if _, _, _, err := s.IncrBy("c", v(2), 41, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HashUpdate("h", v(3), 0, 0, func(e *HashEdit) error { e.Set([]byte("f"), []byte("x")); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HashUpdate("gone", v(4), 0, 0, func(e *HashEdit) error { e.Set([]byte("f"), []byte("x")); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HashUpdate("gone", v(5), 0, 0, func(e *HashEdit) error { e.Delete([]byte("f")); return nil }); err != nil {
		t.Fatal(err)
	}
	ops := map[string]Op{}
	for _, op := range snapshotOps(s) {
		ops[op.Key] = op
	}

	if e, ok := EntryOfOp(&Op{Kind: KindSet, Key: "s", Value: []byte("v"), Version: v(1), ExpireAt: 9}); !ok || string(e.Value) != "v" || e.Version != v(1) || e.ExpireAt != 9 || e.Kind != KindSet {
		t.Errorf("set: %+v, %v", e, ok)
	}
	c := ops["c"]
	if e, ok := EntryOfOp(&c); !ok || e.Kind != KindCounter || string(e.Value) != "41" || !bytes.Equal(e.State, c.Value) {
		t.Errorf("counter: %+v, %v", e, ok)
	}
	h := ops["h"]
	e, ok := EntryOfOp(&h)
	if fs := HashFields(e.State); !ok || e.Kind != KindHash || e.Empty || len(fs) != 1 || string(fs[0].Name) != "f" || string(fs[0].Value) != "x" {
		t.Errorf("hash: %+v, %v, fields %v", e, ok, fs)
	}
	gone := ops["gone"]
	if e, ok := EntryOfOp(&gone); !ok || !e.Empty || len(HashFields(e.State)) != 0 {
		t.Errorf("hash without a live field: %+v, %v", e, ok)
	}
	for name, op := range map[string]Op{
		"delete":          del("d", v(1)),
		"counter garbage": {Kind: KindCounter, Key: "c", Value: []byte{1, 2, 3}, Version: c.Version},
		"counter version": {Kind: KindCounter, Key: "c", Value: c.Value, Version: v(9)},
		"hash expiry":     {Kind: KindHash, Key: "h", Value: h.Value, Version: h.Version, ExpireAt: 5},
	} {
		if e, ok := EntryOfOp(&op); ok {
			t.Errorf("%s: an entry %+v", name, e)
		}
	}
}
