package geocache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
)

// memCluster runs one node per region on an in-memory network with
// user-space faults: latency, one-way cuts, isolation, resets.
type memCluster struct {
	t     *testing.T
	net   *testkit.Network
	names []string
	cfgs  []Config
	nodes []*Node
}

func newMemCluster(t *testing.T, names []string, oneWay time.Duration, tweak func(i int, c *Config)) *memCluster {
	t.Helper()
	m := &memCluster{t: t, net: testkit.NewNetwork(), names: names, nodes: make([]*Node, len(names))}
	for i, a := range names {
		for j, b := range names {
			if i != j {
				m.net.SetLatency(a, b, oneWay)
			}
		}
	}
	for i, name := range names {
		var peers []string
		for j, p := range names {
			if j != i {
				peers = append(peers, p)
			}
		}
		cfg := MultiRegion(name, uint32(i+1), name, peers...)
		cfg.PeerTimeout = 400 * time.Millisecond
		cfg.Dial = m.net.Dialer(name)
		if tweak != nil {
			tweak(i, &cfg)
		}
		m.cfgs = append(m.cfgs, cfg)
	}
	t.Cleanup(func() {
		for i := range m.nodes {
			m.stop(i)
		}
		m.net.Close()
	})
	return m
}

func (m *memCluster) start(i int) *Node {
	m.t.Helper()
	ln, err := m.net.Listen(m.names[i])
	if err != nil {
		m.t.Fatal(err)
	}
	cfg := m.cfgs[i]
	cfg.Listener = ln
	n, err := Open(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	m.nodes[i] = n
	return n
}

func (m *memCluster) startAll() {
	for i := range m.names {
		m.start(i)
	}
}

// linked waits until every running node's link to every other running node
// is up, and so has made its first sync. A test whose outcome depends on
// which path a write takes (a stream, a full sync or an anti-entropy repair)
// starts from there: a link still in its reconnect backoff when the test
// writes would make its first full sync carry the write instead.
func (m *memCluster) linked() {
	m.t.Helper()
	running := 0
	for _, n := range m.nodes {
		if n != nil {
			running++
		}
	}
	for i, n := range m.nodes {
		if n == nil {
			continue
		}
		testkit.Eventually(m.t, m.names[i]+"'s links up", func() bool {
			up := 0
			for _, p := range n.Stats().Peers {
				if p.Connected {
					up++
				}
			}
			return up >= running-1
		})
	}
}

func (m *memCluster) stop(i int) {
	if m.nodes[i] != nil {
		m.nodes[i].Close()
		m.nodes[i] = nil
	}
}

// converged waits until the running nodes agree on keys.
func (m *memCluster) converged(keys []string, within time.Duration) time.Duration {
	m.t.Helper()
	start := time.Now()
	for {
		var first []string
		same, seen := true, false
		for _, n := range m.nodes {
			if n == nil {
				continue
			}
			d := dump(n, keys)
			if !seen {
				first, seen = d, true
			} else if fmt.Sprint(d) != fmt.Sprint(first) {
				same = false
			}
		}
		if same {
			return time.Since(start)
		}
		if time.Since(start) > within {
			for i, n := range m.nodes {
				if n != nil {
					m.t.Logf("%s: %v", m.names[i], dump(n, keys))
				}
			}
			m.t.Fatalf("no convergence within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lwwModel records the greatest version written to each key and what that
// write was, to check the converged state against last-writer-wins.
type lwwModel struct {
	mu   sync.Mutex
	last map[string]modelWrite
}

type modelWrite struct {
	ver   store.Version
	value string // "" for a delete
}

// record notes the version the writer's store holds for key right after
// the write: the write's own version, or a newer one that overtook it, so
// the maximum over all records is the maximum over all writes.
func (m *lwwModel) record(n *Node, key string) {
	var w modelWrite
	if e, ok := n.store.Peek(key); ok {
		w = modelWrite{ver: e.Version, value: string(e.Value)}
	} else if tv, ok := n.store.Tombstone(key); ok {
		w = modelWrite{ver: tv}
	} else {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.last[key]; !ok || w.ver.Compare(cur.ver) > 0 {
		m.last[key] = w
	}
}

// check verifies that every node holds exactly the last write of each key:
// its value if a set, nothing if a delete (no resurrection, I3).
func (m *lwwModel) check(t *testing.T, nodes []*Node) {
	t.Helper()
	for key, w := range m.last {
		for i, n := range nodes {
			if n == nil {
				continue
			}
			it, err := n.Lookup(key)
			switch {
			case w.value == "" && !errors.Is(err, ErrNotFound):
				t.Errorf("node %d: %s = %q@%d.%d; the last write (%v) deleted it", i, key, it.Value, it.HLC, it.Origin, w.ver)
			case w.value != "" && (err != nil || string(it.Value) != w.value):
				t.Errorf("node %d: %s = %q (%v); want the last write %q (%v)", i, key, it.Value, err, w.value, w.ver)
			}
		}
	}
}

// TestPartitionsConverge writes from every region through isolation,
// one-way cuts and connection resets, heals, and checks convergence to the
// last writer of every key, with no deleted key coming back (I1, I3).
func TestPartitionsConverge(t *testing.T) {
	seed := uint64(time.Now().UnixNano()) // outside the bubble: its clock starts at the same instant every run
	t.Logf("seed %d", seed)
	synctest.Test(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(seed, 7))
		names := []string{"us", "eu", "ap"}
		// Skewed clocks: each node's physical clock is off by up to ±200ms.
		base := testkit.NewClock(time.Now())
		m := newMemCluster(t, names, 5*time.Millisecond, func(i int, c *Config) {
			c.Clock = &offsetClock{base: base, offset: int64((i - 1) * 150 * int(time.Millisecond))}
		})
		m.startAll()
		model := &lwwModel{last: map[string]modelWrite{}}
		keys := keyList(40)
		writes := func(rounds int) {
			var wg sync.WaitGroup
			for i, n := range m.nodes {
				rr := rand.New(rand.NewPCG(r.Uint64(), uint64(i)))
				wg.Go(func() {
					for j := range rounds {
						k := keys[rr.IntN(len(keys))]
						var err error
						if rr.IntN(5) == 0 {
							err = n.Delete(context.Background(), k)
						} else {
							err = n.Set(context.Background(), k, fmt.Appendf(nil, "%s-%d", names[i], j))
						}
						if err != nil {
							t.Error(err)
							return
						}
						model.record(n, k)
					}
				})
			}
			wg.Wait()
		}
		faults := []struct {
			name  string
			apply func()
		}{
			{"isolate ap", func() { m.net.Isolate("ap") }},
			{"cut us->eu one way", func() { m.net.Cut("us", "eu") }},
			{"cut eu->ap and ap->us", func() { m.net.Cut("eu", "ap"); m.net.Cut("ap", "us") }},
			{"reset every link", func() { m.net.Reset("us", "eu"); m.net.Reset("eu", "ap"); m.net.Reset("ap", "us") }},
		}
		for _, f := range faults {
			t.Logf("fault: %s", f.name)
			f.apply()
			writes(100)
			time.Sleep(time.Second) // long enough for links to be declared dead and redialed
			writes(50)
			base.Advance(time.Duration(r.IntN(50)) * time.Millisecond)
			m.net.HealAll()
			took := m.converged(keys, 15*time.Second)
			t.Logf("converged %v after heal", took)
			model.check(t, m.nodes)
		}
	})
}

// TestQuorumSurvivesRegionLoss: a Quorum write acknowledged while one
// region was cut off survives the loss of its origin (I4), and the region
// that missed it converges through anti-entropy, not only through the lost
// origin's stream.
func TestQuorumSurvivesRegionLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, 2*time.Millisecond, nil)
		m.startAll()
		m.linked()
		ctx := context.Background()
		us, eu, ap := m.nodes[0], m.nodes[1], m.nodes[2]
		if err := us.Set(ctx, "k", []byte("v1"), WithAck(All)); err != nil {
			t.Fatal(err)
		}
		m.net.Cut("us", "ap") // ap will miss v2
		ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := us.Set(ctx2, "k", []byte("v2"), WithAck(Quorum)); err != nil {
			t.Fatalf("Quorum write with one region cut off: %v", err)
		}
		// All cannot be met while ap is cut off.
		short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel2()
		if err := us.Set(short, "other", []byte("x"), WithAck(All)); !errors.Is(err, ErrAckTimeout) {
			t.Errorf("All write with a region cut off: %v; want ErrAckTimeout", err)
		}
		m.stop(0) // us dies with v2 delivered to eu only
		if v, err := eu.Get("k"); err != nil || string(v) != "v2" {
			t.Fatalf("eu after losing us: %q, %v; the quorum write is lost", v, err)
		}
		m.converged([]string{"k"}, 10*time.Second)
		if v, err := ap.Get("k"); err != nil || string(v) != "v2" {
			t.Errorf("ap after anti-entropy: %q, %v; want v2", v, err)
		}
		if st := ap.Stats(); st.Peers[0].Repaired+st.Peers[1].Repaired == 0 {
			t.Errorf("ap converged without a repair? stats %+v", st.Peers)
		}
	})
}

