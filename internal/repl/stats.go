package repl

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/geocache/geocache/internal/latency"
	"github.com/geocache/geocache/internal/store"
)

// LinkStats describes the sending side of one peer address.
type LinkStats struct {
	Addr          string            // the address this node dials
	NodeID        uint32            // the peer's id, once known
	Node          string            // the peer's name, once known
	Region        string            // the peer's region, once known
	Connected     bool              // a connection is up and streaming
	Since         time.Time         // when Connected last changed
	Acked         uint64            // this node's writes the peer has applied, by sequence number
	Lag           uint64            // this node's writes not yet acknowledged by the peer
	Backlog       int64             // bytes of those writes still in the log
	RTT           time.Duration     // last measured round trip
	Offset        time.Duration     // peer's clock minus this node's, last estimate
	FullSyncs     uint64            // full syncs sent
	Reconnects    uint64            // connections established
	LastError     string            // why the link is down ("" while it is up)
	LastErrorAt   time.Time         // when LastError happened
	Reason        Reason            // LastError's kind (ReasonNone while up)
	Failures      map[Reason]uint64 // failed attempts and lost links, by reason
	EverConnected bool              // a connection came up at least once
	SyncDone      bool              // the first sync from this peer is settled (see Replicator.Synced)
	Rounds        uint64            // anti-entropy rounds completed
	Repaired      uint64            // entries taken from the peer's repairs
	Skipped       uint64            // writes sent as skips: the peer does not keep their keys
	StandIns      uint64            // writes sent as stand-ins: the peer takes them relayed
	Proto         uint16            // protocol version spoken on the last connection (0: none yet)
}

// OriginStats describes the receiving side of one origin.
type OriginStats struct {
	NodeID    uint32
	Node      string
	Region    string
	Connected bool
	Since     time.Time
	Applied   uint64 // last sequence number of the origin applied here
	Ops       uint64 // ops received (writes; messages are counted apart)
	Messages  uint64 // pub/sub messages delivered (Config.OnPublish)
	Stale     uint64 // ops older than what the store held
	Refused   uint64 // ops the ghost table refused
	// HeldAhead counts the times this origin's stream (or full sync) was
	// stopped at a version, snapshot time or ghost table further ahead of
	// this node's clock than the max offset.
	HeldAhead uint64
	// SyncsRefused counts the full syncs refused: not asked for by this
	// node, or over the budget (Config.MaxSnapshotBytes, MaxSnapshotKeys).
	SyncsRefused uint64
	FullSyncs    uint64 // full syncs received
	Dropped      uint64 // entries dropped after full syncs
	// Visibility times the origin's streamed writes from their HLC to their
	// apply here (see observeVisibility).
	Visibility latency.Snapshot
}

// Stats is a snapshot of the replicator's state.
type Stats struct {
	NodeID      uint32
	Incarnation uint64
	Log         LogStats
	Links       []LinkStats // by address
	// IDConflicts counts the handshakes that revealed another node with
	// this node's id; IDConflict describes the last one.
	IDConflicts uint64
	IDConflict  string
	Origins     []OriginStats // by node id
	// InboundConns is the number of accepted connections open now;
	// InboundRefused counts those closed at once because Config.MaxInbound
	// were open.
	InboundConns   int
	InboundRefused uint64
	// RepairsHeld counts the anti-entropy repairs not applied because their
	// version was too far ahead of this node's clock (taken again by a later
	// round).
	RepairsHeld uint64
	// ProbedDeletes counts the tombstones in peers' probes that were newer
	// than what this node held, and applied.
	ProbedDeletes uint64
	// NotKept counts the replicated writes not applied because this node
	// does not keep their keys (Config.Keeps); Resyncs counts Resync calls.
	NotKept, Resyncs uint64
	// KeepsGrew counts the streams ended at a skip of a slot this node had
	// come to keep since the stream resumed (wire.RejectKeeps).
	KeepsGrew uint64
	// FetchesServed counts the Fetch requests this node answered;
	// FetchesSent the fetches it asked a peer and got answered,
	// FetchFailures those that failed (fetch.go).
	FetchesServed, FetchesSent, FetchFailures uint64
	// SlotSyncsServed counts the SlotSyncs this node answered or refused;
	// SlotSyncs those it asked a peer and took, SlotSyncFailures those
	// that failed (slotsync.go).
	SlotSyncsServed, SlotSyncs, SlotSyncFailures uint64
	// Relays (Config.RelayTo, RelayedSlots): RelaysSent counts the writes
	// of other regions' origins this node handed on to co-owners,
	// RelaysDropped those it could not (no link up, or its queue full);
	// RelaysApplied the writes handed on to this node and applied,
	// RelaysIgnored those not applied (held whole already, or of an
	// origin not streamed here); RelaysMissed the streams this node ended
	// because a write taken relayed was not relayed within RelayWait.
	RelaysSent, RelaysDropped, RelaysApplied, RelaysIgnored, RelaysMissed uint64
}

