//go:build !nogeocache

package main

import (
	"context"
	"time"

	"github.com/geocache/geocache"
)

// The embedded node: geocache.Node's Get and Set on a single node, the
// versioning, the replication log and the copies on top of the lru engine
// that the "geocache" adapter measures bare (issue 12: the node's cost over
// the engine, goal at most 2x). Run both: -caches geocache,geocache-node.

func init() {
	factories = append(factories, factory{"geocache-node", "geocache.Node (single node: versioned, logged, values copied)", newNode})
}

type nodeCache struct{ n *geocache.Node }

func newNode(capacity int, ttl time.Duration) (cache, error) {
	n, err := geocache.Open(geocache.Config{MaxEntries: capacity, DefaultTTL: ttl})
	if err != nil {
		return nil, err
	}
	return nodeCache{n}, nil
}

var bg = context.Background()

func (c nodeCache) Get(k string) bool {
	_, err := c.n.Get(k)
	return err == nil
}
func (c nodeCache) Set(k string, v []byte) bool { return c.n.Set(bg, k, v) == nil }
func (c nodeCache) Settle()                     {}
func (c nodeCache) Close()                      { _ = c.n.Close() }
