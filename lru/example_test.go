package lru_test

import (
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/lru"
)

// The example of geocache's original brief: a read makes a key the most
// recently used, so the write of c evicts b, not a.
func Example() {
	c, err := lru.New(lru.Config[string, any]{MaxEntries: 2})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	c.Set("a", 123)
	c.Set("b", map[string]string{"x": "y"})
	fmt.Println(c.Get("a"))
	c.Set("c", []int{1, 2, 3})
	fmt.Println(c.Get("a"))
	fmt.Println(c.Get("b"))
	fmt.Println(c.Get("c"))
	// Output:
	// 123 true
	// 123 true
	// <nil> false
	// [1 2 3] true
}

func ExampleCache_SetWithTTL() {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	c, _ := lru.New(lru.Config[string, string]{Clock: clock})
	defer c.Close()

	c.SetWithTTL("session", "alice", time.Minute)
	ttl, _ := c.TTL("session")
	fmt.Println("ttl:", ttl)

	clock.Advance(time.Minute)
	_, ok := c.Get("session")
	fmt.Println("after a minute:", ok)
	// Output:
	// ttl: 1m0s
	// after a minute: false
}

func ExampleCache_Compute() {
	c, _ := lru.New(lru.Config[string, int]{})
	defer c.Close()

	incr := func(n int, expireAt int64, found bool) (int, int64, lru.Action) {
		return n + 1, expireAt, lru.Store
	}
	c.Compute("hits", incr)
	n, _ := c.Compute("hits", incr)
	fmt.Println(n)
	// Output: 2
}

func ExampleConfig_onEvict() {
	c, _ := lru.New(lru.Config[string, int]{
		MaxEntries: 1,
		OnEvict: func(key string, value int, reason lru.Reason) {
			fmt.Println(key, value, reason)
		},
	})
	defer c.Close()
	c.Set("x", 1)
	c.Set("y", 2)
	c.Delete("y")
	// Output:
	// x 1 evicted
	// y 2 deleted
}
