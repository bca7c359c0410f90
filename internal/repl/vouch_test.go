package repl

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// ghostMate returns a key other than key, with a prefix, in the same slot
// of the tombstone-ghost table (store.GhostCovers).
func ghostMate(key, prefix string) string {
	n := store.DefaultGhostSlots
	lo, hi := 0, n // binary search for key's slot through GhostCovers
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		t := make([]uint64, n)
		for i := lo; i < mid; i++ {
			t[i] = math.MaxUint64
		}
		if store.GhostCovers(t, key, 1) {
			hi = mid
		} else {
			lo = mid
		}
	}
	one := make([]uint64, n)
	one[lo] = math.MaxUint64
	for i := 0; ; i++ {
		if k := fmt.Sprint(prefix, i); store.GhostCovers(one, k, 1) && k != key {
			return k
		}
	}
}

// slotsOf is a wire slot set of the slots of keys.
func slotsOf(keys ...string) []byte {
	set := make([]byte, wire.SlotSetLen)
	for _, k := range keys {
		s := cluster.KeySlot(k)
		set[s>>3] |= 1 << (s & 7)
	}
	return set
}

// slotsExcept is a wire slot set of every slot but those of keys.
func slotsExcept(keys ...string) []byte {
	set := make([]byte, wire.SlotSetLen)
	for i := range set {
		set[i] = 0xff
	}
	for _, k := range keys {
		s := cluster.KeySlot(k)
		set[s>>3] &^= 1 << (s & 7)
	}
	return set
}

// A full sync's drop rule judges only the keys of the slots its sender
// vouches for: a node that keeps part of the keyspace, whose tombstone
// ghosts cover a key of a slot it does not keep, must not make the
// receiver drop that key (the receiver's co-owner holds it). Sent with
// every key vouched for, the same snapshot drops it: the rule at work.
func TestFullSyncDropsOnlyVouchedSlots(t *testing.T) {
	for _, vouch := range []bool{true, false} {
		t.Run(fmt.Sprint("vouched slots ", vouch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				mine := "mine1"
				other := ghostMate(mine, "other")
				var all atomic.Bool
				keepsB := func(key string) bool { return all.Load() || key == mine }
				keepsC := func(key string) bool { return key != mine }
				cfgC := Config{NodeID: 3, Peers: []string{"a", "b"}, Keeps: keepsC}
				if vouch {
					cfgC.Vouched = func() []byte { return slotsExcept(mine) }
				}
				b := startTestNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a", "c"}, Keeps: keepsB}, true)
				a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b", "c"}}, true)
				c := startTestNode(t, mem, "c", cfgC, true)
				ctx := context.Background()
				time.Sleep(time.Second)
				synctest.Wait()

				a.put(t, mine, "v1")
				if err := a.r.Drain(ctx); err != nil {
					t.Fatal(err)
				}
				// c deletes a key of its own slots that shares mine1's
				// ghost slot, and its tombstone becomes a ghost (as past
				// the horizon or over the bound): newer than mine1.
				c.put(t, other, "v")
				ts, err := c.clock.Now()
				if err != nil {
					t.Fatal(err)
				}
				del := store.Op{Kind: store.KindDelete, Key: other, Version: store.Version{HLC: ts, Origin: c.id}}
				c.st.Apply(del)
				c.r.Append(del)
				if err := c.r.Drain(ctx); err != nil {
					t.Fatal(err)
				}
				c.st.Purge()
				if b.value(mine) != "v1" {
					t.Fatal("b does not hold mine1 before the resync")
				}
				all.Store(true)
				<-b.r.Resync()
				if got := b.value(mine); vouch && got != "v1" {
					t.Fatalf("b lost %s to the full sync of c, which does not keep its slot: %q", mine, got)
				} else if !vouch && got != "" {
					t.Fatalf("c vouching for every key, its ghosts did not drop %s (%q): the test shows nothing", mine, got)
				}
			})
		})
	}
}

// An origin whose stream is down at the call but whose peer this node's
// link reaches is waited for: Resync is not done before its full sync.
func TestResyncWaitsForAnOriginReconnecting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var all atomic.Bool
		keeps := func(key string) bool { return all.Load() || strings.HasPrefix(key, "mine") }
		mem, a, b := linkedPair(t, Config{}, Config{Keeps: keeps})
		ctx := context.Background()
		a.put(t, "other1", "v1")
		if err := a.r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if b.has("other1") {
			t.Fatal("b kept a key it does not keep")
		}
		mem.Reset("a", "b") // a blip: both directions reconnect soon
		synctest.Wait()
		all.Store(true)
		<-b.r.Resync()
		if b.value("other1") != "v1" {
			t.Fatalf("Resync done before a's full sync: b holds other1=%q", b.value("other1"))
		}
	})
}

// A full sync asked for with a set of wanted slots carries only their
// keys: a Resync fills what the node came to keep, not what it holds.
func TestFullSyncCarriesTheWantedSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fills atomic.Int32
		wanted := func(fill bool) []byte {
			if !fill {
				return nil // the first sync: every key
			}
			fills.Add(1)
			return slotsExcept("x1") // every slot but x1's
		}
		_, a, b := linkedPair(t, Config{}, Config{Wanted: wanted})
		ctx := context.Background()
		a.put(t, "w1", "v")
		a.put(t, "x1", "v")
		if err := a.r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		b.st.Forget(func(string) bool { return true }) // b holds neither now
		<-b.r.Resync()
		if fills.Load() != 1 {
			t.Fatalf("Wanted asked %d times to fill; want 1", fills.Load())
		}
		if b.value("w1") != "v" || b.has("x1") {
			t.Fatalf("after a full sync of every slot but x1's: w1=%q, x1 held %v", b.value("w1"), b.has("x1"))
		}
	})
}
