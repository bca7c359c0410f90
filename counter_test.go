package geocache

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// readsEverywhere waits until every running node reads key as want.
func (c *tcpCluster) readsEverywhere(key, want string) {
	c.t.Helper()
	testkit.Eventually(c.t, key+" = "+want+" everywhere", func() bool {
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			if v, err := n.Get(key); err != nil || string(v) != want {
				return false
			}
		}
		return true
	})
}

// TestCounterIncrementsAddUpAcrossRegions: three regions increment the same
// counters at once, through isolation, one-way cuts and connection resets;
// once healed, every region reads every increment (a counter merges its
// regions' contributions instead of keeping the last write), and the
// regions hold the same state.
func TestCounterIncrementsAddUpAcrossRegions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"us", "eu", "ap"}
		m := newMemCluster(t, names, 5*time.Millisecond, nil)
		m.startAll()
		m.linked()
		keys := []string{"hits", "limit:ann", "limit:bob"}
		sums := make([]int64, len(keys))
		var mu sync.Mutex
		incr := func(rounds int) {
			var wg sync.WaitGroup
			for i, n := range m.nodes {
				wg.Go(func() {
					for j := range rounds {
						k := (i + j) % len(keys)
						d := int64(1 + (i+j)%3)
						if j%7 == 0 {
							d = -d
						}
						if _, err := n.IncrBy(context.Background(), keys[k], d); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						sums[k] += d
						mu.Unlock()
					}
				})
			}
			wg.Wait()
		}
		for _, fault := range []func(){
			func() { m.net.Isolate("ap") },
			func() { m.net.Cut("us", "eu") },
			func() { m.net.Reset("us", "eu"); m.net.Reset("eu", "ap"); m.net.Reset("ap", "us") },
		} {
			fault()
			incr(60)
			time.Sleep(time.Second) // links declared dead and redialed
			incr(30)
			m.net.HealAll()
			m.converged(keys, 15*time.Second)
			for k, key := range keys {
				for i, n := range m.nodes {
					if v, err := n.Get(key); err != nil || string(v) != strconv.FormatInt(sums[k], 10) {
						t.Fatalf("%s reads %s = %q, %v; want the sum of every increment, %d", names[i], key, v, err, sums[k])
					}
				}
			}
		}
	})
}

// TestCounterAcrossRestart: a region that restarts empty refills its
// counters, and the increments of its new process count on top of those of
// its old one, including the old ones it had not sent before it stopped.
func TestCounterAcrossRestart(t *testing.T) {
	c := newCluster(t, []string{"us", "eu"}, nil)
	c.startAll()
	ctx := context.Background()
	total := int64(0)
	incr := func(i int, d int64) {
		t.Helper()
		if _, err := c.nodes[i].IncrBy(ctx, "k", d); err != nil {
			t.Fatal(err)
		}
		total += d
	}
	for range 10 {
		incr(0, 1)
		incr(1, 2)
	}
	c.readsEverywhere("k", strconv.FormatInt(total, 10))
	c.stop(1)
	incr(0, 5)
	c.start(1)
	incr(1, 7) // may run before the refill: a contribution of its own
	for range 5 {
		incr(1, 1)
		incr(0, 1)
	}
	c.readsEverywhere("k", strconv.FormatInt(total, 10))
}

// TestCounterResetAcrossRegions: a SET resets the counter in every region;
// increments made afterwards count from its value; DEL and expiry reset it
// to nothing.
func TestCounterResetAcrossRegions(t *testing.T) {
	c := newCluster(t, []string{"us", "eu"}, nil)
	c.startAll()
	ctx := context.Background()
	for _, n := range c.nodes {
		if _, err := n.IncrBy(ctx, "k", 10); err != nil {
			t.Fatal(err)
		}
	}
	c.readsEverywhere("k", "20")
	if err := c.nodes[1].Set(ctx, "k", []byte("100"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if _, err := n.IncrBy(ctx, "k", 1); err != nil {
			t.Fatal(err)
		}
	}
	c.readsEverywhere("k", "102")
	if err := c.nodes[0].Expire(ctx, "k", time.Hour, WithAck(All)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[1].IncrBy(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	c.readsEverywhere("k", "103") // EXPIRE kept the contributions
	for i, n := range c.nodes {
		if ttl, err := n.TTL("k"); err != nil || ttl <= 0 {
			t.Errorf("node %d: TTL %v, %v; want the hour EXPIRE set", i, ttl, err)
		}
	}
	if err := c.nodes[0].Delete(ctx, "k", WithAck(All)); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if _, err := n.IncrBy(ctx, "k", 3); err != nil {
			t.Fatal(err)
		}
	}
	c.readsEverywhere("k", "6")

	if err := c.nodes[0].Set(ctx, "s", []byte("text")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[0].IncrBy(ctx, "s", 1); !errors.Is(err, ErrNotInteger) {
		t.Errorf("IncrBy of a text value: %v, want ErrNotInteger", err)
	}
}
