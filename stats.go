package geocache

import (
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/latency"
	"github.com/geocache/geocache/internal/repl"
)

// Stats is a snapshot of a node's figures.
type Stats struct {
	Node   string
	NodeID uint32
	Region string

	Entries    int    // live entries (and expired ones not yet reclaimed)
	Bytes      int64  // memory charged to them
	Tombstones int    // deletes remembered exactly
	Hits       uint64 // Get calls that found an entry
	Misses     uint64 // Get calls that found none
	Evictions  uint64 // entries evicted for room
	Expired    uint64 // entries reclaimed after expiring

	LogRecords int    // this node's writes kept for peers
	LogBytes   int64  // their bytes
	LastSeq    uint64 // sequence number of this node's latest write

	Peers   []PeerStats   // where this node sends its writes
	Origins []OriginStats // whose writes this node receives

	// IDConflicts counts the replication handshakes that revealed another
	// node with this node's id; IDConflict describes the last one.
	IDConflicts uint64
	IDConflict  string

	// InboundConns is the number of replication connections accepted and
	// open now; InboundRefused counts those closed at once because the cap
	// was reached (a flood of connections).
	InboundConns   int
	InboundRefused uint64
	// RepairsHeld counts anti-entropy repairs not applied because their
	// version was too far ahead of this node's clock.
	RepairsHeld uint64
	// ProbedDeletes counts the deletes this node took from peers'
	// anti-entropy probes: a probed tombstone newer than what it held.
	ProbedDeletes uint64
	// NotKept counts the replicated writes not applied because this node
	// does not keep their slots (GossipConfig.SlotsOnly).
	NotKept uint64
	// KeepsGrew counts the origins' streams this node ended to resume
	// them with the slots it came to keep (GossipConfig.SlotsOnly: a write
	// of a newly kept slot arrived as a skip).
	KeepsGrew uint64
	// Relays: a slot's primary hands each write of another region's
	// origin on to the slot's other owners in its region, which take it
	// relayed (the write crosses the region boundary once).
	// RelaysSent counts the writes this node handed on, RelaysDropped
	// those it could not (no link to the co-owner up, or its queue full);
	// RelaysApplied the writes handed on to this node and applied;
	// RelaysMissed the origins' streams this node ended because a write
	// it took relayed was not relayed in time (the stream resumes from it
	// with the write whole).
	RelaysSent, RelaysDropped, RelaysApplied, RelaysMissed uint64

	// Acks describes the writes that waited for other regions: one entry
	// for Quorum, one for All.
	Acks []AckStats

	// RegionNodes describes this node's region of several nodes; nil
	// without Config.Gossip.
	RegionNodes *RegionStats
}

// RegionStats describes a node's place in its region of several nodes.
type RegionStats struct {
	// State is this node's announced state: "joining" (filling up from
	// the others; it owns no slot), "serving" or "leaving".
	State string
	// Members counts the region's live members, this node included, by
	// state.
	Members map[string]int
	// Epoch is the slot map's epoch (one more at each change).
	Epoch uint64
	// Slots and PrimarySlots count the slots this node owns (as any copy)
	// and those it is the primary of, in its own map.
	Slots, PrimarySlots int
	// With GossipConfig.SlotsOnly: KeptSlots counts the slots whose
	// entries this node keeps, ColdSlots those of them still taking what
	// the region holds (ColdSlot), and Forgotten the entries forgotten
	// because their slots were no longer kept. Gained slots are taken from
	// one co-owner that held them (a slot sync): SlotSyncs counts those
	// taken, SlotSyncFailures those that failed, and SlotSyncFallbacks the
	// rounds that then asked every peer for a full sync instead; Resyncs
	// counts the rounds of full syncs asked of every peer (those, and
	// gains no co-owner could fill).
	KeptSlots, ColdSlots        int
	Forgotten, Resyncs          uint64
	SlotSyncs, SlotSyncFailures uint64
	SlotSyncFallbacks           uint64
	// Failed counts the members declared dead that this node keeps trying
	// to reach at their gossip address (a split region heals that way),
	// and Rejoins those that came back, whichever side re-joined.
	Failed  int
	Rejoins uint64
	// MergesRefused counts the joins that reached a node of another region
	// (a mistaken --join, or another region's node at a failed member's
	// address), refused rather than merging the two regions' gossip.
	MergesRefused uint64
	// With GossipConfig.SlotsOnly: OwnerReads counts the reads of keys of
	// slots this node does not hold that an owner answered, and
	// ReadsUnavailable those no owner answered (ErrUnavailable);
	// FetchFailures counts the owners that did not answer one of them
	// (each one asked), and FetchesServed the other nodes' reads this
	// node answered.
	OwnerReads, ReadsUnavailable, FetchFailures, FetchesServed uint64
}

