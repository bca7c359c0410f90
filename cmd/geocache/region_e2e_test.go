package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// A region of three geocache serve processes found by gossip: a
// cluster-aware client routes by the slot map; a node killed with SIGKILL
// leaves every survivor's map, and the client, once it reloads the map,
// reads every key from the survivors; the node restarted at the same
// addresses rejoins and refills.
func TestRegionOfThreeProcesses(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 9)
	var nodes []*e2eNode
	for i := range 3 {
		args := []string{"--region", "eu", "--node", fmt.Sprint(i + 1), "--gossip-addr", addrs[3*i+2]}
		if i > 0 {
			args = append(args, "--join", addrs[2])
		}
		n := newE2ENode(t, bin, fmt.Sprint("eu-", i+1), addrs[3*i], addrs[3*i+1], args...)
		if err := n.start(); err != nil {
			t.Skipf("start %s: %v (ports taken meanwhile)", n.name, err) // rare; the other e2e tests retry
		}
		nodes = append(nodes, n)
	}
	ctx := context.Background()
	knownNodes := func(n *e2eNode, want int) func() error {
		return func() error {
			info, err := n.client().ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r\n", want)) {
				return fmt.Errorf("CLUSTER INFO:\n%s", info)
			}
			return nil
		}
	}
	for _, n := range nodes {
		e2eEventually(t, e2eHang, n.name+" sees three members", knownNodes(n, 3))
	}

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].addr}, MaxRetries: -1})
	t.Cleanup(func() { cc.Close() })
	for i := range 100 {
		if err := cc.Set(ctx, fmt.Sprint("user:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		e2eEventually(t, e2eHang, n.name+" holds every key", func() error {
			if got := n.client().DBSize(ctx).Val(); got != 100 {
				return fmt.Errorf("%d keys", got)
			}
			return nil
		})
	}

	nodes[1].kill()
	for _, n := range []*e2eNode{nodes[0], nodes[2]} {
		e2eEventually(t, e2eHang, n.name+" drops the killed node", knownNodes(n, 2))
		for _, sh := range n.client().ClusterShards(ctx).Val() {
			for _, sn := range sh.Nodes {
				if fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port) == nodes[1].addr {
					t.Fatalf("%s still routes slots %v to the killed node", n.name, sh.Slots)
				}
			}
		}
	}
	cc.ReloadState(ctx)
	e2eEventually(t, e2eHang, "every key through the cluster client", func() error {
		for i := range 100 {
			if v, err := cc.Get(ctx, fmt.Sprint("user:", i)).Int(); err != nil || v != i {
				return fmt.Errorf("user:%d = %v, %v", i, v, err)
			}
		}
		return nil
	})

	if err := nodes[1].start(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		e2eEventually(t, e2eHang, n.name+" sees the restarted node", knownNodes(n, 3))
	}
	e2eEventually(t, e2eHang, "the restarted node refilled", func() error {
		if got := nodes[1].client().DBSize(ctx).Val(); got != 100 {
			return fmt.Errorf("%d keys", got)
		}
		return nil
	})

	// SIGTERM: the node gives its slots up, then stops serving, and what
	// it acknowledged until its last reply is on the others.
	routesTo := func(n, to *e2eNode) bool {
		for _, sh := range n.client().ClusterShards(ctx).Val() {
			for _, sn := range sh.Nodes {
				if fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port) == to.addr {
					return true
				}
			}
		}
		return false
	}
	for _, n := range nodes {
		e2eEventually(t, e2eHang, n.name+" routes to the restarted node", func() error {
			if !routesTo(n, nodes[1]) {
				return fmt.Errorf("no slots to %s", nodes[1].name)
			}
			return nil
		})
	}
	leaving := nodes[1].client()
	defer leaving.Close()
	var written atomic.Int64
	writes := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := leaving.Set(ctx, fmt.Sprint("late:", i), i, 0).Err(); err != nil {
				writes <- err
				return
			}
			written.Add(1)
		}
	}()
	e2eEventually(t, e2eHang, "writes on the node about to leave", func() error {
		if written.Load() < 100 {
			return fmt.Errorf("%d writes", written.Load())
		}
		return nil
	})
	nodes[1].signal(syscall.SIGTERM)
	<-writes // the connection closed: nothing more is acknowledged
	acked := int(written.Load())
	if code := nodes[1].waitExit(e2eHang); code != 0 {
		t.Fatalf("%s exited with %d", nodes[1].name, code)
	}
	if !strings.Contains(nodes[1].logs.String(), "this node is leaving") {
		t.Errorf("%s did not announce its leave:\n%s", nodes[1].name, nodes[1].logs)
	}
	for _, n := range []*e2eNode{nodes[0], nodes[2]} {
		e2eEventually(t, e2eHang, n.name+" drops the stopped node", knownNodes(n, 2))
		c := n.client()
		for i := range acked {
			if v, err := c.Get(ctx, fmt.Sprint("late:", i)).Int(); err != nil || v != i {
				t.Fatalf("%s: late:%d = %v, %v: a write the stopped node acknowledged is lost (%d acknowledged)", n.name, i, v, err, acked)
			}
		}
		c.Close()
	}
	t.Logf("%d writes acknowledged by the stopping node, all on the others", acked)
}

