package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// TestScanSeesLiveKeysOnly: tombstones and expired entries are not keys.
func TestScanSeesLiveKeysOnly(t *testing.T) {
	clock := testkit.NewClock(epoch)
	cfg := testConfig(clock)
	cfg.Shards = 4
	s := open(t, cfg)
	for i := range 50 {
		s.Apply(set(fmt.Sprint("k", i), "v", v(int64(i+1))))
	}
	s.Apply(del("k3", v(100)))
	s.Apply(setExp("k4", "v", v(101), clock.UnixNano()+int64(time.Second)))
	clock.Advance(2 * time.Second)
	seen := map[string]int{}
	var buf []string
	for cur := uint64(0); ; {
		buf, cur = s.Scan(cur, 3, buf[:0])
		for _, k := range buf {
			seen[k]++
		}
		if cur == 0 {
			break
		}
	}
	if len(seen) != 48 || seen["k3"] != 0 || seen["k4"] != 0 {
		t.Fatalf("Scan saw %d keys (k3 %d times, k4 %d times); want 48, without k3 and k4", len(seen), seen["k3"], seen["k4"])
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%q returned %d times", k, n)
		}
	}
	if k, ok := s.RandomKey(); !ok || seen[k] != 1 {
		t.Fatalf("RandomKey = %q, %v; want a live key", k, ok)
	}
}
