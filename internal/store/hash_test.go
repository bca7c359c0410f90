package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// hset writes field=value pairs ("f=v") into key's hash on node i; a pair
// "-f" deletes field f. It returns HashUpdate's error.
func (c *counterCluster) hset(i int, key string, pairs ...string) error {
	c.t.Helper()
	nd := c.nodes[i]
	op, res, err := nd.s.HashUpdate(key, c.next(nd.origin), 0, 0, func(e *HashEdit) error {
		for _, p := range pairs {
			if name, ok := strings.CutPrefix(p, "-"); ok {
				e.Delete([]byte(name))
				continue
			}
			name, value, _ := strings.Cut(p, "=")
			e.Set([]byte(name), []byte(value))
		}
		return nil
	})
	if err == nil && res != Declined {
		if res != Applied {
			c.t.Fatalf("node %d: HashUpdate(%q, %v) = %v", i, key, pairs, res)
		}
		nd.out = append(nd.out, op)
	}
	return err
}

// hashString is what node i holds of key: "hash{f=v ...}" (fields in name
// order), "string <v>", "counter <n>" or "(absent)".
func hashString(s *Store, key string) string {
	fields, _, found, err := s.Hash(key, false)
	switch {
	case errors.Is(err, ErrWrongType):
		e, _ := s.Peek(key)
		if e.Kind == KindCounter {
			return "counter " + string(e.Value)
		}
		return "string " + string(e.Value)
	case !found:
		return "(absent)"
	}
	var b strings.Builder
	b.WriteString("hash{")
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", f.Name, f.Value)
	}
	b.WriteString("}")
	return b.String()
}

func (c *counterCluster) wantHash(key, want string) {
	c.t.Helper()
	for i := range c.nodes {
		if got := hashString(c.nodes[i].s, key); got != want {
			c.t.Errorf("node %d holds %q = %s, want %s", i, key, got, want)
		}
	}
}

// TestHashConcurrentFieldsSurvive: fields written at once on three nodes,
// each seeing none of the others', all survive everywhere, whatever the
// order and repetition of delivery; one field written on two nodes takes
// the later write.
func TestHashConcurrentFieldsSurvive(t *testing.T) {
	c := newCounterCluster(t, 3)
	c.hset(0, "h", "a=1", "same=x")
	c.hset(1, "h", "b=2")
	c.hset(2, "h", "c=3", "same=z") // the later write of same
	if got := hashString(c.nodes[0].s, "h"); got != "hash{a=1 same=x}" {
		t.Fatalf("node 0 before the exchange: %s", got)
	}
	c.exchange()
	c.exchange() // again: idempotent
	c.wantHash("h", "hash{a=1 b=2 c=3 same=z}")
	for _, op := range c.nodes[0].out {
		if res := c.nodes[2].s.Apply(op); res != Stale {
			t.Errorf("an old state applied again: %v, want stale", res)
		}
	}
	if e, _ := c.nodes[1].s.Peek("h"); e.Kind != KindHash || len(e.State) == 0 || e.Value != nil {
		t.Errorf("Peek: kind %v, %d state bytes, value %q; want a hash", e.Kind, len(e.State), e.Value)
	}
}

// TestHashDelRemovesEarlierFieldsNotLater: a DEL of the hash removes, in
// every region, the fields written before it, and not the ones written
// after it by a region that had not seen it.
func TestHashDelRemovesEarlierFieldsNotLater(t *testing.T) {
	for _, order := range []string{"del first", "fields first"} {
		t.Run(order, func(t *testing.T) {
			c := newCounterCluster(t, 2)
			c.hset(0, "h", "a=1")
			c.exchange()
			c.hset(1, "h", "before=1") // older than the DEL
			c.write(0, del("h", Version{}))
			c.hset(1, "h", "after=2", "a=3") // newer than the DEL
			if order == "del first" {
				c.deliver(0, 1)
				c.deliver(1, 0)
			} else {
				c.deliver(1, 0)
				c.deliver(0, 1)
			}
			c.wantHash("h", "hash{a=3 after=2}")
		})
	}
}

