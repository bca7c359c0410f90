// Package admin is the HTTP side of a geocache server: health, readiness
// and Prometheus metrics for one node.
//
// # Endpoints
//
//   - GET /healthz answers 200 "ok" for as long as the process serves HTTP.
//     It says the process is alive, nothing more: restart it if this fails.
//   - GET /readyz answers 200 once the server has called SetReady(true)
//     (geocache serve does so when its RESP listener is up) and the node is
//     Ready (right after a start it first merges its peers' clocks: every
//     peer answers within a round trip, and a node that cannot reach them
//     all waits out 2 × the maximum clock offset, 1 s by default) and
//     Synced (a restarted node has refilled from the peers it reached),
//     and 503 with the reason before that and from the start of a
//     shutdown. The body lists the node and the state of every replication
//     peer (connected, down or never connected, round trip, lag, and the
//     last error while it is down). By default a peer that is down never
//     makes a node unready: every region accepts reads and writes on its
//     own and catches up when the link heals, so taking a region out of its
//     load balancer because another region is unreachable would turn a
//     partition into an outage; alert on geocache_peer_connected instead.
//     Config.RequirePeers (geocache serve --ready-requires-peers) makes it
//     503 while some region of the configured peers has none reachable.
//   - GET /metrics serves the Prometheus text format from a private
//     registry (never the process-global default one): the node's figures,
//     the RESP server's, and the Go runtime and process collectors. The
//     figures are read at scrape time, so a scrape costs one Node.Stats call
//     and nothing runs between scrapes.
//
// # Metrics
//
// Every metric, with its type, labels and unit, is documented in
// docs/operations.md and in its HELP text; in short:
//
// Node: geocache_node_info{node,node_id,region} (always 1),
// geocache_entries, geocache_entries_max, geocache_memory_bytes,
// geocache_memory_max_bytes, geocache_tombstones, geocache_hits_total,
// geocache_misses_total, geocache_evictions_total,
// geocache_expirations_total, geocache_replication_log_records,
// geocache_replication_log_bytes, geocache_replication_last_seq,
// geocache_node_id_conflicts_total.
//
// Per replication peer, labelled peer and region: the peer's node name
// (the address dialed until its first handshake tells the name, so that
// peer joins the origin label of the peer's own metrics) and its region
// (empty until then). geocache_peer_info{peer,address,region} (always 1)
// gives the address. geocache_peer_connected, geocache_peer_lag_writes,
// geocache_peer_backlog_bytes, geocache_peer_rtt_seconds,
// geocache_peer_clock_offset_seconds, geocache_peer_full_syncs_total,
// geocache_peer_antientropy_rounds_total, geocache_peer_repaired_total,
// geocache_peer_link_failures_total{reason}.
//
// Per origin whose writes this node receives, labelled origin (its node
// name) and region: geocache_origin_connected, geocache_origin_applied_seq,
// geocache_origin_ops_total, geocache_origin_stale_total,
// geocache_origin_full_syncs_total, geocache_origin_full_sync_dropped_total,
// and the histogram geocache_replication_visibility_seconds (per streamed
// write: this node's clock at its apply minus the write's HLC time).
//
// Region of several nodes (only with gossip): geocache_region_state{state}
// (1 for the state this node announces), geocache_region_members{state},
// geocache_region_slot_map_epoch, geocache_region_slots{role} (owned,
// primary; with slot-owned storage also kept, cold),
// geocache_region_forgotten_entries_total, geocache_region_resyncs_total,
// geocache_region_slot_syncs_total{result} (taken, failed, fell_back).
//
// Acknowledgements, labelled level (quorum, all): the histogram
// geocache_ack_duration_seconds and geocache_ack_failures_total.
//
// RESP server: geocache_resp_clients, geocache_resp_connections_total,
// geocache_resp_commands_total, geocache_resp_errors_total,
// geocache_resp_rejected_total, geocache_resp_auth_failures_total,
// geocache_resp_client_buffer_bytes, geocache_resp_tls_handshake_errors_total,
// and the histogram geocache_resp_command_duration_seconds{command}. Its
// pub/sub: geocache_resp_pubsub_channels, geocache_resp_pubsub_patterns,
// geocache_resp_pubsub_output_bytes and
// geocache_resp_output_buffer_limit_disconnections_total.
//
// The histograms are real Prometheus histograms (_bucket, _sum, _count)
// built at scrape time from fixed exponential buckets (0.25 µs doubling to
// about 33.6 s, and +Inf) that the node and the RESP server fill without
// locks or allocation; see internal/latency.
//
// The package depends on the node and the RESP server only through
// [NodeStats] and a function returning [RESPStats], so it neither imports
// the RESP package nor needs a live server in its tests.
package admin
