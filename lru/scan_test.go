package lru

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

var scanSeed = flag.Uint64("scanseed", 0, "seed for the Scan tests (0 = from the time)")

func scanRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *scanSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -scanseed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// scanAll walks the whole cache with the given COUNT and returns how many
// times each key came back.
func scanAll[V any](t *testing.T, c *Cache[string, V], count int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	var buf []string
	cur := uint64(0)
	for calls := 0; ; calls++ {
		if calls > 1<<20 {
			t.Fatal("Scan did not finish")
		}
		buf, cur = c.Scan(cur, count, buf[:0])
		for _, k := range buf {
			seen[k]++
		}
		if cur == 0 {
			return seen
		}
	}
}

func TestScanReturnsEveryKeyOnce(t *testing.T) {
	for _, tt := range []struct{ keys, shards, count int }{
		{0, 1, 10}, {1, 1, 10}, {5, 4, 1}, {1000, 1, 10}, {1000, 8, 1}, {5000, 64, 100}, {300, 2, 100000},
	} {
		t.Run(fmt.Sprintf("%d keys %d shards count %d", tt.keys, tt.shards, tt.count), func(t *testing.T) {
			c := newCache(t, Config[string, int]{MaxEntries: 1 << 20, Shards: tt.shards, ReclaimInterval: -1})
			for i := range tt.keys {
				c.Set(fmt.Sprint("k", i), i)
			}
			seen := scanAll(t, c, tt.count)
			if len(seen) != tt.keys {
				t.Fatalf("Scan returned %d distinct keys; want %d", len(seen), tt.keys)
			}
			for k, n := range seen {
				if n != 1 {
					t.Fatalf("key %q returned %d times", k, n)
				}
			}
		})
	}
}

func TestScanSkipsExpired(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[string, int]{MaxEntries: 100, Shards: 1, Clock: clock, ReclaimInterval: -1})
	c.Set("live", 1)
	c.SetWithTTL("gone", 2, time.Second)
	clock.Advance(2 * time.Second)
	if seen := scanAll(t, c, 10); len(seen) != 1 || seen["live"] != 1 {
		t.Fatalf("Scan after expiry = %v; want only live", seen)
	}
}

// TestScanGuaranteeUnderChurn steps a scan while, between its calls, other
// keys are written (growing the tables), deleted (backward shifts), evicted
// (the stable keys are kept most recently used) and the tables compacted
// (Resize after mass deletion shrinks them): every stable key comes back
// exactly once.
func TestScanGuaranteeUnderChurn(t *testing.T) {
	r := scanRand(t)
	for round := range 20 {
		shards := 1 << r.IntN(4)
		maxEntries := 1000 + r.IntN(2000)
		c := newCache(t, Config[string, int]{MaxEntries: maxEntries, Shards: shards, ReclaimInterval: -1})
		stable := map[string]bool{}
		for i := range 100 {
			k := fmt.Sprintf("stable%d-%d", round, i)
			stable[k] = true
			c.Set(k, i)
		}
		next := 0
		churn := func() {
			switch r.IntN(16) {
			case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11: // a burst of writes: growth, and eviction once full
				n := r.IntN(maxEntries / 8)
				if r.IntN(8) == 0 {
					n = 3 * maxEntries / 2
				}
				for i := range n {
					c.Set(fmt.Sprint("churn", next), next)
					next++
					if i%100 == 0 {
						for k := range stable { // keep the stable keys most recently used
							c.Get(k)
						}
					}
				}
			case 12, 13, 14: // deletes
				for range r.IntN(200) {
					if next > 0 {
						c.Delete(fmt.Sprint("churn", r.IntN(next)))
					}
				}
			case 15: // delete every churn key, then compact
				for i := range next {
					c.Delete(fmt.Sprint("churn", i))
				}
				if err := c.Resize(maxEntries, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		seen := map[string]int{}
		var buf []string
		cur := uint64(0)
		for {
			buf, cur = c.Scan(cur, 1+r.IntN(50), buf[:0])
			for _, k := range buf {
				seen[k]++
			}
			if cur == 0 {
				break
			}
			churn()
		}
		for k := range stable {
			if !c.Contains(k) {
				t.Fatalf("round %d: the test evicted stable key %q", round, k)
			}
			if seen[k] != 1 {
				t.Fatalf("round %d (%d shards): stable key %q returned %d times; want 1", round, shards, k, seen[k])
			}
		}
	}
}

// TestScanConcurrentWriters runs scans while other goroutines write,
// delete and evict: every key present throughout is returned.
func TestScanConcurrentWriters(t *testing.T) {
	c := newCache(t, Config[string, int]{MaxEntries: 4096, Shards: 4, ReclaimInterval: -1})
	for i := range 500 {
		c.Set(fmt.Sprint("stable", i), i)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d-%d", w, r.IntN(8000))
				if r.IntN(3) == 0 {
					c.Delete(k)
				} else {
					c.Set(k, i)
				}
				if i%512 == 0 {
					for j := range 500 {
						c.Get(fmt.Sprint("stable", j))
					}
				}
			}
		})
	}
	for range 20 {
		seen := scanAll(t, c, 7)
		for i := range 500 {
			if k := fmt.Sprint("stable", i); seen[k] != 1 {
				close(stop)
				wg.Wait()
				t.Fatalf("stable key %q returned %d times; want 1", k, seen[k])
			}
		}
	}
	close(stop)
	wg.Wait()
}

