package admin_test

import (
	"testing"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	dto "github.com/prometheus/client_model/go"
)

// The RESP server's pub/sub figures are exported: the channels and
// patterns subscribed to, the output queued for subscribers, and the
// subscribers disconnected over the output buffer limits.
func TestRESPPubSubMetrics(t *testing.T) {
	n := openNode(t, geocache.Config{})
	st := admin.RESPStats{PubSubChannels: 3, PubSubPatterns: 2, PubSubOutputBytes: 65536, OutputBufferDisconnections: 5}
	s := newServer(t, admin.Config{Node: n, RESP: func() admin.RESPStats { return st }})
	checkMetrics(t, scrape(t, s.Handler()), []metricWant{
		{"geocache_resp_pubsub_channels", dto.MetricType_GAUGE, 3},
		{"geocache_resp_pubsub_patterns", dto.MetricType_GAUGE, 2},
		{"geocache_resp_pubsub_output_bytes", dto.MetricType_GAUGE, 65536},
		{"geocache_resp_output_buffer_limit_disconnections_total", dto.MetricType_COUNTER, 5},
	})

	// The figures are read at each scrape, not at registration.
	st = admin.RESPStats{PubSubChannels: 1, OutputBufferDisconnections: 6}
	mfs := scrape(t, s.Handler())
	for name, want := range map[string]float64{
		"geocache_resp_pubsub_channels":                          1,
		"geocache_resp_pubsub_patterns":                          0,
		"geocache_resp_pubsub_output_bytes":                      0,
		"geocache_resp_output_buffer_limit_disconnections_total": 6,
	} {
		if v, ok := value(mfs, name); !ok || v != want {
			t.Errorf("second scrape: %s = %v (present %v); want %v", name, v, ok, want)
		}
	}
}
