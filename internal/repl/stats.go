package repl

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/geocache/geocache/internal/store"
)

// LinkStats describes the sending side of one peer address.
type LinkStats struct {
	Addr       string        // the address this node dials
	NodeID     uint32        // the peer's id, once known
	Node       string        // the peer's name, once known
	Region     string        // the peer's region, once known
	Connected  bool          // a connection is up and streaming
	Since      time.Time     // when Connected last changed
	Acked      uint64        // this node's writes the peer has applied, by sequence number
	Lag        uint64        // this node's writes not yet acknowledged by the peer
	Backlog    int64         // bytes of those writes still in the log
	RTT        time.Duration // last measured round trip
	Offset     time.Duration // peer's clock minus this node's, last estimate
	FullSyncs  uint64        // full syncs sent
	Reconnects uint64        // connections established
	LastError  string        // why the last connection ended
	Rounds     uint64        // anti-entropy rounds completed
	Repaired   uint64        // entries taken from the peer's repairs
}

// OriginStats describes the receiving side of one origin.
type OriginStats struct {
	NodeID    uint32
	Node      string
	Region    string
	Connected bool
	Since     time.Time
	Applied   uint64 // last sequence number of the origin applied here
	Ops       uint64 // ops received
	Stale     uint64 // ops older than what the store held
	Refused   uint64 // ops the ghost table refused
	FullSyncs uint64 // full syncs received
	Dropped   uint64 // entries dropped after full syncs
}

// Stats is a snapshot of the replicator's state.
type Stats struct {
	NodeID      uint32
	Incarnation uint64
	Log         LogStats
	Links       []LinkStats   // by address
	Origins     []OriginStats // by node id
}

// Stats returns the current figures.
func (r *Replicator) Stats() Stats {
	st := Stats{NodeID: r.cfg.NodeID, Incarnation: r.incarnation, Log: r.log.Stats()}
	last := st.Log.Next - 1
	r.mu.Lock()
	for _, l := range r.links {
		l.mu.Lock()
		ls := LinkStats{
			Addr: l.addr, NodeID: l.nodeID, Node: l.name, Region: l.region,
			Connected: l.connected, Since: l.since, Acked: l.acked,
			RTT: l.rtt, Offset: l.offset, FullSyncs: l.fullSyncs,
			Reconnects: l.reconnects, LastError: l.lastErr,
			Rounds: l.rounds, Repaired: l.repaired,
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
			Since: o.since, Applied: o.applied, FullSyncs: o.fullSyncs, Dropped: o.dropped,
			Stale: o.results[store.Stale], Refused: o.results[store.Refused],
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
