package lru

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

var epoch = time.Unix(1_700_000_000, 0)

func newCache[K comparable, V any](t *testing.T, cfg Config[K, V]) *Cache[K, V] {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSeedExample pins the example of the original brief with the semantics
// its approach states (a read makes a key most recently used), not the
// opposite ones its comments claim.
func TestSeedExample(t *testing.T) {
	c := newCache(t, Config[string, any]{MaxEntries: 2})
	c.Set("a", 123)
	c.Set("b", map[string]string{"x": "y"})
	if v, ok := c.Get("a"); !ok || v != 123 {
		t.Fatalf(`Get("a") = %v, %v; want 123, true`, v, ok)
	}
	c.Set("c", []int{1, 2, 3})
	if v, ok := c.Get("a"); !ok || v != 123 {
		t.Errorf(`Get("a") = %v, %v; want 123, true`, v, ok)
	}
	if v, ok := c.Get("b"); ok {
		t.Errorf(`Get("b") = %v, true; want it evicted`, v)
	}
	if v, ok := c.Get("c"); !ok || !reflect.DeepEqual(v, []int{1, 2, 3}) {
		t.Errorf(`Get("c") = %v, %v; want [1 2 3], true`, v, ok)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config[string, string]
	}{
		{"negative entries", Config[string, string]{MaxEntries: -1}},
		{"negative bytes", Config[string, string]{MaxBytes: -1}},
		{"negative ttl", Config[string, string]{DefaultTTL: -time.Second}},
		{"negative shards", Config[string, string]{Shards: -2}},
		{"too many shards", Config[string, string]{Shards: 1 << 17}},
		{"shards beyond entries", Config[string, string]{MaxEntries: 4, Shards: 8}},
		{"bytes too small for an entry", Config[string, string]{MaxBytes: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("New(%+v) error = %v; want ErrInvalidConfig", tt.cfg, err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := newCache(t, Config[int, int]{})
	if got := c.cfg.MaxEntries; got != DefaultMaxEntries {
		t.Errorf("default MaxEntries = %d; want %d", got, DefaultMaxEntries)
	}
	small := newCache(t, Config[int, int]{MaxEntries: 100})
	if n := len(small.shards); n != 1 {
		t.Errorf("a 100-entry cache has %d shards; want 1 (exact LRU)", n)
	}
	for i := range 1000 {
		c.Set(i, i)
	}
	if c.Len() != 1000 {
		t.Errorf("Len = %d; want 1000", c.Len())
	}
}

func TestOperations(t *testing.T) {
	clock := testkit.NewClock(epoch)
	var evicted []string
	c := newCache(t, Config[string, string]{
		MaxEntries: 3, Clock: clock, ReclaimInterval: -1,
		OnEvict: func(k, v string, r Reason) { evicted = append(evicted, k+":"+r.String()) },
	})
	steps := []struct {
		name  string
		do    func() any
		want  any
		drops []string
	}{
		{"set a", func() any { return c.Set("a", "1") }, true, nil},
		{"set b with ttl", func() any { return c.SetWithTTL("b", "2", 10*time.Second) }, true, nil},
		{"set c", func() any { return c.Set("c", "3") }, true, nil},
		{"get a touches it", func() any { v, _ := c.Get("a"); return v }, "1", nil},
		{"peek b does not", func() any { v, _ := c.Peek("b"); return v }, "2", nil},
		{"set d evicts b", func() any { return c.Set("d", "4") }, true, []string{"b:evicted"}},
		{"contains b", func() any { return c.Contains("b") }, false, nil},
		{"ttl of a is none", func() any { d, ok := c.TTL("a"); return fmt.Sprint(d, ok) }, "0s true", nil},
		{"expire a", func() any { return c.Expire("a", 5*time.Second) }, true, nil},
		{"ttl of a", func() any { d, ok := c.TTL("a"); return fmt.Sprint(d, ok) }, "5s true", nil},
		{"expires at", func() any { at, _ := c.ExpiresAt("a"); return at.Equal(epoch.Add(5 * time.Second)) }, true, nil},
		{"advance 5s", func() any { clock.Advance(5 * time.Second); return nil }, nil, nil},
		{"a expired", func() any { _, ok := c.Get("a"); return ok }, false, []string{"a:expired"}},
		{"expire missing", func() any { return c.Expire("zz", time.Second) }, false, nil},
		{"persist c", func() any { c.Expire("c", time.Second); return c.Persist("c") }, true, nil},
		{"c survives", func() any { clock.Advance(time.Hour); _, ok := c.Get("c"); return ok }, true, nil},
		{"delete c", func() any { return c.Delete("c") }, true, []string{"c:deleted"}},
		{"delete again", func() any { return c.Delete("c") }, false, nil},
		{"expire at past deletes", func() any { return c.ExpireAt("d", epoch) }, true, []string{"d:deleted"}},
		{"set with negative ttl", func() any { c.Set("e", "5"); return c.SetWithTTL("e", "6", -1) }, true, []string{"e:deleted"}},
		{"set expire at", func() any { return c.SetExpireAt("f", "7", clock.Now().Add(time.Minute)) }, true, nil},
		{"len", func() any { return c.Len() }, 1, nil},
		{"purge", func() any { c.Purge(); return c.Len() }, 0, []string{"f:deleted"}},
	}
	for _, st := range steps {
		evicted = nil
		if got := st.do(); got != st.want {
			t.Fatalf("%s: got %v; want %v", st.name, got, st.want)
		}
		if !slices.Equal(evicted, st.drops) {
			t.Fatalf("%s: evictions %v; want %v", st.name, evicted, st.drops)
		}
	}
	want := Stats{Hits: 3, Misses: 1, Sets: 6, Deletes: 4, Evictions: 1, Expirations: 1}
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v; want %+v", got, want)
	}
}

func TestByteBudget(t *testing.T) {
	c := newCache(t, Config[string, []byte]{MaxBytes: 10_000, Shards: 1})
	over := c.EntryOverhead()
	if over <= 0 || over > 200 {
		t.Fatalf("EntryOverhead = %d; want a real, small figure", over)
	}
	val := make([]byte, 100)
	for i := range 1000 {
		c.Set(fmt.Sprintf("k%04d", i), val)
		if c.Bytes() > 10_000 {
			t.Fatalf("after %d sets Bytes = %d > budget", i, c.Bytes())
		}
	}
	per := 5 + 100 + over
	if got, want := int64(c.Len()), 10_000/per; got != want {
		t.Errorf("Len = %d; want %d entries of %d bytes in 10000", got, want, per)
	}
	// Too large for the budget: refused, and the old value is gone.
	c.Set("big", []byte("small"))
	if c.Set("big", make([]byte, c.MaxEntrySize()+1)) {
		t.Error("Set of an entry larger than MaxEntrySize succeeded")
	}
	if _, ok := c.Get("big"); ok {
		t.Error("a refused Set left the old value in place")
	}
	if !c.Set("max", make([]byte, c.MaxEntrySize()-3)) || c.Len() != 1 {
		t.Errorf("an entry of exactly MaxEntrySize: Len = %d; want it alone", c.Len())
	}
}

func TestResize(t *testing.T) {
	var n atomic.Int64
	c := newCache(t, Config[int, int]{MaxEntries: 1000, Shards: 1,
		OnEvict: func(int, int, Reason) { n.Add(1) }})
	for i := range 1000 {
		c.Set(i, i)
	}
	if err := c.Resize(10, 0); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 10 || n.Load() != 990 {
		t.Fatalf("after Resize(10): Len = %d, evicted %d; want 10, 990", c.Len(), n.Load())
	}
	var keys []int
	for k := range c.All() {
		keys = append(keys, k)
	}
	if want := []int{999, 998, 997, 996, 995, 994, 993, 992, 991, 990}; !slices.Equal(keys, want) {
		t.Errorf("after Resize, All = %v; want %v", keys, want)
	}
	if cap(c.shards[0].entries) > 100 {
		t.Errorf("arena capacity %d after shrinking to 10 entries; want it released", cap(c.shards[0].entries))
	}
	if err := c.Resize(0, 0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Resize(0, 0) = %v; want ErrInvalidConfig", err)
	}
	if err := c.Resize(2000, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		c.Set(i, i)
	}
	if c.Len() != 2000 {
		t.Errorf("after growing: Len = %d; want 2000", c.Len())
	}
}

func TestCompute(t *testing.T) {
	c := newCache(t, Config[string, int]{MaxEntries: 10})
	incr := func(v int, exp int64, found bool) (int, int64, Action) { return v + 1, exp, Store }
	for range 3 {
		c.Compute("n", incr)
	}
	if v, ok := c.Get("n"); v != 3 || !ok {
		t.Errorf("three increments: %d, %v; want 3, true", v, ok)
	}
	v, ok := c.Compute("n", func(v int, _ int64, _ bool) (int, int64, Action) { return 100, 0, Keep })
	if v != 3 || !ok {
		t.Errorf("Keep returned %d, %v; want 3, true", v, ok)
	}
	if _, ok := c.Compute("n", func(int, int64, bool) (int, int64, Action) { return 0, 0, Remove }); ok || c.Contains("n") {
		t.Error("Remove left the key")
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown Action did not panic")
		}
		if !c.Set("after", 1) {
			t.Error("the cache is unusable after a panicking Compute")
		}
	}()
	c.Compute("x", func(int, int64, bool) (int, int64, Action) { return 0, 0, Action(9) })
}

// TestReclaim checks that expired entries nobody reads are reclaimed within
// a tick or two, in bounded steps, including entries more than a wheel turn
// ahead.
func TestReclaim(t *testing.T) {
	clock := testkit.NewClock(epoch)
	var expired atomic.Int64
	c := newCache(t, Config[int, int]{MaxEntries: 100_000, Shards: 2, Clock: clock, ReclaimInterval: -1,
		OnEvict: func(_, _ int, r Reason) {
			if r == Expired {
				expired.Add(1)
			}
		}})
	r := rand.New(rand.NewPCG(1, 2))
	expiries := map[int]time.Duration{}
	for i := range 20_000 {
		d := time.Duration(1+r.IntN(2000)) * time.Second // up to ~7 wheel turns
		if i%10 == 0 {
			c.Set(i, i)
			continue
		}
		c.SetWithTTL(i, i, d)
		expiries[i] = d
	}
	const tick = time.Duration(1 << tickShift)
	for elapsed := time.Duration(0); elapsed < 2100*time.Second; elapsed += time.Second {
		clock.Advance(time.Second)
		for c.Reclaim() > 0 {
		}
		// Everything that expired before the previous tick began must be gone.
		horizon := clock.Now().Truncate(tick).Add(-tick).Sub(epoch)
		live := 2000
		for _, d := range expiries {
			if d > horizon {
				live++
			}
		}
		if got := c.Len(); got > live {
			t.Fatalf("at +%v: Len = %d; want at most %d (nothing expired before +%v)", elapsed, got, live, horizon)
		}
	}
	if c.Len() != 2000 || expired.Load() != 18_000 {
		t.Errorf("at the end: Len = %d, expired %d; want 2000, 18000", c.Len(), expired.Load())
	}
	if got := c.Stats().Expirations; got != 18_000 {
		t.Errorf("Stats.Expirations = %d; want 18000", got)
	}
}

func TestReclaimStepIsBounded(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[int, int]{MaxEntries: 100_000, Shards: 1, Clock: clock, ReclaimInterval: -1})
	c.test.noWriteReclaim = true
	for i := range 10_000 {
		c.SetWithTTL(i, i, time.Second)
	}
	clock.Advance(3 * time.Second)
	steps := 0
	for {
		n := c.Reclaim()
		if n > sweepReclaimBudget {
			t.Fatalf("one step reclaimed %d; budget is %d", n, sweepReclaimBudget)
		}
		if n == 0 {
			break
		}
		steps++
	}
	if c.Len() != 0 || steps < 10_000/sweepReclaimBudget {
		t.Errorf("Len = %d after %d steps; want 0 after at least %d", c.Len(), steps, 10_000/sweepReclaimBudget)
	}
}

func TestWritesReclaim(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[int, int]{MaxEntries: 100_000, Shards: 1, Clock: clock, ReclaimInterval: -1})
	for i := range 1000 {
		c.SetWithTTL(i, i, time.Second)
	}
	clock.Advance(3 * time.Second)
	for i := range 1000 {
		c.Set(-1-i, i) // untimed writes reclaim the expired entries as they go
	}
	if got := c.Len(); got != 1000 {
		t.Errorf("Len = %d after 1000 writes past 1000 expiries; want 1000", got)
	}
}

// TestComputeReclaims is the regression test for Compute stores skipping
// the reclaim step that Set does.
func TestComputeReclaims(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[string, int]{MaxEntries: 1000, Shards: 1, Clock: clock, ReclaimInterval: -1})
	store := func(exp int64) func(int, int64, bool) (int, int64, Action) {
		return func(int, int64, bool) (int, int64, Action) { return 1, exp, Store }
	}
	c.Compute("a", store(clock.UnixNano()+int64(time.Second)))
	clock.Advance(3 * time.Second)
	for i := range 100 {
		c.Compute(fmt.Sprint(i), store(0))
	}
	if c.Len() != 100 || c.Stats().Expirations != 1 {
		t.Errorf("Len = %d, expirations %d; want 100, 1", c.Len(), c.Stats().Expirations)
	}
}

func TestBackgroundSweepAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	c, err := New(Config[int, int]{MaxEntries: 100, ReclaimInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.SetWithTTL(1, 1, time.Nanosecond)
	deadline := time.Now().Add(time.Minute) // only catches a sweep that never runs
	for c.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // waiting for a real goroutine on the real clock
	}
	if c.Len() != 0 {
		t.Error("the background sweep did not reclaim an expired entry")
	}
	c.Close()
	c.Close()
	// Close returns once the sweep has signalled its end; the goroutine
	// itself exits just after, so its count is awaited.
	after := runtime.NumGoroutine()
	for after > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		after = runtime.NumGoroutine()
	}
	if after > before {
		t.Errorf("goroutines: %d before New, %d after Close", before, after)
	}
}

func TestCallbackMayCallCache(t *testing.T) {
	var c *Cache[int, int]
	var seen []int
	c = newCache(t, Config[int, int]{MaxEntries: 1, OnEvict: func(k, _ int, _ Reason) {
		seen = append(seen, k)
		c.Contains(k) // would deadlock if called under the lock
	}})
	c.Set(1, 1)
	c.Set(2, 2)
	c.Delete(2)
	if !slices.Equal(seen, []int{1, 2}) {
		t.Errorf("callbacks for %v; want [1 2]", seen)
	}
}