// With --cluster-redirect, a node stopped with SIGTERM hands its slots over
// to a cluster-aware client that never reloads its map by itself (go-redis
// reloads every 60 s): the leaving node answers -MOVED for every key, the
// client follows and reloads, and no write fails while the node goes.
func TestClusterClientFollowsAGracefulStop(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 9)
	var nodes []*e2eNode
	for i := range 3 {
		args := []string{"--region", "eu", "--node", fmt.Sprint(i + 1), "--gossip-addr", addrs[3*i+2], "--cluster-redirect"}
		if i > 0 {
			args = append(args, "--join", addrs[2])
		}
		n := newE2ENode(t, bin, fmt.Sprint("eu-", i+1), addrs[3*i], addrs[3*i+1], args...)
		if err := n.start(); err != nil {
			t.Skipf("start %s: %v (ports taken meanwhile)", n.name, err)
		}
		nodes = append(nodes, n)
	}
	ctx := context.Background()
	for _, n := range nodes {
		e2eEventually(t, e2eHang, n.name+" routes to every node", func() error {
			owners := map[string]bool{}
			for _, sh := range n.client().ClusterShards(ctx).Val() {
				for _, sn := range sh.Nodes {
					owners[fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port)] = true
				}
			}
			if len(owners) != 3 {
				return fmt.Errorf("slots owned by %v", owners)
			}
			return nil
		})
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].addr}})
	t.Cleanup(func() { cc.Close() })

	var written, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := cc.Set(ctx, fmt.Sprint("k:", i), i, 0).Err(); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("k:%d: %v", i, err))
				continue
			}
			written.Add(1)
		}
	}()
	e2eEventually(t, e2eHang, "writes through the cluster client", func() error {
		if written.Load() < 300 {
			return fmt.Errorf("%d writes", written.Load())
		}
		return nil
	})
	nodes[1].signal(syscall.SIGTERM)
	if code := nodes[1].waitExit(e2eHang); code != 0 {
		t.Fatalf("%s exited with %d", nodes[1].name, code)
	}
	after := written.Load()
	e2eEventually(t, e2eHang, "writes after the node's exit", func() error {
		if written.Load() < after+300 {
			return fmt.Errorf("%d writes since", written.Load()-after)
		}
		return nil
	})
	close(stop)
	<-done
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d writes failed while a node handed its slots over; first: %v", n, n+written.Load(), firstErr.Load())
	}
	t.Logf("%d writes, %d after the node's exit", written.Load(), written.Load()-after)
}
