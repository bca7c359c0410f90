package repl

import (
	"testing"
	"testing/synctest"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// A hash probed at the version this node holds is repaired all the same
// when its fields differ (the probe's digest), and not when they are the
// same.
func TestProbeOfHashComparesDigests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		// Two states of one version: the second lacks a field the first
		// has (an older write of origin 7).
		t0 := nowTS()
		full := scratchHash(t, []hset{{7, t0, "a"}, {5, t0 + 1, "b"}})
		partial := scratchHash(t, []hset{{5, t0 + 1, "b"}})
		checkProbeComparesDigest(t, a, mem, wire.KindHash, "h", full, partial)
	})
}

type hset struct {
	origin uint32
	ts     hlc.Timestamp
	field  string
}

// scratchHash makes the field writes in a fresh store and returns the
// last one's Hash op: it carries the state they built.
func scratchHash(t *testing.T, writes []hset) store.Op {
	t.Helper()
	st, err := store.Open(store.Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var op store.Op
	for _, w := range writes {
		op, _, err = st.HashUpdate("h", store.Version{HLC: w.ts, Origin: w.origin}, 0, 0, func(e *store.HashEdit) error {
			e.Set([]byte(w.field), []byte("v"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return op
}