// AckStats describes the writes of one acknowledgement level.
type AckStats struct {
	Level Ack
	// Latency is the time acknowledged writes waited, after their local
	// apply, until enough regions had applied them.
	Latency Latency
	// Failed counts the writes whose wait ended without the
	// acknowledgement: their context ended (ErrAckTimeout) or the node
	// closed.
	Failed uint64
}

// PeerStats describes the link carrying this node's writes to one peer.
type PeerStats struct {
	Addr      string
	Node      string
	Region    string
	Connected bool
	Since     time.Time     // when Connected last changed
	Lag       uint64        // writes sent or waiting that the peer has not acknowledged
	Backlog   int64         // bytes of those writes
	RTT       time.Duration // last measured round trip
	Offset    time.Duration // peer's clock minus this node's
	FullSyncs uint64
	LastError string // why the link is down; "" while it is up
	// LastErrorAt is when LastError happened; Reason classifies it
	// ("unreachable", "cluster mismatch", "duplicate node id", …).
	LastErrorAt time.Time
	Reason      string
	// Failures counts failed attempts and lost links by reason.
	Failures map[string]uint64
	// EverConnected is false for a peer never reached: its Node and
	// Region are unknown, and Since is when the node started trying.
	EverConnected bool
	Rounds        uint64 // anti-entropy rounds completed with this peer
	Repaired      uint64 // entries this node took from the peer's repairs
	// Skipped counts this node's writes sent to the peer as skips
	// (version and slot only): the peer keeps only its own slots, not
	// theirs. A skip sent again after a reconnection counts again.
	Skipped uint64
	// StandIns counts this node's writes sent to the peer as stand-ins
	// (version and slot only): the peer takes them from the primary of
	// their slot in its region, which relays them.
	StandIns uint64
	// Protocol is the replication protocol version spoken with the peer
	// on the last connection (the older of the two nodes'; 0 before the
	// first): during a rolling upgrade, the links to nodes not yet
	// upgraded speak the older one.
	Protocol int
}

// OriginStats describes the stream of writes received from one node.
type OriginStats struct {
	Node      string
	Region    string
	Connected bool
	Applied   uint64 // that node's sequence number applied here
	Ops       uint64 // writes received
	Messages  uint64 // pub/sub messages received and delivered here
	Stale     uint64 // writes older than what this node held
	FullSyncs uint64
	Dropped   uint64 // entries dropped after its full syncs (not vouched for)
	// Refused counts its writes refused by this node's ghost tables (a
	// delete, expiry or eviction here superseded them).
	Refused uint64
	// HeldAhead counts the times its stream or full sync was stopped at a
	// version too far ahead of this node's clock; SyncsRefused the full
	// syncs refused (not asked for by this node, or over the budget).
	HeldAhead    uint64
	SyncsRefused uint64
	// Visibility is, for every write received from that node, this node's
	// physical clock when it applied the write minus the write's HLC
	// wall-clock part (0 if negative): how long the write took to become
	// visible here. It has millisecond resolution (an HLC carries
	// milliseconds) and includes the offset between the two nodes' clocks.
	// Writes received in full syncs are not counted.
	Visibility Latency
}

// LatencyBuckets is the number of buckets of a Latency histogram.
const LatencyBuckets = latency.Buckets

// Latency is a histogram of durations in fixed exponential buckets.
type Latency struct {
	// Counts[i] counts the durations at most LatencyBounds()[i] and above
	// LatencyBounds()[i-1]; the last one, those above every bound.
	Counts [LatencyBuckets]uint64
	// Sum is the sum of the durations.
	Sum time.Duration
}

// LatencyBounds returns the upper bounds of a Latency's buckets but the
// last, in increasing order: 0.25 µs, 0.5 µs, 1 µs, … (doubling) up to
// about 33.6 s.
func LatencyBounds() [LatencyBuckets - 1]time.Duration { return latency.Bounds() }

