package geocache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
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

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReplicationOverTCP(t *testing.T) {
	nodes := openCluster(t, "us-east", "eu-west", "ap-south")
	ctx := context.Background()
	if err := nodes[0].Set(ctx, "greeting", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		eventually(t, fmt.Sprintf("node %d to see the write", i), func() bool {
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
