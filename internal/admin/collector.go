package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/geocache/geocache"
)

// NodeStats is what the metrics and readiness read from a node;
// *geocache.Node implements it. If the value also has a
// Config() geocache.Config method (as *geocache.Node does), its limits are
// exported too.
type NodeStats interface {
	Stats() geocache.Stats
}

// nodeLimits is the optional part of a NodeStats: the configured bounds.
type nodeLimits interface {
	Config() geocache.Config
}

// nodeReadiness is the optional part of a NodeStats that readiness waits
// for: *geocache.Node's Ready, closed once it versions writes without
// waiting for its peers' clocks.
type nodeReadiness interface {
	Ready() <-chan struct{}
}

// RESPStats are the RESP server's figures at one instant.
type RESPStats struct {
	Clients     int    // connections open now
	Connections uint64 // connections accepted since start
	Commands    uint64 // commands executed
	Errors      uint64 // commands answered with an error
	Rejected    uint64 // connections refused (client limit) or closed for breaking a limit
}

// collector reads the node's and the RESP server's figures at scrape time.
// Every metric it can emit has a fixed Desc (it is not an "unchecked"
// collector), so the registry checks names and label sets at registration.
type collector struct {
	node NodeStats
	resp func() RESPStats
}

// NewCollector returns a prometheus.Collector for node and, if resp is not
// nil, for the RESP server whose figures it returns. The metrics are listed
// in the package documentation.
func NewCollector(node NodeStats, resp func() RESPStats) prometheus.Collector {
	return &collector{node: node, resp: resp}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("geocache_"+name, help, labels, nil)
}

var (
	descInfo        = desc("node_info", "The node's identity; always 1.", "node", "node_id", "region")
	descEntries     = desc("entries", "Entries held (live ones and expired ones not yet reclaimed).")
	descBytes       = desc("memory_bytes", "Memory charged to the entries: keys, values and per-entry overhead.")
	descMaxBytes    = desc("memory_max_bytes", "The memory budget of the entries (0: none).")
	descMaxEntries  = desc("max_entries", "The bound on the number of entries (0: none).")
	descTombstones  = desc("tombstones", "Deletes remembered exactly.")
	descHits        = desc("hits_total", "Reads that found a live entry.")
	descMisses      = desc("misses_total", "Reads that found none.")
	descEvictions   = desc("evictions_total", "Entries evicted to make room (local, never replicated).")
	descExpirations = desc("expirations_total", "Entries reclaimed after expiring.")
	descLogRecords  = desc("replication_log_records", "This node's writes kept in its replication log for peers that are behind.")
	descLogBytes    = desc("replication_log_bytes", "Bytes of the replication log.")
	descLastSeq     = desc("replication_last_seq", "Sequence number of this node's latest write (restarts at 0 with the process).")

	peerLabels          = []string{"peer", "region"}
	descPeerConnected   = desc("peer_connected", "1 if the link carrying this node's writes to the peer is up.", peerLabels...)
	descPeerLag         = desc("peer_lag_writes", "This node's writes the peer has not acknowledged.", peerLabels...)
	descPeerBacklog     = desc("peer_backlog_bytes", "Bytes of the writes the peer has not acknowledged.", peerLabels...)
	descPeerRTT         = desc("peer_rtt_seconds", "Last measured round trip to the peer.", peerLabels...)
	descPeerOffset      = desc("peer_clock_offset_seconds", "Estimated clock of the peer minus this node's.", peerLabels...)
	descPeerFullSyncs   = desc("peer_full_syncs_total", "Full syncs sent to the peer (it was further behind than the log holds).", peerLabels...)
	descPeerRounds      = desc("peer_antientropy_rounds_total", "Anti-entropy rounds completed with the peer.", peerLabels...)
	descPeerRepaired    = desc("peer_repaired_total", "Entries this node took from the peer's anti-entropy repairs.", peerLabels...)
	originLabels        = []string{"origin", "region"}
	descOriginConnected = desc("origin_connected", "1 if the stream of the origin's writes to this node is up.", originLabels...)
	descOriginApplied   = desc("origin_applied_seq", "The origin's latest sequence number applied here.", originLabels...)
	descOriginOps       = desc("origin_ops_total", "Writes received from the origin.", originLabels...)
	descOriginStale     = desc("origin_stale_total", "Writes from the origin older than what this node held (ignored).", originLabels...)
	descOriginFullSyncs = desc("origin_full_syncs_total", "Full syncs received from the origin.", originLabels...)
	descOriginDropped   = desc("origin_full_sync_dropped_total", "Entries dropped after full syncs from the origin: this node could no longer vouch for them.", originLabels...)

	descRESPClients     = desc("resp_clients", "RESP connections open now.")
	descRESPConnections = desc("resp_connections_total", "RESP connections accepted.")
	descRESPCommands    = desc("resp_commands_total", "RESP commands executed.")
	descRESPErrors      = desc("resp_errors_total", "RESP commands answered with an error.")
	descRESPRejected    = desc("resp_rejected_total", "RESP connections refused or closed for breaking a limit.")
)

