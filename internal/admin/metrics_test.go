package admin_test

import (
	"context"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	"github.com/geocache/geocache/internal/resp"
	"github.com/geocache/geocache/internal/testkit"
)

// hist returns the histogram of name whose labels include want, or nil.
func hist(mfs map[string]*dto.MetricFamily, name string, want ...string) *dto.Histogram {
	return series(mfs, name, want...).GetHistogram()
}

// checkBuckets checks the shape every geocache histogram has: 28 bounds
// from 0.25 µs doubling and +Inf, cumulative counts growing up to the
// sample count.
func checkBuckets(t *testing.T, name string, h *dto.Histogram) {
	t.Helper()
	bs := h.GetBucket()
	if len(bs) != geocache.LatencyBuckets {
		t.Fatalf("%s has %d buckets, want %d", name, len(bs), geocache.LatencyBuckets)
	}
	if inf := bs[len(bs)-1]; !math.IsInf(inf.GetUpperBound(), 1) || inf.GetCumulativeCount() != h.GetSampleCount() {
		t.Errorf("%s: last bucket le=%v holds %d of %d", name, inf.GetUpperBound(), inf.GetCumulativeCount(), h.GetSampleCount())
	}
	bs = bs[:len(bs)-1]
	bounds := geocache.LatencyBounds()
	var prev uint64
	for i, b := range bs {
		if b.GetUpperBound() != bounds[i].Seconds() {
			t.Errorf("%s bucket %d: le=%v, want %v", name, i, b.GetUpperBound(), bounds[i].Seconds())
		}
		if b.GetCumulativeCount() < prev || b.GetCumulativeCount() > h.GetSampleCount() {
			t.Errorf("%s bucket %d: cumulative %d after %d, of %d", name, i, b.GetCumulativeCount(), prev, h.GetSampleCount())
		}
		prev = b.GetCumulativeCount()
	}
}

