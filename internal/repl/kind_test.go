package repl

import (
	"bufio"
	"bytes"
	"slices"
	"testing"

	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// Every store kind the replicator can log or walk maps to a wire kind and
// back to itself, every wire kind the decoder accepts maps to a store kind
// except the skip (a write the receiver does not keep, which the sender
// makes and the receiver takes without the store), and nothing else maps.
func TestKindMapping(t *testing.T) {
	storeKinds := []store.Kind{store.KindSet, store.KindDelete, store.KindPublish, store.KindBatch, store.KindCounter, store.KindHash}
	for _, k := range storeKinds {
		w, ok := wireKind(k)
		if !ok {
			t.Fatalf("store kind %v has no wire kind", k)
		}
		if back, ok := storeKind(w); !ok || back != k {
			t.Fatalf("store kind %v → wire %v → store %v, %v", k, w, back, ok)
		}
		if k.String() != w.String() {
			t.Fatalf("store kind %q travels as wire kind %q", k, w)
		}
	}
	accepted := 0
	for i := range 256 {
		w := wire.Kind(i)
		if !decodes(w) {
			if _, ok := storeKind(w); ok {
				t.Fatalf("wire kind %d maps to the store but the decoder refuses it", i)
			}
			continue
		}
		accepted++
		if w == wire.KindSkip || w == wire.KindRelayed {
			if _, ok := storeKind(w); ok {
				t.Fatalf("the %v stand-in maps to a store kind", w)
			}
			continue
		}
		if _, ok := storeKind(w); !ok {
			t.Fatalf("the decoder accepts wire kind %v, which maps to no store kind", w)
		}
	}
	if accepted != len(storeKinds)+2 {
		t.Fatalf("the decoder accepts %d kinds, the store has %d", accepted, len(storeKinds))
	}
	for i := range 256 {
		k := store.Kind(i)
		if _, ok := wireKind(k); ok != slices.Contains(storeKinds, k) {
			t.Fatalf("store kind %d: mapped = %v", i, ok)
		}
	}
}

// decodes reports whether the wire decoder accepts an op of kind k.
func decodes(k wire.Kind) bool {
	f := &wire.Ops{Origin: 1, FirstSeq: 1, Ops: []wire.Op{{Kind: wire.KindSet, Key: "k", HLC: 1, VOrigin: 1}}}
	buf := f.Append(nil)
	// The op's kind is its first byte after the frame and Ops headers;
	// find it by re-encoding with another kind and diffing.
	g := &wire.Ops{Origin: 1, FirstSeq: 1, Ops: []wire.Op{{Kind: wire.KindDelete, Key: "k", HLC: 1, VOrigin: 1}}}
	other := g.Append(nil)
	at := -1
	for i := range buf {
		if buf[i] != other[i] {
			at = i
			break
		}
	}
	if at < 0 {
		panic("kinds encode the same")
	}
	buf[at] = byte(k)
	_, _, err := wire.ReadFrame(bufio.NewReader(bytes.NewReader(buf)), 0, nil)
	return err == nil
}