// TestExpiredQuorumWriteReachesRegionThatMissedIt pins chaos seed 1006: a
// Quorum write with a TTL reaches eu and ap but not us, and its origin dies.
// Once it has expired, eu and ap hold no value, and us must not keep serving
// the older value forever: the expired write's tombstone reaches us through
// anti-entropy and removes it.
func TestExpiredQuorumWriteReachesRegionThatMissedIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, 2*time.Millisecond, func(_ int, c *Config) {
			c.AntiEntropyInterval = 200 * time.Millisecond
		})
		m.startAll()
		m.linked()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		us, eu, ap := m.nodes[0], m.nodes[1], m.nodes[2]
		if err := eu.Set(ctx, "k", []byte("v1"), WithAck(All)); err != nil {
			t.Fatal(err)
		}
		m.net.Cut("eu", "us") // us will miss v2
		const ttl = 300 * time.Millisecond
		if err := eu.Set(ctx, "k", []byte("v2"), WithTTL(ttl), WithAck(Quorum)); err != nil {
			t.Fatalf("Quorum write with us cut off: %v", err)
		}
		m.stop(1) // eu dies with v2 delivered to ap only
		if v, err := ap.Get("k"); err != nil || string(v) != "v2" {
			t.Fatalf("ap: %q, %v; want v2", v, err)
		}
		time.Sleep(ttl)
		testkit.Eventually(t, "us no longer serves the value the expired write replaced", func() bool {
			_, err := us.Get("k")
			return errors.Is(err, ErrNotFound)
		})
		if _, err := ap.Get("k"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ap after expiry: %v", err)
		}
	})
}