// TestHashDeleteLastFieldKeepsState: an HDEL of the last field leaves a
// hash that reads as absent everywhere (Hash, Peek's Empty, Len, Scan,
// RandomKey, Keyspace), yet keeps its state, so a concurrent older write
// of another field still survives when it arrives; a plain tombstone would
// have dropped it.
func TestHashDeleteLastFieldKeepsState(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.hset(0, "h", "a=1")
	c.exchange()
	c.hset(1, "h", "b=2") // concurrent, older than the HDEL
	c.hset(0, "h", "-a")
	s := c.nodes[0].s
	if got := hashString(s, "h"); got != "(absent)" {
		t.Fatalf("after HDEL of the last field: %s", got)
	}
	if e, ok := s.Peek("h"); !ok || !e.Empty || e.Kind != KindHash {
		t.Fatalf("Peek: %v %+v; want the empty hash's state", ok, e)
	}
	if n := s.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
	if keys, _ := s.Scan(0, 100, nil); len(keys) != 0 {
		t.Errorf("Scan = %q", keys)
	}
	if k, ok := s.RandomKey(); ok {
		t.Errorf("RandomKey = %q", k)
	}
	if ks := s.Keyspace(0); ks.Keys != 0 {
		t.Errorf("Keyspace.Keys = %d", ks.Keys)
	}
	if _, _, _, res := s.Update("h", c.next(1), func(_ Entry, found bool) (Op, bool) {
		if found {
			t.Error("Update: an empty hash found")
		}
		return Op{}, false
	}); res != Declined {
		t.Errorf("Update: %v", res)
	}
	c.exchange()
	c.wantHash("h", "hash{b=2}")
	if n := s.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
	// An HDEL of the last field on one node and a SET on the other, later:
	// the string everywhere, and the count of empty hashes back to 0.
	c.hset(0, "h", "-b")
	c.write(1, set("h", "s", Version{}))
	c.exchange()
	c.wantHash("h", "string s")
	for i, nd := range c.nodes {
		if got := nd.s.emptyHashes.Load(); got != 0 {
			t.Errorf("node %d counts %d empty hashes", i, got)
		}
	}
}

// TestHashAgainstString: a SET and a hash write made at once in two
// regions resolve the same everywhere, whatever the order: the key's type
// is its newest write's, and a SET newer than some fields removes them.
func TestHashAgainstString(t *testing.T) {
	tests := []struct {
		name  string
		steps func(c *counterCluster)
		want  string
	}{
		{"set newer than every field", func(c *counterCluster) {
			c.hset(1, "k", "a=1")
			c.write(0, set("k", "s", Version{}))
		}, "string s"},
		{"field newer than the set", func(c *counterCluster) {
			c.hset(1, "k", "old=1")
			c.write(0, set("k", "s", Version{}))
			c.hset(1, "k", "new=2")
		}, "hash{new=2}"},
		{"del newer than every field", func(c *counterCluster) {
			c.hset(1, "k", "a=1")
			c.write(0, del("k", Version{}))
		}, "(absent)"},
		// A counter stands at its reset (here none: INCR of an absent
		// key), however late its increments: the fields win.
		{"counter on no reset", func(c *counterCluster) {
			c.hset(1, "k", "old=1")
			c.incr(0, "k", 5)
			c.hset(1, "k", "new=2")
		}, "hash{new=2 old=1}"},
		{"counter on a SET newer than the fields", func(c *counterCluster) {
			c.hset(1, "k", "a=1")
			c.write(0, set("k", "10", Version{}))
			c.incr(0, "k", 5)
		}, "counter 15"},
		{"field newer than the counter's SET", func(c *counterCluster) {
			c.hset(1, "k", "a=1")
			c.write(0, set("k", "10", Version{}))
			c.incr(0, "k", 5)
			c.hset(1, "k", "b=2")
		}, "hash{b=2}"},
	}
	for _, tt := range tests {
		for _, first := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/from %d first", tt.name, first), func(t *testing.T) {
				c := newCounterCluster(t, 3)
				tt.steps(c)
				c.deliver(first, 2)
				c.deliver(1-first, 2)
				c.deliver(0, 1)
				c.deliver(1, 0)
				c.wantHash("k", tt.want)
				// Every node's snapshot holds the same state.
				want := c.nodes[0].s.snapshotOp(t, "k")
				for i := 1; i < 3; i++ {
					if got := c.nodes[i].s.snapshotOp(t, "k"); got.Kind != want.Kind || got.Version != want.Version || !bytes.Equal(got.Value, want.Value) {
						t.Errorf("node %d: %s, node 0: %s", i, fmtOp(got), fmtOp(want))
					}
				}
			})
		}
	}
}

