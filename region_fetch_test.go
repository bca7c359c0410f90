package geocache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
)

// nonOwner returns the node of nodes that does not own key's slot, and a
// primary owner of it.
func nonOwner(t *testing.T, key string, nodes ...*Node) (other, owner *Node) {
	t.Helper()
	m, _ := nodes[0].SlotMap()
	slot := cluster.KeySlot(key)
	for _, n := range nodes {
		switch {
		case !m.Owns(n.id, slot):
			other = n
		case m.Primary(slot).ID == n.id:
			owner = n
		}
	}
	if other == nil || owner == nil {
		t.Fatalf("key %s: no node without its slot, or no primary, in %v", key, m.Owners(slot))
	}
	return other, owner
}

// With SlotsOnly any node answers any read through the embedded API: a key
// of a slot it does not keep is read from an owner (strings, hashes,
// counters, expiry, absence), and a read-modify-write of one starts from
// the owner's state.
func TestRegionReadsFromOwners(t *testing.T) {
	a, b, c, _ := slotsOnlyRegion(t)
	nodes := []*Node{a, b, c}
	ctx := context.Background()

	const keys = 300
	for i := range keys {
		_, owner := nonOwner(t, userKey(i), nodes...)
		if err := owner.Set(ctx, userKey(i), []byte(fmt.Sprint("v", i)), WithTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range keys {
		k := userKey(i)
		other, _ := nonOwner(t, k, nodes...)
		testkit.Eventually(t, "the owners applied "+k, func() bool {
			for _, n := range nodes {
				if n != other && !n.Contains(k) {
					return false
				}
			}
			return true
		})
		got, err := other.Get(k)
		if err != nil || string(got) != fmt.Sprint("v", i) {
			t.Fatalf("Get %s at node %d, which does not keep it: %q, %v", k, other.id, got, err)
		}
		if ttl, err := other.TTL(k); err != nil || ttl <= 0 || ttl > time.Hour {
			t.Fatalf("TTL %s at node %d: %v, %v", k, other.id, ttl, err)
		}
		if _, err := other.store.Peek(k); err {
			t.Fatalf("node %d keeps %s after reading it", other.id, k)
		}
	}
	var owned uint64
	for _, n := range nodes {
		owned += n.Stats().RegionNodes.OwnerReads
	}
	if owned < 2*keys {
		t.Errorf("%d reads answered by owners; want at least %d", owned, 2*keys)
	}

	// Absent keys, hashes and counters.
	h, hOwner := nonOwner(t, "profile", nodes...)
	if _, err := h.Get("profile"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an absent key: %v; want ErrNotFound", err)
	}
	if _, err := hOwner.HSet(ctx, "profile", []Field{{Name: []byte("name"), Value: []byte("ann")}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the hash read at a node that does not keep it", func() bool {
		v, err := h.HGet("profile", "name")
		return err == nil && string(v) == "ann"
	})
	if typ, ok := h.Type("profile"); !ok || typ != TypeHash {
		t.Errorf("Type of the hash at node %d: %v, %v", h.id, typ, ok)
	}
	if _, err := h.Get("profile"); !errors.Is(err, ErrWrongType) {
		t.Errorf("Get of a hash at node %d: %v; want ErrWrongType", h.id, err)
	}

	cn, cOwner := nonOwner(t, "hits", nodes...)
	if _, err := cOwner.IncrBy(ctx, "hits", 41); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the counter read at a node that does not keep it", func() bool {
		v, err := cn.Get("hits")
		return err == nil && string(v) == "41"
	})
	if v, err := cn.IncrBy(ctx, "hits", 1); err != nil || v != 42 {
		t.Errorf("IncrBy at node %d, which does not keep the counter: %d, %v; want 42", cn.id, v, err)
	}
	testkit.Eventually(t, "the increment made elsewhere reaches the owner", func() bool {
		v, err := cOwner.Get("hits")
		return err == nil && string(v) == "42"
	})

	// A write made at a node that does not keep its key is read back
	// there, newest first, whatever the owner has applied yet: here the
	// owner has not, its link from the writer being down.
	w, wOwner := nonOwner(t, userKey(7), nodes...)
	m, _ := w.SlotMap()
	ownerAddr := ""
	if mb, ok := m.Member(wOwner.id); ok {
		ownerAddr = mb.ReplAddr
	}
	if !w.repl.RemovePeer(ownerAddr) {
		t.Fatalf("node %d has no link to %q", w.id, ownerAddr)
	}
	if err := w.Set(ctx, userKey(7), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Get(userKey(7)); err != nil || string(got) != "mine" {
		t.Errorf("read back at node %d: %q, %v; want mine", w.id, got, err)
	}
	if got, _ := wOwner.Get(userKey(7)); string(got) != "v7" {
		t.Fatalf("the owner has %q before its link from the writer is back; want v7", got)
	}
	w.repl.AddPeer(ownerAddr)
	testkit.Eventually(t, "the write reaches the owner", func() bool {
		got, err := wOwner.Get(userKey(7))
		return err == nil && string(got) == "mine"
	})
	if err := wOwner.Set(ctx, userKey(7), []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "a newer write at the owner is read at the writer", func() bool {
		got, err := w.Get(userKey(7))
		return err == nil && string(got) == "theirs"
	})
}

// A node that forgot a counter (it lost the counter's slot to a node that
// joined) and increments it again counts from the owners' count: the
// owners' entry is taken in, whatever the forgetting left in its ghost
// tables.
func TestRegionIncrAfterForgetting(t *testing.T) {
	a, b, c, join := slotsOnlyRegion(t)
	ctx := context.Background()
	m, _ := a.SlotMap()
	nodes := []*Node{a, b, c}
	const counters = 200
	for i := range counters {
		k := fmt.Sprint("hits:", i)
		owner := nodes[slices.IndexFunc(nodes, func(n *Node) bool { return n.id == m.Primary(cluster.KeySlot(k)).ID })]
		if _, err := owner.IncrBy(ctx, k, 41); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		testkit.Eventually(t, "the counters on their owners", func() bool {
			for i := range counters {
				k := fmt.Sprint("hits:", i)
				if _, held := n.store.Peek(k); held != m.Owns(n.id, cluster.KeySlot(k)) {
					return false
				}
			}
			return true
		})
	}
	d := openSlotsOnlyNode(t, 4, join)
	settled(t, "four members serving", a, b, c, d)
	m2, _ := a.SlotMap()
	tried := 0
	for i := range counters {
		k := fmt.Sprint("hits:", i)
		slot := cluster.KeySlot(k)
		for _, n := range nodes {
			if !m.Owns(n.id, slot) || m2.Owns(n.id, slot) {
				continue // n did not lose the slot
			}
			tried++
			if v, err := n.IncrBy(ctx, k, 1); err != nil || v != 42 {
				t.Fatalf("IncrBy %s at node %d, which forgot it: %d, %v; want 42", k, n.id, v, err)
			}
			break
		}
	}
	if tried == 0 {
		t.Fatal("no node lost the slot of any counter")
	}
	t.Logf("%d counters incremented at a node that had forgotten them", tried)
}

// A node that keeps only its slots does not vouch for any of them in
// fetch answers (Holds) before it has taken its first syncs: an owner
// restarted empty answers Partial.
func TestRegionHoldsNothingBeforeSynced(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // a peer that accepts and never answers
	n, err := Open(Config{Region: "eu", NodeID: 1, PeerAddr: "127.0.0.1:0", PeerTimeout: time.Second, Peers: []string{ln.Addr().String()},
		Gossip: &GossipConfig{Addr: "127.0.0.1:0", ClientAddr: "127.0.0.1:6381", SlotsOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	testkit.Eventually(t, "the node keeps slots", func() bool { return n.keep.Load() != nil && n.keep.Load().count() > 0 })
	select {
	case <-n.Synced():
		t.Fatal("synced with a peer that never answered")
	default:
	}
	for slot := range cluster.Slots {
		if n.holdsSlot(slot) {
			t.Fatalf("the node holds slot %d before its first syncs", slot)
		}
	}
}

// A node whose owners cannot be reached answers a read of their slots with
// ErrUnavailable, not a miss, and counts it; its own slots are still
// served, and the owners it can reach again answer.
func TestRegionReadUnavailable(t *testing.T) {
	// a's dialer: the test cuts every connection a opened, and the next
	// ones fail.
	var cut atomic.Bool
	var mu sync.Mutex
	var opened []net.Conn
	var d net.Dialer
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		if cut.Load() {
			return nil, errors.New("cut by the test")
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			mu.Lock()
			opened = append(opened, c)
			mu.Unlock()
		}
		return c, err
	}
	a, err := Open(Config{Region: "eu", NodeID: 1, PeerAddr: "127.0.0.1:0", PeerTimeout: time.Second, Dial: dial,
		Gossip: &GossipConfig{Addr: "127.0.0.1:0", ClientAddr: "127.0.0.1:6381", SlotsOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := openSlotsOnlyNode(t, 2, a.members.Addr())
	c := openSlotsOnlyNode(t, 3, a.members.Addr())
	nodes := []*Node{a, b, c}
	settled(t, "three members serving", a, b, c)
	ctx := context.Background()

	var theirs, mine string
	for i := 0; theirs == "" || mine == ""; i++ {
		k := userKey(i)
		m, _ := a.SlotMap()
		if m.Owns(a.id, cluster.KeySlot(k)) {
			mine = k
		} else {
			theirs = k
		}
	}
	_, owner := nonOwner(t, theirs, nodes...)
	if err := owner.Set(ctx, theirs, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, mine, []byte("m")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the write read at a", func() bool {
		got, err := a.Get(theirs)
		return err == nil && string(got) == "v"
	})

	cut.Store(true)
	mu.Lock()
	for _, c := range opened {
		c.Close()
	}
	mu.Unlock()
	if _, err := a.Get(theirs); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with the owners cut off: %v; want ErrUnavailable", err)
	}
	if a.Contains(theirs) {
		t.Error("Contains with the owners cut off reports the key")
	}
	if got, err := a.Get(mine); err != nil || string(got) != "m" {
		t.Errorf("Get of a's own key: %q, %v", got, err)
	}
	if st := a.Stats().RegionNodes; st.ReadsUnavailable < 2 || st.FetchFailures < 2 {
		t.Errorf("stats: %d reads unavailable, %d fetch failures; want at least 2 each", st.ReadsUnavailable, st.FetchFailures)
	}
	cut.Store(false)
	// Answered again once the owners are back (after the fetch
	// connections' redial backoff).
	testkit.Eventually(t, "Get with the owners back", func() bool {
		got, err := a.Get(theirs)
		return err == nil && string(got) == "v"
	})
}

// Reads through the embedded API of a region of two nodes keeping only
// their own slots (one copy each): keys this node keeps against keys the
// other keeps, fetched over loopback. From 1 goroutine the fetch costs a
// round trip; from many, the fetches share one pipelined connection.
//
//	go test -run '^$' -bench RegionGet -cpu 2 .
func BenchmarkRegionGet(b *testing.B) {
	open := func(id uint32, join ...string) *Node {
		n, err := Open(Config{Region: "eu", NodeID: id, PeerAddr: "127.0.0.1:0", PeerTimeout: time.Second,
			Gossip: &GossipConfig{Addr: "127.0.0.1:0", Join: join, Copies: 1, ClientAddr: fmt.Sprint("127.0.0.1:", 6380+id), SlotsOnly: true}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		return n
	}
	a := open(1)
	o := open(2, a.members.Addr())
	for !settledNow(a, o) {
		time.Sleep(10 * time.Millisecond)
	}
	m, _ := a.SlotMap()
	var mine, theirs []string
	for i := 0; len(mine) < 1000 || len(theirs) < 1000; i++ {
		k := userKey(i)
		if m.Owns(a.id, cluster.KeySlot(k)) {
			if len(mine) < 1000 {
				mine = append(mine, k)
				if err := a.Set(context.Background(), k, []byte("0123456789abcdef")); err != nil {
					b.Fatal(err)
				}
			}
		} else if len(theirs) < 1000 {
			theirs = append(theirs, k)
			if err := o.Set(context.Background(), k, []byte("0123456789abcdef")); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, bc := range []struct {
		name string
		keys []string
	}{{"kept", mine}, {"owner", theirs}} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", bc.name, par), func(b *testing.B) {
				b.SetParallelism(par) // par × GOMAXPROCS goroutines
				// Both nodes run in this process: its CPU time is the
				// region's, robust to the machine's other load.
				cpu0 := processCPU(b)
				defer func() { b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
				if par == 1 {
					for i := 0; b.Loop(); i++ {
						if _, err := a.Get(bc.keys[i%len(bc.keys)]); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						if _, err := a.Get(bc.keys[i%len(bc.keys)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// processCPU returns the CPU time this process has used (user and system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A write made at a node that does not keep its key, evicted there before
// the owners applied it, is not lost to a read-modify-write made there
// meanwhile: the owners' older entry is not taken in past the eviction's
// ghost until they have acknowledged the node's writes; until then the
// write fails, and after it starts from the node's write.
func TestRegionPullWaitsForTheOwnersAcks(t *testing.T) {
	a, b, c, _ := slotsOnlyRegion(t)
	ctx := context.Background()
	nodes := []*Node{a, b, c}
	k := userKey(11)
	w, owner := nonOwner(t, k, nodes...)
	if err := owner.Set(ctx, k, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	m, _ := w.SlotMap()
	owners := m.Owners(cluster.KeySlot(k))
	for _, o := range owners {
		testkit.Eventually(t, "v1 at every owner", func() bool {
			n := nodes[slices.IndexFunc(nodes, func(n *Node) bool { return n.id == o.ID })]
			e, ok := n.store.Peek(k)
			return ok && string(e.Value) == "v1"
		})
		if !w.repl.RemovePeer(o.ReplAddr) {
			t.Fatalf("no link to %s", o.ReplAddr)
		}
	}
	if err := w.Set(ctx, k, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	// Evicted at w, as the LRU would under memory pressure: a ghost.
	if n := w.store.DropUnvouched(func(key string, _ store.Version) bool { return key != k }); n != 1 {
		t.Fatalf("dropped %d entries; want the one", n)
	}
	appendX := func(cur Item, found bool) Change {
		return Change{Action: Put, Value: append(append([]byte(nil), cur.Value...), "+x"...)}
	}
	if _, _, err := w.Update(ctx, k, appendX); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Update with the owners not acknowledging: %v; want ErrUnavailable", err)
	}
	for _, o := range owners {
		w.repl.AddPeer(o.ReplAddr)
	}
	if _, _, err := w.Update(ctx, k, appendX); err != nil {
		t.Fatalf("Update once the owners are back: %v", err)
	}
	testkit.Eventually(t, "the update on the owner", func() bool {
		v, err := owner.Get(k)
		return err == nil && string(v) == "v2+x"
	})
}
