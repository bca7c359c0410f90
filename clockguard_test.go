package geocache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// skewClock is the (virtual) system clock plus an offset that a test can
// change, like an operator fixing a node's time.
type skewClock struct{ offset atomic.Int64 }

func (c *skewClock) UnixNano() int64 { return time.Now().UnixNano() + c.offset.Load() }

func skewed(d time.Duration) *skewClock {
	c := &skewClock{}
	c.offset.Store(int64(d))
	return c
}

func has(n *Node, key string) bool {
	_, err := n.Get(key)
	return err == nil
}

// A node started with its clock 10 minutes ahead of its peers refuses
// writes from its first one on (not after its offsets are measured by
// pings), reports it, and still receives the others' writes; once its clock
// is fixed and it restarts, it takes writes again and they replicate.
func TestSkewedNodeRefusesFromFirstWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := skewed(10 * time.Minute)
		m := newMemCluster(t, []string{"us", "eu", "ap"}, time.Millisecond, func(i int, c *Config) {
			c.PeerTimeout = 4 * time.Second // minutes of virtual time: fewer pings
			if i == 2 {
				c.Clock = clock
			}
		})
		us, eu := m.start(0), m.start(1)
		m.linked()
		ap := m.start(2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range 100 {
			if err := ap.Set(ctx, fmt.Sprint("skewed", i), []byte("v")); !errors.Is(err, ErrClockSkew) {
				t.Fatalf("write %d on the skewed node: %v, want ErrClockSkew", i, err)
			}
		}
		if ap.ClockInBounds() {
			t.Error("the skewed node reports its clock in bounds")
		}
		if !us.ClockInBounds() || !eu.ClockInBounds() {
			t.Error("a node in bounds reports its clock out of bounds")
		}
		if err := us.Set(ctx, "from-us", []byte("v")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "the skewed node receives us's write", func() bool { return has(ap, "from-us") })
		for i := range 100 {
			if has(us, fmt.Sprint("skewed", i)) || has(eu, fmt.Sprint("skewed", i)) {
				t.Fatal("a refused write arrived elsewhere")
			}
		}

		// Fixed. Its clock has merged its own skewed time, and a version
		// from it would be held by every peer: it refuses writes until its
		// physical time has caught up (hlc's TestNowWithinAfterClockSetBack)
		// or, as here, it restarts; its peers never merged its time.
		clock.offset.Store(0)
		time.Sleep(time.Second)
		if err := ap.Set(ctx, "too-soon", []byte("v")); !errors.Is(err, ErrClockSkew) {
			t.Fatalf("write right after the clock was set back: %v, want ErrClockSkew", err)
		}
		m.stop(2)
		ap = m.start(2)
		if err := ap.Set(ctx, "from-ap", []byte("v")); err != nil {
			t.Fatalf("write after the restart: %v", err)
		}
		testkit.Eventually(t, "ap's write reaches us and eu", func() bool { return has(us, "from-ap") && has(eu, "from-ap") })
	})
}

// A peer whose clock jumps 10 minutes ahead writes before it has measured
// its peers again: the others hold its write (never merge its clock, never
// apply it) while it is ahead, it refuses writes once it has measured them,
// and once its clock is fixed the write is delivered when the others'
// clocks reach its version.
func TestSkewedPeerHeldUntilInBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := skewed(0)
		m := newMemCluster(t, []string{"us", "eu", "ap"}, time.Millisecond, func(i int, c *Config) {
			c.PeerTimeout = 4 * time.Second // minutes of virtual time: fewer pings
			if i == 2 {
				c.Clock = clock
			}
		})
		m.startAll()
		m.linked()
		us, eu, ap := m.nodes[0], m.nodes[1], m.nodes[2]
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range m.nodes {
			<-n.Ready()
		}
		clock.offset.Store(int64(10 * time.Minute))
		if err := ap.Set(ctx, "k", []byte("from-ap")); err != nil {
			t.Fatalf("a write before the jump is measured: %v", err)
		}
		testkit.Eventually(t, "ap refuses writes", func() bool { return !ap.ClockInBounds() })
		if err := ap.Set(ctx, "k2", []byte("v")); !errors.Is(err, ErrClockSkew) {
			t.Fatalf("ap after measuring: %v, want ErrClockSkew", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		for _, n := range []*Node{us, eu} {
			if has(n, "k") {
				t.Fatal("ap's skewed write applied before it is in bounds")
			}
			if last := n.clock.Last(); last.WallMillis() > time.Now().Add(time.Minute).UnixMilli() {
				t.Fatalf("%s's clock moved to %v", n.cfg.Region, last)
			}
			if err := n.Set(ctx, "k-"+n.cfg.Region, []byte("v")); err != nil {
				t.Fatalf("%s refuses writes: %v", n.cfg.Region, err)
			}
			held := uint64(0)
			for _, o := range n.repl.Stats().Origins {
				held += o.HeldAhead
			}
			if held == 0 {
				t.Errorf("%s counted no held stream", n.cfg.Region)
			}
		}

		// ap's clock is fixed; its versions (the write, and its clock, which
		// merged its own skewed time) are in bounds once the others' clocks
		// reach them.
		clock.offset.Store(0)
		time.Sleep(10 * time.Minute)
		testkit.Eventually(t, "ap's write delivered", func() bool {
			for _, n := range []*Node{us, eu} {
				if it, err := n.Lookup("k"); err != nil || string(it.Value) != "from-ap" {
					return false
				}
			}
			return true
		})
		testkit.Eventually(t, "ap takes writes again", ap.ClockInBounds)
		if err := ap.Set(ctx, "k", []byte("again")); err != nil {
			t.Fatalf("ap once in bounds: %v", err)
		}
		testkit.Eventually(t, "ap's new write delivered", func() bool {
			it, err := us.Lookup("k")
			return err == nil && string(it.Value) == "again"
		})
	})
}
