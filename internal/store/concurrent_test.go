package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// valueOf makes a value that names its key and version, so readers can
// check that what they got belongs together.
func valueOf(key string, vv Version) string { return key + "=" + vv.String() }

// TestConcurrentConvergence applies one op set from several goroutines,
// each in its own order with duplicates, while others read, snapshot and
// collect. The store must end in the model's state, and no read may pair a
// value with another key's or version's.
func TestConcurrentConvergence(t *testing.T) {
	r := newRand(t)
	clock := testkit.NewClock(epoch)
	now := clock.UnixNano()
	cfg := Config{MaxEntries: 4096, Shards: 4, Clock: clock, ReclaimInterval: -1, GhostSlots: 1024, MaxTombstones: 4096}
	s := open(t, cfg)
	keys := keysOf(64)
	var ops []Op
	for i := range 3000 {
		k := keys[r.IntN(len(keys))]
		vv := ver(int64(i/3), 0, uint32(i%3)) // unique
		switch r.IntN(4) {
		case 0:
			ops = append(ops, del(k, vv))
		case 1:
			ops = append(ops, setExp(k, valueOf(k, vv), vv, now+int64(time.Hour)))
		default:
			ops = append(ops, set(k, valueOf(k, vv), vv))
		}
	}
	want := model(ops, keys, now)

	const writers, readers = 4, 2
	orders := make([][]Op, writers)
	for w := range orders {
		orders[w] = arrival(r, ops)
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	var bad atomic.Value
	for w := range writers {
		wg.Go(func() {
			for _, op := range orders[w] {
				s.Apply(op)
			}
		})
	}
	var rwg sync.WaitGroup
	for range readers {
		rwg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				k := keys[i%len(keys)]
				if e, ok := s.Get(k); ok && string(e.Value) != valueOf(k, e.Version) {
					bad.Store(fmt.Sprintf("Get(%s) = %q@%v", k, e.Value, e.Version))
				}
				s.Peek(k)
				s.Tombstone(k)
				if i%200 == 0 {
					s.Snapshot(func(op Op) bool {
						if op.Kind == KindSet && string(op.Value) != valueOf(op.Key, op.Version) {
							bad.Store("Snapshot gave " + fmtOp(op))
						}
						return true
					})
					s.Stats()
					s.DropUnvouched(func(string, Version) bool { return true })
					s.Reclaim()
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	rwg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
	if d := diffStates(keys, stateOf(s, keys), want); d != "" {
		t.Fatalf("concurrent application diverged from the model:%s", d)
	}
}

// TestConcurrentNoGoingBack hammers a small store where everything is
// bounded and everything leaves (evictions, expiry with the clock moving,
// tombstone overflow and horizon, DropUnvouched, Purge) while readers check
// that the version they see of a key never goes back: whatever left, its
// ghost or tombstone must keep every older write out.
func TestConcurrentNoGoingBack(t *testing.T) {
	seedRand := newRand(t)
	clock := testkit.NewClock(epoch)
	cfg := Config{
		MaxEntries: 32, Shards: 2, Clock: clock, ReclaimInterval: -1,
		GhostSlots: 64, MaxTombstones: 8, TombstoneHorizon: 50 * time.Millisecond,
	}
	s := open(t, cfg)
	keys := keysOf(48)
	const writers, readers, opsPerWriter = 3, 2, 20000
	var wg sync.WaitGroup
	var stop atomic.Bool
	var bad atomic.Value
	for w := range writers {
		r := rand.New(rand.NewPCG(seedRand.Uint64(), uint64(w)))
		wg.Go(func() {
			for i := range opsPerWriter {
				k := keys[r.IntN(len(keys))]
				ms := clock.Now().Sub(epoch).Milliseconds() + int64(r.IntN(40)) - 20
				vv := ver(ms, uint16(r.IntN(4)), uint32(w))
				switch r.IntN(10) {
				case 0, 1:
					s.Apply(del(k, vv))
				case 2, 3:
					s.Apply(setExp(k, valueOf(k, vv), vv, clock.UnixNano()+int64(r.IntN(3))*int64(time.Millisecond)))
				default:
					s.Apply(set(k, valueOf(k, vv), vv))
				}
				switch {
				case i%1000 == 999 && w == 0:
					s.Purge()
				case i%300 == 299:
					s.DropUnvouched(func(_ string, vv Version) bool { return vv.Origin != uint32(w) })
				case i%50 == 49:
					clock.Advance(time.Millisecond)
					s.Reclaim()
				}
			}
		})
	}
	var rwg sync.WaitGroup
	for range readers {
		rwg.Go(func() {
			last := make(map[string]Version)
			for i := 0; !stop.Load(); i++ {
				k := keys[i%len(keys)]
				e, ok := s.Get(k)
				if !ok {
					continue
				}
				if string(e.Value) != valueOf(k, e.Version) {
					bad.Store(fmt.Sprintf("Get(%s) = %q@%v", k, e.Value, e.Version))
				}
				if e.Version.Compare(last[k]) < 0 {
					bad.Store(fmt.Sprintf("Get(%s) went back from %v to %v", k, last[k], e.Version))
				}
				last[k] = e.Version
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	rwg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
	st := s.Stats()
	t.Logf("%+v", st)
	if st.Evictions == 0 || st.GhostRefusals == 0 || st.TombstonesDropped == 0 {
		t.Errorf("weak test: nothing was evicted, refused or dropped: %+v", st)
	}
	if s.Len() > 32 || s.Tombstones() > 2*8 { // deletes and expiries: 8 each
		t.Errorf("Len %d, Tombstones %d over the bounds", s.Len(), s.Tombstones())
	}
}

func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are meaningless under -race or -cover")
	}
	s, clock := newStore(t)
	keys := keysOf(500)
	val := []byte("a value of some bytes")
	for _, k := range keys {
		s.Apply(Op{Kind: KindSet, Key: k, Value: val, Version: v(1)})
	}
	s.Apply(setExp("timed", "x", v(1), clock.UnixNano()+int64(time.Hour)))
	i := 0
	next := v(2)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Get", func() { s.Get(keys[i%len(keys)]); i++ }},
		{"Get timed", func() { s.Get("timed") }},
		{"Peek", func() { s.Peek(keys[i%len(keys)]); i++ }},
		{"Apply newer to existing key", func() {
			next.HLC++
			s.Apply(Op{Kind: KindSet, Key: keys[i%len(keys)], Value: val, Version: next})
			i++
		}},
		{"Apply stale", func() { s.Apply(Op{Kind: KindSet, Key: keys[i%len(keys)], Value: val, Version: v(0)}); i++ }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
				t.Errorf("%.1f allocations per call, want 0", n)
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s, _ := newStore(b)
	keys := keysOf(1000)
	for _, k := range keys {
		s.Apply(set(k, "value", v(1)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Get(keys[i%len(keys)])
		i++
	}
}

func BenchmarkApply(b *testing.B) {
	s, _ := newStore(b)
	keys := keysOf(1000)
	val := []byte("value")
	b.ReportAllocs()
	i := 0
	vv := v(1)
	for b.Loop() {
		vv.HLC++
		s.Apply(Op{Kind: KindSet, Key: keys[i%len(keys)], Value: val, Version: vv})
		i++
	}
}
