package lru

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// These micro-benchmarks profile the engine alone; the side-by-side
// comparison with other caches lives in bench/ (its own module).

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%016d", i)
	}
	return keys
}

func zipfStream(n, keys int) []int32 {
	z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.01, 1, uint64(keys-1))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(z.Uint64())
	}
	return out
}

func BenchmarkGetHit(b *testing.B) {
	keys := benchKeys(100_000)
	c, _ := New(Config[string, []byte]{MaxEntries: 100_000, DefaultTTL: time.Hour})
	defer c.Close()
	val := make([]byte, 64)
	for _, k := range keys {
		c.Set(k, val)
	}
	stream := zipfStream(1<<20, len(keys))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.Intn(len(stream))
		for pb.Next() {
			c.Get(keys[stream[i&(len(stream)-1)]])
			i++
		}
	})
}

func BenchmarkSetExisting(b *testing.B) {
	keys := benchKeys(100_000)
	c, _ := New(Config[string, []byte]{MaxEntries: 100_000, DefaultTTL: time.Hour})
	defer c.Close()
	val := make([]byte, 64)
	for _, k := range keys {
		c.Set(k, val)
	}
	stream := zipfStream(1<<20, len(keys))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.Intn(len(stream))
		for pb.Next() {
			c.Set(keys[stream[i&(len(stream)-1)]], val)
			i++
		}
	})
}

func BenchmarkCacheAside(b *testing.B) {
	keys := benchKeys(1_000_000)
	c, _ := New(Config[string, []byte]{MaxEntries: 100_000, DefaultTTL: time.Hour})
	defer c.Close()
	val := make([]byte, 64)
	stream := zipfStream(1<<22, len(keys))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.Intn(len(stream))
		for pb.Next() {
			k := keys[stream[i&(len(stream)-1)]]
			if _, ok := c.Get(k); !ok {
				c.Set(k, val)
			}
			i++
		}
	})
}