func TestHashTableChurn(t *testing.T) {
	// Colliding tags and wrap-around exercise backward-shift deletion.
	c := newCache(t, Config[int, int]{MaxEntries: 512, Shards: 1, Hash: func(k int) uint64 {
		return uint64(k%7) << 32 // seven home slots only
	}})
	r := rand.New(rand.NewPCG(3, 4))
	ref := map[int]int{}
	for i := range 20_000 {
		k := r.IntN(300)
		switch r.IntN(3) {
		case 0:
			c.Set(k, i)
			ref[k] = i
		case 1:
			c.Delete(k)
			delete(ref, k)
		default:
			v, ok := c.Get(k)
			if w, wok := ref[k]; v != w || ok != wok {
				t.Fatalf("step %d: Get(%d) = %d,%v; want %d,%v", i, k, v, ok, w, wok)
			}
		}
	}
}

// TestConcurrentStress runs readers, writers, expiry and deletes together;
// run with -race. Values always equal their key, so a torn or misplaced
// entry shows as a mismatch.
func TestConcurrentStress(t *testing.T) {
	c := newCache(t, Config[int, int]{MaxEntries: 2000, Shards: 4, ReclaimInterval: time.Millisecond})
	var wg sync.WaitGroup
	var bad atomic.Int64
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ops := 20_000
	if testing.Short() {
		ops = 2000
	}
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for range ops {
				k := r.IntN(5000)
				switch r.IntN(10) {
				case 0, 1:
					c.Set(k, k)
				case 2:
					c.SetWithTTL(k, k, time.Duration(r.IntN(3))*time.Millisecond)
				case 3:
					c.Delete(k)
				case 4:
					c.Compute(k, func(v int, exp int64, found bool) (int, int64, Action) { return k, exp, Store })
				case 5:
					c.Expire(k, time.Millisecond)
				default:
					if v, ok := c.Get(k); ok && v != k {
						bad.Add(1)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			for k, v := range c.All() {
				if k != v {
					bad.Add(1)
				}
			}
			c.Stats()
		}
	})
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d reads returned a value of another key", bad.Load())
	}
	if c.Len() > 2000 {
		t.Fatalf("Len = %d over the limit of 2000", c.Len())
	}
}

func TestZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are meaningless under -race or -cover")
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%012d", i)
	}
	val := make([]byte, 64)
	for _, cfg := range []Config[string, []byte]{
		{MaxEntries: 500},
		{MaxEntries: 500, DefaultTTL: time.Hour},
		{MaxBytes: 1 << 20},
	} {
		c := newCache(t, cfg)
		for _, k := range keys {
			c.Set(k, val)
		}
		i := 0
		if n := testing.AllocsPerRun(1000, func() { c.Get(keys[i%len(keys)]); i++ }); n != 0 {
			t.Errorf("%+v: Get allocates %.1f per call", cfg, n)
		}
		if n := testing.AllocsPerRun(1000, func() { c.Set(keys[i%len(keys)], val); i++ }); n != 0 {
			t.Errorf("%+v: Set (existing or evicting) allocates %.1f per call", cfg, n)
		}
	}
}

// TestAllIncludingExpired: All skips entries that have expired and are not
// reclaimed yet; AllIncludingExpired yields them too, and neither removes
// them.
func TestAllIncludingExpired(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[string, int]{MaxEntries: 10, Shards: 1, Clock: clock, ReclaimInterval: -1})
	c.Set("forever", 1)
	c.SetWithTTL("short", 2, time.Second)
	clock.Advance(time.Second)
	collect := func(seq func(func(string, int) bool)) []string {
		var keys []string
		for k := range seq {
			keys = append(keys, k)
		}
		return keys
	}
	if got := collect(c.All()); !slices.Equal(got, []string{"forever"}) {
		t.Errorf("All = %v, want [forever]", got)
	}
	if got := collect(c.AllIncludingExpired()); !slices.Equal(got, []string{"short", "forever"}) {
		t.Errorf("AllIncludingExpired = %v, want [short forever]", got)
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d after iterating, want 2 (nothing reclaimed)", c.Len())
	}
}

