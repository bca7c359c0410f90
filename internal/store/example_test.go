package store_test

import (
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
)

var start = time.Unix(1_700_000_000, 0)

// version returns the version of a write made ms milliseconds after start
// on node origin.
func version(ms int64, origin uint32) store.Version {
	return store.Version{HLC: hlc.MakeTimestamp(start.UnixMilli()+ms, 0), Origin: origin}
}

// Writes merge by last-writer-wins on their versions, whatever order they
// arrive in; a delete leaves a tombstone that keeps older writes out.
func Example() {
	s, err := store.Open(store.Config{Clock: testkit.NewClock(start), ReclaimInterval: -1})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	fmt.Println(s.Apply(store.Op{Kind: store.KindSet, Key: "color", Value: []byte("red"), Version: version(10, 1)}))
	fmt.Println(s.Apply(store.Op{Kind: store.KindSet, Key: "color", Value: []byte("blue"), Version: version(5, 2)}))
	e, _ := s.Get("color")
	fmt.Printf("%s %v\n", e.Value, e.Version)

	fmt.Println(s.Apply(store.Op{Kind: store.KindDelete, Key: "color", Version: version(20, 2)}))
	fmt.Println(s.Apply(store.Op{Kind: store.KindSet, Key: "color", Value: []byte("green"), Version: version(15, 1)}))
	_, ok := s.Get("color")
	fmt.Println(ok)
	// Output:
	// applied
	// stale
	// red 1700000000010.0@1
	// applied
	// stale
	// false
}

// The classic case of a late write: a newer write with a short TTL expires
// and is reclaimed; then an older write without TTL arrives late. The
// expired write left a tombstone of its version, which keeps the older
// value out (and which anti-entropy sends to regions that still hold it).
func ExampleStore_Apply_expired() {
	clock := testkit.NewClock(start)
	s, _ := store.Open(store.Config{Clock: clock, ReclaimInterval: -1})
	defer s.Close()

	newer := store.Op{Kind: store.KindSet, Key: "k", Value: []byte("new"), Version: version(2, 1),
		ExpireAt: clock.Now().Add(time.Second).UnixNano()}
	older := store.Op{Kind: store.KindSet, Key: "k", Value: []byte("old"), Version: version(1, 2)}

	fmt.Println(s.Apply(newer))
	clock.Advance(2 * time.Second)
	s.Reclaim()
	fmt.Println(s.Len(), s.Tombstones())
	fmt.Println(s.Apply(older))
	// Output:
	// applied
	// 0 1
	// stale
}

// An evicted entry leaves only a ghost: its version in a slot of a hashed
// table, which refuses older writes of every key in the slot.
func ExampleStore_Apply_ghost() {
	s, _ := store.Open(store.Config{Clock: testkit.NewClock(start), MaxEntries: 1, Shards: 1, ReclaimInterval: -1})
	defer s.Close()

	fmt.Println(s.Apply(store.Op{Kind: store.KindSet, Key: "k", Value: []byte("new"), Version: version(2, 1)}))
	fmt.Println(s.Apply(store.Op{Kind: store.KindSet, Key: "other", Value: []byte("x"), Version: version(3, 1)}))
	fmt.Println(s.Apply(store.Op{Kind: store.KindSet, Key: "k", Value: []byte("old"), Version: version(1, 2)}))
	// Output:
	// applied
	// applied
	// refused
}

// A full sync: the snapshot of one store, applied to another, reproduces
// its entries and tombstones.
func ExampleStore_Snapshot() {
	a, _ := store.Open(store.Config{Clock: testkit.NewClock(start), ReclaimInterval: -1})
	defer a.Close()
	a.Apply(store.Op{Kind: store.KindSet, Key: "x", Value: []byte("1"), Version: version(1, 1)})
	a.Apply(store.Op{Kind: store.KindDelete, Key: "y", Version: version(2, 1)})

	b, _ := store.Open(store.Config{Clock: testkit.NewClock(start), ReclaimInterval: -1})
	defer b.Close()
	a.Snapshot(func(op store.Op) bool {
		fmt.Println(op.Kind, op.Key, b.Apply(op))
		return true
	})
	_, tomb := b.Tombstone("y")
	fmt.Println(b.Len(), tomb)
	// Output:
	// set x applied
	// delete y applied
	// 1 true
}
