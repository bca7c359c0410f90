package geocache

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/lru"
)

// The embedded path's cost over the lru engine (issue 12): Node.Set and
// Node.Get against the engine's Set and Get on the same Zipf keys, in
// parallel. bench/lrubench measures the same side by side with the
// machine's load reported; these are for profiling one change at a time:
//
//	go test -run '^$' -bench 'Embedded' -cpu 2 -count 5 .

const (
	benchKeyCount = 200_000
	benchCapacity = 100_000
	benchStream   = 1 << 20 // a power of two
)

var benchData = sync.OnceValues(benchZipf)

func benchPrefill(set func(string, []byte)) {
	keys, stream := benchData()
	val := make([]byte, 64)
	for _, k := range stream[:benchStream/4] {
		set(keys[k], val)
	}
}

func benchZipf() ([]string, []int32) {
	keys := make([]string, benchKeyCount)
	for i := range keys {
		keys[i] = fmt.Sprintf("%016d", i)
	}
	z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.01, 1, benchKeyCount-1)
	stream := make([]int32, benchStream)
	for i := range stream {
		stream[i] = int32(z.Uint64())
	}
	return keys, stream
}

// benchOps runs get and set in parallel over the Zipf stream, one Set
// every writeEvery ops (0: Gets only). The caller prefills with
// benchPrefill once: b.Run calls its function once per b.N tried.
func benchOps(b *testing.B, writeEvery int, get func(string), set func(string, []byte)) {
	keys, stream := benchData()
	val := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.Intn(len(stream))
		phase := 0
		for pb.Next() {
			k := keys[stream[i&(len(stream)-1)]]
			i++
			if phase++; phase == writeEvery {
				phase = 0
				set(k, val)
			} else {
				get(k)
			}
		}
	})
}

var benchMixes = []struct {
	name       string
	writeEvery int
}{{"read", 0}, {"90-10", 10}, {"50-50", 2}, {"write", 1}}

func BenchmarkEmbeddedEngine(b *testing.B) {
	for _, m := range benchMixes {
		c, err := lru.New(lru.Config[string, []byte]{MaxEntries: benchCapacity, DefaultTTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		get, set := func(k string) { c.Get(k) }, func(k string, v []byte) { c.Set(k, v) }
		benchPrefill(set)
		b.Run(m.name, func(b *testing.B) { benchOps(b, m.writeEvery, get, set) })
		c.Close()
	}
}

func BenchmarkEmbeddedNode(b *testing.B) {
	ctx := context.Background()
	for _, m := range benchMixes {
		n, err := Open(Config{MaxEntries: benchCapacity, DefaultTTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		get, set := func(k string) { _, _ = n.Get(k) }, func(k string, v []byte) { _ = n.Set(ctx, k, v) }
		benchPrefill(set)
		b.Run(m.name, func(b *testing.B) { benchOps(b, m.writeEvery, get, set) })
		n.Close()
	}
}

// TestEmbeddedAllocs: on a single node with keyspace notifications off, a
// Set allocates only its value's copy, whether it replaces an entry or
// evicts one; a Get only the copy it returns; GetShared nothing.
func TestEmbeddedAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are meaningless under -race or -cover")
	}
	n, err := Open(Config{MaxEntries: 100, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%04d", i)
	}
	val := make([]byte, 64)
	for _, k := range keys[:100] {
		if err := n.Set(ctx, k, val); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	for _, tt := range []struct {
		name string
		fn   func()
		want float64
	}{
		{"Set of a stored key", func() { _ = n.Set(ctx, keys[i%100], val); i++ }, 1},
		{"Set that evicts", func() { _ = n.Set(ctx, keys[100+i%900], val); i++ }, 1},
		{"Get", func() { _, _ = n.Get("hot") }, 1},
		{"GetShared", func() { _, _ = n.GetShared("hot") }, 0},
	} {
		if err := n.Set(ctx, "hot", val); err != nil {
			t.Fatal(err)
		}
		if got := testing.AllocsPerRun(1000, tt.fn); got != tt.want {
			t.Errorf("%s: %.2f allocations, want %v", tt.name, got, tt.want)
		}
	}
}
