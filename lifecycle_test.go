package geocache

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// skewedClock is the real clock plus an offset.
type skewedClock struct{ offset time.Duration }

func (c skewedClock) UnixNano() int64 { return time.Now().Add(c.offset).UnixNano() }

// TestRestartBehindKeepsVersionsIncreasing pins chaos seed 11 (see
// internal/chaos/regress_test.go): a node restarted with its clock 800 ms
// behind its previous process's must still version its writes above the
// ones it made before, or a client's newer write loses, in every region, to
// its own older one. The restarted node merges its peers' clocks (which
// passed the old versions when they received them) before it takes writes.
func TestRestartBehindKeepsVersionsIncreasing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, time.Millisecond, func(i int, c *Config) {
			if i == 0 {
				c.Clock = skewedClock{400 * time.Millisecond}
			}
		})
		m.startAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.nodes[0].Set(ctx, "k", []byte("before"), WithAck(All)); err != nil {
			t.Fatal(err)
		}
		before, err := m.nodes[0].Lookup("k")
		if err != nil {
			t.Fatal(err)
		}

		m.stop(0)
		m.cfgs[0].Clock = skewedClock{-400 * time.Millisecond}
		us := m.start(0)
		if err := us.Set(ctx, "k", []byte("after")); err != nil {
			t.Fatal(err)
		}
		after, err := us.Lookup("k")
		if err != nil {
			t.Fatal(err)
		}
		if after.HLC <= before.HLC {
			t.Fatalf("the restarted node versioned its write %d, below its previous process's %d", after.HLC, before.HLC)
		}
		m.converged([]string{"k"}, 10*time.Second)
		for i, n := range m.nodes {
			if v, err := n.Get("k"); err != nil || string(v) != "after" {
				t.Errorf("%s: %q, %v; want the newer write", m.names[i], v, err)
			}
		}
	})
}

// TestStartWithoutPeersWaitsOutClockOffset: a node that cannot reach its
// peers takes writes only 2 × MaxClockOffset after Open; a write whose
// context ends first fails with ErrStarting and changes nothing. Reads do
// not wait.
func TestStartWithoutPeersWaitsOutClockOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const offset = 150 * time.Millisecond
		m := newMemCluster(t, []string{"us", "eu"}, time.Millisecond, func(_ int, c *Config) {
			c.MaxClockOffset = offset
		})
		opened := time.Now()
		us := m.start(0) // eu is not running
		select {
		case <-us.Ready():
			t.Fatal("ready at once with no peer reachable")
		default:
		}
		if _, err := us.Get("k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get while starting: %v", err)
		}
		short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := us.Set(short, "k", []byte("v")); !errors.Is(err, ErrStarting) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Set with a short context while starting: %v; want ErrStarting wrapping the deadline", err)
		}
		if _, err := us.Lookup("k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a write that failed with ErrStarting was applied: %v", err)
		}
		if err := us.Set(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(opened); waited < 2*offset {
			t.Errorf("a write was taken %v after Open; want >= %v", waited, 2*offset)
		}
	})
}

// TestReadyOnceEveryPeerAnswered: with every peer up, a node is ready as
// soon as each has answered, long before 2 × MaxClockOffset.
func TestReadyOnceEveryPeerAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, time.Millisecond, func(_ int, c *Config) {
			c.MaxClockOffset = time.Minute
		})
		m.startAll()
		for i, n := range m.nodes {
			select {
			case <-n.Ready():
			case <-time.After(10 * time.Second):
				t.Fatalf("%s not ready 10 s after its peers started (MaxClockOffset 1 min)", m.names[i])
			}
		}
		// Close ends the wait of a node that never heard from its peers.
		lone := newMemCluster(t, []string{"x", "y"}, time.Millisecond, func(_ int, c *Config) { c.MaxClockOffset = time.Minute })
		x := lone.start(0)
		lone.stop(0)
		select {
		case <-x.Ready():
		default:
			t.Error("Ready still open after Close")
		}
	})
}

// TestDrainHandsOverLastWrites: writes acknowledged locally just before a
// graceful shutdown reach the peers when Drain runs before Close; a peer
// that is down is not waited for.
func TestDrainHandsOverLastWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, 30*time.Millisecond, nil)
		m.startAll()
		us, eu := m.nodes[0], m.nodes[1]
		for _, n := range m.nodes {
			<-n.Ready()
		}
		m.stop(2) // ap is down: Drain must not wait for it
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys := keyList(200)
		for _, k := range keys {
			if err := us.Set(ctx, k, []byte("last")); err != nil {
				t.Fatal(err)
			}
		}
		if err := us.Drain(ctx); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		m.stop(0)
		for _, k := range keys {
			if v, err := eu.Get(k); err != nil || string(v) != "last" {
				t.Fatalf("eu lost %s after a drained shutdown: %q, %v", k, v, err)
			}
		}
	})
}
