package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/geocache/geocache/lru"
)

// demo narrates what the engine does today: LRU order, the byte budget and
// expiry. The multi-region part joins it when replication lands.
func demo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	ttl := fs.Duration("ttl", 300*time.Millisecond, "time to live of the expiring entry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Fprintf(out, "  "+format+"\n", a...) }

	fmt.Fprintln(out, "geocache demo — the local engine (replication across regions is not built yet)")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "1. LRU order: capacity 2; set a, set b, get a, set c")
	c, err := lru.New(lru.Config[string, any]{MaxEntries: 2})
	if err != nil {
		return err
	}
	defer c.Close()
	c.Set("a", 123)
	c.Set("b", map[string]string{"x": "y"})
	c.Get("a")
	c.Set("c", []int{1, 2, 3})
	for _, k := range []string{"a", "b", "c"} {
		v, ok := c.Get(k)
		step("get %s  -> %-10s present=%v", k, fmt.Sprint(v), ok)
	}
	step("b was least recently used, so it was evicted")

	fmt.Fprintln(out)
	fmt.Fprintln(out, "2. Memory budget: 64 KiB of 1 KiB values")
	b, err := lru.New(lru.Config[string, []byte]{MaxBytes: 64 << 10})
	if err != nil {
		return err
	}
	defer b.Close()
	val := make([]byte, 1024)
	for i := range 1000 {
		b.Set(fmt.Sprintf("k%04d", i), val)
	}
	st := b.Stats()
	step("wrote 1000 entries; holding %d in %d bytes (budget %d); %d evicted",
		b.Len(), b.Bytes(), 64<<10, st.Evictions)
	step("each entry is charged its bytes plus %d bytes of engine overhead", b.EntryOverhead())

	fmt.Fprintln(out)
	fmt.Fprintf(out, "3. Expiry: set session with a TTL of %v\n", *ttl)
	t, err := lru.New(lru.Config[string, string]{})
	if err != nil {
		return err
	}
	defer t.Close()
	start := time.Now()
	t.SetWithTTL("session", "alice", *ttl)
	left, _ := t.TTL("session")
	step("ttl now: %v", left.Round(time.Millisecond))
	for {
		if _, ok := t.Get("session"); !ok {
			step("gone after %v (never served after its expiry)", time.Since(start).Round(time.Millisecond))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
