package resp

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
)

// redirecting sets Config.Redirect and one copy per slot, so that each of
// a region's nodes owns a part of the slots only.
func redirecting(g *geocache.GossipConfig, cfg *Config) {
	g.Copies = 1
	cfg.Redirect = true
}

// keysOwnedBy returns n keys in n distinct slots owned by node id in m.
func keysOwnedBy(m *cluster.Map, id uint32, n int) []string {
	var keys []string
	seen := map[int]bool{}
	for i := 0; len(keys) < n; i++ {
		k := "key:" + strconv.Itoa(i)
		slot := cluster.KeySlot(k)
		if m.Primary(slot).ID == id && !seen[slot] {
			seen[slot] = true
			keys = append(keys, k)
		}
	}
	return keys
}

func moved(m *cluster.Map, key string) string {
	slot := cluster.KeySlot(key)
	return "-MOVED " + strconv.Itoa(slot) + " " + m.Primary(slot).Addr + "\r\n"
}

// With Redirect, a node answers as a Redis Cluster node: the replies and
// their order are redis-server 7.0.15's with cluster-enabled, two masters
// with half of the slots each (checked by hand with redis-cli and raw
// RESP, the same sequence of commands).
func TestRedirectAsRedisCluster(t *testing.T) {
	addrs, nodes := regionServers(t, 2, redirecting)
	m, _ := nodes[0].SlotMap()
	mine := keysOwnedBy(m, 1, 2)
	theirs := keysOwnedBy(m, 2, 1)[0]
	const crossSlot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
	c := dialRaw(t, addrs[0])
	for _, step := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"SET", mine[0], "1"}, "+OK\r\n"},
		{[]string{"SET", theirs, "1"}, moved(m, theirs)},
		{[]string{"GET", theirs}, moved(m, theirs)},
		{[]string{"MGET", mine[0], mine[1]}, crossSlot}, // both here, but two slots
		{[]string{"MGET", mine[0], theirs}, crossSlot},  // CROSSSLOT before MOVED
		{[]string{"MSET", "{" + theirs + "}a", "1", "{" + theirs + "}b", "2"}, moved(m, theirs)},
		{[]string{"MSET", "{" + mine[0] + "}a", "1", "{" + mine[0] + "}b", "2"}, "+OK\r\n"},
		{[]string{"DEL", mine[0], mine[1]}, crossSlot},
		{[]string{"RENAME", mine[0], theirs}, crossSlot},
		{[]string{"OBJECT", "ENCODING", theirs}, moved(m, theirs)},
		{[]string{"MEMORY", "USAGE", theirs}, moved(m, theirs)},
		{[]string{"EXISTS", theirs}, moved(m, theirs)},
		{[]string{"WATCH", theirs}, moved(m, theirs)},
		{[]string{"READONLY"}, "+OK\r\n"},
		{[]string{"GET", theirs}, moved(m, theirs)},
		{[]string{"ASKING"}, "+OK\r\n"},
		{[]string{"GET", theirs}, moved(m, theirs)},
		{[]string{"PUBLISH", theirs, "x"}, ":0\r\n"}, // no keys: served
		// A command refused while queuing dooms the transaction.
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SET", theirs, "1"}, moved(m, theirs)},
		{[]string{"SET", mine[0], "1"}, "+QUEUED\r\n"},
		{[]string{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
		// Queued commands over two slots: EXEC refuses and discards.
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SET", mine[0], "1"}, "+QUEUED\r\n"},
		{[]string{"SET", mine[1], "1"}, "+QUEUED\r\n"},
		{[]string{"EXEC"}, crossSlot},
		{[]string{"EXEC"}, "-ERR EXEC without MULTI\r\n"},
		{[]string{"MULTI"}, "+OK\r\n"},
		{[]string{"SET", mine[0], "2"}, "+QUEUED\r\n"},
		{[]string{"GET", mine[0]}, "+QUEUED\r\n"},
		{[]string{"EXEC"}, "*2\r\n+OK\r\n$1\r\n2\r\n"},
	} {
		c.send(cmd(step.cmd...))
		c.expect(step.want)
	}
	// Redirection comes before the subscribed-mode check.
	c.send(cmd("SUBSCRIBE", "ch"))
	c.expect("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
	c.send(cmd("GET", theirs))
	c.expect(moved(m, theirs))
	c.send(cmd("GET", mine[0]))
	c.expect("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n")

	// Counted as redis-server counted the same sequence: calls, rejected
	// and failed calls per command, errors by code.
	info := newClient(t, addrs[0]).Info(context.Background(), "commandstats", "errorstats").Val()
	for _, want := range []string{
		"cmdstat_exec:calls=3,", "rejected_calls=1,failed_calls=2",
		"cmdstat_set:calls=2,", "cmdstat_get:calls=1,", "cmdstat_mset:calls=1,", "cmdstat_multi:calls=3,",
		"cmdstat_watch:calls=0,", "cmdstat_object|encoding:calls=0,", "cmdstat_memory|usage:calls=0,",
		"errorstat_CROSSSLOT:count=5\r\n", "errorstat_ERR:count=2\r\n", "errorstat_EXECABORT:count=1\r\n", "errorstat_MOVED:count=11\r\n",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}
	for cmd, rejected := range map[string]int{"exec": 1, "get": 5, "set": 2, "mget": 2, "mset": 1, "del": 1, "rename": 1, "exists": 1, "watch": 1} {
		if want := fmt.Sprintf("rejected_calls=%d,", rejected); !strings.Contains(statLine(info, "cmdstat_"+cmd+":"), want) {
			t.Errorf("%s: %q, want %s", cmd, statLine(info, "cmdstat_"+cmd+":"), want)
		}
	}
}

// Without Redirect (the default) every node serves every key.
func TestNoRedirectByDefault(t *testing.T) {
	addrs, nodes := regionServers(t, 2, func(g *geocache.GossipConfig, _ *Config) { g.Copies = 1 })
	m, _ := nodes[0].SlotMap()
	theirs := keysOwnedBy(m, 2, 2)
	c := dialRaw(t, addrs[0])
	c.send(cmd("SET", theirs[0], "1"))
	c.expect("+OK\r\n")
	c.send(cmd("MGET", theirs[0], theirs[1]))
	c.expect("*2\r\n$1\r\n1\r\n$-1\r\n")
}

// A cluster client follows a node that leaves its region: the leaving node
// redirects every key to the others, the client reloads the map, and
// every key written before is read from the node that stays.
func TestRedirectFollowsALeavingNode(t *testing.T) {
	addrs, nodes := regionServers(t, 2, redirecting)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1]})
	t.Cleanup(func() { cc.Close() })
	for i := range 100 {
		if err := cc.Set(ctx, fmt.Sprint("key:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "every key on both nodes", func() bool {
		return nodes[0].Stats().Entries == 100 && nodes[1].Stats().Entries == 100
	})
	if err := nodes[0].LeaveRegion(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the staying node owns every slot", func() bool {
		m, _ := nodes[1].SlotMap()
		return len(m.RangesOf(2)) == 1 && m.RangesOf(2)[0] == cluster.SlotRange{First: 0, Last: cluster.Slots - 1}
	})
	c := dialRaw(t, addrs[0])
	c.send(cmd("GET", "key:1"))
	c.expect("-MOVED " + strconv.Itoa(cluster.KeySlot("key:1")) + " " + addrs[1] + "\r\n")
	for i := range 100 {
		if v, err := cc.Get(ctx, fmt.Sprint("key:", i)).Int(); err != nil || v != i {
			t.Fatalf("key:%d = %v, %v", i, v, err)
		}
	}
}

