// Package repl is geocache's replication machinery: each node's log of its
// own writes, one sending link per peer address (handshake, resume, full
// sync, anti-entropy probes, pings), one receiving stream per accepted
// connection (apply, acknowledge, answer probes), and the acknowledgement
// waits behind Quorum and All. docs/replication.md explains the protocol.
//
// # Goroutines
//
// Start runs one goroutine per peer address (dial loop and sender), one per
// accepted connection (receiver), the accept loop, the periodic
// anti-entropy timer and, until the first sync is settled, the watcher
// behind Synced; a sender runs one more to read acknowledgements, and
// one to produce probe chunks during a round. Close cancels them all,
// closes every connection and waits.
//
// # Lock order
//
// Replicator.mu, then a link's or an origin's mutex, then the store's locks
// (an lru shard, then its tombstone table). The log's mutex is a leaf.
package repl
