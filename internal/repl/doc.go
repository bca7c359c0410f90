// Package repl is geocache's replication machinery: each node's log of its
// own writes, one sending link per peer address (handshake, resume, full
// sync, anti-entropy probes, pings), one receiving stream per accepted
// connection (apply, acknowledge, answer probes), and the acknowledgement
// waits behind Quorum and All. docs/replication.md explains the protocol.
//
// # Layout
//
// The replicator reaches the node's data only through the Store interface
// (store.go, which also holds the one mapping between the store's and the
// wire's operation kinds). Its peer set is dynamic (peers.go: AddPeer,
// RemovePeer). A sending link (link.go) is a dial loop, a handshake
// (handshakeOut), a sender that streams the log, full syncs and probe
// rounds, and a reader with one handler per frame kind (acks, pongs,
// repairs, rejects). A receiving stream (inbound.go) is a handshake
// (handshakeIn) and an inStream with one handler per frame kind.
// Acknowledgements count per region (acks.go): a write is applied in a
// region once any node of it has applied it.
//
// # Goroutines
//
// Start runs one goroutine per peer address (dial loop and sender; AddPeer
// starts one more, RemovePeer stops it and waits), one per
// accepted connection (receiver), the accept loop, the periodic
// anti-entropy timer and, until the first sync is settled, the watcher
// behind Synced; a sender runs one more to read acknowledgements, and
// one to produce probe chunks during a round. Close cancels them all,
// closes every connection and waits.
//
// # Lock order
//
// Replicator.mu, then a link's or an origin's mutex, then the store's locks
// (an lru shard, then its tombstone table). The log's and the clock's
// mutexes are leaves.
package repl
