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
// tombstones, a map insert and a heap push under the key's tombstone
// shard mutex).
// Real clock; keys cycle through 64k names.
func BenchmarkApplyExpiring(b *testing.B) {
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
			keys := make([]string, 1<<16)
			for i := range keys {
				keys[i] = "key:" + strconv.Itoa(i)
			}
			val := []byte("value")
			write := func(i int) {
				now := time.Now().UnixNano()
				ver := Version{HLC: hlc.MakeTimestamp(now/int64(time.Millisecond), uint16(i)), Origin: uint32(i>>16) + 1}
				s.Apply(Op{Kind: KindSet, Key: keys[i&(len(keys)-1)], Value: val, Version: ver, ExpireAt: now + int64(100*time.Microsecond)})
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
			b.ReportMetric(float64(s.Stats().Expirations)/float64(b.N), "expiries/op")
		})
	}
}

// BenchmarkApplyDelete measures deletes, each of which leaves a tombstone
// under the tombstone lock of its key: keys cycle through 256k names, more
// than the default MaxTombstones, so that once the table is full every
// delete also drops the oldest tombstone into the ghost table. Real clock.
func BenchmarkApplyDelete(b *testing.B) {
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
			keys := make([]string, 1<<18)
			for i := range keys {
				keys[i] = "key:" + strconv.Itoa(i)
			}
			write := func(i int) {
				now := time.Now().UnixNano()
				ver := Version{HLC: hlc.MakeTimestamp(now/int64(time.Millisecond), uint16(i)), Origin: uint32(i>>16) + 1}
				s.Apply(Op{Kind: KindDelete, Key: keys[i&(len(keys)-1)], Version: ver})
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
			b.ReportMetric(float64(s.Stats().TombstonesDropped)/float64(b.N), "drops/op")
		})
	}
}
