package main

import (
	"fmt"
	"os"
	"runtime"
	"text/tabwriter"
)

// runMemory measures each cache's own heap per entry at o.memEntries entries.
//
// Keys (16-byte strings) and values (distinct 64-byte slices) are allocated
// before the baseline is read, so the delta holds only what the cache itself
// allocates: maps, nodes, the key and slice headers it stores, policy state.
// A cache that copied key or value bytes would show that in the delta too.
func runMemory(o options, d *data) {
	n := o.memEntries
	keys := d.keys
	if n > len(keys) {
		keys = make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%016d", i)
		}
	}
	keys = keys[:n]
	backing := make([]byte, n*valueSize)
	vals := make([][]byte, n)
	for i := range vals {
		vals[i] = backing[i*valueSize : (i+1)*valueSize : (i+1)*valueSize]
		vals[i][0] = byte(i)
	}

	fmt.Printf("== memory per entry: capacity %d, %d Sets of distinct keys, GOMAXPROCS=%d\n", n, n, runtime.GOMAXPROCS(0))
	fmt.Printf("   method: keys (%d B strings) and values (%d B slices) allocated before the baseline;\n", len(keys[0]), valueSize)
	fmt.Printf("   runtime.GC x2 + HeapAlloc before New; Set all; Settle; runtime.GC x2 + HeapAlloc after.\n")
	fmt.Printf("   overhead/entry = (after-before)/%d = the cache's own bytes per entry (key+value bytes, 80 B, excluded).\n", n)
	fmt.Printf("   resident = keys found by Get afterwards (ristretto may drop or reject Sets; ristretto stores key hashes, not keys).\n")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cache\t overhead B/entry\t with key+value B/entry\t resident\t B/resident entry\t dropped Sets\t")
	for _, f := range o.caches {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := f.new(n, o.ttl)
		if err != nil {
			fmt.Fprintf(tw, "%s\t FAILED: %v\t\t\t\t\t\n", f.name, err)
			continue
		}
		dropped := 0
		for i, k := range keys {
			// ristretto's Set is asynchronous and returns false when its
			// buffer is full; let it drain and retry so the entry count is
			// the same for every cache. Retries are counted.
			for try := 0; !c.Set(k, vals[i]) && try < 100; try++ {
				dropped++
				c.Settle()
			}
		}
		c.Settle()
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		resident := 0
		for _, k := range keys {
			if c.Get(k) {
				resident++
			}
		}
		c.Close()
		delta := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		perRes := "-"
		if resident > 0 {
			perRes = fmt.Sprintf("%.1f", delta/float64(resident))
		}
		fmt.Fprintf(tw, "%s\t %.1f\t %.1f\t %d\t %s\t %d\t\n", f.name, delta/float64(n), delta/float64(n)+80, resident, perRes, dropped)
	}
	tw.Flush()
	runtime.KeepAlive(backing)
	runtime.KeepAlive(keys)
	fmt.Println()
}
