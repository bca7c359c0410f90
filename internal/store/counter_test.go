package store

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// counterNode is one store with its own origin, as a node of a cluster: its
// writes are versioned from a clock shared with the others (so versions
// are unique and ordered as a real HLC's would be), and out lists the ops
// it would replicate.
type counterNode struct {
	s      *Store
	origin uint32
	out    []Op
}

type counterCluster struct {
	t     *testing.T
	clock *testkit.Clock
	ms    int64 // the last version's milliseconds after epoch
	nodes []*counterNode
}

func newCounterCluster(t *testing.T, n int) *counterCluster {
	c := &counterCluster{t: t, clock: testkit.NewClock(epoch)}
	for i := range n {
		c.nodes = append(c.nodes, &counterNode{s: open(t, testConfig(c.clock)), origin: uint32(i + 1)})
	}
	return c
}

// next is the version of a write made now: after every earlier one, and
// not behind the clock (as a hybrid logical clock's).
func (c *counterCluster) next(origin uint32) Version {
	c.ms = max(c.ms+1, c.clock.Now().Sub(epoch).Milliseconds())
	return ver(c.ms, 0, origin)
}

func (c *counterCluster) incr(i int, key string, d int64) (int64, error) {
	c.t.Helper()
	nd := c.nodes[i]
	val, op, res, err := nd.s.IncrBy(key, c.next(nd.origin), d, 0, 0)
	if err == nil {
		if res != Applied {
			c.t.Fatalf("node %d: IncrBy(%q, %d) = %v", i, key, d, res)
		}
		nd.out = append(nd.out, op)
	}
	return val, err
}

// redeliver applies one to three of a node's ops, picked at random, again
// on another node: late, repeated and reordered delivery.
func (c *counterCluster) redeliver(rng *rand.Rand) {
	from, to := rng.IntN(len(c.nodes)), rng.IntN(len(c.nodes))
	if from != to && len(c.nodes[from].out) > 0 {
		out := c.nodes[from].out
		for range 1 + rng.IntN(3) {
			c.nodes[to].s.Apply(out[rng.IntN(len(out))])
		}
	}
}

