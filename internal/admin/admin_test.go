package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	"github.com/geocache/geocache/internal/testkit"
)

func openNode(t *testing.T, cfg geocache.Config) *geocache.Node {
	t.Helper()
	n, err := geocache.Open(cfg)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newServer(t *testing.T, cfg admin.Config) *admin.Server {
	t.Helper()
	s, err := admin.New(cfg)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	return s
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

// scrape fetches /metrics and parses it as the Prometheus text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, h, http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v\n%s", err, body)
	}
	return mfs
}

// series returns the series of name whose labels include want (label
// name, value pairs), or nil.
func series(mfs map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
next:
	for _, m := range mfs[name].GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == want[i] && lp.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns the value of the series of name whose labels include want
// (label name, value pairs), and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	m := series(mfs, name, want...)
	switch {
	case m == nil:
		return 0, false
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, true
}

// twoRegions opens nodes "eu" (id 1) and "us" (id 2) replicating to each
// other on an in-memory network, which it returns for faults.
func twoRegions(t *testing.T) (mem *testkit.Network, eu, us *geocache.Node) {
	t.Helper()
	mem = testkit.NewNetwork()
	t.Cleanup(func() { mem.Close() })
	open := func(region string, id uint32, peer string) *geocache.Node {
		ln, err := mem.Listen(region)
		if err != nil {
			t.Fatal(err)
		}
		return openNode(t, geocache.Config{
			Region: region, NodeID: id, Peers: []string{peer},
			Listener: ln, Dial: mem.Dialer(region), PeerTimeout: 200 * time.Millisecond,
		})
	}
	return mem, open("eu", 1, "us"), open("us", 2, "eu")
}

func TestHealthAndReadiness(t *testing.T) {
	n := openNode(t, geocache.Config{Region: "eu", NodeID: 7})
	s := newServer(t, admin.Config{Node: n})
	h := s.Handler()

	tests := []struct {
		name, method, path string
		ready              bool
		code               int
		body               string
	}{
		{"healthz", http.MethodGet, "/healthz", false, 200, "ok"},
		{"healthz head", http.MethodHead, "/healthz", false, 200, ""},
		{"readyz before ready", http.MethodGet, "/readyz", false, 503, "not ready"},
		{"readyz ready", http.MethodGet, "/readyz", true, 200, "ready\nnode eu-7 id 7 region eu"},
		{"index", http.MethodGet, "/", true, 200, "/metrics"},
		{"unknown path", http.MethodGet, "/nope", true, 404, ""},
		{"post refused", http.MethodPost, "/healthz", true, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetReady(tt.ready)
			code, body := get(t, h, tt.method, tt.path)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
		})
	}
}

