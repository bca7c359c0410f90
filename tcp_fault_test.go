package geocache

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/geocache/geocache/internal/netsim"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// proxied runs nodes on loopback TCP with every link from node i to node j
// through its own toxiproxy proxy, so latency and cuts apply per direction.
type proxied struct {
	t       *testing.T
	srv     *toxiproxy.ApiServer
	proxies map[[2]int]*toxiproxy.Proxy // [from, to]
	nodes   []*Node
}

// newProxied starts the proxies, with oneWay latency on every link in both
// directions, and then the nodes: every connection and every measurement
// of a round trip sees the latency from the first byte.
func newProxied(t *testing.T, regions []string, oneWay time.Duration) *proxied {
	t.Helper()
	p := &proxied{t: t, proxies: map[[2]int]*toxiproxy.Proxy{}}
	p.srv = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p.srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	addrs, ls := freeAddrs(t, len(regions))
	for i := range regions {
		for j := range regions {
			if i == j {
				continue
			}
			px := toxiproxy.NewProxy(p.srv, fmt.Sprintf("%d-%d", i, j), "127.0.0.1:0", addrs[j])
			if err := px.Start(); err != nil {
				t.Fatal(err)
			}
			p.proxies[[2]int{i, j}] = px
			p.latency(i, j, oneWay)
		}
	}
	for i, r := range regions {
		var peers []string
		for j := range regions {
			if j != i {
				peers = append(peers, p.proxies[[2]int{i, j}].Listen)
			}
		}
		cfg := MultiRegion(r, uint32(i+1), addrs[i], peers...)
		cfg.Listener = ls[i]
		cfg.PeerTimeout = 500 * time.Millisecond
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p.nodes = append(p.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range p.nodes {
			n.Close()
		}
		for _, px := range p.proxies {
			px.Stop()
		}
	})
	return p
}

// latency delays the bytes node from sends to node to by oneWay.
func (p *proxied) latency(from, to int, oneWay time.Duration) {
	p.t.Helper()
	js := fmt.Sprintf(`{"name":"lat","type":"latency","stream":"upstream","attributes":{"latency":%d}}`, oneWay.Milliseconds())
	if _, err := p.proxies[[2]int{from, to}].Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		p.t.Fatal(err)
	}
	// The replies (acks) travel back through the same proxy.
	js = strings.Replace(strings.Replace(js, "upstream", "downstream", 1), `"lat"`, `"latback"`, 1)
	if _, err := p.proxies[[2]int{from, to}].Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		p.t.Fatal(err)
	}
}

// isolate cuts every link to and from node i, like a region whose network
// is gone.
func (p *proxied) isolate(i int) {
	for k, px := range p.proxies {
		if k[0] == i || k[1] == i {
			cutProxy(p.t, px)
		}
	}
}

func (p *proxied) heal() {
	for _, px := range p.proxies {
		uncutProxy(p.t, px)
	}
}

// cutProxy is netsim.Cut, failing the test on an error.
func cutProxy(t testing.TB, px *toxiproxy.Proxy) {
	t.Helper()
	if err := netsim.Cut(px); err != nil {
		t.Fatal(err)
	}
}

// uncutProxy is netsim.Uncut, failing the test on an error.
func uncutProxy(t testing.TB, px *toxiproxy.Proxy) {
	t.Helper()
	if err := netsim.Uncut(px); err != nil {
		t.Fatal(err)
	}
}

// TestTCPThroughProxies is the real-socket check of replication: three
// regions on loopback with 30ms one-way latency on every link, then a
// region cut off and healed.
func TestTCPThroughProxies(t *testing.T) {
	if _, err := net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Skip("no loopback TCP")
	}
	const oneWay = 30 * time.Millisecond
	p := newProxied(t, []string{"us", "eu", "ap"}, oneWay)
	us, eu, ap := p.nodes[0], p.nodes[1], p.nodes[2]
	ctx := context.Background()
	testkit.Eventually(t, "links up", func() bool {
		for _, n := range p.nodes {
			for _, ps := range n.Stats().Peers {
				if !ps.Connected {
					return false
				}
			}
		}
		return true
	})
	start := time.Now()
	if err := us.Set(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "eu to see a", func() bool { _, err := eu.Get("a"); return err == nil })
	if took := time.Since(start); took < oneWay {
		t.Errorf("visible in eu after %v, under the %v one-way latency", took, oneWay)
	} else {
		t.Logf("visible in eu after %v (one-way %v)", took, oneWay)
	}
	// An All write waits for both other regions: at least a round trip.
	start = time.Now()
	if err := us.Set(ctx, "b", []byte("2"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*oneWay {
		t.Errorf("All acknowledged after %v, under a round trip", took)
	}
	testkit.Eventually(t, "a ping to measure the RTT", func() bool { return us.Stats().Peers[0].RTT > 0 })
	if rtt := us.Stats().Peers[0].RTT; rtt < 2*oneWay {
		t.Errorf("measured RTT %v, under twice the one-way latency", rtt)
	}

	p.isolate(2)
	keys := keyList(100)
	for i, k := range keys {
		n := []*Node{us, eu}[i%2]
		if err := n.Set(ctx, k, []byte("during-cut")); err != nil {
			t.Fatal(err)
		}
	}
	if err := us.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := ap.Get(keys[0]); err == nil {
		t.Fatal("the isolated region received a write through a stopped proxy")
	}
	p.heal()
	start = time.Now()
	testkit.Eventually(t, "convergence after heal", func() bool {
		a, b, c := dump(us, append(keys, "a", "b")), dump(eu, append(keys, "a", "b")), dump(ap, append(keys, "a", "b"))
		return fmt.Sprint(a) == fmt.Sprint(b) && fmt.Sprint(b) == fmt.Sprint(c)
	})
	t.Logf("converged %v after heal", time.Since(start))
	if _, err := ap.Get("a"); err == nil {
		t.Error("a key deleted during the cut is still served by the healed region")
	}
}