// TestSetOnEvict: SetOnEvict replaces Config.OnEvict at run time; nil stops
// the reports (OnEvictLocked goes on), and a callback set later gets them
// again. A Set that evicts with nobody listening allocates nothing.
func TestSetOnEvict(t *testing.T) {
	var got, locked []string
	c := newCache(t, Config[string, string]{
		MaxEntries: 1, ReclaimInterval: -1,
		OnEvict:       func(k, _ string, r Reason) { got = append(got, "old "+k+":"+r.String()) },
		OnEvictLocked: func(k, _ string, _ Reason) { locked = append(locked, k) },
	})
	c.Set("a", "1")
	c.Set("b", "2") // evicts a: reported to Config.OnEvict
	c.SetOnEvict(nil)
	c.Set("c", "3") // evicts b: not reported
	c.Delete("c")
	c.Set("d", "4")
	c.SetOnEvict(func(k, _ string, r Reason) { got = append(got, "new "+k+":"+r.String()) })
	c.Set("e", "5") // evicts d
	c.Purge()
	want := []string{"old a:evicted", "new d:evicted", "new e:deleted"}
	if !slices.Equal(got, want) {
		t.Errorf("OnEvict got %q, want %q", got, want)
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(locked, want) {
		t.Errorf("OnEvictLocked got %q, want %q", locked, want)
	}

	if testing.CoverMode() != "" || raceEnabled {
		return // allocation counts are meaningless under -race or -cover
	}
	c.SetOnEvict(nil)
	keys := []string{"k0", "k1", "k2", "k3"}
	i := 0
	if n := testing.AllocsPerRun(100, func() { c.Set(keys[i%len(keys)], "v"); i++ }); n != 0 {
		t.Errorf("an evicting Set with OnEvict off allocates %.1f per call", n)
	}
}

// TestComputeNow: the callback gets the reading the call judges expiry by:
// an entry expired by it is not passed, and an expiry after it is stored.
func TestComputeNow(t *testing.T) {
	clock := testkit.NewClock(epoch)
	c := newCache(t, Config[string, string]{MaxEntries: 10, Clock: clock, ReclaimInterval: -1})
	c.SetWithTTL("k", "v", time.Second)
	clock.Advance(time.Second)
	var got int64
	found := true
	v, ok := c.ComputeNow("k", func(_ string, _ int64, f bool, now int64) (string, int64, Action) {
		got, found = now, f
		return "w", now + 1, Store
	})
	if got != clock.UnixNano() || found {
		t.Errorf("callback got now %d, found %v; want %d, false (k expired at now)", got, found, clock.UnixNano())
	}
	if !ok || v != "w" {
		t.Errorf("ComputeNow stored %q, %v; want w, true (its expiry is after now)", v, ok)
	}
}
