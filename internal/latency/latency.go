// Package latency counts durations in fixed exponential buckets, cheaply
// enough to time every request of a server.
//
// A Histogram is a fixed array of atomic counters: Observe is two atomic
// adds and allocates nothing, and takes no lock, so request paths can call
// it on every request. A reader folds histograms into a Snapshot at scrape
// time. A Sharded histogram spreads writers over several Histograms (one
// per connection, say, by its id) so that goroutines on different cores do
// not contend on the same cache lines.
//
// The buckets are the same for every histogram: upper bounds of
// 2^i × 1 µs for i = -2 … 25 (0.25 µs to about 33.6 s), each including its
// bound, and one more bucket for everything longer. Between two bounds a
// duration is known to within a factor of two.
package latency

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	// Buckets is the number of buckets: one per bound, and one for the
	// durations above the last bound.
	Buckets = 29
	// firstBound is the upper bound of the first bucket.
	firstBound = 250 * time.Nanosecond
)

// Bounds returns the upper bounds of the buckets but the last (which has
// none), in increasing order: Bounds()[i] is the upper bound of bucket i.
func Bounds() [Buckets - 1]time.Duration {
	var b [Buckets - 1]time.Duration
	for i := range b {
		b[i] = firstBound << i
	}
	return b
}

// bucket returns the index of the bucket of d: the smallest i with
// d <= firstBound<<i, or Buckets-1 if there is none.
func bucket(d time.Duration) int {
	if d <= firstBound {
		return 0
	}
	// ceil(d/firstBound) <= 1<<i  <=>  i >= bits.Len64(ceil(d/firstBound)-1)
	i := bits.Len64((uint64(d) - 1) / uint64(firstBound))
	return min(i, Buckets-1)
}

// Histogram counts durations. The zero value is an empty histogram ready
// to use; it must not be copied after first use. All methods are safe for
// concurrent use.
type Histogram struct {
	counts [Buckets]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Observe counts d. A negative d counts as 0.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.counts[bucket(d)].Add(1)
	h.sum.Add(int64(d))
}

// AddTo adds the histogram's counts and sum to s. Observations made while
// it runs may or may not be included (and the sum may include one whose
// count is not yet there).
func (h *Histogram) AddTo(s *Snapshot) {
	for i := range h.counts {
		s.Counts[i] += h.counts[i].Load()
	}
	s.Sum += time.Duration(h.sum.Load())
}

// Snapshot returns the histogram's counts and sum.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	h.AddTo(&s)
	return s
}

// Snapshot is a histogram's state at one instant, as plain numbers.
type Snapshot struct {
	// Counts[i] is the number of durations in bucket i: above Bounds()[i-1]
	// (if i > 0) and at most Bounds()[i] (if i < Buckets-1).
	Counts [Buckets]uint64
	// Sum is the sum of the durations.
	Sum time.Duration
}

// Count returns the number of durations counted.
func (s Snapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Add adds o's counts and sum to s.
func (s *Snapshot) Add(o *Snapshot) {
	for i, c := range o.Counts {
		s.Counts[i] += c
	}
	s.Sum += o.Sum
}

// Quantile returns an upper bound of the q-quantile (0 < q <= 1) of the
// durations: the upper bound of the bucket that holds it, so the true
// value is at most a factor of two lower. It returns 0 for an empty
// snapshot, and the last bound when the quantile lies beyond it.
func (s Snapshot) Quantile(q float64) time.Duration {
	n := s.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++ // ceil
	}
	rank = min(max(rank, 1), n)
	bounds := Bounds()
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			return bounds[min(i, len(bounds)-1)]
		}
	}
	return bounds[len(bounds)-1]
}

// Sharded is a set of histograms that writers pick by a key of their own
// (a connection's id), so that concurrent writers rarely share a cache
// line; readers fold the shards. The zero value is ready to use.
type Sharded struct {
	shards [shards]paddedHistogram
}

// shards is a power of two; 8 keeps a 2- to 8-core machine's connections
// mostly apart at 8 × 240 bytes per histogram.
const shards = 8

type paddedHistogram struct {
	Histogram
	_ [64]byte // keeps the next shard's counters off this one's last line
}

// Observe counts d in the shard of key.
func (s *Sharded) Observe(key uint64, d time.Duration) {
	s.shards[key&(shards-1)].Observe(d)
}

// AddTo adds every shard's counts and sum to snap.
func (s *Sharded) AddTo(snap *Snapshot) {
	for i := range s.shards {
		s.shards[i].AddTo(snap)
	}
}

// Snapshot returns the sum of the shards.
func (s *Sharded) Snapshot() Snapshot {
	var snap Snapshot
	s.AddTo(&snap)
	return snap
}