func TestMetricsAfterWrites(t *testing.T) {
	n := openNode(t, geocache.Config{Region: "eu", NodeID: 3, MaxBytes: 1 << 20, MaxEntries: 1000})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := n.Set(ctx, k, []byte("value-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	n.Get("a")
	n.Get("b")
	n.Get("missing")

	resp := admin.RESPStats{Clients: 2, Connections: 5, Commands: 42, Errors: 1, Rejected: 3}
	s := newServer(t, admin.Config{Node: n, RESP: func() admin.RESPStats { return resp }})
	mfs := scrape(t, s.Handler())

	tests := []struct {
		name   string
		labels []string
		want   func(float64) bool
		what   string
	}{
		{"geocache_node_info", []string{"node", "eu-3", "node_id", "3", "region", "eu"}, eq(1), "1"},
		{"geocache_entries", nil, eq(2), "2"},
		{"geocache_memory_bytes", nil, func(v float64) bool { return v > 2*7 && v < 4096 }, "the size of two small entries"},
		{"geocache_memory_max_bytes", nil, eq(1 << 20), "1 MiB"},
		{"geocache_entries_max", nil, eq(1000), "1000"},
		{"geocache_tombstones", nil, eq(1), "1"},
		{"geocache_hits_total", nil, eq(2), "2"},
		{"geocache_misses_total", nil, eq(1), "1"},
		{"geocache_evictions_total", nil, eq(0), "0"},
		{"geocache_expirations_total", nil, eq(0), "0"},
		{"geocache_replication_log_records", nil, eq(1), "1 (a node without peers keeps only its latest write)"},
		{"geocache_replication_log_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"geocache_replication_last_seq", nil, eq(4), "4"},
		{"geocache_resp_clients", nil, eq(2), "2"},
		{"geocache_resp_connections_total", nil, eq(5), "5"},
		{"geocache_resp_commands_total", nil, eq(42), "42"},
		{"geocache_resp_errors_total", nil, eq(1), "1"},
		{"geocache_resp_rejected_total", nil, eq(3), "3"},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"process_resident_memory_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
	}
	for _, tt := range tests {
		v, ok := value(mfs, tt.name, tt.labels...)
		if !ok {
			t.Errorf("%s%v missing", tt.name, tt.labels)
		} else if !tt.want(v) {
			t.Errorf("%s%v = %v, want %s", tt.name, tt.labels, v, tt.what)
		}
	}
	// The budget is the one in force (CONFIG SET maxmemory).
	if err := n.SetMaxBytes(2 << 20); err != nil {
		t.Fatal(err)
	}
	if v, _ := value(scrape(t, s.Handler()), "geocache_memory_max_bytes"); v != 2<<20 {
		t.Errorf("geocache_memory_max_bytes = %v after SetMaxBytes(2 MiB)", v)
	}
	for name, typ := range map[string]dto.MetricType{
		"geocache_hits_total":          dto.MetricType_COUNTER,
		"geocache_entries":             dto.MetricType_GAUGE,
		"geocache_resp_clients":        dto.MetricType_GAUGE,
		"geocache_misses_total":        dto.MetricType_COUNTER,
		"geocache_tombstones":          dto.MetricType_GAUGE,
		"geocache_node_info":           dto.MetricType_GAUGE,
		"geocache_memory_bytes":        dto.MetricType_GAUGE,
		"geocache_resp_rejected_total": dto.MetricType_COUNTER,
	} {
		if got := mfs[name].GetType(); got != typ {
			t.Errorf("%s has type %v, want %v", name, got, typ)
		}
	}
	// A single node has no peer, origin or region series.
	for name := range mfs {
		if strings.HasPrefix(name, "geocache_peer_") || strings.HasPrefix(name, "geocache_origin_") || strings.HasPrefix(name, "geocache_region_") {
			t.Errorf("single node exports %s", name)
		}
	}
}

// A node of a region of several nodes (here, alone in it) reports its
// state, the members by state, the map's epoch and its slots.
func TestRegionMetrics(t *testing.T) {
	n := openNode(t, geocache.Config{Region: "eu", NodeID: 4, PeerAddr: "127.0.0.1:0",
		Gossip: &geocache.GossipConfig{Addr: "127.0.0.1:0", ClientAddr: "127.0.0.1:6380"}})
	<-n.Synced()
	s := newServer(t, admin.Config{Node: n})
	var mfs map[string]*dto.MetricFamily
	// The state is the one announced; the map that has the node serving
	// follows it (gossip's callback): wait for both.
	testkit.Eventually(t, "the node serving, in a map after the joining one", func() bool {
		mfs = scrape(t, s.Handler())
		v, _ := value(mfs, "geocache_region_state", "state", "serving")
		epoch, _ := value(mfs, "geocache_region_slot_map_epoch")
		return v == 1 && epoch >= 2
	})
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"geocache_region_state", []string{"state", "joining"}, 0},
		{"geocache_region_state", []string{"state", "leaving"}, 0},
		{"geocache_region_members", []string{"state", "serving"}, 1},
		{"geocache_region_members", []string{"state", "joining"}, 0},
		{"geocache_region_slots", []string{"role", "owned"}, 16384},
		{"geocache_region_slots", []string{"role", "primary"}, 16384},
		{"geocache_region_failed_members", nil, 0},
		{"geocache_region_rejoins_total", nil, 0},
	} {
		if v, ok := value(mfs, tt.name, tt.labels...); !ok || v != tt.want {
			t.Errorf("%s%v = %v, %v; want %v", tt.name, tt.labels, v, ok, tt.want)
		}
	}
	if _, body := get(t, s.Handler(), http.MethodGet, "/readyz"); !strings.Contains(body, "region member serving; members serving 1, joining 0, leaving 0; slot map epoch ") ||
		!strings.Contains(body, "slots owned 16384, primary of 16384\n") {
		t.Errorf("/readyz lacks the region line:\n%s", body)
	}
	if err := n.LeaveRegion(context.Background()); err != nil {
		t.Fatal(err)
	}
	mfs = scrape(t, s.Handler())
	if v, _ := value(mfs, "geocache_region_state", "state", "leaving"); v != 1 {
		t.Errorf("leaving: state %v", v)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

func TestNoRESPMetricsWithoutRESP(t *testing.T) {
	s := newServer(t, admin.Config{Node: openNode(t, geocache.Config{})})
	for name := range scrape(t, s.Handler()) {
		if strings.HasPrefix(name, "geocache_resp_") {
			t.Errorf("exports %s without a RESP server", name)
		}
	}
}

// Two regions on the in-memory network: the writer's peer series and the
// receiver's origin series appear with their labels, and a cut link shows
// as down in /readyz without making the node unready. It runs in a
// synctest bubble: on real time, a loaded machine could stall the link past
// its 200 ms PeerTimeout just when /readyz is asked whether it is up.
func TestPeerAndOriginMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, eu, us := twoRegions(t)
		if err := eu.Set(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		euAdmin := newServer(t, admin.Config{Node: eu})
		usAdmin := newServer(t, admin.Config{Node: us})

		testkit.Eventually(t, "eu's link to us connected", func() bool {
			c, _ := value(scrape(t, euAdmin.Handler()), "geocache_peer_connected", "peer", "us-2", "region", "us")
			return c == 1
		})
		testkit.Eventually(t, "us applied eu's write", func() bool {
			mfs := scrape(t, usAdmin.Handler())
			ops, _ := value(mfs, "geocache_origin_ops_total", "origin", "eu-1", "region", "eu")
			seq, _ := value(mfs, "geocache_origin_applied_seq", "origin", "eu-1", "region", "eu")
			return ops >= 1 && seq == 1
		})
		mfs := scrape(t, euAdmin.Handler())
		// geocache_peer_lag_writes is not required to reach 0 here: today a
		// receiver that reads an Ops frame and a Probe frame in one read defers
		// the Ops ack until the next Ops frame, so the one write of this test
		// may stay unacknowledged (a repl issue, reported separately).
		for _, name := range []string{
			"geocache_peer_lag_writes", "geocache_peer_backlog_bytes", "geocache_peer_rtt_seconds", "geocache_peer_clock_offset_seconds",
			"geocache_peer_full_syncs_total", "geocache_peer_antientropy_rounds_total", "geocache_peer_repaired_total",
		} {
			if _, ok := value(mfs, name, "peer", "us-2", "region", "us"); !ok {
				t.Errorf("%s{peer=us-2,region=us} missing", name)
			}
		}
		mfs = scrape(t, usAdmin.Handler())
		for _, name := range []string{"geocache_origin_connected", "geocache_origin_stale_total", "geocache_origin_full_syncs_total"} {
			if _, ok := value(mfs, name, "origin", "eu-1", "region", "eu"); !ok {
				t.Errorf("%s{origin=eu-1,region=eu} missing", name)
			}
		}

		euAdmin.SetReady(true)
		<-eu.Synced() // us's first full sync to eu has arrived
		if code, body := get(t, euAdmin.Handler(), http.MethodGet, "/readyz"); code != 200 || !strings.Contains(body, "peer us region us connected") {
			t.Errorf("/readyz with the link up: %d\n%s", code, body)
		}
		mem.Isolate("us")
		mem.Reset("eu", "us")
		testkit.Eventually(t, "eu sees its link to us down", func() bool {
			_, body := get(t, euAdmin.Handler(), http.MethodGet, "/readyz")
			return strings.Contains(body, "peer us region us down")
		})
		if code, body := get(t, euAdmin.Handler(), http.MethodGet, "/readyz"); code != 200 || !strings.HasPrefix(body, "ready\n") {
			t.Errorf("/readyz with a peer down must stay ready: %d\n%s", code, body)
		}
	})
}

func TestPrivateRegistry(t *testing.T) {
	n := openNode(t, geocache.Config{})
	reg := prometheus.NewRegistry()
	newServer(t, admin.Config{Node: n, Registry: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"geocache_entries", "go_goroutines", "process_start_time_seconds"} {
		if !names[want] {
			t.Errorf("the registry passed in lacks %s", want)
		}
	}
	// The node collector must not be registered twice; the runtime ones may
	// already be there.
	if _, err := admin.New(admin.Config{Node: n, Registry: reg}); err == nil {
		t.Error("a second node collector on the same registry was accepted")
	}
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(collectors.NewGoCollector())
	if _, err := admin.New(admin.Config{Node: n, Registry: reg2}); err != nil {
		t.Errorf("a registry that already has the Go collector: %v", err)
	}
	if _, err := admin.New(admin.Config{}); err == nil {
		t.Error("New without a node succeeded")
	}
}

func TestServeAndClose(t *testing.T) {
	n := openNode(t, geocache.Config{})
	s := newServer(t, admin.Config{Node: n})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()

	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("/healthz over TCP: %d %q", res.StatusCode, body)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after Close, want nil", err)
		}
	case <-time.After(testkit.EventuallyTimeout):
		t.Fatal("Serve did not return after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The port is released.
	ln2, err := net.Listen("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	ln2.Close()
}

// A node that has not merged its peers' clocks yet (after a start, with its
// only peer unreachable) is not ready: its writes would wait. It runs in a
// synctest bubble: on real time, a loaded machine could let the 300 ms
// pass before the first /readyz.
func TestReadyzWaitsForPeerClocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		t.Cleanup(func() { mem.Close() })
		ln, err := mem.Listen("eu")
		if err != nil {
			t.Fatal(err)
		}
		n := openNode(t, geocache.Config{
			Region: "eu", NodeID: 1, Peers: []string{"us"}, MaxClockOffset: 150 * time.Millisecond,
			Listener: ln, Dial: mem.Dialer("eu"), PeerTimeout: 200 * time.Millisecond,
		})
		s := newServer(t, admin.Config{Node: n})
		s.SetReady(true)
		if code, body := get(t, s.Handler(), http.MethodGet, "/readyz"); code != 503 || !strings.Contains(body, "merging the peers' clocks") {
			t.Errorf("/readyz right after a start with the peer down: %d\n%s", code, body)
		}
		<-n.Ready() // 2 × MaxClockOffset
		if code, body := get(t, s.Handler(), http.MethodGet, "/readyz"); code != 200 {
			t.Errorf("/readyz once the node waited out the clock offset: %d\n%s", code, body)
		}
	})
}
