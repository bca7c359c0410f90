package resp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
)

// regionServers starts n nodes of one region (gossip and replication on
// loopback), each behind a RESP server, and returns the servers' addresses
// and the nodes once every node's map has every member serving. opt, if
// given, adjusts each node's gossip and each server's config.
func regionServers(t *testing.T, n int, opt ...func(*geocache.GossipConfig, *Config)) ([]string, []*geocache.Node) {
	t.Helper()
	addrs, nodes, _ := regionServersWith(t, n, opt...)
	return addrs, nodes
}

// regionServersWith is regionServers, returning the servers too.
func regionServersWith(t *testing.T, n int, opt ...func(*geocache.GossipConfig, *Config)) ([]string, []*geocache.Node, []*Server) {
	t.Helper()
	var addrs []string
	var nodes []*geocache.Node
	var servers []*Server
	join := ""
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := &geocache.GossipConfig{Addr: "127.0.0.1:0", ClientAddr: ln.Addr().String()}
		if join != "" {
			g.Join = []string{join}
		}
		var cfg Config
		for _, o := range opt {
			o(g, &cfg)
		}
		node := testNode(t, geocache.Config{Region: "eu", NodeID: uint32(i + 1), PeerAddr: "127.0.0.1:0", Gossip: g})
		if join == "" {
			join = node.RegionGossipAddr()
		}
		cfg.Node = node
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		t.Cleanup(func() {
			s.Close()
			<-done
		})
		addrs = append(addrs, ln.Addr().String())
		nodes = append(nodes, node)
		servers = append(servers, s)
	}
	// Every node sees every member serving before the test starts.
	for _, node := range nodes {
		testkit.Eventually(t, "every member serving in the map", func() bool {
			m, _ := node.SlotMap()
			if len(m.Members()) != n {
				return false
			}
			for _, mb := range m.Members() {
				if mb.State != cluster.Serving {
					return false
				}
			}
			return true
		})
	}
	return addrs, nodes, servers
}

// go-redis's ClusterClient, pointed at one node of a three-node region,
// reads the slot map, routes every key to the primary of its slot, and
// reads back what it wrote; every node agrees on the map and serves
// every key (each holds them all).
func TestClusterClientOverRegion(t *testing.T) {
	addrs, _ := regionServers(t, 3)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1]})
	t.Cleanup(func() { cc.Close() })
	for i := range 200 {
		if err := cc.Set(ctx, fmt.Sprint("key:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if v, err := cc.Get(ctx, fmt.Sprint("key:", i)).Int(); err != nil || v != i {
			t.Fatalf("key:%d = %v, %v", i, v, err)
		}
	}
	// The client spread the keys over the three nodes as their primaries.
	served := map[string]bool{}
	shards, err := cc.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		for _, sn := range sh.Nodes {
			if sn.Role == "master" {
				served[fmt.Sprintf("%s:%d", sn.Endpoint, sn.Port)] = true
			}
		}
	}
	if len(served) != 3 {
		t.Errorf("primaries on %d nodes, want 3: %v", len(served), served)
	}
	for i, a := range addrs {
		c := newClient(t, a)
		if got := c.ClusterKeySlot(ctx, "{user1000}.following").Val(); got != 3443 {
			t.Errorf("KEYSLOT = %d, want 3443 (Redis's)", got)
		}
		id, err := c.ClusterMyID(ctx).Result()
		if err != nil || id != cluster.HexID(uint32(i+1)) {
			t.Errorf("MYID of node %d = %q, %v", i+1, id, err)
		}
		nodes, err := c.ClusterNodes(ctx).Result()
		if err != nil || strings.Count(nodes, "\n") != 3 || !strings.Contains(nodes, "myself,master") {
			t.Errorf("CLUSTER NODES of node %d: %v\n%s", i+1, err, nodes)
		}
		testkit.Eventually(t, "every key on every node", func() bool { return c.DBSize(ctx).Val() == 200 })
		if info := c.Info(ctx).Val(); !strings.Contains(info, "redis_mode:cluster\r\n") || !strings.Contains(info, "cluster_enabled:1\r\n") {
			t.Errorf("INFO of node %d does not say cluster mode:\n%s", i+1, info)
		}
		if err := c.ReadOnly(ctx).Err(); err != nil {
			t.Errorf("READONLY: %v", err)
		}
	}
}

// A node without gossip answers as a Redis without cluster support.
func TestClusterDisabled(t *testing.T) {
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{})})
	c := dialRaw(t, addr)
	for _, cmdline := range [][]string{{"CLUSTER", "SLOTS"}, {"CLUSTER", "KEYSLOT", "a"}, {"ASKING"}, {"READONLY"}} {
		c.send(cmd(cmdline...))
		c.expect("-ERR This instance has cluster support disabled\r\n")
	}
}