// horizon is the short tombstone horizon of newHorizonCluster.
const horizon = 600 * time.Millisecond

// newHorizonCluster starts us, eu and ap with a short tombstone horizon and
// anti-entropy at a quarter of it.
func newHorizonCluster(t *testing.T) *memCluster {
	m := newMemCluster(t, []string{"us", "eu", "ap"}, time.Millisecond, func(_ int, c *Config) {
		c.TombstoneHorizon = horizon
		c.AntiEntropyInterval = horizon / 4
	})
	m.startAll()
	m.linked()
	return m
}

// TestPartitionLongerThanHorizon: ap is cut off while us deletes a key and
// dies, and stays away longer than the tombstone horizon, so no tombstone
// of the delete is left anywhere when it returns (eu keeps only a ghost).
// ap must not keep serving the deleted value (I3): a link away longer than
// the horizon comes back with a full sync, whose drop rule removes it.
func TestPartitionLongerThanHorizon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newHorizonCluster(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		us, eu, ap := m.nodes[0], m.nodes[1], m.nodes[2]
		if err := us.Set(ctx, "k", []byte("old"), WithAck(All)); err != nil {
			t.Fatal(err)
		}
		m.net.Isolate("ap")
		if err := us.Delete(ctx, "k", WithAck(Quorum)); err != nil {
			t.Fatalf("Quorum delete with ap cut off: %v", err)
		}
		m.stop(0) // the delete's origin dies: its log goes with it
		if _, _, ok := eu.Tombstone("k"); !ok {
			t.Fatal("eu has no tombstone of the delete")
		}
		time.Sleep(horizon + 200*time.Millisecond)
		m.net.HealAll()
		testkit.Eventually(t, "ap no longer serves the value deleted while it was away longer than the horizon", func() bool {
			_, err := ap.Get("k")
			return errors.Is(err, ErrNotFound)
		})
		time.Sleep(3 * horizon / 4) // an anti-entropy round more: nothing brings it back
		for i, n := range []*Node{eu, ap} {
			if v, err := n.Get("k"); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s serves %q, %v after the heal", m.names[i+1], v, err)
			}
		}
		dropped := uint64(0)
		for _, o := range ap.Stats().Origins {
			dropped += o.Dropped
		}
		if dropped == 0 {
			t.Error("ap dropped nothing after its full syncs; what removed the value?")
		}
	})
}

