package main

import (
	"fmt"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	hlru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/maypok86/otter/v2"
)

// cache is what the harness drives. Every adapter pays the same interface
// dispatch on each call, so it cancels out of the comparisons.
type cache interface {
	// Get reports whether key is resident.
	Get(key string) bool
	// Set stores key; it reports false when the library says it dropped the
	// write (only ristretto does).
	Set(key string, value []byte) bool
	// Settle waits until writes already made are visible (ristretto's Wait,
	// otter's CleanUp); a no-op for synchronous caches.
	Settle()
	// Close releases the cache's goroutines and, where it cannot stop them,
	// its entries.
	Close()
}

// factory builds one kind of cache with room for capacity entries and, where
// the library supports expiry, a write TTL of ttl.
type factory struct {
	id   string // -caches name
	name string // printed name
	new  func(capacity int, ttl time.Duration) (cache, error)
}

// factories lists the caches in print order; geocache's adapter prepends
// itself from geocache.go.
var factories = []factory{
	{"otter", "otter/v2 (ExpiryWriting)", newOtter},
	{"ristretto", "ristretto/v2 (SetWithTTL)", newRistretto},
	{"hashicorp", "golang-lru/v2 (no TTL)", newHashicorp},
	{"expirable", "golang-lru/v2 expirable", newExpirable},
}

// --- otter v2 -------------------------------------------------------------

type otterCache struct{ c *otter.Cache[string, []byte] }

func newOtter(capacity int, ttl time.Duration) (cache, error) {
	c, err := otter.New(&otter.Options[string, []byte]{
		MaximumSize:      capacity,
		ExpiryCalculator: otter.ExpiryWriting[string, []byte](ttl),
	})
	if err != nil {
		return nil, err
	}
	return otterCache{c}, nil
}

func (o otterCache) Get(k string) bool {
	_, ok := o.c.GetIfPresent(k)
	return ok
}
func (o otterCache) Set(k string, v []byte) bool { o.c.Set(k, v); return true }
func (o otterCache) Settle()                     { o.c.CleanUp() }
func (o otterCache) Close()                      { o.c.StopAllGoroutines() }

// --- ristretto v2 ---------------------------------------------------------

type ristrettoCache struct {
	c   *ristretto.Cache[string, []byte]
	ttl time.Duration
}

func newRistretto(capacity int, ttl time.Duration) (cache, error) {
	// Per ristretto's README: NumCounters 10x the number of items, BufferItems
	// 64. Cost is 1 per item so MaxCost is the entry capacity; that needs
	// IgnoreInternalCost, otherwise every item is also charged ~ristretto's
	// internal item size and the cache would hold only a few thousand items.
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters:        10 * int64(capacity),
		MaxCost:            int64(capacity),
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return ristrettoCache{c, ttl}, nil
}

func (r ristrettoCache) Get(k string) bool {
	_, ok := r.c.Get(k)
	return ok
}
func (r ristrettoCache) Set(k string, v []byte) bool { return r.c.SetWithTTL(k, v, 1, r.ttl) }
func (r ristrettoCache) Settle()                     { r.c.Wait() }
func (r ristrettoCache) Close()                      { r.c.Close() }

// --- hashicorp golang-lru v2 (locked, no expiry) --------------------------

type hashicorpCache struct{ c *hlru.Cache[string, []byte] }

func newHashicorp(capacity int, _ time.Duration) (cache, error) {
	c, err := hlru.New[string, []byte](capacity)
	if err != nil {
		return nil, err
	}
	return hashicorpCache{c}, nil
}

func (h hashicorpCache) Get(k string) bool {
	_, ok := h.c.Get(k)
	return ok
}
func (h hashicorpCache) Set(k string, v []byte) bool { h.c.Add(k, v); return true }
func (h hashicorpCache) Settle()                     {}
func (h hashicorpCache) Close()                      { h.c.Purge() }

// --- hashicorp golang-lru v2 expirable ------------------------------------

type expirableCache struct {
	c *expirable.LRU[string, []byte]
}

func newExpirable(capacity int, ttl time.Duration) (cache, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("expirable needs a positive TTL")
	}
	return expirableCache{expirable.NewLRU[string, []byte](capacity, nil, ttl)}, nil
}

func (e expirableCache) Get(k string) bool {
	_, ok := e.c.Get(k)
	return ok
}
func (e expirableCache) Set(k string, v []byte) bool { e.c.Add(k, v); return true }
func (e expirableCache) Settle()                     {}

// Close purges: expirable.LRU has no Close and its sweeper goroutine never
// exits (see its source), so the instance stays reachable; purging at least
// frees the entries so later measurements do not carry them.
func (e expirableCache) Close() { e.c.Purge() }
