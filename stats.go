package geocache

import (
	"time"

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
	LastError string
	Rounds    uint64 // anti-entropy rounds completed with this peer
	Repaired  uint64 // entries this node took from the peer's repairs
}

// OriginStats describes the stream of writes received from one node.
type OriginStats struct {
	Node      string
	Region    string
	Connected bool
	Applied   uint64 // that node's sequence number applied here
	Ops       uint64 // writes received
	Stale     uint64 // writes older than what this node held
	FullSyncs uint64
	Dropped   uint64 // entries dropped after its full syncs (not vouched for)
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
	}
	for _, l := range rs.Links {
		st.Peers = append(st.Peers, peerStats(l))
	}
	for _, o := range rs.Origins {
		st.Origins = append(st.Origins, OriginStats{
			Node: o.Node, Region: o.Region, Connected: o.Connected, Applied: o.Applied,
			Ops: o.Ops, Stale: o.Stale, FullSyncs: o.FullSyncs, Dropped: o.Dropped,
		})
	}
	return st
}

func peerStats(l repl.LinkStats) PeerStats {
	return PeerStats{
		Addr: l.Addr, Node: l.Node, Region: l.Region, Connected: l.Connected, Since: l.Since,
		Lag: l.Lag, Backlog: l.Backlog, RTT: l.RTT, Offset: l.Offset, FullSyncs: l.FullSyncs,
		LastError: l.LastError, Rounds: l.Rounds, Repaired: l.Repaired,
	}
}
