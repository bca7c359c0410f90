package geocache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSetAllIfAbsentAllOrNothing races SetAllIfAbsent calls whose key sets
// overlap, released together: afterwards each call's keys all hold its
// values (it reported true) or none do (false), and exactly one wins.
func TestSetAllIfAbsentAllOrNothing(t *testing.T) {
	n, err := Open(SingleNode(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d"}
	const callers = 4
	for round := range 500 {
		for _, k := range keys {
			n.Delete(ctx, k)
		}
		won := make([]bool, callers)
		mine := func(i int) []string { return []string{keys[i], keys[(i+1)%4], keys[(i+2)%4]} }
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			kvs := map[string][]byte{}
			for _, k := range mine(i) {
				kvs[k] = []byte(fmt.Sprint(i))
			}
			wg.Go(func() {
				<-start
				ok, err := n.SetAllIfAbsent(ctx, kvs)
				if err != nil {
					t.Error(err)
				}
				won[i] = ok
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i := range callers {
			held := 0
			for _, k := range mine(i) {
				if v, err := n.Get(k); err == nil && string(v) == fmt.Sprint(i) {
					held++
				}
			}
			if (won[i] && held != 3) || (!won[i] && held != 0) {
				t.Fatalf("round %d: caller %d reported %v and holds %d of its 3 keys", round, i, won[i], held)
			}
			if won[i] {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d callers won; want 1 (any two share a key)", round, wins)
		}
	}
}

func TestRenameCopyErrors(t *testing.T) {
	n, err := Open(SingleNode(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if err := n.Rename(ctx, "nosuch", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rename of a missing key = %v; want ErrNotFound", err)
	}
	if _, err := n.Copy(ctx, "k", "k", true); !errors.Is(err, ErrSameKey) {
		t.Fatalf("Copy onto itself = %v; want ErrSameKey", err)
	}
	if err := n.Set(ctx, "k", []byte("v"), WithTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := n.Rename(ctx, "k", string(make([]byte, MaxKeyBytes+1))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Rename to an oversized key = %v; want ErrTooLarge", err)
	}
	if _, err := n.Get("k"); err != nil {
		t.Fatalf("a failed Rename removed the source: %v", err)
	}
	if ok, err := n.RenameIfAbsent(ctx, "k", "k2"); !ok || err != nil {
		t.Fatalf("RenameIfAbsent = %v, %v", ok, err)
	}
	if ttl, err := n.TTL("k2"); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL after rename = %v, %v; want the source's", ttl, err)
	}
}

// TestUpdateReadModifyWriteLosesNothing: goroutines add one to a value with
// Update at once; every Update that reported success is in the final
// value. A version is taken before the key's lock, so another goroutine's
// write with a newer one can reach the key first; an Update that then
// wrote nothing must not report success. On a loaded machine an Update
// may lose every attempt (ErrContended): it wrote nothing, and is not
// counted.
func TestUpdateReadModifyWriteLosesNothing(t *testing.T) {
	n, err := Open(SingleNode(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	const workers, each = 4, 300
	var wg sync.WaitGroup
	var done, contended atomic.Int64
	for range workers {
		wg.Go(func() {
			for range each {
				_, _, err := n.Update(ctx, "n", func(cur Item, found bool) Change {
					v := 0
					if found {
						fmt.Sscan(string(cur.Value), &v)
					}
					return Change{Action: Put, Value: []byte(fmt.Sprint(v + 1))}
				})
				switch {
				case err == nil:
					done.Add(1)
				case errors.Is(err, ErrContended):
					contended.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	v, err := n.Get("n")
	if err != nil {
		t.Fatal(err)
	}
	if done.Load() == 0 || string(v) != fmt.Sprint(done.Load()) {
		t.Fatalf("after %d successful increments (%d contended) the value is %s", done.Load(), contended.Load(), v)
	}
}
