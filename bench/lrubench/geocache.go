//go:build !nogeocache

package main

import (
	"time"

	"github.com/geocache/geocache/lru"
)

// The geocache adapter. Build with -tags nogeocache to run the peers alone.

func init() {
	factories = append([]factory{{"geocache", "geocache/lru (DefaultTTL)", newGeocache}}, factories...)
}

type geocacheCache struct{ c *lru.Cache[string, []byte] }

func newGeocache(capacity int, ttl time.Duration) (cache, error) {
	c, err := lru.New(lru.Config[string, []byte]{MaxEntries: capacity, DefaultTTL: ttl})
	if err != nil {
		return nil, err
	}
	return geocacheCache{c}, nil
}

func (g geocacheCache) Get(k string) bool {
	_, ok := g.c.Get(k)
	return ok
}
func (g geocacheCache) Set(k string, v []byte) bool { return g.c.Set(k, v) }
func (g geocacheCache) Settle()                     {}
func (g geocacheCache) Close()                      { _ = g.c.Close() }
