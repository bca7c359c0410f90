package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/geocache/geocache/internal/netsim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// wan simulates the network between regions on one machine: every link
// from region i to region j goes through its own user-space TCP proxy
// (toxiproxy, as a library: the kernel here has no netem), which adds the
// one-way latency in each direction and can be cut (netsim.Cut).
type wan struct {
	proxies map[[2]int]*toxiproxy.Proxy // [from, to]
}

// newWAN starts a proxy for every ordered pair of the upstream addresses.
func newWAN(upstreams []string, oneWay time.Duration) (*wan, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	w := &wan{proxies: map[[2]int]*toxiproxy.Proxy{}}
	for i := range upstreams {
		for j, up := range upstreams {
			if i == j {
				continue
			}
			p := toxiproxy.NewProxy(srv, fmt.Sprintf("%d-%d", i, j), "127.0.0.1:0", up)
			if err := p.Start(); err != nil {
				w.close()
				return nil, fmt.Errorf("start proxy %d->%d: %w", i, j, err)
			}
			w.proxies[[2]int{i, j}] = p
			if oneWay <= 0 {
				continue
			}
			// Upstream is what i sends to j; downstream is j's replies.
			for _, stream := range []string{"upstream", "downstream"} {
				js := fmt.Sprintf(`{"name":"wan-%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`,
					stream, stream, oneWay.Milliseconds())
				if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
					w.close()
					return nil, fmt.Errorf("latency on %d->%d: %w", i, j, err)
				}
			}
		}
	}
	return w, nil
}

// addr is where region from reaches region to.
func (w *wan) addr(from, to int) string { return w.proxies[[2]int{from, to}].Listen }

// isolate cuts every link to and from region i.
func (w *wan) isolate(i int) error {
	var errs []error
	for k, p := range w.proxies {
		if k[0] == i || k[1] == i {
			errs = append(errs, netsim.Cut(p))
		}
	}
	return errors.Join(errs...)
}

// heal restores every link.
func (w *wan) heal() error {
	var errs []error
	for _, p := range w.proxies {
		errs = append(errs, netsim.Uncut(p))
	}
	return errors.Join(errs...)
}

func (w *wan) close() {
	for _, p := range w.proxies {
		p.Stop()
	}
}
