package lru

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Resize may run while other goroutines write and read: under -race this
// fails if Resize changes what a concurrent Set reads without
// synchronisation (it did for the largest entry size once).
func TestResizeUnderConcurrentWrites(t *testing.T) {
	c, err := New(Config[string, []byte]{MaxBytes: 1 << 20, Shards: 4,
		Size: func(k string, v []byte) int64 { return int64(len(k) + len(v)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			val := make([]byte, 100)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := strconv.Itoa(g) + ":" + strconv.Itoa(i%5000)
				c.Set(k, val)
				c.Get(k)
				_ = c.MaxEntrySize()
				writes.Add(1)
			}
		})
	}
	for i := range 200 {
		// Each Resize runs while the writers are writing.
		for w := writes.Load(); writes.Load() < w+10; {
			runtime.Gosched()
		}
		size := int64(256<<10) << (i % 3)
		if err := c.Resize(0, size); err != nil {
			t.Fatalf("Resize(%d): %v", size, err)
		}
		if got, want := c.MaxEntrySize(), c.maxEntrySize(); got != want {
			t.Fatalf("MaxEntrySize %d after Resize(%d), want %d", got, size, want)
		}
	}
	close(stop)
	wg.Wait()
	if b := c.Bytes(); b > 1<<20 {
		t.Errorf("%d bytes held after resizing to at most 1 MiB", b)
	}
}
