package resp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
	"github.com/redis/go-redis/v9"
)

// openRegions starts one node per region, replicating to each other over
// loopback, as the root package's openCluster.
func openRegions(t *testing.T, regions ...string) []*geocache.Node {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range regions {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs, lns = append(addrs, ln.Addr().String()), append(lns, ln)
	}
	nodes := make([]*geocache.Node, len(regions))
	for i, r := range regions {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		cfg := geocache.MultiRegion(r, uint32(i+1), addrs[i], peers...)
		cfg.Listener = lns[i]
		n, err := geocache.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	return nodes
}

// ackMillis is ackTimeout in milliseconds, for GEOCACHE ACK and WAIT.
var ackMillis = fmt.Sprint(ackTimeout.Milliseconds())

// twoRegions serves two replicating regions, "us" and "eu", and returns a
// client of each, once their links are up.
func twoRegions(t *testing.T) (us, eu *geocache.Node, cus, ceu *redis.Client) {
	t.Helper()
	nodes := openRegions(t, "us", "eu")
	us, eu = nodes[0], nodes[1]
	_, aus := startServer(t, Config{Node: us})
	_, aeu := startServer(t, Config{Node: eu})
	cus, ceu = newClient(t, aus), newClient(t, aeu)
	linksUp(t, nodes)
	return us, eu, cus, ceu
}

// linksUp waits until every node is connected to every peer.
func linksUp(t *testing.T, nodes []*geocache.Node) {
	t.Helper()
	for _, n := range nodes {
		testkit.Eventually(t, "links up", func() bool {
			st := n.Stats()
			for _, p := range st.Peers {
				if !p.Connected || p.Region == "" {
					return false
				}
			}
			return len(st.Peers) == len(nodes)-1
		})
	}
}

func TestReplicationThroughRESP(t *testing.T) {
	_, _, cus, ceu := twoRegions(t)
	if err := cus.Set(bg, "greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "eu to see us's write", func() bool { return ceu.Get(bg, "greeting").Val() == "hello" })
	vus := cus.Do(bg, "GEOCACHE", "VERSION", "greeting").Val()
	veu := ceu.Do(bg, "GEOCACHE", "VERSION", "greeting").Val()
	if vus == nil || len(vus.([]any)) != 3 || vus.([]any)[1] != int64(1) {
		t.Fatalf("GEOCACHE VERSION on us = %v; want [hlc 1 -1]", vus)
	}
	if !equalAny(vus, veu) {
		t.Errorf("versions differ: us %v, eu %v", vus, veu)
	}
	if err := ceu.Del(bg, "greeting").Err(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "us to see eu's delete", func() bool { return errors.Is(cus.Get(bg, "greeting").Err(), redis.Nil) })

	// SET ... EX replicates its absolute expiry.
	if err := cus.Set(bg, "ttl", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "eu to see the expiring write", func() bool { return ceu.Exists(bg, "ttl").Val() == 1 })
	if a, b := cus.Do(bg, "GEOCACHE", "VERSION", "ttl").Val(), ceu.Do(bg, "GEOCACHE", "VERSION", "ttl").Val(); !equalAny(a, b) {
		t.Errorf("versions of an expiring key differ: us %v, eu %v", a, b)
	}
}

func equalAny(a, b any) bool {
	as, ok1 := a.([]any)
	bs, ok2 := b.([]any)
	if !ok1 || !ok2 || len(as) != len(bs) {
		return false
	}
	for i := range as {
		if as[i] != bs[i] {
			return false
		}
	}
	return true
}

// TestFlushallIsLocalAndDelReachesOtherRegions: FLUSHALL empties one node
// only; a DEL of a key absent here still deletes it in other regions (the
// cache-invalidation case).
func TestFlushallIsLocalAndDelReachesOtherRegions(t *testing.T) {
	_, eu, cus, ceu := twoRegions(t)
	if err := ceu.Do(bg, "GEOCACHE", "ACK", "ALL", ackMillis).Err(); err != nil {
		t.Fatal(err)
	}
	if err := ceu.Set(bg, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if cus.Get(bg, "k").Val() != "v" {
		t.Fatal("an ALL write from eu is not on us")
	}
	if err := cus.FlushAll(bg).Err(); err != nil {
		t.Fatal(err)
	}
	if n := cus.DBSize(bg).Val(); n != 0 {
		t.Fatalf("DBSIZE on us after FLUSHALL = %d", n)
	}
	if ceu.Get(bg, "k").Val() != "v" {
		t.Fatal("FLUSHALL on us removed eu's copy: it must be local")
	}
	if err := cus.Do(bg, "GEOCACHE", "ACK", "ALL", ackMillis).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cus.Del(bg, "k").Result(); n != 0 || err != nil {
		t.Fatalf("DEL of a key absent on us = %d, %v; want 0", n, err)
	}
	if _, err := eu.Get("k"); !errors.Is(err, geocache.ErrNotFound) {
		t.Errorf("eu still holds k after an ALL DEL on us: %v", err)
	}
}

// TestAckLevels: after GEOCACHE ACK ALL every write, conditional or not,
// single or multi-key, is in the other region when its reply arrives.
func TestAckLevels(t *testing.T) {
	_, eu, cus, _ := twoRegions(t)
	if got := cus.Do(bg, "GEOCACHE", "ACK").Val(); got != "LOCAL" {
		t.Fatalf("default ack level %v; want LOCAL", got)
	}
	if err := cus.Do(bg, "GEOCACHE", "ACK", "ALL", ackMillis).Err(); err != nil {
		t.Fatal(err)
	}
	has := func(key, want string) {
		t.Helper()
		v, err := eu.Get(key)
		if err != nil || string(v) != want {
			t.Errorf("eu %s = %q, %v; want %q right after an ALL write", key, v, err, want)
		}
	}
	cus.Set(bg, "a", "1", 0)
	has("a", "1")
	cus.SetNX(bg, "b", "2", 0)
	has("b", "2")
	cus.MSet(bg, "c", "3", "d", "4", "e", "5")
	has("c", "3")
	has("e", "5")
	cus.Do(bg, "SET", "a", "10", "XX", "GET")
	has("a", "10")
	cus.Expire(bg, "a", time.Hour)
	if it, err := eu.Lookup("a"); err != nil || it.ExpireAt.IsZero() {
		t.Errorf("eu a after an ALL EXPIRE: %+v, %v", it, err)
	}
	cus.Del(bg, "c", "d")
	if _, err := eu.Get("d"); !errors.Is(err, geocache.ErrNotFound) {
		t.Errorf("eu d after an ALL DEL: %v", err)
	}
	// QUORUM of two regions is both.
	cus.Do(bg, "GEOCACHE", "ACK", "QUORUM", ackMillis)
	cus.Set(bg, "q", "1", 0)
	has("q", "1")
}

// TestWaitCountsRegions: WAIT has Redis's meaning, counting regions.
func TestWaitCountsRegions(t *testing.T) {
	_, _, cus, _ := twoRegions(t)
	// A connection holds one session: pin the pool to one connection.
	conn := cus.Conn()
	defer conn.Close()
	if err := conn.Set(bg, "w", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Do(bg, "WAIT", "1", ackMillis).Int(); n != 1 || err != nil {
		t.Fatalf("WAIT 1 %s = %d, %v; want 1", ackMillis, n, err)
	}
	start := time.Now()
	if n, err := conn.Do(bg, "WAIT", "2", "100").Int(); n != 1 || err != nil {
		t.Fatalf("WAIT 2 100 with one other region = %d, %v; want 1 after the timeout", n, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("WAIT 2 100 returned after %v; want the 100 ms timeout", d)
	}
	if n, err := conn.Do(bg, "WAIT", "0", "0").Int(); n != 1 || err != nil {
		t.Fatalf("WAIT 0 0 = %d, %v; want 1 at once", n, err)
	}
}

// TestAckTimeout: with the other region down, an ALL write answers -TIMEOUT
// after the connection's ack timeout, and stays applied here.
func TestAckTimeout(t *testing.T) {
	us, eu, cus, _ := twoRegions(t)
	eu.Close()
	testkit.Eventually(t, "us to see eu down", func() bool { return !us.Stats().Peers[0].Connected })
	conn := cus.Conn()
	defer conn.Close()
	if err := conn.Do(bg, "GEOCACHE", "ACK", "ALL", "150").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := conn.Set(bg, "k", "v", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "TIMEOUT write applied locally, not acknowledged by enough regions within 150ms") {
		t.Fatalf("ALL write with eu down: %v; want -TIMEOUT", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond { // a lower bound only: it can take longer
		t.Errorf("-TIMEOUT after %v, before the 150ms ack timeout", d)
	}
	if v := conn.Get(bg, "k").Val(); v != "v" {
		t.Errorf("after -TIMEOUT the write is not applied locally: %q", v)
	}
	if n, err := conn.Do(bg, "WAIT", "1", "50").Int(); n != 0 || err != nil {
		t.Errorf("WAIT 1 50 with eu down = %d, %v; want 0", n, err)
	}
	if got := conn.Do(bg, "GEOCACHE", "REGIONS").Val(); !strings.Contains(strings.ReplaceAll(sprint(got), "\n", " "), "disconnected") {
		t.Errorf("GEOCACHE REGIONS with eu down: %v", got)
	}
}

// TestRegionsAndInfo: GEOCACHE REGIONS and INFO replication describe the
// links.
func TestRegionsAndInfo(t *testing.T) {
	_, _, cus, _ := twoRegions(t)
	got, err := cus.Do(bg, "GEOCACHE", "REGIONS").Slice()
	if err != nil || len(got) != 2 {
		t.Fatalf("GEOCACHE REGIONS = %v, %v; want self and one peer", got, err)
	}
	self, peer := asMap(got[0]), asMap(got[1])
	if self["region"] != "us" || self["state"] != "self" || self["node_id"] != int64(1) || self["relays_sent"] != int64(0) || self["relays_missed"] != int64(0) {
		t.Errorf("self entry %v", self)
	}
	if peer["region"] != "eu" || peer["state"] != "connected" || peer["node"] != "eu-2" || peer["protocol"] != int64(wire.Proto) {
		t.Errorf("peer entry %v", peer)
	}
	for _, k := range []string{"addr", "since_ms", "lag", "backlog_bytes", "rtt_us", "offset_us", "full_syncs", "skipped", "stand_ins", "protocol", "last_error"} {
		if _, ok := peer[k]; !ok {
			t.Errorf("peer entry lacks %q: %v", k, peer)
		}
	}
	info := cus.Info(bg, "replication").Val()
	for _, want := range []string{"role:master", "geocache_region:us", "geocache_other_regions:1", "peer0:addr=", "region=eu,state=connected,lag=", ",backlog_bytes=", ",rtt_ms=", fmt.Sprintf(",protocol=%d,", wire.Proto), "origin0:node=eu-2,region=eu,state=connected"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO replication lacks %q:\n%s", want, info)
		}
	}
}

// asMap reads a RESP2 map reply (alternating keys and values).
func asMap(v any) map[string]any {
	m := map[string]any{}
	if m3, ok := v.(map[any]any); ok {
		for k, v := range m3 {
			m[k.(string)] = v
		}
		return m
	}
	s := v.([]any)
	for i := 0; i+1 < len(s); i += 2 {
		m[s[i].(string)] = s[i+1]
	}
	return m
}

func sprint(v any) string { return fmt.Sprint(v) }