func statLine(info, prefix string) string {
	for line := range strings.Lines(info) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// Redirecting, a node lists only the keys of the slots it is the primary
// of, as a Redis Cluster master: walking every node sees each key once.
func TestRedirectListsPrimaryKeys(t *testing.T) {
	addrs, nodes := regionServers(t, 2, redirecting)
	ctx := context.Background()
	for i := range 100 {
		if err := nodes[i%2].Set(ctx, fmt.Sprint("key:", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "every key on both nodes", func() bool {
		return nodes[0].Stats().Entries == 100 && nodes[1].Stats().Entries == 100
	})
	m, _ := nodes[0].SlotMap()
	seen := map[string]int{}
	size := int64(0)
	for i, a := range addrs {
		c := newClient(t, a)
		keys := c.Keys(ctx, "*").Val()
		var scanned []string
		for cur := uint64(0); ; {
			ks, next, err := c.Scan(ctx, cur, "", 7).Result()
			if err != nil {
				t.Fatal(err)
			}
			scanned = append(scanned, ks...)
			if cur = next; cur == 0 {
				break
			}
		}
		slices.Sort(keys)
		slices.Sort(scanned)
		if !slices.Equal(keys, scanned) {
			t.Errorf("node %d: KEYS %v, SCAN %v", i+1, keys, scanned)
		}
		for _, k := range keys {
			seen[k]++
			if p := m.Primary(cluster.KeySlot(k)).ID; p != uint32(i+1) {
				t.Errorf("node %d lists %s, whose slot's primary is node %d", i+1, k, p)
			}
		}
		n := c.DBSize(ctx).Val()
		if n != int64(len(keys)) {
			t.Errorf("node %d: DBSIZE %d, KEYS %d", i+1, n, len(keys))
		}
		size += n
		if k := c.RandomKey(ctx).Val(); m.Primary(cluster.KeySlot(k)).ID != uint32(i+1) {
			t.Errorf("node %d: RANDOMKEY %q is not of its slots", i+1, k)
		}
	}
	if len(seen) != 100 || size != 100 {
		t.Errorf("the two nodes list %d distinct keys, DBSIZE %d in all; want 100 each", len(seen), size)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s listed by %d nodes", k, n)
		}
	}
}

// A command on a cold slot (gained, still filling from the peers) is sent
// once to a co-owner that held it (-ASK), which a cluster client follows
// with ASKING; after ASKING, inside a transaction, and once the slot is
// warm, the node serves it itself. -ASK counts as a rejected call and an
// ASK error, as Redis counts its redirections.
// coldSeam makes the first of a region's servers hold one slot cold (set
// by cold), naming a co-owner; two nodes of two copies own every slot.
type coldSeam struct {
	slot  atomic.Int64 // 1 + the cold slot; 0: none
	ask   atomic.Pointer[string]
	first bool
}

func (c *coldSeam) opt(mode func(*Config)) func(*geocache.GossipConfig, *Config) {
	c.first = true
	return func(g *geocache.GossipConfig, cfg *Config) {
		g.SlotsOnly = true
		mode(cfg)
		if c.first {
			cfg.coldSlot = func(slot int) (string, bool) {
				if int64(slot)+1 != c.slot.Load() {
					return "", false
				}
				return *c.ask.Load(), true
			}
			c.first = false
		}
	}
}

// cold makes slot cold on the first node, asking addr; slot -1: none.
func (c *coldSeam) cold(slot int, addr string) {
	c.ask.Store(&addr)
	c.slot.Store(int64(slot) + 1)
}

// region starts two servers of mode with the seam on the first, and
// writes key = "v" through the second, once it is on both nodes.
func (c *coldSeam) region(t *testing.T, key string, mode func(*Config)) ([]string, []*geocache.Node) {
	t.Helper()
	addrs, nodes := regionServers(t, 2, c.opt(mode))
	if err := nodes[1].Set(context.Background(), key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the key on both nodes", func() bool { _, err := nodes[0].Get(key); return err == nil })
	return addrs, nodes
}

func TestRedirectAsksForAColdSlot(t *testing.T) {
	var seam coldSeam
	key := "user:1"
	slot := cluster.KeySlot(key)
	addrs, _ := seam.region(t, key, func(cfg *Config) { cfg.Redirect = true })
	ctx := context.Background()
	seam.cold(slot, addrs[1])

	c := dialRaw(t, addrs[0])
	c.send(cmd("GET", key))
	c.expect("-ASK " + strconv.Itoa(slot) + " " + addrs[1] + "\r\n")
	c.send(cmd("ASKING") + cmd("GET", key) + cmd("GET", key))
	c.expect("+OK\r\n$1\r\nv\r\n-ASK " + strconv.Itoa(slot) + " " + addrs[1] + "\r\n")
	// Inside MULTI the command is refused as it is queued, which dooms
	// the transaction; an ASKING queued in it does not outlive EXEC.
	ask := "-ASK " + strconv.Itoa(slot) + " " + addrs[1] + "\r\n"
	c.send(cmd("MULTI") + cmd("GET", key) + cmd("EXEC"))
	c.expect("+OK\r\n" + ask + "-EXECABORT Transaction discarded because of previous errors.\r\n")
	c.send(cmd("MULTI") + cmd("ASKING") + cmd("EXEC") + cmd("GET", key))
	c.expect("+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n" + ask)
	info := newClient(t, addrs[0]).Info(ctx, "errorstats", "commandstats").Val()
	if got := statLine(info, "errorstat_ASK:"); got != "errorstat_ASK:count=4" {
		t.Errorf("errorstats: %q; want 4 ASK", got)
	}
	if got := statLine(info, "cmdstat_get:"); !strings.Contains(got, "rejected_calls=4,") {
		t.Errorf("commandstats: %q; want 4 rejected GETs", got)
	}

	// A cluster client follows -ASK without taking the slot off node 1.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1]})
	t.Cleanup(func() { cc.Close() })
	for range 3 {
		if v, err := cc.Get(ctx, key).Result(); err != nil || v != "v" {
			t.Fatalf("cluster client GET on a cold slot: %q, %v", v, err)
		}
	}
	seam.cold(-1, "") // warm
	c.send(cmd("GET", key))
	c.expect("$1\r\nv\r\n")
}
