package resp

import (
	"time"

	"github.com/geocache/geocache/internal/latency"
)

// CONFIG RESETSTAT resets what INFO reports as Redis 7 does (its
// resetServerStats, resetCommandTableStats and resetErrorTableStats): the
// stats section's counters (connections received, commands processed,
// rejected connections, error replies, keyspace hits and misses, expired
// and evicted keys, output-buffer disconnections, and geocache's rejected
// requests and TLS handshake errors), every command's commandstats and
// latencystats, and errorstats. Gauges (clients, memory, pub/sub
// channels, buffered bytes) are states, not counts, and stay; so do
// acl_access_denied_auth (Redis keeps its ACL counts too), SLOWLOG (SLOWLOG
// RESET empties it), uptime and the replication section's figures of the
// links.
//
// The counters themselves keep counting: the admin endpoint's /metrics
// serves them to Prometheus, whose counters must never go back. RESETSTAT
// records where they stand (statBase), and INFO reports what they counted
// since. Errorstats, which only INFO reports, is emptied.

// statBase is where the counters INFO reports stood at the last CONFIG
// RESETSTAT.
type statBase struct {
	connections, commands, errors, rejectedConns, rejectedReqs uint64
	tlsErrors, obufKills, forwarded, fwdErrors                 uint64
	hits, misses, evictions, expired                           uint64
	rejectedCalls, failedCalls                                 [maxCommands]uint64
	latency                                                    [maxCommands]latency.Snapshot
}

// noBase is the base before any RESETSTAT: the counters from the start.
var noBase statBase

// resetStats is CONFIG RESETSTAT. Counts made while it runs may land on
// either side of the reset.
func (s *Server) resetStats() {
	b := &statBase{
		connections:   s.connections.Load(),
		commands:      s.commands.Load(),
		errors:        s.errors.Load(),
		rejectedConns: s.rejectedConns.Load(),
		rejectedReqs:  s.rejectedReqs.Load(),
		tlsErrors:     s.tlsErrors.Load(),
		obufKills:     s.obufKills.Load(),
		forwarded:     s.forwarded.Load(),
		fwdErrors:     s.fwdErrors.Load(),
	}
	st := s.node.Stats()
	b.hits, b.misses, b.evictions, b.expired = st.Hits, st.Misses, st.Evictions, st.Expired
	for _, cmd := range statEntries {
		b.rejectedCalls[cmd.id] = s.rejectedCalls[cmd.id].Load()
		b.failedCalls[cmd.id] = s.failedCalls[cmd.id].Load()
		b.latency[cmd.id] = s.latency[cmd.id].Snapshot()
	}
	s.errStats.reset()
	s.statBase.Store(b)
}

// stats returns the base INFO subtracts.
func (s *Server) stats() *statBase {
	if b := s.statBase.Load(); b != nil {
		return b
	}
	return &noBase
}

// since is what a counter counted since base (0 if it reads below it, as
// a concurrent RESETSTAT may make it).
func since(v, base uint64) uint64 {
	if v < base {
		return 0
	}
	return v - base
}

// latencySince is CommandLatency since b (a RESETSTAT's base, or noBase).
func (s *Server) latencySince(b *statBase) map[string]latency.Snapshot {
	out := make(map[string]latency.Snapshot)
	for _, cmd := range statEntries {
		snap := s.latency[cmd.id].Snapshot()
		base := &b.latency[cmd.id]
		for i := range snap.Counts {
			snap.Counts[i] = since(snap.Counts[i], base.Counts[i])
		}
		snap.Sum = max(snap.Sum-base.Sum, time.Duration(0))
		if snap.Count() > 0 {
			out[cmd.name] = snap
		}
	}
	return out
}
