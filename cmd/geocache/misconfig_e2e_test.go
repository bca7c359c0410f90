package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// End-to-end tests of replication misconfiguration and of the defaults of
// geocache serve, on real processes: a setup that cannot replicate must say
// so at the default log level, in /readyz, in the metrics and in GEOCACHE
// REGIONS.

// e2eRecords returns the JSON log records of logs whose msg is msg and,
// if level is not "", whose level is level.
func e2eRecords(logs, msg, level string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg && (level == "" || rec["level"] == level) {
			out = append(out, rec)
		}
	}
	return out
}

// e2eWaitRecord waits up to 30 s for a record matching msg, level and
// every key=value of attrs, and returns it.
func e2eWaitRecord(t *testing.T, n *e2eNode, msg, level string, attrs ...string) map[string]any {
	t.Helper()
	var found map[string]any
	e2eEventually(t, 30*time.Second, fmt.Sprintf("%s logs %s %q %v", n.name, level, msg, attrs), func() error {
		for _, rec := range e2eRecords(n.logs.String(), msg, level) {
			ok := true
			for i := 0; i+1 < len(attrs); i += 2 {
				ok = ok && fmt.Sprint(rec[attrs[i]]) == attrs[i+1]
			}
			if ok {
				found = rec
				return nil
			}
		}
		return fmt.Errorf("no such record")
	})
	return found
}

// e2eGeocacheRegions returns GEOCACHE REGIONS as one map per entry.
func e2eGeocacheRegions(t *testing.T, c *redis.Client) []map[string]any {
	t.Helper()
	got, err := c.Do(context.Background(), "GEOCACHE", "REGIONS").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range got {
		m := map[string]any{}
		switch e := e.(type) {
		case map[any]any:
			for k, v := range e {
				m[fmt.Sprint(k)] = v
			}
		case []any:
			for i := 0; i+1 < len(e); i += 2 {
				m[fmt.Sprint(e[i])] = e[i+1]
			}
		}
		out = append(out, m)
	}
	return out
}

// e2eMetric returns the value of the sample of name whose labels include
// every key=value of labels, from a scrape of /metrics.
func e2eMetric(t *testing.T, adminAddr, name string, labels ...string) (float64, bool) {
	t.Helper()
	_, body := httpGet(t, "http://"+adminAddr+"/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, labels[i]+`="`+labels[i+1]+`"`)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			return v, true
		}
	}
	return 0, false
}

// Two nodes of different clusters: both log a warning naming the peer and
// the reason, once however often the link is retried; the node started
// with --ready-requires-peers is not ready and says why, the other is
// ready; the metrics count the refusals by reason.
func TestE2EClusterMismatch(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 6)
	blue := newE2ENode(t, bin, "blue", addrs[0], addrs[1], "--cluster", "blue", "--node", "1",
		"--peers", addrs[3], "--admin-addr", addrs[4], "--ready-requires-peers")
	green := newE2ENode(t, bin, "green", addrs[2], addrs[3], "--cluster", "green", "--node", "2",
		"--peers", addrs[1], "--admin-addr", addrs[5])
	for _, n := range []*e2eNode{blue, green} {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	rec := e2eWaitRecord(t, blue, "replication link down", "WARN", "peer", addrs[3], "reason", "cluster mismatch")
	if !strings.Contains(fmt.Sprint(rec["err"]), `"blue"`) || strings.Contains(fmt.Sprint(rec), "green") {
		t.Errorf("warning %v does not say which cluster this node claimed, or tells the peer's", rec)
	}
	e2eWaitRecord(t, green, "replication peer refused", "WARN", "reason", "cluster mismatch", "node", "local-1")

	// The link is retried (backoff from 50 ms up to 2 s); the warning is
	// not repeated within the minute.
	e2eEventually(t, 60*time.Second, "blue retried the link five times", func() error {
		if v, _ := e2eMetric(t, addrs[4], "geocache_peer_link_failures_total", "peer", addrs[3], "reason", "cluster mismatch"); v < 5 {
			return fmt.Errorf("%v failures", v)
		}
		return nil
	})
	n := 0
	for _, rec := range e2eRecords(blue.logs.String(), "replication link down", "WARN") {
		if rec["reason"] == "cluster mismatch" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d cluster mismatch warnings for five failures, want 1", n)
	}

	// Once the clocks are settled (1 s with no peer answering), blue is
	// not ready for want of a peer, and green is ready.
	e2eEventually(t, 30*time.Second, "blue not ready for want of a peer", func() error {
		code, body := httpGet(t, "http://"+addrs[4]+"/readyz")
		if code != 503 || !strings.Contains(body, "no peer of region unknown (peer "+addrs[3]+") is reachable") || !strings.Contains(body, "cluster mismatch") {
			return fmt.Errorf("/readyz of blue (--ready-requires-peers): %d\n%s", code, body)
		}
		return nil
	})
	e2eEventually(t, 30*time.Second, "green ready", func() error {
		code, body := httpGet(t, "http://"+addrs[5]+"/readyz")
		if code != 200 || !strings.Contains(body, "never connected") || !strings.Contains(body, "cluster mismatch") {
			return fmt.Errorf("/readyz of green (default): %d\n%s", code, body)
		}
		return nil
	})
}