// A real RESP server behind the admin server: every command executed shows
// in geocache_resp_command_duration_seconds under its name, and the counts
// grow with the traffic.
func TestRESPCommandHistograms(t *testing.T) {
	n := openNode(t, geocache.Config{})
	rs, err := resp.New(resp.Config{Node: n})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- rs.Serve(ln) }()
	t.Cleanup(func() {
		rs.Close()
		<-served
	})
	s := newServer(t, admin.Config{Node: n, RESP: func() admin.RESPStats {
		st := rs.Stats()
		return admin.RESPStats{
			Clients: st.Clients, Connections: st.Connections, Commands: st.Commands,
			Errors: st.Errors, Rejected: st.Rejected, CommandLatency: rs.CommandLatency(),
		}
	}})
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, ReadTimeout: 30 * time.Second})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()

	for i := range 5 {
		if err := c.Set(ctx, "k"+strconv.Itoa(i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if err := c.Get(ctx, "k1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	mfs := scrape(t, s.Handler())
	if got := mfs["geocache_resp_command_duration_seconds"].GetType(); got != dto.MetricType_HISTOGRAM {
		t.Fatalf("geocache_resp_command_duration_seconds has type %v", got)
	}
	for cmd, want := range map[string]uint64{"get": 10, "set": 5} {
		h := hist(mfs, "geocache_resp_command_duration_seconds", "command", cmd)
		if h == nil {
			t.Fatalf("no histogram for %s", cmd)
		}
		if h.GetSampleCount() != want || h.GetSampleSum() <= 0 {
			t.Errorf("%s: count %d sum %v, want count %d and a positive sum", cmd, h.GetSampleCount(), h.GetSampleSum(), want)
		}
		checkBuckets(t, cmd, h)
	}
	if h := hist(mfs, "geocache_resp_command_duration_seconds", "command", "dbsize"); h != nil {
		t.Errorf("a command never executed has a series: %v", h)
	}

	for range 7 {
		if err := c.Get(ctx, "nosuch").Err(); !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
	}
	if got := hist(scrape(t, s.Handler()), "geocache_resp_command_duration_seconds", "command", "get").GetSampleCount(); got != 17 {
		t.Errorf("get count after 7 more: %d, want 17", got)
	}
	// The text format carries real histogram series.
	_, body := get(t, s.Handler(), "GET", "/metrics")
	for _, want := range []string{
		"# TYPE geocache_resp_command_duration_seconds histogram",
		`geocache_resp_command_duration_seconds_bucket{command="get",le="+Inf"} 17`,
		`geocache_resp_command_duration_seconds_count{command="set"} 5`,
		`geocache_resp_command_duration_seconds_bucket{command="get",le="2.5e-07"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Two regions on the in-memory network: the peer series carry the peer's
// node name (and geocache_peer_info its address), the receiver times the
// visibility of the writer's writes by origin, and the writer times its
// Quorum acknowledgements.
func TestReplicationHistograms(t *testing.T) {
	mem, eu, us := twoRegions(t)
	euAdmin := newServer(t, admin.Config{Node: eu})
	usAdmin := newServer(t, admin.Config{Node: us})
	testkit.Eventually(t, "eu's link to us connected", func() bool {
		c, _ := value(scrape(t, euAdmin.Handler()), "geocache_peer_connected", "peer", "us-2", "region", "us")
		return c == 1
	})
	// us starts empty, so its first stream from eu begins with a full sync,
	// whose entries are eu's state, not writes in flight: they are not
	// timed. The writes below come after it.
	testkit.Eventually(t, "us took its full sync from eu", func() bool {
		v, _ := value(scrape(t, usAdmin.Handler()), "geocache_origin_full_syncs_total", "origin", "eu-1", "region", "eu")
		return v >= 1
	})
	if v, ok := value(scrape(t, euAdmin.Handler()), "geocache_peer_info", "peer", "us-2", "address", "us", "region", "us"); !ok || v != 1 {
		t.Errorf("geocache_peer_info{peer=us-2,address=us,region=us} = %v, %v; want 1", v, ok)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // only catches a hang
	defer cancel()
	const writes = 3
	for i := range writes {
		if err := eu.Set(ctx, "k"+strconv.Itoa(i), []byte("v"), geocache.WithAck(geocache.Quorum)); err != nil {
			t.Fatalf("quorum write: %v", err)
		}
	}
	mfs := scrape(t, euAdmin.Handler())
	if h := hist(mfs, "geocache_ack_duration_seconds", "level", "quorum"); h.GetSampleCount() != writes {
		t.Errorf("quorum acks timed: %d, want %d", h.GetSampleCount(), writes)
	} else {
		checkBuckets(t, "ack quorum", h)
	}
	if h := hist(mfs, "geocache_ack_duration_seconds", "level", "all"); h == nil || h.GetSampleCount() != 0 {
		t.Errorf("all acks: %v, want an empty histogram", h)
	}
	if v, ok := value(mfs, "geocache_ack_failures_total", "level", "quorum"); !ok || v != 0 {
		t.Errorf("quorum failures %v, %v; want 0", v, ok)
	}

	// Acknowledged by a quorum of two: us has applied all three.
	h := hist(scrape(t, usAdmin.Handler()), "geocache_replication_visibility_seconds", "origin", "eu-1", "region", "eu")
	if h.GetSampleCount() != writes {
		t.Errorf("visibility of eu's writes on us: %d observed, want %d", h.GetSampleCount(), writes)
	} else {
		checkBuckets(t, "visibility", h)
	}

	// Messages from eu are counted on us, by origin.
	for range 2 {
		if _, err := eu.Publish(ctx, "ch", []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "us to count eu's 2 messages", func() bool {
		v, _ := value(scrape(t, usAdmin.Handler()), "geocache_origin_messages_total", "origin", "eu-1", "region", "eu")
		return v == 2
	})

	// A write whose wait ends without the acknowledgement is a failure,
	// not a duration.
	mem.Isolate("us")
	canceled, stop := context.WithCancel(context.Background())
	stop()
	if err := eu.Set(canceled, "late", []byte("v"), geocache.WithAck(geocache.All)); !errors.Is(err, geocache.ErrAckTimeout) {
		t.Fatalf("write with a canceled context and us cut off: %v, want ErrAckTimeout", err)
	}
	mfs = scrape(t, euAdmin.Handler())
	if v, _ := value(mfs, "geocache_ack_failures_total", "level", "all"); v != 1 {
		t.Errorf("all failures %v, want 1", v)
	}
	if h := hist(mfs, "geocache_ack_duration_seconds", "level", "all"); h.GetSampleCount() != 0 {
		t.Errorf("a failed wait was timed: %d", h.GetSampleCount())
	}
}

// A peer never reached has no known name yet: its series carry the
// address dialed as peer, and an empty region.
func TestPeerLabelBeforeHandshake(t *testing.T) {
	mem := testkit.NewNetwork()
	t.Cleanup(func() { mem.Close() })
	ln, err := mem.Listen("eu")
	if err != nil {
		t.Fatal(err)
	}
	n := openNode(t, geocache.Config{
		Region: "eu", NodeID: 1, Peers: []string{"nowhere:7380"},
		Listener: ln, Dial: mem.Dialer("eu"), PeerTimeout: 200 * time.Millisecond,
	})
	mfs := scrape(t, newServer(t, admin.Config{Node: n}).Handler())
	if v, ok := value(mfs, "geocache_peer_info", "peer", "nowhere:7380", "address", "nowhere:7380", "region", ""); !ok || v != 1 {
		t.Errorf("geocache_peer_info of a peer never reached: %v, %v", v, ok)
	}
	if v, ok := value(mfs, "geocache_peer_connected", "peer", "nowhere:7380", "region", ""); !ok || v != 0 {
		t.Errorf("geocache_peer_connected of a peer never reached: %v, %v", v, ok)
	}
}
