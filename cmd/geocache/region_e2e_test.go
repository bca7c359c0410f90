package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
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
	nodes := e2eRegion(t, e2eFreeAddrs(t, 9), nil)
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
			if len(sh.Slots) == 0 {
				continue
			}
			for _, sn := range sh.Nodes {
				if fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port) == nodes[1].addr {
					t.Fatalf("%s still routes slots %v to the killed node", n.name, sh.Slots)
				}
			}
		}
	}
	e2eEventually(t, e2eHang, "every key through the cluster client", func() error {
		// go-redis reloads its map in the background from a random known
		// node, which may be the dead one: ask again until it has.
		cc.ReloadState(ctx)
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
	e2eRoutesToAll(t, nodes)
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
	e2eAtLeast(t, "writes on the node about to leave", &written, 100)
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
	nodes := e2eRegion(t, e2eFreeAddrs(t, 9), func(int) []string { return []string{"--cluster-redirect"} })
	ctx := context.Background()
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
	e2eAtLeast(t, "writes through the cluster client", &written, 300)
	nodes[1].signal(syscall.SIGTERM)
	if code := nodes[1].waitExit(e2eHang); code != 0 {
		t.Fatalf("%s exited with %d", nodes[1].name, code)
	}
	after := written.Load()
	e2eAtLeast(t, "writes after the node's exit", &written, after+300)
	close(stop)
	<-done
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d writes failed while a node handed its slots over; first: %v", n, n+written.Load(), firstErr.Load())
	}
	t.Logf("%d writes, %d after the node's exit", written.Load(), written.Load()-after)
}