// TestHashWrongType: hash writes refuse a string or a counter, a counter
// refuses a hash, and Hash tells a string apart.
func TestHashWrongType(t *testing.T) {
	s, _ := newStore(t)
	apply(t, s, set("s", "x", v(1)), Applied)
	if _, _, err := s.HashUpdate("s", v(2), 0, 0, func(e *HashEdit) error { e.Set([]byte("f"), []byte("v")); return nil }); !errors.Is(err, ErrWrongType) {
		t.Errorf("HashUpdate of a string: %v", err)
	}
	if _, _, _, err := s.Hash("s", false); !errors.Is(err, ErrWrongType) {
		t.Errorf("Hash of a string: %v", err)
	}
	if _, _, err := s.HashUpdate("h", v(3), 0, 0, func(e *HashEdit) error { e.Set([]byte("f"), []byte("1")); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.IncrBy("h", v(4), 1, 0, 0); !errors.Is(err, ErrWrongType) {
		t.Errorf("IncrBy of a hash: %v", err)
	}
	if _, _, err := s.HashUpdate("h", v(3), 0, 0, func(e *HashEdit) error { e.Set([]byte("g"), nil); return nil }); !errors.Is(err, ErrVersionBehind) {
		t.Errorf("HashUpdate with an old version: %v", err)
	}
	// An empty hash reads as absent to IncrBy too, which replaces it.
	if _, _, err := s.HashUpdate("h", v(5), 0, 0, func(e *HashEdit) error { e.Delete([]byte("f")); return nil }); err != nil {
		t.Fatal(err)
	}
	if n, _, _, err := s.IncrBy("h", v(6), 7, 0, 0); err != nil || n != 7 {
		t.Errorf("IncrBy of an empty hash: %d, %v", n, err)
	}
	if got := hashString(s, "h"); got != "counter 7" {
		t.Errorf("holds %s", got)
	}
}

// TestHashExpiry: EXPIRE changes only the hash's expiry register (fields
// stay and merge); the expiry removes the fields written before it, and a
// field written after it in a region that expired the key survives.
func TestHashExpiry(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.hset(0, "h", "a=1")
	c.exchange()
	at := c.clock.Now().Add(time.Hour).UnixNano()
	c.expire(0, "h", at)
	c.hset(1, "h", "b=2") // concurrent with the EXPIRE
	c.exchange()
	c.wantHash("h", "hash{a=1 b=2}")
	for i := range c.nodes {
		if e, _ := c.nodes[i].s.Peek("h"); e.ExpireAt != at {
			t.Errorf("node %d: expiry %d, want %d", i, e.ExpireAt, at)
		}
	}
	c.clock.Advance(2 * time.Hour)
	c.wantHash("h", "(absent)")
	// A node that expired it writes a field; a late state from before the
	// expiry changes nothing.
	c.hset(1, "h", "c=3")
	late := c.nodes[0].out[0]
	if res := c.nodes[1].s.Apply(late); res != Stale {
		t.Errorf("a state from before the expiry: %v, want stale", res)
	}
	c.exchange()
	c.wantHash("h", "hash{c=3}")
	if e, _ := c.nodes[0].s.Peek("h"); e.ExpireAt != 0 {
		t.Errorf("the new hash expires at %d", e.ExpireAt)
	}
}

// TestHashBounds: the field bound and the byte bound refuse the write and
// change nothing; the hash is accounted and evicted whole.
func TestHashBounds(t *testing.T) {
	s, _ := newStore(t)
	_, _, err := s.HashUpdate("h", v(1), 0, 0, func(e *HashEdit) error {
		for i := range MaxNewHashFields + 1 {
			e.Set(fmt.Appendf(nil, "f%d", i), nil)
		}
		return nil
	})
	if !errors.Is(err, ErrHashFields) {
		t.Fatalf("%d fields: %v", MaxNewHashFields+1, err)
	}
	if _, ok := s.Peek("h"); ok {
		t.Fatal("a refused write stored something")
	}
	_, _, err = s.HashUpdate("h", v(2), 0, 100, func(e *HashEdit) error {
		e.Set([]byte("f"), make([]byte, 100))
		return nil
	})
	if !errors.Is(err, ErrHashTooLarge) {
		t.Fatalf("a state over maxBytes: %v", err)
	}
	op, _, err := s.HashUpdate("h", v(3), 0, 100, func(e *HashEdit) error {
		e.Set([]byte("f"), make([]byte, 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Bytes(), int64(len("h")+len(op.Value))+s.EntryOverhead(); got != want {
		t.Errorf("Bytes = %d, want key + state + overhead = %d", got, want)
	}
}

// TestHashEvictedWhole: under a byte budget, a hash is charged its whole
// state and evicted as one entry; its ghost refuses an older state of it
// afterwards.
func TestHashEvictedWhole(t *testing.T) {
	cfg := testConfig(testkit.NewClock(epoch))
	cfg.MaxBytes = 4096
	cfg.Shards = 1
	s := open(t, cfg)
	op, _, err := s.HashUpdate("big", v(1), 0, 0, func(e *HashEdit) error {
		for i := range 20 {
			e.Set(fmt.Appendf(nil, "f%d", i), make([]byte, 100))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bytes() < int64(len(op.Value)) {
		t.Fatalf("Bytes = %d, less than the state's %d", s.Bytes(), len(op.Value))
	}
	for i := range 40 {
		apply(t, s, set(fmt.Sprintf("k%d", i), strings.Repeat("x", 100), v(int64(10+i))), Applied)
	}
	if _, ok := s.Peek("big"); ok {
		t.Fatal("the hash was not evicted")
	}
	if st := s.Stats(); st.Evictions == 0 {
		t.Fatal("no eviction counted")
	}
	if res := s.Apply(op); res != Refused {
		t.Errorf("the evicted state again: %v, want refused", res)
	}
}

// TestHashBadStates: a hash op that does not decode, or whose version or
// expiry is not its state's, is refused and changes nothing.
func TestHashBadStates(t *testing.T) {
	s, _ := newStore(t)
	good, _, err := s.HashUpdate("k", v(5), 0, 0, func(e *HashEdit) error { e.Set([]byte("f"), []byte("v")); return nil })
	if err != nil {
		t.Fatal(err)
	}
	noFields := hashState{reset: v(1), ttl: v(1)}
	unsorted := hashState{reset: v(1), ttl: v(1), fields: []hashField{{name: []byte("b"), value: []byte{}, ver: v(2)}, {name: []byte("a"), value: []byte{}, ver: v(2)}}}
	old := hashState{reset: v(3), ttl: v(3), fields: []hashField{{name: []byte("a"), value: []byte{}, ver: v(2)}}}
	bad := []Op{
		{Kind: KindHash, Key: "x", Value: nil, Version: v(2)},
		{Kind: KindHash, Key: "x", Value: []byte{hashFormat}, Version: v(2)},
		{Kind: KindHash, Key: "x", Value: append(slices.Clone(good.Value), 0), Version: good.Version},
		{Kind: KindHash, Key: "x", Value: good.Value, Version: v(99)},
		{Kind: KindHash, Key: "x", Value: good.Value, Version: good.Version, ExpireAt: 5},
		{Kind: KindHash, Key: "x", Value: noFields.encode(), Version: v(1)},
		{Kind: KindHash, Key: "x", Value: unsorted.encode(), Version: v(2)},
		{Kind: KindHash, Key: "x", Value: old.encode(), Version: v(3)},
	}
	for i, op := range bad {
		if res := s.Apply(op); res != Invalid {
			t.Errorf("bad op %d: %v, want invalid", i, res)
		}
	}
	if _, ok := s.Peek("x"); ok {
		t.Error("a bad hash op stored something")
	}
	if st := s.Stats(); st.Invalid != uint64(len(bad)) || st.Hashes.Applied != 1 {
		t.Errorf("stats: %d invalid, %d hashes applied", st.Invalid, st.Hashes.Applied)
	}
}

// TestHashJoinProperties: joinHash is commutative, associative and
// idempotent over random states (of few field names, so that they meet).
func TestHashJoinProperties(t *testing.T) {
	rng := newRand(t)
	randState := func() hashState {
		h := hashState{reset: ver(rng.Int64N(20), 0, uint32(rng.IntN(3)))}
		h.ttl = h.reset
		if rng.IntN(2) == 0 {
			h.ttl, h.expireAt = ver(h.reset.HLC.WallMillis()+1+rng.Int64N(20), 0, 1), rng.Int64N(3)
		}
		for _, name := range []string{"a", "b", "c", "d"} {
			if rng.IntN(2) == 0 {
				continue
			}
			f := hashField{name: []byte(name), ver: ver(h.reset.HLC.WallMillis()+1+rng.Int64N(20), 0, uint32(1+rng.IntN(3)))}
			if rng.IntN(3) == 0 {
				f.del = true
			} else {
				f.value = fmt.Appendf(nil, "%s@%v", name, f.ver) // one content per version, as honest writers
			}
			h.fields = append(h.fields, f)
		}
		return h
	}
	same := func(x, y hashState) bool { return bytes.Equal(x.encode(), y.encode()) }
	for range 20000 {
		a, b, c := randState(), randState(), randState()
		if !same(joinHash(a, b), joinHash(b, a)) {
			t.Fatalf("not commutative:\n%+v\n%+v", a, b)
		}
		if !same(joinHash(joinHash(a, b), c), joinHash(a, joinHash(b, c))) {
			t.Fatalf("not associative:\n%+v\n%+v\n%+v", a, b, c)
		}
		if !same(joinHash(a, a), a) {
			t.Fatalf("not idempotent: %+v", a)
		}
		// Raising is a join with a reset.
		r := ver(rng.Int64N(40), 0, 1)
		x := a
		x.raise(r)
		if !same(x, joinHash(a, hashState{reset: r, ttl: r})) {
			t.Fatalf("raise(%v) is not the join with that reset: %+v", r, a)
		}
	}
}

// TestHashConvergesRandomly: three nodes write fields, delete fields, SET,
// DEL, INCR and EXPIRE the same keys while states reach the others in
// random order, late and repeated, and by anti-entropy-like repairs. Once
// everything is delivered every node holds the same state of every key,
// and a hash holds exactly the fields the reference model (the join of
// every write) says.
func TestHashConvergesRandomly(t *testing.T) {
	// A seed that once diverged: an EXPIRE's version became the reset of
	// a counter written over the emptied hash, and states raised to it
	// kept or dropped the expiry written at it depending on the path
	// (joinHash and raise now drop it on every path).
	const pinned = 1796284019738581987
	hashConvergence(t, rand.New(rand.NewPCG(pinned, pinned^0x9e3779b97f4a7c15)))
	hashConvergence(t, newRand(t))
}

func hashConvergence(t *testing.T, rng *rand.Rand) {
	fieldNames := []string{"a", "b", "c", "d"}
	for round := range 300 {
		c := newCounterCluster(t, 3)
		keys := []string{"x", "y"}
		for range 50 {
			i := rng.IntN(3)
			key := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(20); {
			case r < 9:
				var pairs []string
				for range 1 + rng.IntN(2) {
					pairs = append(pairs, fmt.Sprintf("%s=%d", fieldNames[rng.IntN(len(fieldNames))], rng.IntN(100)))
				}
				if err := c.hset(i, key, pairs...); err != nil && !errors.Is(err, ErrWrongType) {
					t.Fatalf("round %d: %v", round, err)
				}
			case r < 11:
				if err := c.hset(i, key, "-"+fieldNames[rng.IntN(len(fieldNames))]); err != nil && !errors.Is(err, ErrWrongType) {
					t.Fatalf("round %d: %v", round, err)
				}
			case r < 12:
				c.write(i, set(key, fmt.Sprint(rng.IntN(100)), Version{}))
			case r < 13:
				c.write(i, del(key, Version{}))
			case r < 14:
				if _, err := c.incr(i, key, 1); err != nil && !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrNotInteger) {
					t.Fatalf("round %d: %v", round, err)
				}
			case r < 15:
				if _, _, found, _ := c.nodes[i].s.Hash(key, false); found {
					c.expire(i, key, c.clock.Now().Add(time.Duration(1+rng.IntN(1000))*time.Hour).UnixNano())
				}
			case r < 16:
				c.repair(rng.IntN(3), i)
			default:
				c.redeliver(rng)
			}
		}
		c.deliverAll(rng)
		for _, key := range keys {
			want := hashString(c.nodes[0].s, key)
			op0, ok0 := snapshotOpOf(c.nodes[0].s, key)
			for i := 1; i < 3; i++ {
				if got := hashString(c.nodes[i].s, key); got != want {
					t.Fatalf("round %d: %q diverged: node 0 %s, node %d %s", round, key, want, i, got)
				}
				op, ok := snapshotOpOf(c.nodes[i].s, key)
				if ok != ok0 || op.Kind != op0.Kind || op.Version != op0.Version || op.ExpireAt != op0.ExpireAt || (op.Kind == KindHash && !bytes.Equal(op.Value, op0.Value)) {
					t.Fatalf("round %d: %q diverged: node 0 %s, node %d %s", round, key, fmtOp(op0), i, fmtOp(op))
				}
			}
			var all []Op
			for _, nd := range c.nodes {
				all = append(all, nd.out...)
			}
			if m := hashModel(all, key); strings.HasPrefix(want, "hash") && want != m {
				t.Fatalf("round %d: %q holds %s, the model says %s", round, key, want, m)
			}
		}
	}
}

func snapshotOpOf(s *Store, key string) (Op, bool) {
	for _, op := range snapshotOps(s) {
		if op.Key == key {
			return op, true
		}
	}
	return Op{}, false
}

// hashModel is the reference: the hash fields of key after every op in
// ops, computed without the store: the newest reset of every non-hash
// write, and per field the newest write newer than it.
func hashModel(ops []Op, key string) string {
	var reset Version
	type reg struct {
		ver   Version
		value string
		del   bool
	}
	fields := map[string]reg{}
	for _, op := range ops {
		if op.Key != key {
			continue
		}
		if op.Kind != KindHash {
			r, _ := plainReset(&op, 0)
			if r.Compare(reset) > 0 {
				reset = r
			}
			continue
		}
		h, err := decodeHash(op.Value)
		if err != nil {
			panic(err)
		}
		if h.reset.Compare(reset) > 0 {
			reset = h.reset
		}
		for _, f := range h.fields {
			if cur, ok := fields[string(f.name)]; !ok || f.ver.Compare(cur.ver) > 0 {
				fields[string(f.name)] = reg{f.ver, string(f.value), f.del}
			}
		}
	}
	var names []string
	for name, f := range fields {
		if f.ver.Compare(reset) > 0 && !f.del {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("hash{")
	for i, name := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", name, fields[name].value)
	}
	b.WriteString("}")
	return b.String()
}

// FuzzDecodeHash: decoding never panics, what decodes re-encodes to the
// same bytes (one encoding per state, for digests), and joins with itself
// to itself.
func FuzzDecodeHash(f *testing.F) {
	h := hashState{reset: v(1), ttl: v(2), expireAt: 7, fields: []hashField{
		{name: []byte("a"), value: []byte("x"), ver: v(3)},
		{name: []byte("b"), del: true, ver: v(4)},
		{name: []byte(""), value: []byte{}, ver: v(2)},
	}}
	slices.SortFunc(h.fields, func(x, y hashField) int { return bytes.Compare(x.name, y.name) })
	f.Add(h.encode())
	f.Add((&hashState{reset: v(1), ttl: v(2)}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHash(b)
		sum, ok := scanHash(b)
		if ok != (err == nil) {
			t.Fatalf("scanHash ok %v, decodeHash %v", ok, err)
		}
		if err != nil {
			return
		}
		if sum.version != h.version() || sum.expireAt != h.expireAt || sum.live != h.live() {
			t.Fatalf("scanHash %+v disagrees with the decoder", sum)
		}
		if _, ok, valid := supersedes(b, b); !ok || !valid {
			t.Fatal("a state does not supersede itself")
		}
		if got := h.encode(); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, decoded from %x", got, b)
		}
		if j := joinHash(h, h); !j.equal(&h) {
			t.Fatal("join(h, h) != h")
		}
		if hashHasLive(b) != (h.live() > 0) {
			t.Fatal("hashHasLive disagrees with the decoder")
		}
		var live []hashField
		for _, f := range h.fields {
			if !f.del {
				live = append(live, f)
			}
		}
		got := liveFields(b)
		if len(got) != len(live) {
			t.Fatalf("liveFields: %d fields, the decoder %d", len(got), len(live))
		}
		for i := range got {
			if !bytes.Equal(got[i].Name, live[i].name) || !bytes.Equal(got[i].Value, live[i].value) {
				t.Fatalf("liveFields[%d] = %q=%q, the decoder %q=%q", i, got[i].Name, got[i].Value, live[i].name, live[i].value)
			}
		}
	})
}

// TestHashChanges: OnChange hears of a hash as of any key, except that a
// hash without fields reads as absent: losing its last field is a delete,
// gaining a first one again a creation, and a merge into one that stays
// empty is nothing.
func TestHashChanges(t *testing.T) {
	var ch changes
	cfg := testConfig(testkit.NewClock(epoch))
	cfg.OnChange = ch.on
	s := open(t, cfg)
	write := func(vv Version, pairs ...string) Op {
		t.Helper()
		op, _, err := s.HashUpdate("h", vv, 0, 0, func(e *HashEdit) error {
			for _, p := range pairs {
				if name, ok := strings.CutPrefix(p, "-"); ok {
					e.Delete([]byte(name))
				} else {
					e.Set([]byte(p), []byte("v"))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	write(v(1), "a")
	write(v(2), "b")
	write(v(3), "-a", "-b")
	other := scratchHashOp(t, v(4), "-c") // a peer's empty hash
	apply(t, s, other, Applied)
	write(v(5), "c")
	want := []string{"h:set(new)[hash]", "h:set[hash]", "h:del", "h:set(new)[hash]"}
	if got := ch.take(); !slices.Equal(got, want) {
		t.Errorf("reported %q, want %q", got, want)
	}
}

// scratchHashOp is the Hash op of a fresh store's write at vv.
func scratchHashOp(t *testing.T, vv Version, pairs ...string) Op {
	t.Helper()
	s, _ := newStore(t)
	op, _, err := s.HashUpdate("h", vv, 0, 0, func(e *HashEdit) error {
		for _, p := range pairs {
			if name, ok := strings.CutPrefix(p, "-"); ok {
				e.Set([]byte(name), nil)
				e.Delete([]byte(name))
			} else {
				e.Set([]byte(p), []byte("v"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// BenchmarkHashUpdate is one HSET of one field (the middle one) into a
// hash of n fields: the edit of the encoded state and its merge into the
// key.
func BenchmarkHashUpdate(b *testing.B) {
	for _, n := range []int{10, 50, 1000} {
		b.Run(fmt.Sprint(n, "fields"), func(b *testing.B) {
			s := open(b, testConfig(testkit.NewClock(epoch)))
			ms := int64(1)
			value := []byte("value-0123456789") // as a request's bytes: not an allocation of the write
			write := func(name []byte) {
				ms++
				if _, _, err := s.HashUpdate("h", v(ms), 0, 0, func(e *HashEdit) error { e.Set(name, value); return nil }); err != nil {
					b.Fatal(err)
				}
			}
			for i := range n {
				write(fmt.Appendf(nil, "field-%d", i))
			}
			name := fmt.Appendf(nil, "field-%d", n/2)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				write(name)
			}
		})
	}
}

// BenchmarkHashRead is an HGETALL-style read of a hash of n fields.
func BenchmarkHashRead(b *testing.B) {
	for _, n := range []int{10, 50, 1000} {
		b.Run(fmt.Sprint(n, "fields"), func(b *testing.B) {
			s := open(b, testConfig(testkit.NewClock(epoch)))
			if _, _, err := s.HashUpdate("h", v(1), 0, 0, func(e *HashEdit) error {
				for i := range n {
					e.Set(fmt.Appendf(nil, "field-%d", i), []byte("value-0123456789"))
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, found, _ := s.Hash("h", true); !found {
					b.Fatal("absent")
				}
			}
		})
	}
}
