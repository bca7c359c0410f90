package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/latency"
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
	// RESP protection
	AuthFailures       uint64 // failed AUTH attempts
	BufferBytes        int64  // request-buffer bytes held against --max-client-buffer
	TLSHandshakeErrors uint64 // TLS clients that failed their handshake
	// Pub/sub
	PubSubChannels             int    // channels with a subscriber on this server
	PubSubPatterns             int    // distinct patterns subscribed to
	PubSubOutputBytes          int64  // bytes queued for subscribers and not yet written
	OutputBufferDisconnections uint64 // subscribers disconnected over the pub/sub output limits
	Forwarded, ForwardErrors   uint64 // commands forwarded to their owners (--cluster-forward), and those failed
	// CommandLatency holds the execution times of each command name
	// executed at least once (resp.Server.CommandLatency).
	CommandLatency map[string]latency.Snapshot
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

// regionStates are the states a member of a region announces.
var regionStates = []string{"joining", "serving", "leaving"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("geocache_"+name, help, labels, nil)
}

var (
	descInfo        = desc("node_info", "The node's identity; always 1.", "node", "node_id", "region")
	descEntries     = desc("entries", "Entries held (live ones and expired ones not yet reclaimed).")
	descBytes       = desc("memory_bytes", "Memory charged to the entries: keys, values and per-entry overhead.")
	descMaxBytes    = desc("memory_max_bytes", "The memory budget of the entries (0: none).")
	descMaxEntries  = desc("entries_max", "The bound on the number of entries (0: none).")
	descTombstones  = desc("tombstones", "Deletes remembered exactly.")
	descHits        = desc("hits_total", "Reads that found a live entry.")
	descMisses      = desc("misses_total", "Reads that found none.")
	descEvictions   = desc("evictions_total", "Entries evicted to make room (local, never replicated).")
	descExpirations = desc("expirations_total", "Entries reclaimed after expiring.")
	descLogRecords  = desc("replication_log_records", "This node's writes kept in its replication log for peers that are behind.")
	descLogBytes    = desc("replication_log_bytes", "Bytes of the replication log.")
	descLastSeq     = desc("replication_last_seq", "Sequence number of this node's latest write (restarts at 0 with the process).")

	peerLabels          = []string{"peer", "region"}
	descPeerInfo        = desc("peer_info", "A replication peer: its node name (the address until its first handshake), the address this node dials, its region; always 1.", "peer", "address", "region")
	descPeerConnected   = desc("peer_connected", "1 if the link carrying this node's writes to the peer is up.", peerLabels...)
	descPeerLag         = desc("peer_lag_writes", "This node's writes the peer has not acknowledged.", peerLabels...)
	descPeerBacklog     = desc("peer_backlog_bytes", "Bytes of the writes the peer has not acknowledged.", peerLabels...)
	descPeerRTT         = desc("peer_rtt_seconds", "Last measured round trip to the peer.", peerLabels...)
	descPeerOffset      = desc("peer_clock_offset_seconds", "Estimated clock of the peer minus this node's.", peerLabels...)
	descPeerFullSyncs   = desc("peer_full_syncs_total", "Full syncs sent to the peer (it was further behind than the log holds).", peerLabels...)
	descPeerRounds      = desc("peer_antientropy_rounds_total", "Anti-entropy rounds completed with the peer.", peerLabels...)
	descPeerRepaired    = desc("peer_repaired_total", "Entries this node took from the peer's anti-entropy repairs.", peerLabels...)
	descPeerSkipped     = desc("peer_skipped_total", "This node's writes sent to the peer as skips (version and slot only): the peer does not keep their slots.", peerLabels...)
	descPeerStandIns    = desc("peer_stand_ins_total", "This node's writes sent to the peer as stand-ins (version and slot only): the peer takes them relayed by the primary of their slot in its region.", peerLabels...)
	descPeerFailures    = desc("peer_link_failures_total", "Failed attempts to establish the link to the peer, and lost links, by reason (unreachable, cluster mismatch, duplicate node id, ...).", "peer", "region", "reason")
	descIDConflicts     = desc("node_id_conflicts_total", "Replication handshakes that revealed another node with this node's id (both refuse the link).")
	originLabels        = []string{"origin", "region"}
	descOriginConnected = desc("origin_connected", "1 if the stream of the origin's writes to this node is up.", originLabels...)
	descOriginApplied   = desc("origin_applied_seq", "The origin's latest sequence number applied here.", originLabels...)
	descOriginOps       = desc("origin_ops_total", "Writes received from the origin.", originLabels...)
	descOriginStale     = desc("origin_stale_total", "Writes from the origin older than what this node held (ignored).", originLabels...)
	descOriginFullSyncs = desc("origin_full_syncs_total", "Full syncs received from the origin.", originLabels...)
	descOriginMessages  = desc("origin_messages_total", "Pub/sub messages received from the origin and delivered to this node's subscribers.", originLabels...)
	descOriginDropped   = desc("origin_full_sync_dropped_total", "Entries dropped after full syncs from the origin: this node could no longer vouch for them.", originLabels...)
	descOriginRefused   = desc("origin_refused_total", "Writes from the origin refused by this node's ghost tables: a delete, expiry or eviction here superseded them.", originLabels...)
	descOriginHeld      = desc("origin_held_ahead_total", "Times the origin's stream or full sync was held at a version too far ahead of this node's clock (a clock is wrong).", originLabels...)
	descOriginSyncsRef  = desc("origin_full_syncs_refused_total", "Full syncs from the origin refused: not asked for by this node, or over the full-sync budget.", originLabels...)
	descInboundConns    = desc("replication_inbound_connections", "Replication connections accepted and open now.")
	descInboundRefused  = desc("replication_inbound_refused_total", "Replication connections closed at once because the cap on inbound connections was reached.")
	descNotKept         = desc("replication_not_kept_total", "Replicated writes not applied because this node does not keep their slots (slot-owned storage).")
	descKeepsGrew       = desc("replication_keeps_grew_total", "Origins' streams this node ended to resume them with the slots it came to keep (a write of a newly kept slot arrived as a skip).")
	descRepairsHeld     = desc("replication_repairs_held_total", "Anti-entropy repairs not applied because their version was too far ahead of this node's clock.")
	descProbedDeletes   = desc("replication_probed_deletes_total", "Deletes taken from peers' anti-entropy probes: a probed tombstone newer than what this node held.")
	descRelaysSent      = desc("replication_relays_sent_total", "Writes of other regions' origins this node handed on to the other owners of their slots in its region (it is the slots' primary).")
	descRelaysDropped   = desc("replication_relays_dropped_total", "Writes this node could not hand on to a co-owner (no link up, or its relay queue full); the co-owner takes them whole after its wait.")
	descRelaysApplied   = desc("replication_relays_applied_total", "Writes handed on to this node by the primary of their slot and applied.")
	descRelaysMissed    = desc("replication_relays_missed_total", "Origins' streams this node ended because a write it took relayed was not relayed in time; each resumes from it with the write whole.")
	descVisibility      = desc("replication_visibility_seconds", "Writes streamed from the origin: this node's clock when it applied each one minus the write's HLC wall time (ms resolution; includes the clocks' offset; negative counts as 0).", originLabels...)

	descRegionState     = desc("region_state", "This node's state in its region of several nodes: 1 for the state it announces (joining, serving, leaving), 0 for the others.", "state")
	descRegionMembers   = desc("region_members", "Live members of this node's region, this node included, by state.", "state")
	descRegionEpoch     = desc("region_slot_map_epoch", "Epoch of this node's slot map (one more at each change).")
	descRegionSlots     = desc("region_slots", "Hash slots this node owns, as any copy (owned) or as their primary (primary); with slot-owned storage also those whose entries it keeps (kept) and those of them still filling from the peers (cold).", "role")
	descRegionForgotten = desc("region_forgotten_entries_total", "Entries forgotten because their slots were no longer kept (slot-owned storage).")
	descRegionResyncs   = desc("region_resyncs_total", "Rounds of full syncs asked of every peer for slots gained (slot-owned storage).")
	descRegionSlotSyncs = desc("region_slot_syncs_total", "Gained slots asked of one co-owner (slot-owned storage), by result: taken, failed (the round then asks every peer: fell_back).", "result")
	descRegionFailed    = desc("region_failed_members", "Members of the region declared dead that this node keeps trying to reach at their gossip address.")
	descRegionRejoins   = desc("region_rejoins_total", "Members declared dead that came back (a split region healing, or a restart), whichever side re-joined.")
	descRegionReads     = desc("region_owner_reads_total", "Embedded reads of keys of slots this node does not hold (slot-owned storage), by result: answered by an owner, or unavailable (no owner answered).", "result")
	descRegionFetchFail = desc("region_fetch_failures_total", "Owners that did not answer a read of a key of a slot this node does not hold (each one asked counts).")
	descRegionFetched   = desc("region_fetches_served_total", "Reads of the region's other nodes this node answered on fetch connections.")
	descRegionRefused   = desc("region_merges_refused_total", "Joins that reached a node of another region (a mistaken --join, or another region's node at a failed member's address), refused rather than merging the two regions' gossip.")

	descAckDuration = desc("ack_duration_seconds", "Writes with acknowledgement level quorum or all: time from the local apply until enough regions applied them (acknowledged writes only).", "level")
	descAckFailures = desc("ack_failures_total", "Writes with acknowledgement level quorum or all that ended without the acknowledgement (timeout, canceled, node closed).", "level")

	descRESPClients     = desc("resp_clients", "RESP connections open now.")
	descRESPConnections = desc("resp_connections_total", "RESP connections accepted.")
	descRESPCommands    = desc("resp_commands_total", "RESP commands executed.")
	descRESPErrors      = desc("resp_errors_total", "RESP commands answered with an error.")
	descRESPRejected    = desc("resp_rejected_total", "RESP connections refused or closed for breaking a limit.")
	// RESP protection
	descRESPAuthFailures = desc("resp_auth_failures_total", "Failed RESP AUTH attempts (wrong password or user).")
	descRESPBufferBytes  = desc("resp_client_buffer_bytes", "Bytes held in RESP request buffers across all clients, against --max-client-buffer.")
	descRESPTLSErrors    = desc("resp_tls_handshake_errors_total", "RESP clients on --tls-addr that failed their TLS handshake.")
	// Pub/sub
	descRESPPubSubChannels = desc("resp_pubsub_channels", "Channels with at least one subscriber on this node (PUBSUB CHANNELS; pattern subscriptions aside).")
	descRESPPubSubPatterns = desc("resp_pubsub_patterns", "Distinct patterns subscribed to on this node (PUBSUB NUMPAT).")
	descRESPPubSubOutput   = desc("resp_pubsub_output_bytes", "Bytes queued for this node's subscribers and not yet written to them, across all subscribers.")
	descRESPObufDisconns   = desc("resp_output_buffer_limit_disconnections_total", "Subscribers disconnected for reaching the pub/sub output buffer limits (--client-output-buffer-limit-pubsub).")
	descRESPForwarded      = desc("resp_forwarded_commands_total", "Commands (and parts of split commands) forwarded to the owner of their slot in the region (--cluster-forward).")
	descRESPForwardErrors  = desc("resp_forward_errors_total", "Forwarded commands answered -TRYAGAIN because the exchange with the owner failed.")

	descRESPDuration = desc("resp_command_duration_seconds", "RESP command time: parsing and execution, until the reply is buffered (blocking included: WAIT, acknowledged writes; network excluded). Commands never executed have no series.", "command")
)