// A region of three nodes and a region of one: the one node lists the
// three in --peers and they list it; writes through a cluster client in
// the big region reach the small one, and the small one's reach all three;
// WAIT counts the big region once; a node of the big region killed and
// restarted refills with what both regions wrote meanwhile.
func TestRegionOfThreeAndRegionOfOne(t *testing.T) {
	addrs := e2eFreeAddrs(t, 11)
	usPeer := addrs[10]
	eu := e2eRegion(t, addrs[:9], func(int) []string { return []string{"--peers", usPeer} })
	us := newE2ENode(t, e2eBinary(t), "us", addrs[9], usPeer, "--region", "us", "--node", "10",
		"--peers", strings.Join([]string{eu[0].peerAddr, eu[1].peerAddr, eu[2].peerAddr}, ","))
	if err := us.start(); err != nil {
		t.Skipf("start us: %v (ports taken meanwhile)", err)
	}
	ctx := context.Background()
	dbsize := func(n *e2eNode, want int64) func() error {
		return func() error {
			if got := n.client().DBSize(ctx).Val(); got != want {
				return fmt.Errorf("%d keys, want %d", got, want)
			}
			return nil
		}
	}

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{eu[0].addr}, MaxRetries: -1})
	t.Cleanup(func() { cc.Close() })
	for i := range 100 {
		if err := cc.Set(ctx, fmt.Sprint("eu:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e2eEventually(t, e2eHang, "us holds eu's writes", dbsize(us, 100))

	uc := us.client()
	defer uc.Close()
	pipe := uc.Pipeline()
	pipe.Set(ctx, "us:0", "x", 0)
	wait := pipe.Do(ctx, "WAIT", 1, 30000) // a minute only catches a hang; 1 region is all there is
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := wait.Int(); err != nil || n != 1 {
		t.Errorf("WAIT 1 after a write in us: %d, %v; want 1 (eu, counted once for its three nodes)", n, err)
	}
	for _, n := range eu {
		e2eEventually(t, e2eHang, n.name+" holds us's write", dbsize(n, 101))
	}

	eu[1].kill()
	e2eEventually(t, e2eHang, "eu-1 drops the killed node", func() error {
		if info := eu[0].client().ClusterInfo(ctx).Val(); !strings.Contains(info, "cluster_known_nodes:2\r\n") {
			return fmt.Errorf("CLUSTER INFO:\n%s", info)
		}
		return nil
	})
	e2eEventually(t, e2eHang, "writes through the cluster client after the kill", func() error {
		// go-redis reloads its map in the background from a random known
		// node, which may be the dead one: ask again until it has.
		cc.ReloadState(ctx)
		for i := range 50 {
			if err := cc.Set(ctx, fmt.Sprint("after:", i), i, 0).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range 50 {
		if err := uc.Set(ctx, fmt.Sprint("us-after:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*e2eNode{us, eu[0], eu[2]} {
		e2eEventually(t, e2eHang, n.name+" holds every write", dbsize(n, 201))
	}
	if err := eu[1].start(); err != nil {
		t.Fatal(err)
	}
	e2eEventually(t, e2eHang, "the restarted eu-2 refilled from both regions", dbsize(eu[1], 201))
}

// e2eRegion starts a region "eu" of len(addrs)/3 geocache serve processes
// joined by gossip, node i on addrs[3i:3i+3] (RESP, replication, gossip)
// with the flags extra(i) adds (extra may be nil), the first alone and the
// others joining it, and waits until every node's map routes to all of
// them (every node serving). It skips the test if a port was taken
// meanwhile.
func e2eRegion(t *testing.T, addrs []string, extra func(i int) []string) []*e2eNode {
	t.Helper()
	bin := e2eBinary(t)
	var nodes []*e2eNode
	for i := range len(addrs) / 3 {
		args := []string{"--region", "eu", "--node", fmt.Sprint(i + 1), "--gossip-addr", addrs[3*i+2]}
		if i > 0 {
			args = append(args, "--join", addrs[2])
		}
		if extra != nil {
			args = append(args, extra(i)...)
		}
		n := newE2ENode(t, bin, fmt.Sprint("eu-", i+1), addrs[3*i], addrs[3*i+1], args...)
		if err := n.start(); err != nil {
			t.Skipf("start %s: %v (ports taken meanwhile)", n.name, err) // rare; the other e2e tests retry
		}
		nodes = append(nodes, n)
	}
	e2eRoutesToAll(t, nodes)
	return nodes
}

// e2eRoutesToAll waits until every node's CLUSTER SHARDS routes to every
// node of nodes.
func e2eRoutesToAll(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	for _, n := range nodes {
		e2eEventually(t, e2eHang, n.name+" routes to every node", func() error {
			owners := map[string]bool{}
			for _, sh := range n.client().ClusterShards(context.Background()).Val() {
				if len(sh.Slots) == 0 {
					continue // a joining or leaving member: listed, no slots
				}
				for _, sn := range sh.Nodes {
					owners[fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port)] = true
				}
			}
			for _, o := range nodes {
				if !owners[o.addr] {
					return fmt.Errorf("no slots to %s: %v", o.name, owners)
				}
			}
			return nil
		})
	}
}

// With --cluster-redirect each node keeps only its own slots: a region of
// three with two copies holds each key twice, on its owners only. A node
// killed with SIGKILL: its slots pass to the survivors, which take what
// they lacked by full syncs and meanwhile send the commands on those slots
// to the co-owner that held them (-ASK); a cluster client reading from the
// moment the survivors' maps drop the node never gets a wrong value or a
// miss, and once the region has settled it reads every key. (The full
// syncs of 60,000 keys are often over before the first read: the -ASK path
// itself is pinned by TestRedirectAsksForAColdSlot in internal/resp and
// TestRegionNoStaleReadAfterFailover.)
func TestClusterClientReadsThroughAKill(t *testing.T) {
	nodes := e2eRegion(t, e2eFreeAddrs(t, 9), func(int) []string { return []string{"--cluster-redirect"} })
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].addr}, MaxRedirects: 8})
	t.Cleanup(func() { cc.Close() })
	// Enough keys that the survivors' full syncs take a moment, during
	// which the slots they gained are cold.
	const keys = 60000
	e2eWriteKeys(t, cc, keys)
	e2eEachKeyTwice(t, nodes, keys)

	nodes[2].kill()
	survivors := nodes[:2]
	// The survivors drop the node from their maps (and take its slots):
	// from then on the client, reloading its map, reads from them. (Until
	// it reloads, go-redis keeps dialling the dead node, which tells
	// nothing about geocache.)
	e2eDropNode(t, survivors, nodes[2])
	cc.ReloadState(ctx)
	r := e2eKeyReader{t: t, n: keys}
	e2eEventually(t, e2eHang, "the survivors hold every key, twice", func() error {
		if missed := r.readAll(cc); missed > 0 {
			t.Fatalf("%d reads missed during the failover", missed)
		}
		for _, n := range survivors {
			if h := e2eHeld(t, n); h != keys {
				return fmt.Errorf("%s holds %d of %d keys", n.name, h, keys)
			}
		}
		return nil
	})
	errs0 := r.errs
	if missed := r.readAll(cc); missed > 0 || r.errs > errs0 {
		t.Fatalf("after the failover: %d misses, %d errors", missed, r.errs-errs0)
	}
	asks := 0
	for _, n := range survivors {
		info := n.client().Info(ctx, "errorstats").Val()
		if _, rest, ok := strings.Cut(info, "errorstat_ASK:count="); ok {
			k, _, _ := strings.Cut(rest, "\r")
			c, _ := strconv.Atoi(k)
			asks += c
		}
	}
	t.Logf("%d reads after the survivors took over, %d sent on by -ASK, %d failed (first: %v)", r.reads, asks, r.errs, r.firstErr)
}

// e2eWriteKeys writes keys k:0 to k:n-1, each its number, in pipelined
// batches of 1,000.
func e2eWriteKeys(t *testing.T, c redis.Cmdable, n int) {
	t.Helper()
	ctx := context.Background()
	for first := 0; first < n; first += 1000 {
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := first; i < min(first+1000, n); i++ {
				p.Set(ctx, fmt.Sprint("k:", i), i, 0)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// e2eHeld is the entries node holds (the demo's count, INFO keyspace).
func e2eHeld(t *testing.T, n *e2eNode) int {
	t.Helper()
	h := held(n.addr)
	if h < 0 {
		t.Fatalf("%s: INFO keyspace unanswered", n.name)
	}
	return h
}

// e2eEachKeyTwice waits until the nodes hold each of n keys twice (two
// copies) and checks that no node holds them all (each keeps its slots).
func e2eEachKeyTwice(t *testing.T, nodes []*e2eNode, n int) {
	t.Helper()
	e2eEventually(t, e2eHang, "every key on its two owners", func() error {
		total := 0
		for _, nd := range nodes {
			total += e2eHeld(t, nd)
		}
		if total != 2*n {
			return fmt.Errorf("the nodes hold %d entries, want %d", total, 2*n)
		}
		return nil
	})
	for _, nd := range nodes {
		if h := e2eHeld(t, nd); h >= n {
			t.Fatalf("%s holds %d of %d keys: not only its own slots", nd.name, h, n)
		}
	}
}

// e2eDropNode waits until no survivor's CLUSTER SHARDS gives dead slots.
func e2eDropNode(t *testing.T, survivors []*e2eNode, dead *e2eNode) {
	t.Helper()
	for _, n := range survivors {
		e2eEventually(t, e2eHang, n.name+" drops the killed node", func() error {
			for _, sh := range n.client().ClusterShards(context.Background()).Val() {
				if len(sh.Slots) == 0 {
					continue
				}
				for _, sn := range sh.Nodes {
					if fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port) == dead.addr {
						return fmt.Errorf("%s still has slots", dead.name)
					}
				}
			}
			return nil
		})
	}
}

// e2eKeyReader reads back the keys e2eWriteKeys wrote, counting reads and
// errors; a wrong value fails the test.
type e2eKeyReader struct {
	t           *testing.T
	n           int
	reads, errs int
	firstErr    error
}

// readAll reads every key once, in pipelined batches, and returns how many
// were missing.
func (r *e2eKeyReader) readAll(c redis.Cmdable) (missed int) {
	ctx := context.Background()
	for first := 0; first < r.n; first += 1000 {
		cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := first; i < min(first+1000, r.n); i++ {
				p.Get(ctx, fmt.Sprint("k:", i))
			}
			return nil
		})
		for j, cmd := range cmds {
			r.reads++
			v, err := cmd.(*redis.StringCmd).Int()
			switch {
			case errors.Is(err, redis.Nil):
				missed++
			case err != nil:
				r.errs++
				r.firstErr = cmp.Or(r.firstErr, err)
			case v != first+j:
				r.t.Fatalf("k:%d read %d", first+j, v)
			}
		}
	}
	return missed
}

// A region of three processes with --cluster-forward: each node keeps only
// its own slots, and a plain (not cluster-aware) client writes and reads
// every key through any node, MGET over several nodes' keys included. A
// node killed with SIGKILL: once the survivors dropped it from their
// maps, a plain client of a survivor reads every key again, with no miss
// and no wrong value, the slots the survivors gained included (forwarded
// to the co-owner that held them while they fill).
func TestPlainClientThroughForwarding(t *testing.T) {
	nodes := e2eRegion(t, e2eFreeAddrs(t, 9), func(int) []string { return []string{"--cluster-forward"} })
	ctx := context.Background()
	const keys = 20000
	c := nodes[0].client()
	e2eWriteKeys(t, c, keys)
	e2eEachKeyTwice(t, nodes, keys)
	r := e2eKeyReader{t: t, n: keys}
	for _, n := range nodes {
		if missed := r.readAll(n.client()); missed > 0 || r.errs > 0 {
			t.Fatalf("through %s: %d misses, %d errors (first: %v)", n.name, missed, r.errs, r.firstErr)
		}
	}
	mget := make([]string, 50)
	for i := range mget {
		mget[i] = fmt.Sprint("k:", i*397)
	}
	vals, err := nodes[1].client().MGet(ctx, mget...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if v != fmt.Sprint(i*397) {
			t.Fatalf("MGET over several nodes: %s = %v", mget[i], v)
		}
	}

	nodes[2].kill()
	survivors := nodes[:2]
	e2eDropNode(t, survivors, nodes[2])
	for _, n := range survivors {
		if missed := r.readAll(n.client()); missed > 0 || r.errs > 0 {
			t.Fatalf("through %s after the kill: %d misses, %d errors (first: %v)", n.name, missed, r.errs, r.firstErr)
		}
	}
	info, err := e2eInfo(ctx, c, "stats")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s forwarded %s commands", nodes[0].name, info["geocache_forwarded_commands"])
}
