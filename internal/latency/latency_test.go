package latency

import (
	"sync"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	b := Bounds()
	if b[0] != 250*time.Nanosecond || b[2] != time.Microsecond || b[len(b)-1] != 250*time.Nanosecond<<27 {
		t.Fatalf("bounds %v … %v", b[0], b[len(b)-1])
	}
	tests := []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{1, 0},
		{250 * time.Nanosecond, 0},
		{251 * time.Nanosecond, 1},
		{500 * time.Nanosecond, 1},
		{501 * time.Nanosecond, 2},
		{time.Microsecond, 2},
		{time.Microsecond + 1, 3},
		{3 * time.Millisecond, 14}, // 2.048 ms < 3 ms <= 4.096 ms
		{b[len(b)-1], Buckets - 2},
		{b[len(b)-1] + 1, Buckets - 1},
		{time.Hour, Buckets - 1},
		{time.Duration(1<<63 - 1), Buckets - 1},
	}
	for _, tt := range tests {
		if got := bucket(max(tt.d, 0)); got != tt.want {
			t.Errorf("bucket(%v) = %d, want %d", tt.d, got, tt.want)
		}
		// Every duration is in the bucket its bounds describe.
		i := bucket(max(tt.d, 0))
		if i < len(b) && max(tt.d, 0) > b[i] || i > 0 && max(tt.d, 0) <= b[i-1] {
			t.Errorf("%v in bucket %d outside (%v, %v]", tt.d, i, b[max(i-1, 0)], b[min(i, len(b)-1)])
		}
	}
}

func TestObserveAndSnapshot(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{100, 300, 300, 2 * time.Microsecond, -5, time.Hour} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if s.Count() != 6 {
		t.Errorf("count %d, want 6", s.Count())
	}
	if want := 100 + 600 + 2*time.Microsecond + time.Hour; s.Sum != want {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
	if s.Counts[0] != 2 || s.Counts[1] != 2 || s.Counts[3] != 1 || s.Counts[Buckets-1] != 1 {
		t.Errorf("counts %v", s.Counts)
	}
	if q := s.Quantile(0.5); q != 500*time.Nanosecond {
		t.Errorf("p50 %v, want 500ns", q)
	}
	if q := s.Quantile(0.8); q != 2*time.Microsecond {
		t.Errorf("p80 %v, want 2µs", q)
	}
	if q := s.Quantile(1); q != Bounds()[Buckets-2] {
		t.Errorf("p100 %v, want the last bound", q)
	}
	var empty Snapshot
	if empty.Quantile(0.99) != 0 {
		t.Error("the quantile of nothing is not 0")
	}
	s.Add(&s)
	if s.Count() != 12 || s.Sum != 2*(100+600+2*time.Microsecond+time.Hour) {
		t.Errorf("after Add: count %d sum %v", s.Count(), s.Sum)
	}
}

func TestShardedFoldsEveryShard(t *testing.T) {
	var s Sharded
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for range 1000 {
				s.Observe(uint64(g), time.Duration(g)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	snap := s.Snapshot()
	if snap.Count() != 16000 {
		t.Errorf("count %d, want 16000", snap.Count())
	}
	if want := 1000 * 120 * time.Microsecond; snap.Sum != want { // 1000 × (0+…+15) µs
		t.Errorf("sum %v, want %v", snap.Sum, want)
	}
}

// Timing a request must cost no allocation.
func TestObserveAllocatesNothing(t *testing.T) {
	var h Histogram
	var s Sharded
	d := 3 * time.Microsecond
	if n := testing.AllocsPerRun(1000, func() {
		h.Observe(d)
		s.Observe(7, d)
		d += 13
	}); n != 0 {
		t.Errorf("Observe allocates %v times per call", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(time.Duration(i & 0xffff))
	}
}

func BenchmarkShardedObserveParallel(b *testing.B) {
	var s Sharded
	var id uint64
	var mu sync.Mutex
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		id++
		key := id
		mu.Unlock()
		d := time.Duration(key)
		for pb.Next() {
			s.Observe(key, d)
			d += 100
		}
	})
}