var (
	nodeDescs = []*prometheus.Desc{
		descInfo, descEntries, descBytes, descMaxBytes, descMaxEntries, descTombstones,
		descHits, descMisses, descEvictions, descExpirations, descLogRecords, descLogBytes, descLastSeq,
		descPeerInfo, descPeerConnected, descPeerLag, descPeerBacklog, descPeerRTT, descPeerOffset,
		descPeerFullSyncs, descPeerRounds, descPeerRepaired, descPeerSkipped, descPeerFailures, descIDConflicts,
		descOriginConnected, descOriginApplied, descOriginOps, descOriginStale, descOriginFullSyncs, descOriginDropped, descOriginMessages,
		descOriginRefused, descOriginHeld, descOriginSyncsRef, descInboundConns, descInboundRefused, descRepairsHeld, descProbedDeletes, descNotKept, descKeepsGrew,
		descPeerStandIns, descRelaysSent, descRelaysDropped, descRelaysApplied, descRelaysMissed,
		descVisibility, descAckDuration, descAckFailures,
		descRegionState, descRegionMembers, descRegionEpoch, descRegionSlots, descRegionForgotten, descRegionResyncs, descRegionSlotSyncs, descRegionFailed, descRegionRejoins, descRegionRefused,
		descRegionReads, descRegionFetchFail, descRegionFetched,
	}
	respDescs = []*prometheus.Desc{
		descRESPClients, descRESPConnections, descRESPCommands, descRESPErrors, descRESPRejected, descRESPDuration,
		descRESPAuthFailures, descRESPBufferBytes, descRESPTLSErrors,
		descRESPPubSubChannels, descRESPPubSubPatterns, descRESPPubSubOutput, descRESPObufDisconns,
		descRESPForwarded, descRESPForwardErrors,
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
	counter(descIDConflicts, st.IDConflicts)
	gauge(descInboundConns, float64(st.InboundConns))
	counter(descInboundRefused, st.InboundRefused)
	counter(descRepairsHeld, st.RepairsHeld)
	counter(descProbedDeletes, st.ProbedDeletes)
	counter(descNotKept, st.NotKept)
	counter(descKeepsGrew, st.KeepsGrew)
	counter(descRelaysSent, st.RelaysSent)
	counter(descRelaysDropped, st.RelaysDropped)
	counter(descRelaysApplied, st.RelaysApplied)
	counter(descRelaysMissed, st.RelaysMissed)
	if r := st.RegionNodes; r != nil {
		for _, s := range regionStates {
			gauge(descRegionState, map[bool]float64{true: 1}[r.State == s], s)
			gauge(descRegionMembers, float64(r.Members[s]), s)
		}
		gauge(descRegionEpoch, float64(r.Epoch))
		gauge(descRegionFailed, float64(r.Failed))
		counter(descRegionRejoins, r.Rejoins)
		counter(descRegionRefused, r.MergesRefused)
		gauge(descRegionSlots, float64(r.Slots), "owned")
		gauge(descRegionSlots, float64(r.PrimarySlots), "primary")
		if r.KeptSlots > 0 {
			gauge(descRegionSlots, float64(r.KeptSlots), "kept")
			gauge(descRegionSlots, float64(r.ColdSlots), "cold")
			counter(descRegionForgotten, r.Forgotten)
			counter(descRegionResyncs, r.Resyncs)
			counter(descRegionSlotSyncs, r.SlotSyncs, "taken")
			counter(descRegionSlotSyncs, r.SlotSyncFailures, "failed")
			counter(descRegionSlotSyncs, r.SlotSyncFallbacks, "fell_back")
			counter(descRegionReads, r.OwnerReads, "answered")
			counter(descRegionReads, r.ReadsUnavailable, "unavailable")
			counter(descRegionFetchFail, r.FetchFailures)
			counter(descRegionFetched, r.FetchesServed)
		}
	}

	// A registry refuses a whole scrape that holds two series with the same
	// labels, so a label set seen twice (two origins configured with the
	// same --name, or two addresses of one peer, say) is reported once
	// rather than breaking every metric.
	seen := make(map[[2]string]bool, len(st.Peers))
	for _, p := range st.Peers {
		k := [2]string{peerName(p), p.Region}
		if seen[k] {
			continue
		}
		seen[k] = true
		gauge(descPeerInfo, 1, k[0], p.Addr, k[1])
		gauge(descPeerConnected, b2f(p.Connected), k[:]...)
		gauge(descPeerLag, float64(p.Lag), k[:]...)
		gauge(descPeerBacklog, float64(p.Backlog), k[:]...)
		gauge(descPeerRTT, p.RTT.Seconds(), k[:]...)
		gauge(descPeerOffset, p.Offset.Seconds(), k[:]...)
		counter(descPeerFullSyncs, p.FullSyncs, k[:]...)
		counter(descPeerRounds, p.Rounds, k[:]...)
		counter(descPeerRepaired, p.Repaired, k[:]...)
		counter(descPeerSkipped, p.Skipped, k[:]...)
		counter(descPeerStandIns, p.StandIns, k[:]...)
		for reason, n := range p.Failures {
			counter(descPeerFailures, n, k[0], k[1], reason)
		}
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
		counter(descOriginMessages, o.Messages, k[:]...)
		counter(descOriginDropped, o.Dropped, k[:]...)
		counter(descOriginRefused, o.Refused, k[:]...)
		counter(descOriginHeld, o.HeldAhead, k[:]...)
		counter(descOriginSyncsRef, o.SyncsRefused, k[:]...)
		ch <- histogram(descVisibility, snapshotOf(o.Visibility), k[:]...)
	}
	for _, a := range st.Acks {
		level := a.Level.String()
		ch <- histogram(descAckDuration, snapshotOf(a.Latency), level)
		counter(descAckFailures, a.Failed, level)
	}

	if c.resp != nil {
		rs := c.resp()
		gauge(descRESPClients, float64(rs.Clients))
		counter(descRESPConnections, rs.Connections)
		counter(descRESPCommands, rs.Commands)
		counter(descRESPErrors, rs.Errors)
		counter(descRESPRejected, rs.Rejected)
		counter(descRESPAuthFailures, rs.AuthFailures)
		gauge(descRESPBufferBytes, float64(rs.BufferBytes))
		counter(descRESPTLSErrors, rs.TLSHandshakeErrors)
		gauge(descRESPPubSubChannels, float64(rs.PubSubChannels))
		gauge(descRESPPubSubPatterns, float64(rs.PubSubPatterns))
		gauge(descRESPPubSubOutput, float64(rs.PubSubOutputBytes))
		counter(descRESPObufDisconns, rs.OutputBufferDisconnections)
		counter(descRESPForwarded, rs.Forwarded)
		counter(descRESPForwardErrors, rs.ForwardErrors)
		for name, l := range rs.CommandLatency {
			ch <- histogram(descRESPDuration, l, name)
		}
	}
}

// peerName is the peer label of a link: the peer's node name, as the
// origin label of the other side's metrics, or the address dialed until
// the first handshake tells the name.
func peerName(p geocache.PeerStats) string {
	if p.Node != "" {
		return p.Node
	}
	return p.Addr
}

func snapshotOf(l geocache.Latency) latency.Snapshot {
	return latency.Snapshot{Counts: l.Counts, Sum: l.Sum}
}

// histogram returns s as a Prometheus histogram in seconds: cumulative
// counts per upper bound, the last bucket being +Inf.
func histogram(d *prometheus.Desc, s latency.Snapshot, labels ...string) prometheus.Metric {
	bounds := latency.Bounds()
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += s.Counts[i]
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, cum+s.Counts[len(s.Counts)-1], s.Sum.Seconds(), buckets, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