// TestRefillIgnoresStaleRegion: eu restarts empty while us, cut off for
// longer than the tombstone horizon, still holds a value ap deleted (the
// CI run of chaos seed 1006 with a 3 s horizon). eu refills from ap first —
// no entry, no tombstone left, only a ghost — and then from us, whose
// snapshot offers the deleted value. eu must refuse it: the ghost table it
// received with ap's snapshot covers it (merged into its own).
func TestRefillIgnoresStaleRegion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newHorizonCluster(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ap := m.nodes[2]
		if err := ap.Set(ctx, "k", []byte("old"), WithAck(All)); err != nil {
			t.Fatal(err)
		}
		m.net.Isolate("us")
		if err := ap.Delete(ctx, "k", WithAck(Quorum)); err != nil {
			t.Fatalf("Quorum delete with us cut off: %v", err)
		}
		time.Sleep(horizon + 200*time.Millisecond) // the tombstones are past the horizon
		m.stop(1)
		eu := m.start(1) // empty; refills from ap (us is still cut off)
		syncedFrom := func(region string) func() bool {
			return func() bool {
				for _, o := range eu.Stats().Origins {
					if o.Region == region && o.FullSyncs > 0 {
						return true
					}
				}
				return false
			}
		}
		testkit.Eventually(t, "eu synced from ap", syncedFrom("ap"))
		m.net.HealAll() // eu now refills from us too
		testkit.Eventually(t, "eu synced from us", syncedFrom("us"))
		time.Sleep(horizon) // anti-entropy rounds
		for i, n := range m.nodes {
			if v, err := n.Get("k"); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s serves %q, %v: the deleted value is back", m.names[i], v, err)
			}
		}
	})
}

// TestLatencyVisibility: with 20ms one-way latency, a write is visible in
// another region exactly one one-way delay after it is acknowledged
// locally: not a nanosecond before (it cannot outrun the link), and not
// later (no timer or batching holds it back). The cluster runs in a
// synctest bubble, where time is virtual, so the delay is exact on any
// machine however loaded.
func TestLatencyVisibility(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 20 * time.Millisecond
		m := newMemCluster(t, []string{"us", "eu"}, oneWay, nil)
		m.startAll()
		us, eu := m.nodes[0], m.nodes[1]
		testkit.Eventually(t, "link up", func() bool {
			st := us.Stats()
			return len(st.Peers) == 1 && st.Peers[0].Connected
		})
		visible := func(k string) bool {
			synctest.Wait() // every goroutine has done what it can at this instant
			_, err := eu.Get(k)
			return err == nil
		}
		for i := range 20 {
			k := fmt.Sprint("vis", i)
			if err := us.Set(context.Background(), k, []byte("x")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(oneWay - time.Nanosecond)
			if visible(k) {
				t.Fatalf("write %d visible in eu before the %v link could carry it", i, oneWay)
			}
			time.Sleep(time.Nanosecond)
			if !visible(k) {
				t.Fatalf("write %d not visible in eu one one-way delay (%v) after it was acknowledged", i, oneWay)
			}
		}
	})
}

// TestAsymmetricDelayIsNotClockSkew is the regression test for nodes on one
// clock refusing writes with ErrClockSkew because a one-way delay made the
// midpoint offset estimate exceed MaxClockOffset: the estimate is judged by
// the smallest offset its round trip allows.
//
// It runs in a synctest bubble. On real time it timed out ("a round trip
// measured") because the link never stayed up long enough for a Pong: with
// the cluster's 400 ms PeerTimeout (pings every 100 ms) and a 300 ms round
// trip, an idle sender's first frame after the handshake reached the
// receiver exactly at its read deadline, so any delay (the full sync's
// last frame took 100+ ms to build under -race) dropped the link, and every
// reconnect met the same deadline.
func TestAsymmetricDelayIsNotClockSkew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 300 * time.Millisecond
		m := newMemCluster(t, []string{"us", "eu"}, 0, func(i int, c *Config) {
			c.MaxClockOffset = 100 * time.Millisecond
			// Room for the round trip: a receiver's read deadline runs
			// from the handshake, and an idle sender's first frame comes
			// a round trip plus a ping interval (a quarter of this) later.
			c.PeerTimeout = 2 * time.Second
		})
		m.net.SetLatency("us", "eu", delay) // eu->us stays 0
		m.startAll()
		us := m.nodes[0]
		testkit.Eventually(t, "a round trip measured", func() bool {
			st := us.Stats()
			return len(st.Peers) == 1 && st.Peers[0].RTT >= delay
		})
		time.Sleep(delay) // a few more pings
		if err := us.Set(context.Background(), "k", []byte("v")); err != nil {
			t.Fatalf("Set with asymmetric delay on one clock: %v (peer offset %v)", err, us.Stats().Peers[0].Offset)
		}
	})
}
