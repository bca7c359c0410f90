package repl

import (
	"testing"
	"testing/synctest"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// A counter probed at the version this node holds is repaired all the same
// when its contributions differ (the probe's digest), and not when they are
// the same; the node's own probes carry its counters' digests.
func TestProbeOfCounterComparesDigests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		// Two states of one version: the second lacks a contribution the
		// first has (an older increment of origin 7).
		t0 := nowTS()
		_, full, _, err := scratchIncr(t, []incr{{7, t0, 1}, {5, t0 + 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		_, partial, _, err := scratchIncr(t, []incr{{5, t0 + 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		checkProbeComparesDigest(t, a, mem, wire.KindCounter, "c", full, partial)
	})
}

// checkProbeComparesDigest checks that node a, probed for key at the
// version of two states full and partial (a part of full), repairs
// nothing for full's digest and sends full for partial's.
func checkProbeComparesDigest(t *testing.T, a *node, mem *testkit.Network, kind wire.Kind, key string, full, partial store.Op) {
	t.Helper()
	if full.Version != partial.Version {
		t.Fatalf("test setup: versions %v and %v", full.Version, partial.Version)
	}
	full.Key, partial.Key = key, key
	if res := a.st.Apply(full); res != store.Applied {
		t.Fatalf("apply: %v", res)
	}
	p := dialFake(t, mem, "fake", "a")
	p.open(fakeHello(fakeID))
	p.emptySync(fakeID)
	probe := func(state []byte) []wire.Op {
		return probeExchange(t, p, []wire.Op{{Kind: kind, Key: key, Value: store.CounterDigest(state), HLC: uint64(full.Version.HLC), VOrigin: full.Version.Origin}})
	}
	if got := probe(full.Value); len(got) != 0 {
		t.Errorf("probe with the same state repaired %d ops", len(got))
	}
	got := probe(partial.Value)
	if len(got) != 1 || got[0].Kind != kind || string(got[0].Value) != string(full.Value) {
		t.Fatalf("probe with another state: repaired %+v; want the node's state", got)
	}
}

type incr struct {
	origin uint32
	ts     hlc.Timestamp
	delta  int64
}

// scratchIncr makes the increments in a fresh store and returns the last
// one's result: its Counter op carries the state they built.
func scratchIncr(t *testing.T, incrs []incr) (int64, store.Op, store.Result, error) {
	t.Helper()
	st, err := store.Open(store.Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var (
		v   int64
		op  store.Op
		res store.Result
	)
	for _, in := range incrs {
		if v, op, res, err = st.IncrBy("c", store.Version{HLC: in.ts, Origin: in.origin}, in.delta, 0, 0); err != nil {
			return 0, op, res, err
		}
	}
	return v, op, res, nil
}