// A node started with the id of a running peer stops with an error (exit
// 2); the running node logs the conflict and keeps serving.
func TestE2EDuplicateNodeID(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 4)
	first := newE2ENode(t, bin, "first", addrs[0], addrs[1], "--region", "us", "--node", "5", "--peers", addrs[3])
	second := newE2ENode(t, bin, "second", addrs[2], addrs[3], "--region", "eu", "--node", "5", "--peers", addrs[1])
	if err := first.start(); err != nil {
		t.Fatal(err)
	}
	e2eWaitRecord(t, first, "first sync with the peers complete", "INFO")
	second.start() // it may exit before or after it logs "geocache serving"
	if code := second.waitExit(30 * time.Second); code != 2 {
		t.Fatalf("second node with a duplicate id exited %d, want 2", code)
	}
	rec := e2eWaitRecord(t, second, "another node has this node's id: stopping; give every node its own --node", "ERROR")
	if !strings.Contains(fmt.Sprint(rec["conflict"]), "duplicate node id 5") {
		t.Errorf("error record %v does not describe the conflict", rec)
	}
	e2eWaitRecord(t, first, "replication peer refused", "ERROR", "reason", "duplicate node id")
	if !first.running() {
		t.Fatal("the node that was there first stopped")
	}
	if err := first.client().Ping(context.Background()).Err(); err != nil {
		t.Errorf("first node after the conflict: %v", err)
	}
}

// A peer whose name does not resolve gets a warning that says so.
func TestE2EUnresolvablePeer(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 2)
	n := newE2ENode(t, bin, "n", addrs[0], addrs[1], "--node", "1", "--peers", "no-such-host.invalid:7380", "--insecure")
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	e2eWaitRecord(t, n, "replication link down", "WARN", "peer", "no-such-host.invalid:7380", "reason", "unresolvable")
}

// Two single nodes start side by side with no flag but --addr: neither
// takes a replication port (the default one is held here throughout, as
// a first node on the defaults would hold it).
func TestE2ESecondSingleNode(t *testing.T) {
	bin := e2eBinary(t)
	if ln, err := net.Listen("tcp", defaultPeerAddr); err == nil {
		defer ln.Close()
	} // else someone holds it already: the same situation
	addrs := e2eFreeAddrs(t, 2)
	for i, addr := range addrs {
		n := newE2ENode(t, bin, fmt.Sprint("single", i), addr, "")
		n.args = []string{"--addr", addr, "--log-format", "json"}
		if err := n.start(); err != nil {
			t.Fatalf("single node %d: %v", i, err)
		}
		rec := e2eWaitRecord(t, n, "geocache serving", "INFO")
		if rec["peer_addr"] != "" {
			t.Errorf("single node %d listens for replication on %v", i, rec["peer_addr"])
		}
		if err := n.client().Set(context.Background(), "k", "v", 0).Err(); err != nil {
			t.Errorf("single node %d: %v", i, err)
		}
	}
}

// A node without TLS material has nothing to reload on SIGHUP: it logs
// that and keeps serving (SIGHUP's default action would end it).
func TestE2EHangupWithoutTLS(t *testing.T) {
	bin := e2eBinary(t)
	addr := e2eFreeAddrs(t, 1)[0]
	n := newE2ENode(t, bin, "single", addr, "")
	n.args = []string{"--addr", addr, "--log-format", "json"}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	n.signal(syscall.SIGHUP)
	e2eWaitRecord(t, n, "SIGHUP: no TLS certificate to reload", "INFO")
	if err := n.client().Ping(context.Background()).Err(); err != nil || !n.running() {
		t.Fatalf("after SIGHUP: PING %v, running %v", err, n.running())
	}
}

