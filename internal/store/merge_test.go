package store

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// mergeConfig is big enough that nothing in a merge-law test is evicted or
// dropped: then the laws hold exactly.
func mergeConfig(clock *testkit.Clock) Config {
	return Config{MaxEntries: 64, Shards: 1, Clock: clock, ReclaimInterval: -1, GhostSlots: 16, MaxTombstones: 64}
}

// genOps returns 2 to 8 ops over keys with versions that are unique per key
// (a version names one write) but collide often in HLC and differ in origin,
// and with expiries that are none, ahead, or already past at now.
func genOps(r *rand.Rand, keys []string, now int64) []Op {
	n := 2 + r.IntN(7)
	ops := make([]Op, 0, n)
	used := make(map[string]bool)
	for len(ops) < n {
		key := keys[r.IntN(len(keys))]
		vv := ver(int64(r.IntN(4)), uint16(r.IntN(2)), uint32(1+r.IntN(3)))
		id := key + "@" + vv.String()
		if used[id] {
			continue
		}
		used[id] = true
		if r.IntN(3) == 0 {
			ops = append(ops, del(key, vv))
			continue
		}
		var exp int64
		switch r.IntN(5) {
		case 3:
			exp = now + int64(time.Hour)
		case 4:
			exp = now - int64(r.IntN(2)) // at or before now: already expired
		}
		ops = append(ops, setExp(key, fmt.Sprintf("%s=%d", key, r.IntN(1000)), vv, exp))
	}
	return ops
}

// arrival returns ops in a random order with random duplicates.
func arrival(r *rand.Rand, ops []Op) []Op {
	seq := slices.Clone(ops)
	for _, op := range ops {
		if r.IntN(3) == 0 {
			seq = append(seq, op)
		}
	}
	r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
	return seq
}

func applyAll(s *Store, ops []Op) {
	for _, op := range ops {
		s.Apply(op)
	}
}

// merge applies a snapshot of src to dst, the way a full sync does.
func merge(dst, src *Store) {
	src.Snapshot(func(op Op) bool { dst.Apply(op); return true })
}

func mustOpen(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func describe(ops []Op) string {
	var b strings.Builder
	for _, op := range ops {
		b.WriteString("\n    " + fmtOp(op))
	}
	return b.String()
}

// TestMergeLaws applies random op sets in 100,000 random orders with
// duplicates (idempotence, commutativity), and merges partial states by
// snapshots in both groupings (associativity); every outcome must equal the
// reference model: each key in the state of its newest op.
func TestMergeLaws(t *testing.T) {
	r := newRand(t)
	const opSets, ordersPerSet = 5000, 20
	keys := keysOf(3)
	clock := testkit.NewClock(epoch)
	now := clock.UnixNano()
	cfg := mergeConfig(clock)
	orders := 0
	for set := range opSets {
		ops := genOps(r, keys, now)
		want := model(ops, keys, now)
		for range ordersPerSet {
			seq := arrival(r, ops)
			s := mustOpen(t, cfg)
			applyAll(s, seq)
			got := stateOf(s, keys)
			s.Close()
			orders++
			if d := diffStates(keys, got, want); d != "" {
				t.Fatalf("op set %d: arrival order%s\ngives a different state:%s", set, describe(seq), d)
			}
		}

		// Associativity: three partial stores merged as (a+b)+c and a+(b+c).
		var parts [3][]Op
		for _, op := range ops {
			i := r.IntN(3)
			parts[i] = append(parts[i], op)
		}
		build := func(i int) *Store {
			s := mustOpen(t, cfg)
			applyAll(s, arrival(r, parts[i]))
			return s
		}
		a, b, c := build(0), build(1), build(2)
		merge(a, b)
		merge(a, c) // (a+b)+c
		a2, b2 := build(0), build(1)
		merge(b2, c)
		merge(a2, b2) // a+(b+c)
		for _, x := range []*Store{a, a2} {
			if d := diffStates(keys, stateOf(x, keys), want); d != "" {
				t.Fatalf("op set %d: merging snapshots of parts %v gives a different state:%s", set, parts, d)
			}
		}
		for _, x := range []*Store{a, b, c, a2, b2} {
			x.Close()
		}
	}
	if orders < 100_000 {
		t.Fatalf("checked %d orders, want at least 100000", orders)
	}
}

// decodeOps turns fuzz bytes into ops, three bytes each: key, kind, expiry
// class and logical counter from the first; milliseconds from the second;
// origin from the third. Ops that repeat a (key, version) are skipped: a
// version names one write.
func decodeOps(data []byte, keys []string, now int64) []Op {
	var ops []Op
	used := make(map[string]bool)
	for i := 0; i+3 <= len(data) && len(ops) < 48; i += 3 {
		b0, b1, b2 := data[i], data[i+1], data[i+2]
		key := keys[int(b0&3)%len(keys)]
		vv := ver(int64(b1%8), uint16(b0>>7), uint32(b2%4))
		id := key + "@" + vv.String()
		if used[id] {
			continue
		}
		used[id] = true
		if b0&4 != 0 {
			ops = append(ops, del(key, vv))
			continue
		}
		var exp int64
		switch (b0 >> 3) & 3 {
		case 1:
			exp = now + int64(time.Minute)
		case 2:
			exp = now
		}
		ops = append(ops, setExp(key, fmt.Sprintf("v%d", b2), vv, exp))
	}
	return ops
}

// FuzzApply checks the order-independence law on op sequences decoded from
// the input: in input order, reversed, doubled and shuffled (seeded by the
// input), the final state is the model's.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 1, 4, 2, 1})                    // set then newer delete
	f.Add([]byte{4, 2, 1, 0, 1, 1})                    // delete then older set
	f.Add([]byte{0, 3, 1, 0, 3, 2, 0, 3, 3})           // same HLC, three origins
	f.Add([]byte{16, 5, 1, 0, 2, 1, 8, 7, 1, 4, 6, 2}) // expired set, TTL set
	f.Add([]byte{1, 1, 1, 2, 2, 2, 3, 3, 3, 132, 4, 1, 133, 4, 1})
	keys := keysOf(4)
	clock := testkit.NewClock(epoch)
	now := clock.UnixNano()
	cfg := mergeConfig(clock)
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decodeOps(data, keys, now)
		want := model(ops, keys, now)
		h := fnv.New64a()
		h.Write(data)
		r := rand.New(rand.NewPCG(h.Sum64(), 1))
		reversed := slices.Clone(ops)
		slices.Reverse(reversed)
		orders := map[string][]Op{
			"input":    ops,
			"reversed": reversed,
			"doubled":  append(slices.Clone(ops), ops...),
			"shuffled": arrival(r, ops),
		}
		for name, seq := range orders {
			s := mustOpen(t, cfg)
			applyAll(s, seq)
			got := stateOf(s, keys)
			s.Close()
			if d := diffStates(keys, got, want); d != "" {
				t.Fatalf("%s order%s\ngives a different state:%s", name, describe(seq), d)
			}
		}
	})
}