// TestScanBoundsWork: one call over a large, nearly empty table visits a
// bounded number of buckets and hands back a cursor instead of walking it
// all.
func TestScanBoundsWork(t *testing.T) {
	c := newCache(t, Config[string, int]{MaxEntries: 1 << 20, Shards: 1, ReclaimInterval: -1})
	for i := range 20000 {
		c.Set(fmt.Sprint("k", i), i)
	}
	for i := 1; i < 20000; i++ {
		c.Delete(fmt.Sprint("k", i))
	}
	keys, cur := c.Scan(0, 1, nil)
	if cur == 0 && len(keys) == 1 {
		return // the one key happened to sit in the first ten buckets
	}
	if cur == 0 {
		t.Fatalf("Scan(0, COUNT 1) over a sparse table of %d slots finished in one call", len(c.shards[0].slots))
	}
	if seen := scanAll(t, c, 1); len(seen) != 1 || seen["k0"] != 1 {
		t.Fatalf("full walk = %v; want k0 once", seen)
	}
}

// TestScanForeignCursor: a cursor past the last shard ends the walk.
func TestScanForeignCursor(t *testing.T) {
	c := newCache(t, Config[string, int]{MaxEntries: 100, Shards: 2, ReclaimInterval: -1})
	c.Set("a", 1)
	if keys, cur := c.Scan(5<<32|7, 10, nil); len(keys) != 0 || cur != 0 {
		t.Fatalf("Scan(past the end) = %v, %d; want nothing, 0", keys, cur)
	}
}

func TestRandomKey(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[string, int]{MaxEntries: 1000, Shards: 4, Clock: clock, ReclaimInterval: -1})
	if k, ok := c.RandomKey(); ok {
		t.Fatalf("RandomKey of an empty cache = %q, true", k)
	}
	c.SetWithTTL("gone", 0, time.Second)
	clock.Advance(2 * time.Second)
	if k, ok := c.RandomKey(); ok {
		t.Fatalf("RandomKey with only an expired entry = %q, true", k)
	}
	want := map[string]bool{"a": true, "b": true, "c": true}
	for k := range want {
		c.Set(k, 0)
	}
	got := map[string]bool{}
	for range 1000 {
		k, ok := c.RandomKey()
		if !ok || !want[k] {
			t.Fatalf("RandomKey = %q, %v; want one of a, b, c", k, ok)
		}
		got[k] = true
	}
	if len(got) != len(want) {
		t.Fatalf("1000 RandomKey calls chose only %v", got)
	}
}