// A restarted node answers /readyz 200 only once it has refilled from its
// peers: at the first 200 it already holds every key.
func TestE2EReadyzWaitsForRefill(t *testing.T) {
	admins := e2eFreeAddrs(t, 3)
	c := startE2ECluster(t, func(i int, n *e2eNode) {
		n.args = append(n.args, "--admin-addr", admins[i])
	})
	ctx := context.Background()
	us, eu := c.nodes[0].client(), c.nodes[1]
	const keys = 5000
	pipe := us.Pipeline()
	for i := range keys {
		pipe.Set(ctx, fmt.Sprint("key:", i), strings.Repeat("v", 100), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	euc := eu.client()
	e2eEventually(t, 30*time.Second, "eu holds every key", func() error {
		if n, err := euc.DBSize(ctx).Result(); err != nil || n != keys {
			return fmt.Errorf("DBSIZE %d, %v", n, err)
		}
		return nil
	})

	eu.kill()
	if err := eu.start(); err != nil {
		t.Fatal(err)
	}
	sawNotReady := false
	e2eEventually(t, 60*time.Second, "restarted eu ready", func() error {
		code, body := httpGet(t, "http://"+admins[1]+"/readyz")
		if code != 200 {
			sawNotReady = sawNotReady || strings.Contains(body, "refilling")
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		return nil
	})
	if n, err := euc.DBSize(ctx).Result(); err != nil || n != keys {
		t.Errorf("restarted eu ready holding %d of %d keys (%v)", n, keys, err)
	}
	if !sawNotReady {
		t.Log("the refill completed before the first /readyz poll")
	}
}

// GEOCACHE REGIONS tells a connected peer, one never reached and one that
// went down apart, with a time for each state and an error only while a
// link is down.
func TestE2ERegionsLinkStates(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 8)
	// a dials b (up), c (never started) and d (killed once connected).
	a := newE2ENode(t, bin, "a", addrs[0], addrs[1], "--region", "ra", "--node", "1", "--peers", addrs[3]+","+addrs[5]+","+addrs[7])
	b := newE2ENode(t, bin, "b", addrs[2], addrs[3], "--region", "rb", "--node", "2", "--peers", addrs[1])
	d := newE2ENode(t, bin, "d", addrs[6], addrs[7], "--region", "rd", "--node", "4", "--peers", addrs[1])
	start := time.Now()
	for _, n := range []*e2eNode{a, b, d} {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	ac := a.client()
	byAddr := func() map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, e := range e2eGeocacheRegions(t, ac)[1:] {
			m[fmt.Sprint(e["addr"])] = e
		}
		return m
	}
	e2eEventually(t, 30*time.Second, "a connected to b and d", func() error {
		m := byAddr()
		if m[addrs[3]]["state"] != "connected" || m[addrs[7]]["state"] != "connected" {
			return fmt.Errorf("%v", m)
		}
		return nil
	})
	d.kill()
	// A peer killed is a warning at the default level.
	e2eWaitRecord(t, a, "replication link down", "WARN", "peer", addrs[7], "reason", "connection lost")
	e2eEventually(t, 30*time.Second, "a sees d down", func() error {
		if m := byAddr(); m[addrs[7]]["state"] != "disconnected" {
			return fmt.Errorf("%v", m[addrs[7]])
		}
		return nil
	})
	m := byAddr()
	now := time.Now()
	inRange := func(v any) bool {
		ms, ok := v.(int64)
		return ok && ms >= start.Add(-time.Second).UnixMilli() && ms <= now.UnixMilli()
	}
	up, never, down := m[addrs[3]], m[addrs[5]], m[addrs[7]]
	if up["region"] != "rb" || up["node"] != "rb-2" || up["last_error"] != "" || up["reason"] != "" || up["last_error_ms"] != int64(-1) || !inRange(up["since_ms"]) {
		t.Errorf("connected peer: %v", up)
	}
	if never["state"] != "never connected" || never["region"] != "(unknown)" || never["node"] != "(unknown)" ||
		never["reason"] != "unreachable" || never["last_error"] == "" || !inRange(never["since_ms"]) || !inRange(never["last_error_ms"]) {
		t.Errorf("peer never reached: %v", never)
	}
	if down["region"] != "rd" || down["last_error"] == "" || down["reason"] == "" || !inRange(down["since_ms"]) || !inRange(down["last_error_ms"]) {
		t.Errorf("peer that went down: %v", down)
	}
}