// Count returns the number of durations counted.
func (l *Latency) Count() uint64 {
	var n uint64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

func latencyOf(s latency.Snapshot) Latency { return Latency{Counts: s.Counts, Sum: s.Sum} }

// ackLatency times the writes that wait for other regions, per level.
// Observing is lock-free and allocates nothing.
type ackLatency struct {
	quorum, all         latency.Histogram
	quorumFail, allFail atomic.Uint64
}

// observe records how a write of level ack that started waiting at start
// ended (err nil: acknowledged).
func (a *ackLatency) observe(ack Ack, start time.Time, err error) {
	h, fail := &a.quorum, &a.quorumFail
	if ack == All {
		h, fail = &a.all, &a.allFail
	}
	if err != nil {
		fail.Add(1)
		return
	}
	h.Observe(time.Since(start))
}

func (a *ackLatency) stats() []AckStats {
	return []AckStats{
		{Level: Quorum, Latency: latencyOf(a.quorum.Snapshot()), Failed: a.quorumFail.Load()},
		{Level: All, Latency: latencyOf(a.all.Snapshot()), Failed: a.allFail.Load()},
	}
}

// Stats returns the node's current figures.
func (n *Node) Stats() Stats {
	ss := n.store.Stats()
	rs := n.repl.Stats()
	st := Stats{
		Node: n.cfg.NodeName, NodeID: n.id, Region: n.cfg.Region,
		Entries: ss.Entries, Bytes: ss.Bytes, Tombstones: ss.Tombstones,
		Hits: ss.Hits, Misses: ss.Misses, Evictions: ss.Evictions, Expired: ss.Expirations,
		LogRecords: rs.Log.Records, LogBytes: rs.Log.Bytes, LastSeq: rs.Log.Next - 1,
		IDConflicts: rs.IDConflicts, IDConflict: rs.IDConflict,
		InboundConns: rs.InboundConns, InboundRefused: rs.InboundRefused, RepairsHeld: rs.RepairsHeld, ProbedDeletes: rs.ProbedDeletes, NotKept: rs.NotKept, KeepsGrew: rs.KeepsGrew,
		RelaysSent: rs.RelaysSent, RelaysDropped: rs.RelaysDropped, RelaysApplied: rs.RelaysApplied, RelaysMissed: rs.RelaysMissed,
	}
	for _, l := range rs.Links {
		st.Peers = append(st.Peers, peerStats(l))
	}
	for _, o := range rs.Origins {
		st.Origins = append(st.Origins, OriginStats{
			Node: o.Node, Region: o.Region, Connected: o.Connected, Applied: o.Applied,
			Ops: o.Ops, Messages: o.Messages, Stale: o.Stale, FullSyncs: o.FullSyncs, Dropped: o.Dropped,
			Refused: o.Refused, HeldAhead: o.HeldAhead, SyncsRefused: o.SyncsRefused,
			Visibility: latencyOf(o.Visibility),
		})
	}
	st.Acks = n.acks.stats()
	st.RegionNodes = n.regionStats(&rs)
	return st
}

func peerStats(l repl.LinkStats) PeerStats {
	return PeerStats{
		Addr: l.Addr, Node: l.Node, Region: l.Region, Connected: l.Connected, Since: l.Since,
		Lag: l.Lag, Backlog: l.Backlog, RTT: l.RTT, Offset: l.Offset, FullSyncs: l.FullSyncs,
		LastError: l.LastError, Rounds: l.Rounds, Repaired: l.Repaired, Skipped: l.Skipped, StandIns: l.StandIns, Protocol: int(l.Proto),
		LastErrorAt: l.LastErrorAt, Reason: l.Reason.String(), EverConnected: l.EverConnected,
		Failures: failuresOf(l.Failures),
	}
}

func failuresOf(m map[repl.Reason]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for r, n := range m {
		out[r.String()] = n
	}
	return out
}

// keyspaceSample bounds the entries Keyspace examines.
const keyspaceSample = 10_000

// Keyspace is what Redis's INFO keyspace reports of a node.
type Keyspace struct {
	Keys int // entries (expired ones not yet reclaimed included), as Stats.Entries
	// Expires is the number of entries with an expiry: exact up to 10,000
	// entries, estimated from a sample of 10,000 above.
	Expires int
	// AvgTTL is the mean time left of the (sampled) entries whose expiry
	// is in the future; 0 if there are none.
	AvgTTL time.Duration
}

// Keyspace returns the keyspace figures. It examines up to 10,000 entries,
// taken by the hash of their keys (so without regard to their expiry), at
// the cost of copying the engine's shards that hold them.
func (n *Node) Keyspace() Keyspace {
	ks := n.store.Keyspace(keyspaceSample)
	k := Keyspace{Keys: ks.Keys, Expires: ks.Expires}
	if ks.TTLCount > 0 {
		k.AvgTTL = time.Duration(ks.TTLSum / int64(ks.TTLCount))
	}
	return k
}