var (
	nodeDescs = []*prometheus.Desc{
		descInfo, descEntries, descBytes, descMaxBytes, descMaxEntries, descTombstones,
		descHits, descMisses, descEvictions, descExpirations, descLogRecords, descLogBytes, descLastSeq,
		descPeerConnected, descPeerLag, descPeerBacklog, descPeerRTT, descPeerOffset,
		descPeerFullSyncs, descPeerRounds, descPeerRepaired,
		descOriginConnected, descOriginApplied, descOriginOps, descOriginStale, descOriginFullSyncs, descOriginDropped,
	}
	respDescs = []*prometheus.Desc{
		descRESPClients, descRESPConnections, descRESPCommands, descRESPErrors, descRESPRejected,
	}
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range nodeDescs {
		ch <- d
	}
	if c.resp != nil {
		for _, d := range respDescs {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	st := c.node.Stats()
	gauge(descInfo, 1, st.Node, strconv.FormatUint(uint64(st.NodeID), 10), st.Region)
	gauge(descEntries, float64(st.Entries))
	gauge(descBytes, float64(st.Bytes))
	if l, ok := c.node.(nodeLimits); ok {
		cfg := l.Config()
		gauge(descMaxBytes, float64(cfg.MaxBytes))
		gauge(descMaxEntries, float64(cfg.MaxEntries))
	}
	gauge(descTombstones, float64(st.Tombstones))
	counter(descHits, st.Hits)
	counter(descMisses, st.Misses)
	counter(descEvictions, st.Evictions)
	counter(descExpirations, st.Expired)
	gauge(descLogRecords, float64(st.LogRecords))
	gauge(descLogBytes, float64(st.LogBytes))
	gauge(descLastSeq, float64(st.LastSeq))

	// A registry refuses a whole scrape that holds two series with the same
	// labels, so a label set seen twice (two origins configured with the
	// same --name, say) is reported once rather than breaking every metric.
	seen := make(map[[2]string]bool, len(st.Peers))
	for _, p := range st.Peers {
		k := [2]string{p.Addr, p.Region}
		if seen[k] {
			continue
		}
		seen[k] = true
		gauge(descPeerConnected, b2f(p.Connected), k[:]...)
		gauge(descPeerLag, float64(p.Lag), k[:]...)
		gauge(descPeerBacklog, float64(p.Backlog), k[:]...)
		gauge(descPeerRTT, p.RTT.Seconds(), k[:]...)
		gauge(descPeerOffset, p.Offset.Seconds(), k[:]...)
		counter(descPeerFullSyncs, p.FullSyncs, k[:]...)
		counter(descPeerRounds, p.Rounds, k[:]...)
		counter(descPeerRepaired, p.Repaired, k[:]...)
	}
	clear(seen)
	for _, o := range st.Origins {
		k := [2]string{o.Node, o.Region}
		if seen[k] {
			continue
		}
		seen[k] = true
		gauge(descOriginConnected, b2f(o.Connected), k[:]...)
		gauge(descOriginApplied, float64(o.Applied), k[:]...)
		counter(descOriginOps, o.Ops, k[:]...)
		counter(descOriginStale, o.Stale, k[:]...)
		counter(descOriginFullSyncs, o.FullSyncs, k[:]...)
		counter(descOriginDropped, o.Dropped, k[:]...)
	}

	if c.resp != nil {
		rs := c.resp()
		gauge(descRESPClients, float64(rs.Clients))
		counter(descRESPConnections, rs.Connections)
		counter(descRESPCommands, rs.Commands)
		counter(descRESPErrors, rs.Errors)
		counter(descRESPRejected, rs.Rejected)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
