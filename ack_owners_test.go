package geocache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// A write acknowledged by another region is held there by an owner of its
// key: in a region of two nodes keeping only their own slots (one copy
// each), the node that does not own a key skips its writes, and its
// acknowledgement does not count for them. With the link to the key's
// owner cut, an ALL write of that key times out although the other node
// of the region acknowledged it, a write of the other node's key does not,
// and WAIT (every write so far) counts the region only once the owner is
// back.
func TestAckLevelsCountOnlyTheKeysOwners(t *testing.T) {
	addrs, ls := freeAddrs(t, 3)
	eu := make([]*Node, 2)
	for i := range eu {
		var join []string
		if i > 0 {
			join = []string{eu[0].members.Addr()}
		}
		n, err := Open(Config{Region: "eu", NodeID: uint32(i + 1), PeerAddr: addrs[i], Listener: ls[i], PeerTimeout: time.Second,
			Gossip: &GossipConfig{Addr: "127.0.0.1:0", Join: join, Copies: 1, SlotsOnly: true, ClientAddr: fmt.Sprint("127.0.0.1:", 6391+i)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		eu[i] = n
	}
	settled(t, "two members, each keeping its own slots", eu...)

	// The link from us to eu's second node runs through a proxy.
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	px := toxiproxy.NewProxy(srv, "us-eu2", "127.0.0.1:0", addrs[1])
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Stop)
	cfg := MultiRegion("us", 9, addrs[2], addrs[0], px.Listen)
	cfg.Listener, cfg.PeerTimeout = ls[2], time.Second
	us, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })

	// A key of each eu node.
	m, _ := eu[0].SlotMap()
	var keyOf [2]string
	for i := 0; keyOf[0] == "" || keyOf[1] == ""; i++ {
		k := userKey(i)
		keyOf[m.Primary(cluster.KeySlot(k)).ID-1] = k
	}
	ctx := context.Background()
	set := func(key string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return us.Set(ctx, key, []byte("v"), WithAck(All))
	}
	testkit.Eventually(t, "us to link to both eu nodes", func() bool {
		up := 0
		for _, l := range us.Stats().Peers {
			if l.Connected && l.Region == "eu" {
				up++
			}
		}
		return up == 2
	})
	for _, k := range keyOf {
		if err := set(k, time.Minute); err != nil {
			t.Fatalf("ALL write of %s with every link up: %v", k, err)
		}
	}

	cutProxy(t, px)
	testkit.Eventually(t, "eu's second node to be cut off", func() bool {
		for _, l := range us.Stats().Peers {
			if l.Addr == px.Listen && l.Connected {
				return false
			}
		}
		return true
	})
	if err := set(keyOf[1], time.Second); !errors.Is(err, ErrAckTimeout) {
		t.Errorf("ALL write of the cut-off node's key %s = %v; want ErrAckTimeout (the node that acknowledged it does not hold it)", keyOf[1], err)
	}
	if err := set(keyOf[0], time.Minute); err != nil {
		t.Errorf("ALL write of the reachable node's key %s: %v", keyOf[0], err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	if n, err := us.Wait(wctx, 1); n != 0 || err == nil {
		t.Errorf("WAIT 1 with half of eu's slots cut off = %d, %v; want 0 and a timeout", n, err)
	}
	cancel()
	// A session's WAIT counts the slots it wrote: one that wrote only the
	// reachable node's key counts eu; one that wrote the other's does not.
	for _, tc := range []struct {
		key     string
		timeout time.Duration
		want    int
	}{{keyOf[0], time.Minute, 1}, {keyOf[1], time.Second, 0}} {
		s := us.NewSession()
		if err := s.Set(ctx, tc.key, []byte("v")); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, tc.timeout)
		if n, err := s.Wait(wctx, 1); n != tc.want || (err == nil) != (tc.want == 1) {
			t.Errorf("WAIT 1 of a session that wrote %s (eu node %d's) = %d, %v; want %d", tc.key, m.Primary(cluster.KeySlot(tc.key)).ID, n, err, tc.want)
		}
		cancel()
	}
	if n, err := us.NewSession().Wait(ctx, 1); n != 1 || err != nil {
		t.Errorf("WAIT 1 of a session without writes = %d, %v; want 1 (the regions known) at once", n, err)
	}

	uncutProxy(t, px)
	wctx, cancel = context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if n, err := us.Wait(wctx, 1); n != 1 || err != nil {
		t.Errorf("WAIT 1 once the link is back = %d, %v", n, err)
	}
	if v, err := eu[1].Get(keyOf[1]); err != nil || string(v) != "v" {
		t.Errorf("the owner of %s holds %q, %v", keyOf[1], v, err)
	}
}
