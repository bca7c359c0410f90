package geocache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// freeAddrs reserves n loopback addresses.
func freeAddrs(t *testing.T, n int) ([]string, []net.Listener) {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		ls = append(ls, l)
	}
	return addrs, ls
}

func openCluster(t *testing.T, regions ...string) []*Node {
	t.Helper()
	addrs, ls := freeAddrs(t, len(regions))
	nodes := make([]*Node, len(regions))
	for i, r := range regions {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		cfg := MultiRegion(r, uint32(i+1), addrs[i], peers...)
		cfg.Listener = ls[i]
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	return nodes
}

func TestReplicationOverTCP(t *testing.T) {
	nodes := openCluster(t, "us-east", "eu-west", "ap-south")
	ctx := context.Background()
	if err := nodes[0].Set(ctx, "greeting", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		testkit.Eventually(t, fmt.Sprintf("node %d to see the write", i), func() bool {
			v, err := n.Get("greeting")
			return err == nil && string(v) == "hello"
		})
	}
	if err := nodes[1].Delete(ctx, "greeting", WithAck(All)); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if _, err := n.Get("greeting"); !errors.Is(err, ErrNotFound) {
			t.Errorf("node %d after an All delete: %v; want ErrNotFound", i, err)
		}
	}
	if err := nodes[2].Set(ctx, "q", []byte("1"), WithAck(Quorum)); err != nil {
		t.Fatal(err)
	}
	got, err := nodes[2].Wait(ctx, 2)
	if err != nil || got != 2 {
		t.Fatalf("Wait = %d, %v", got, err)
	}
}

func TestUpdateAndSession(t *testing.T) {
	nodes := openCluster(t, "us", "eu")
	us, eu := nodes[0], nodes[1]
	ctx := context.Background()
	setNX := func(cur Item, found bool) Change {
		if found {
			return Change{}
		}
		return Change{Action: Put, Value: []byte("first")}
	}
	if _, found, err := us.Update(ctx, "nx", setNX); found || err != nil {
		t.Fatalf("NX on an absent key: found %v, %v", found, err)
	}
	prev, found, err := us.Update(ctx, "nx", setNX)
	if !found || err != nil || string(prev.Value) != "first" {
		t.Fatalf("NX on a present key: %q %v %v", prev.Value, found, err)
	}
	if err := us.Expire(ctx, "missing", time.Second); !errors.Is(err, ErrNotFound) {
		t.Errorf("Expire of a missing key: %v", err)
	}
	if err := us.Expire(ctx, "nx", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := us.TTL("nx"); ttl <= 59*time.Minute {
		t.Errorf("TTL after Expire = %v", ttl)
	}
	s := us.NewSession()
	s.SetAck(All)
	if err := s.Set(ctx, "sess", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := eu.Get("sess"); err != nil || string(v) != "v" {
		t.Fatalf("a session write at All is not in eu: %q %v", v, err)
	}
	if n, err := s.Wait(ctx, 1); err != nil || n != 1 {
		t.Errorf("session Wait = %d, %v", n, err)
	}
	if err := s.Persist(ctx, "nx"); err != nil {
		t.Fatal(err)
	}
	if it, _ := eu.Lookup("nx"); !it.ExpireAt.IsZero() || string(it.Value) != "first" {
		t.Errorf("eu after Persist at All: %+v", it)
	}
}

// TestCloseStopsGoroutines: a replicating node's Close stops every goroutine
// it started (accept loop, senders, receivers, ack readers, timers).
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		addrs, ls := freeAddrs(t, 3)
		var nodes []*Node
		for i := range 3 {
			var peers []string
			for j, a := range addrs {
				if j != i {
					peers = append(peers, a)
				}
			}
			cfg := MultiRegion(fmt.Sprint("r", i), uint32(i+1), addrs[i], peers...)
			cfg.Listener = ls[i]
			n, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
		}
		if err := nodes[0].Set(context.Background(), "k", []byte("v"), WithAck(All)); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			n.Close()
			n.Close() // idempotent
		}
	}()
	deadline := time.Now().Add(testkit.EventuallyTimeout) // only catches a leak
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestTombstoneAccessor(t *testing.T) {
	n, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	n.Set(ctx, "k", []byte("v"))
	it, _ := n.Lookup("k")
	if _, _, ok := n.Tombstone("k"); ok {
		t.Fatal("a live key reports a tombstone")
	}
	n.Delete(ctx, "k")
	hlc, origin, ok := n.Tombstone("k")
	if !ok || hlc <= it.HLC || origin != 1 {
		t.Fatalf("Tombstone = %d, %d, %v; want a version after %d from node 1", hlc, origin, ok, it.HLC)
	}
}