// Stats returns the current figures.
func (r *Replicator) Stats() Stats {
	st := Stats{NodeID: r.cfg.NodeID, Incarnation: r.incarnation, Log: r.log.Stats()}
	last := st.Log.Next - 1
	r.mu.Lock()
	st.IDConflicts, st.IDConflict = r.idConflicts, r.idConflict
	st.InboundConns, st.InboundRefused, st.RepairsHeld = r.inbound, r.inboundRefused, r.repairsHeld
	st.NotKept, st.Resyncs, st.KeepsGrew = r.notKept.Load(), r.resyncs, r.keepsGrew.Load()
	st.ProbedDeletes = r.probedDeletes.Load()
	st.RelaysSent, st.RelaysDropped, st.RelaysApplied = r.relaysSent.Load(), r.relaysDropped.Load(), r.relaysApplied.Load()
	st.RelaysIgnored, st.RelaysMissed = r.relaysIgnored.Load(), r.relaysMissed.Load()
	st.FetchesServed, st.FetchesSent, st.FetchFailures = r.fetchesServed.Load(), r.fetchesSent.Load(), r.fetchFailures.Load()
	st.SlotSyncsServed, st.SlotSyncs, st.SlotSyncFailures = r.slotSyncsServed.Load(), r.slotSyncs.Load(), r.slotSyncFailures.Load()
	for _, l := range r.links {
		l.mu.Lock()
		ls := LinkStats{
			Addr: l.addr, NodeID: l.nodeID, Node: l.name, Region: l.region,
			Connected: l.connected, Since: l.since, Acked: l.acked,
			RTT: l.rtt, Offset: l.offset, FullSyncs: l.fullSyncs,
			Reconnects: l.reconnects, LastError: l.lastErr,
			Rounds: l.rounds, Repaired: l.repaired, Skipped: l.skipped, StandIns: l.standIns, Proto: l.spoken,
			LastErrorAt: l.lastErrAt, Reason: l.reason, EverConnected: l.reconnects > 0,
			SyncDone: l.sync != syncPending,
		}
		for reason, n := range l.failures {
			if n > 0 {
				if ls.Failures == nil {
					ls.Failures = map[Reason]uint64{}
				}
				ls.Failures[Reason(reason)] = n
			}
		}
		l.mu.Unlock()
		if last > ls.Acked {
			ls.Lag = last - ls.Acked
			ls.Backlog = r.log.BytesAfter(ls.Acked)
		}
		st.Links = append(st.Links, ls)
	}
	for _, o := range r.origins {
		o.mu.Lock()
		os := OriginStats{
			NodeID: o.id, Node: o.name, Region: o.region, Connected: o.connected,
			Since: o.since, Applied: o.acked(), FullSyncs: o.fullSyncs, Dropped: o.dropped,
			Stale: o.results[store.Stale], Refused: o.results[store.Refused],
			Visibility: o.visibility.Snapshot(),
			HeldAhead:  o.heldAhead, SyncsRefused: o.syncsRefused, Messages: o.messages,
		}
		for _, n := range o.results {
			os.Ops += n
		}
		o.mu.Unlock()
		st.Origins = append(st.Origins, os)
	}
	r.mu.Unlock()
	slices.SortFunc(st.Links, func(a, b LinkStats) int { return strings.Compare(a.Addr, b.Addr) })
	slices.SortFunc(st.Origins, func(a, b OriginStats) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return st
}
