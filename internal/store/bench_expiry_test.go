package store

import (
	"strconv"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
)

// BenchmarkApplyExpiring measures writes of entries that expire 100 µs
// later, so that the writes' reclaim steps remove expired entries all the
// time: what an expiry costs the write path (since expired entries leave
// tombstones, a map insert and a heap push under the tombstone table's
// mutex).
// Real clock; keys cycle through 64k names.
func BenchmarkApplyExpiring(b *testing.B) {
	val := []byte("value")
	benchApply(b, 1<<16, "expiries/op", func(st Stats) uint64 { return st.Expirations },
		func(key string, ver Version, now int64) Op {
			return Op{Kind: KindSet, Key: key, Value: val, Version: ver, ExpireAt: now + int64(100*time.Microsecond)}
		})
}

// BenchmarkApplyDelete measures deletes, each of which leaves a tombstone
// under the tombstone table's mutex: keys cycle through 256k names, more
// than the default MaxTombstones, so that once the table is full every
// delete also drops the oldest tombstone into the ghost table. Real clock.
func BenchmarkApplyDelete(b *testing.B) {
	benchApply(b, 1<<18, "drops/op", func(st Stats) uint64 { return st.TombstonesDropped },
		func(key string, ver Version, _ int64) Op { return Op{Kind: KindDelete, Key: key, Version: ver} })
}

// benchApply applies the ops mk makes, serially and from every core, to
// keys cycling through nkeys names (a power of two), with versions from the
// real clock, and reports count per op as unit.
func benchApply(b *testing.B, nkeys int, unit string, count func(Stats) uint64, mk func(key string, ver Version, now int64) Op) {
	for _, par := range []bool{false, true} {
		name := "serial"
		if par {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(Config{MaxEntries: 1 << 20, ReclaimInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			keys := make([]string, nkeys)
			for i := range keys {
				keys[i] = "key:" + strconv.Itoa(i)
			}
			write := func(i int) {
				now := time.Now().UnixNano()
				ver := Version{HLC: hlc.MakeTimestamp(now/int64(time.Millisecond), uint16(i)), Origin: uint32(i>>16) + 1}
				s.Apply(mk(keys[i&(nkeys-1)], ver, now))
			}
			b.ReportAllocs()
			if !par {
				i := 0
				for b.Loop() {
					write(i)
					i++
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					i := int(time.Now().UnixNano())
					for pb.Next() {
						write(i)
						i++
					}
				})
			}
			b.ReportMetric(float64(count(s.Stats()))/float64(b.N), unit)
		})
	}
}