// deliverAll applies every node's ops on every other node, in a random
// order per receiver.
func (c *counterCluster) deliverAll(rng *rand.Rand) {
	for to := range c.nodes {
		var all []Op
		for from := range c.nodes {
			if from != to {
				all = append(all, c.nodes[from].out...)
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, op := range all {
			c.nodes[to].s.Apply(op)
		}
	}
}

func (c *counterCluster) write(i int, op Op) {
	c.t.Helper()
	nd := c.nodes[i]
	op.Version = c.next(nd.origin)
	if res := nd.s.Apply(op); res != Applied && res != AlreadyExpired {
		c.t.Fatalf("node %d: Apply(%s) = %v", i, fmtOp(op), res)
	}
	nd.out = append(nd.out, op)
}

func (c *counterCluster) expire(i int, key string, at int64) {
	c.t.Helper()
	nd := c.nodes[i]
	_, found, op, res := nd.s.Update(key, c.next(nd.origin), func(Entry, bool) (Op, bool) {
		return Op{Kind: KindExpire, ExpireAt: at}, true
	})
	if !found || res != Applied {
		c.t.Fatalf("node %d: expire %q: found %v, %v", i, key, found, res)
	}
	nd.out = append(nd.out, op)
}

// deliver applies every op node from has written to node to.
func (c *counterCluster) deliver(from, to int) {
	for _, op := range c.nodes[from].out {
		c.nodes[to].s.Apply(op)
	}
}

// repair applies from's snapshot to node to, as anti-entropy does.
func (c *counterCluster) repair(from, to int) {
	for _, op := range snapshotOps(c.nodes[from].s) {
		c.nodes[to].s.Apply(op)
	}
}

func (c *counterCluster) exchange() {
	for i := range c.nodes {
		for j := range c.nodes {
			if i != j {
				c.deliver(i, j)
			}
		}
	}
}

// read returns key's value on node i ("(absent)" if none) and checks its
// kind.
func (c *counterCluster) read(i int, key string) string {
	e, ok := c.nodes[i].s.Peek(key)
	if !ok {
		return "(absent)"
	}
	return string(e.Value)
}

func (c *counterCluster) wantAll(key, want string) {
	c.t.Helper()
	for i := range c.nodes {
		if got := c.read(i, key); got != want {
			c.t.Errorf("node %d reads %q = %s, want %s", i, key, got, want)
		}
	}
}

// TestCounterConcurrentIncrementsAllCount: increments made at once on
// three nodes, each seeing none of the others', add up everywhere once the
// states are exchanged, in any order and any number of times.
func TestCounterConcurrentIncrementsAllCount(t *testing.T) {
	c := newCounterCluster(t, 3)
	for i := range 3 {
		for range 4 {
			if _, err := c.incr(i, "k", int64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := c.read(0, "k"); got != "4" {
		t.Fatalf("node 0 before the exchange reads %s, want its own 4", got)
	}
	c.exchange()
	c.exchange() // again: idempotent
	c.wantAll("k", "24")
	if e, _ := c.nodes[1].s.Peek("k"); e.Kind != KindCounter || len(e.State) == 0 {
		t.Errorf("Peek: kind %v, %d state bytes; want a counter", e.Kind, len(e.State))
	}
	// Late arrivals of old states change nothing.
	for _, op := range c.nodes[0].out[:2] {
		if res := c.nodes[2].s.Apply(op); res != Stale {
			t.Errorf("an old state applied again: %v, want stale", res)
		}
	}
	c.wantAll("k", "24")
}

// TestCounterConvergesRandomly: three nodes increment (both signs), SET,
// DEL and EXPIRE the same keys while states reach the others in random
// order, late and repeated. Once everything is delivered, every node holds
// the same value, version and expiry of every key; and where no reset was
// made, the value is the sum of every increment.
func TestCounterConvergesRandomly(t *testing.T) {
	rng := newRand(t)
	for round := range 200 {
		c := newCounterCluster(t, 3)
		keys := []string{"a", "b", "c"}
		resets := map[string]bool{}
		sums := map[string]int64{}
		for range 60 {
			i := rng.IntN(3)
			key := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(20); {
			case r < 14:
				d := rng.Int64N(21) - 10
				if _, err := c.incr(i, key, d); err == nil {
					sums[key] += d
				} else if !errors.Is(err, ErrNotInteger) {
					t.Fatalf("round %d: IncrBy: %v", round, err)
				}
			case r < 16 && key != "a":
				c.write(i, set(key, strconv.Itoa(rng.IntN(100)), Version{}))
				resets[key] = true
			case r < 17 && key != "a":
				c.write(i, del(key, Version{}))
				resets[key] = true
			case r < 18:
				if _, ok := c.nodes[i].s.Peek(key); ok {
					c.expire(i, key, c.clock.Now().Add(time.Duration(1+rng.IntN(1000))*time.Hour).UnixNano())
				}
			default:
				c.redeliver(rng)
			}
		}
		c.deliverAll(rng)
		for _, key := range keys {
			e0, ok0 := c.nodes[0].s.Peek(key)
			for i := 1; i < 3; i++ {
				e, ok := c.nodes[i].s.Peek(key)
				if ok != ok0 || ok && (string(e.Value) != string(e0.Value) || e.Version != e0.Version || e.ExpireAt != e0.ExpireAt) {
					t.Fatalf("round %d: %q diverged: node 0 %v %q %v; node %d %v %q %v", round, key, ok0, e0.Value, e0.Version, i, ok, e.Value, e.Version)
				}
			}
			if !resets[key] {
				if got, want := c.read(0, key), strconv.FormatInt(sums[key], 10); ok0 && got != want {
					t.Fatalf("round %d: %q reads %s, want the sum of its increments %s", round, key, got, want)
				}
			}
		}
	}
}

// TestCounterResets: SET, DEL and expiry reset a counter in every region,
// the newest reset winning; increments counted on a reset build on its
// value.
func TestCounterResets(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.write(0, set("k", "10", Version{}))
	c.exchange()
	c.incr(0, "k", 1)
	c.incr(1, "k", 5)
	c.exchange()
	c.wantAll("k", "16")

	// A SET on node 0 while node 1, not having seen it, increments: the
	// SET is the newer reset, and node 1's increment was counted on the
	// older one.
	c.write(0, set("k", "0", Version{}))
	c.incr(1, "k", 1)
	c.exchange()
	c.wantAll("k", "0")

	// After a DEL, increments on both nodes count from nothing.
	c.write(1, del("k", Version{}))
	c.exchange()
	c.incr(0, "k", 1)
	c.incr(1, "k", 2)
	c.exchange()
	c.wantAll("k", "3")

	// After an expiry, likewise: both nodes count from the expiry, though
	// they learn of each other's counters only afterwards.
	at := c.clock.Now().Add(time.Minute).UnixNano()
	c.expire(0, "k", at)
	c.exchange()
	c.clock.Advance(2 * time.Minute)
	c.incr(0, "k", 1)
	c.incr(1, "k", 1)
	c.exchange()
	c.wantAll("k", "2")
	for i := range c.nodes {
		if e, _ := c.nodes[i].s.Peek("k"); e.ExpireAt != 0 {
			t.Errorf("node %d: the counter begun after the expiry expires at %d", i, e.ExpireAt)
		}
	}
}

// TestCounterExpireKeepsContributions: EXPIRE of a counter sets its expiry
// without resetting it: an increment made elsewhere at the same time still
// counts, and the expiry holds everywhere.
func TestCounterExpireKeepsContributions(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.incr(0, "k", 3)
	c.exchange()
	at := c.clock.Now().Add(time.Hour).UnixNano()
	c.expire(0, "k", at)
	c.incr(1, "k", 4)
	c.exchange()
	c.wantAll("k", "7")
	for i := range c.nodes {
		if e, _ := c.nodes[i].s.Peek("k"); e.ExpireAt != at {
			t.Errorf("node %d: expires at %d, want %d", i, e.ExpireAt, at)
		}
	}
	c.clock.Advance(2 * time.Hour)
	c.wantAll("k", "(absent)")
}

// TestCounterOfString: INCR of a string key counts from its integer value,
// and a node holding that string merges the counter built on it.
func TestCounterOfString(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.write(0, set("k", "-7", Version{}))
	c.exchange()
	if v, err := c.incr(1, "k", 10); err != nil || v != 3 {
		t.Fatalf("IncrBy on \"-7\" = %d, %v; want 3", v, err)
	}
	c.exchange()
	c.wantAll("k", "3")

	c.write(0, set("s", "abc", Version{}))
	for _, bad := range []string{"abc", "", " 1", "01", "+1", "1.0", "99999999999999999999"} {
		c.write(0, set("s", bad, Version{}))
		if _, err := c.incr(0, "s", 1); !errors.Is(err, ErrNotInteger) {
			t.Errorf("IncrBy on %q: %v, want ErrNotInteger", bad, err)
		}
		if got := c.read(0, "s"); got != bad {
			t.Errorf("after a refused IncrBy %q reads %q", bad, got)
		}
	}
}

func TestCounterOverflow(t *testing.T) {
	c := newCounterCluster(t, 1)
	if _, err := c.incr(0, "k", math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if _, err := c.incr(0, "k", 1); !errors.Is(err, ErrOverflow) {
		t.Errorf("MaxInt64 + 1: %v, want ErrOverflow", err)
	}
	if v, err := c.incr(0, "k", math.MinInt64); err != nil || v != -1 {
		t.Errorf("MaxInt64 + MinInt64 = %d, %v; want -1", v, err)
	}
	c.wantAll("k", "-1")
}

// TestCounterSlotNotContinuedAfterLoss: a node that lost a counter
// (evicted, flushed) and got back an older copy of its own contribution
// opens a new one: continuing the old copy would count its increments
// from a sum that lacks some of them.
func TestCounterSlotNotContinuedAfterLoss(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.incr(0, "k", 1)
	c.deliver(0, 1) // node 1 has node 0's first increment only
	c.incr(0, "k", 1)
	c.nodes[0].s.Purge() // node 0 loses the key (its ghost remains)
	c.incr(1, "k", 1)
	c.deliver(1, 0) // node 0 gets back the old copy of its contribution
	c.incr(0, "k", 1)
	c.exchange()
	c.repair(1, 0) // node 0's lost increment comes back from node 1
	c.wantAll("k", "4")
}

// TestCounterSlotNotContinuedAcrossRestart: a process does not continue a
// contribution an earlier process of the same node made (it may hold an
// older copy of it).
func TestCounterSlotNotContinuedAcrossRestart(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.incr(0, "k", 1)
	c.deliver(0, 1)
	c.incr(0, "k", 1)
	// Node 0 restarts empty and gets node 1's copy, which lacks its second
	// increment.
	old := c.nodes[0]
	c.nodes[0] = &counterNode{s: open(t, testConfig(c.clock)), origin: old.origin}
	c.deliver(1, 0)
	c.nodes[0].s.Apply(c.nodes[1].s.snapshotOp(t, "k"))
	boot := c.next(old.origin).HLC
	_, op, _, err := c.nodes[0].s.IncrBy("k", c.next(old.origin), 1, boot, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[0].out = append(old.out, op)
	c.exchange()
	c.repair(1, 0)
	c.wantAll("k", "3")
}

// snapshotOp is key's op in a snapshot of s.
func (s *Store) snapshotOp(t *testing.T, key string) Op {
	t.Helper()
	for _, op := range snapshotOps(s) {
		if op.Key == key {
			return op
		}
	}
	t.Fatalf("%q not in the snapshot", key)
	return Op{}
}

// TestCounterPlainWritesAgainstReset: a SET or DEL replaces a counter when
// newer than its reset, and is stale otherwise, whatever its increments'
// versions.
func TestCounterPlainWritesAgainstReset(t *testing.T) {
	s, _ := newStore(t)
	apply(t, s, set("k", "5", v(10)), Applied)
	_, op, _, err := s.IncrBy("k", v(30), 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, set("k", "5", v(10)), Stale) // the reset itself, again
	apply(t, s, set("k", "9", v(5)), Stale)
	apply(t, s, set("k", "7", v(20)), Applied) // newer than the reset, older than the increment
	if e, _ := s.Peek("k"); string(e.Value) != "7" || e.Kind != KindSet {
		t.Fatalf("reads %q (%v), want the string 7", e.Value, e.Kind)
	}
	apply(t, s, op, Stale) // the counter counted on the older reset
	apply(t, s, del("k", v(40)), Applied)
	apply(t, s, op, Stale)
}

// TestCounterBadStates: a counter op that does not decode, or whose
// version or expiry is not its state's, is refused and changes nothing.
func TestCounterBadStates(t *testing.T) {
	s, _ := newStore(t)
	_, good, _, err := s.IncrBy("k", v(1), 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := []Op{
		{Kind: KindCounter, Key: "x", Value: nil, Version: v(2)},
		{Kind: KindCounter, Key: "x", Value: []byte{counterFormat}, Version: v(2)},
		{Kind: KindCounter, Key: "x", Value: append(slices.Clone(good.Value), 0), Version: good.Version},
		{Kind: KindCounter, Key: "x", Value: good.Value, Version: v(99)}, // hides nothing, claims more
		{Kind: KindCounter, Key: "x", Value: good.Value, Version: good.Version, ExpireAt: 5},
	}
	for i, op := range bad {
		if res := s.Apply(op); res != Invalid {
			t.Errorf("bad op %d: %v, want invalid", i, res)
		}
	}
	if _, ok := s.Peek("x"); ok {
		t.Error("a bad counter op stored something")
	}
	if st := s.Stats(); st.Invalid != uint64(len(bad)) || st.Counters.Applied != 1 {
		t.Errorf("stats: %d invalid, %d counters applied", st.Invalid, st.Counters.Applied)
	}
}

// FuzzDecodeCounter: decoding never panics, and what decodes re-encodes to
// the same bytes (one encoding per state, so equal states compare equal
// as bytes in digests).
func FuzzDecodeCounter(f *testing.F) {
	c := counter{reset: v(1), base: -5, ttl: v(2), expireAt: 7, slots: []counterSlot{
		{origin: 1, start: v(3).HLC, sum: 9, last: v(4).HLC},
		{origin: 2, start: v(3).HLC, sum: -1, last: v(3).HLC},
	}}
	f.Add(c.encode())
	f.Add((&counter{}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCounter(b)
		if err != nil {
			return
		}
		if got := c.encode(); string(got) != string(b) {
			t.Fatalf("re-encoded %x, decoded from %x", got, b)
		}
		_ = c.value()
		j := join(c, c)
		if !j.equal(&c) {
			t.Fatalf("join(c, c) != c")
		}
	})
}

// A counter that left a node by Forget (a slot lost, then regained) is not
// continued from a refilled copy that lacks the node's last increment: the
// node starts a new contribution, and every increment counts.
func TestCounterNotContinuedAfterForget(t *testing.T) {
	c := newCounterCluster(t, 2)
	c.incr(0, "k", 1)
	c.deliver(0, 1)
	c.incr(0, "k", 1)
	c.nodes[0].s.Forget(func(key string) bool { return key == "k" })
	c.nodes[0].s.Apply(c.nodes[1].s.snapshotOp(t, "k"))
	if _, err := c.incr(0, "k", 1); err != nil {
		t.Fatal(err)
	}
	c.exchange()
	c.repair(1, 0)
	c.wantAll("k", "3")
}
