package admin_test

import (
	"testing"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	dto "github.com/prometheus/client_model/go"
)

// The RESP protection figures are exported: failed AUTHs, the request
// bytes held against --max-client-buffer, failed TLS handshakes.
func TestRESPProtectionMetrics(t *testing.T) {
	n := openNode(t, geocache.Config{})
	st := admin.RESPStats{AuthFailures: 7, BufferBytes: 12345, TLSHandshakeErrors: 2}
	s := newServer(t, admin.Config{Node: n, RESP: func() admin.RESPStats { return st }})
	checkMetrics(t, scrape(t, s.Handler()), []metricWant{
		{"geocache_resp_auth_failures_total", dto.MetricType_COUNTER, 7},
		{"geocache_resp_client_buffer_bytes", dto.MetricType_GAUGE, 12345},
		{"geocache_resp_tls_handshake_errors_total", dto.MetricType_COUNTER, 2},
	})
}

// metricWant is a metric's expected type and value.
type metricWant struct {
	name string
	typ  dto.MetricType
	want float64
}

// checkMetrics checks each metric's presence, value and type in mfs.
func checkMetrics(t *testing.T, mfs map[string]*dto.MetricFamily, wants []metricWant) {
	t.Helper()
	for _, tt := range wants {
		if v, ok := value(mfs, tt.name); !ok || v != tt.want {
			t.Errorf("%s = %v (present %v); want %v", tt.name, v, ok, tt.want)
		}
		if got := mfs[tt.name].GetType(); got != tt.typ {
			t.Errorf("%s has type %v; want %v", tt.name, got, tt.typ)
		}
	}
}
