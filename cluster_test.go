package geocache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// tcpCluster runs nodes of one cluster in this process, over loopback TCP, and
// can stop and restart them.
type tcpCluster struct {
	t     *testing.T
	addrs []string
	cfgs  []Config
	nodes []*Node
}

func newCluster(t *testing.T, regions []string, tweak func(i int, c *Config)) *tcpCluster {
	t.Helper()
	addrs, ls := freeAddrs(t, len(regions))
	for _, l := range ls {
		l.Close() // reopened by start
	}
	c := &tcpCluster{t: t, addrs: addrs, nodes: make([]*Node, len(regions))}
	for i, r := range regions {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		cfg := MultiRegion(r, uint32(i+1), addrs[i], peers...)
		if tweak != nil {
			tweak(i, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *tcpCluster) start(i int) *Node {
	c.t.Helper()
	var err error
	// The port may linger briefly after a stop; the deadline only catches
	// a port that never frees up.
	for deadline := time.Now().Add(testkit.EventuallyTimeout); ; time.Sleep(20 * time.Millisecond) {
		if c.nodes[i], err = Open(c.cfgs[i]); err == nil {
			return c.nodes[i]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("start node %d: %v", i, err)
			return nil
		}
	}
}

func (c *tcpCluster) startAll() {
	for i := range c.cfgs {
		c.start(i)
	}
}

func (c *tcpCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

// dump returns every node's entries for keys, as "key=value@hlc.origin".
func dump(n *Node, keys []string) []string {
	var out []string
	for _, k := range keys {
		if it, err := n.Lookup(k); err == nil {
			out = append(out, fmt.Sprintf("%s=%s@%d.%d", k, it.Value, it.HLC, it.Origin))
		}
	}
	return out
}

// converged waits until every running node holds the same entries for keys.
func (c *tcpCluster) converged(keys []string) {
	c.t.Helper()
	testkit.Eventually(c.t, "convergence", func() bool {
		var first []string
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			d := dump(n, keys)
			if i == 0 || first == nil {
				first = d
			} else if !slices.Equal(first, d) {
				return false
			}
		}
		return true
	})
}

func keyList(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%04d", i)
	}
	return keys
}

// TestConcurrentWritersConverge: every region writes the same keys at once;
// when writes stop, every region holds the same version of every key (I1).
func TestConcurrentWritersConverge(t *testing.T) {
	c := newCluster(t, []string{"us", "eu", "ap"}, nil)
	c.startAll()
	keys := keyList(50)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() {
			for j := range 500 {
				k := keys[(j*7+i)%len(keys)]
				var err error
				if j%10 == 9 {
					err = n.Delete(context.Background(), k)
				} else {
					err = n.Set(context.Background(), k, fmt.Appendf(nil, "n%d-%d", i, j))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.converged(keys)
}

// TestRestartRefills: a node that crashes and restarts empty refills from
// its peers' streams, and its own new writes reach them.
func TestRestartRefills(t *testing.T) {
	c := newCluster(t, []string{"us", "eu"}, nil)
	c.startAll()
	keys := keyList(200)
	for _, k := range keys {
		if err := c.nodes[0].Set(context.Background(), k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	c.converged(keys)
	c.stop(1)
	c.start(1)
	testkit.Eventually(t, "refill", func() bool { return len(dump(c.nodes[1], keys)) == len(keys) })
	if err := c.nodes[1].Set(context.Background(), "after", []byte("restart"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	if v, err := c.nodes[0].Get("after"); err != nil || string(v) != "restart" {
		t.Fatalf("write of the restarted node: %q, %v", v, err)
	}
	c.converged(append(keys, "after"))
}

// TestLogOverflowFullSync: a region down while the log overflows gets a
// full sync when it comes back, then converges; and what it held that the
// snapshot no longer vouches for is dropped, not served stale (I2).
func TestLogOverflowFullSync(t *testing.T) {
	c := newCluster(t, []string{"us", "eu"}, func(i int, cfg *Config) {
		cfg.ReplicationLogBytes = 16 << 10 // about 150 writes
	})
	c.startAll()
	ctx := context.Background()
	if err := c.nodes[0].Set(ctx, "stale", []byte("old"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	c.stop(1)
	// While eu is down: overwrite "stale" and then push it out of the log,
	// and delete it so the snapshot has nothing but a tombstone for it.
	c.nodes[0].Set(ctx, "stale", []byte("new"))
	c.nodes[0].Delete(ctx, "stale")
	keys := keyList(2000)
	for _, k := range keys {
		c.nodes[0].Set(ctx, k, []byte("value-of-"+k))
	}
	if st := c.nodes[0].Stats(); st.LogBytes > 16<<10 {
		t.Fatalf("log holds %d bytes; bound is %d", st.LogBytes, 16<<10)
	}
	c.start(1)
	testkit.Eventually(t, "full sync and catch-up", func() bool {
		st := c.nodes[0].Stats()
		return len(st.Peers) == 1 && st.Peers[0].FullSyncs > 0 && st.Peers[0].Lag == 0 && st.Peers[0].Connected
	})
	c.converged(append(keys, "stale"))
	if _, err := c.nodes[1].Get("stale"); !errors.Is(err, ErrNotFound) {
		t.Errorf("eu serves a key deleted while it was down: %v", err)
	}
}

// TestExpirySameInstantEverywhere: an entry expires at one absolute time in
// every region, whatever the replication delay (I5).
func TestExpirySameInstantEverywhere(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	c := newCluster(t, []string{"us", "eu", "ap"}, func(i int, cfg *Config) { cfg.Clock = clock })
	c.startAll()
	ctx := context.Background()
	if err := c.nodes[0].Set(ctx, "session", []byte("alice"), WithTTL(time.Minute), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		ttl, err := n.TTL("session")
		if err != nil || ttl != time.Minute {
			t.Errorf("node %d: TTL = %v, %v; want exactly 1m on the shared clock", i, ttl, err)
		}
	}
	clock.Advance(time.Minute - time.Nanosecond)
	for i, n := range c.nodes {
		if _, err := n.Get("session"); err != nil {
			t.Errorf("node %d lost the entry 1ns before its expiry: %v", i, err)
		}
	}
	clock.Advance(time.Nanosecond)
	for i, n := range c.nodes {
		if v, err := n.Get("session"); !errors.Is(err, ErrNotFound) {
			t.Errorf("node %d served %q at its expiry time", i, v)
		}
	}
}

// TestClockSkewRefusesWrites: a node whose clock is far off from most of
// its peers refuses writes with ErrClockSkew.
func TestClockSkewRefusesWrites(t *testing.T) {
	base := testkit.NewClock(time.Now())
	skewed := &offsetClock{base: base, offset: int64(3 * time.Second)}
	c := newCluster(t, []string{"us", "eu", "ap"}, func(i int, cfg *Config) {
		cfg.Clock = base
		if i == 2 {
			cfg.Clock = skewed
		}
	})
	c.startAll()
	testkit.Eventually(t, "the skewed node to notice", func() bool {
		err := c.nodes[2].Set(context.Background(), "x", []byte("y"))
		return errors.Is(err, ErrClockSkew)
	})
	if err := c.nodes[0].Set(context.Background(), "x", []byte("y")); err != nil {
		t.Errorf("a node in bounds refused a write: %v", err)
	}
}

type offsetClock struct {
	base   *testkit.Clock
	offset int64
}

func (o *offsetClock) UnixNano() int64 { return o.base.UnixNano() + o.offset }

// TestGarbageOnReplicationPort: bytes that are not the protocol get the
// connection closed, and the node keeps replicating (I7).
func TestGarbageOnReplicationPort(t *testing.T) {
	c := newCluster(t, []string{"us", "eu"}, nil)
	c.startAll()
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0xff, 0xff, 0xff, 0xff, 1}, // a 4 GiB frame
		{0, 0, 0, 3, 1, 0},          // a truncated Hello
		{0, 0, 0, 2, 99, 0},         // an unknown frame type
	} {
		conn, err := net.Dial("tcp", c.addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(junk)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				break // closed by the node (after a Reject where it could)
			}
		}
		conn.Close()
	}
	if err := c.nodes[1].Set(context.Background(), "still", []byte("serving"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
}

// TestBoundedWhileRegionDown: with one region unreachable under sustained
// writes, the log and the store stay within their bounds (I6).
func TestBoundedWhileRegionDown(t *testing.T) {
	c := newCluster(t, []string{"us", "eu"}, func(i int, cfg *Config) {
		cfg.MaxBytes = 1 << 20
		cfg.ReplicationLogBytes = 256 << 10
	})
	c.start(0) // eu never starts
	val := make([]byte, 100)
	for i := range 50_000 {
		if err := c.nodes[0].Set(context.Background(), fmt.Sprint(i), val); err != nil {
			t.Fatal(err)
		}
	}
	st := c.nodes[0].Stats()
	if st.Bytes > 1<<20 || st.LogBytes > 256<<10 {
		t.Fatalf("store %d bytes (bound %d), log %d bytes (bound %d)", st.Bytes, 1<<20, st.LogBytes, 256<<10)
	}
	if st.Peers[0].Connected || st.Peers[0].Lag == 0 {
		t.Errorf("peer stats for a down region: %+v", st.Peers[0])
	}
}
