// Package geocache is a geo-distributed LRU cache with time expiration,
// embedded in the process.
//
// A service runs one Node per region (or several); each node keeps its own
// copy of the hot data within a memory budget, accepts writes locally and
// streams them to every other region, so every read is served by the
// nearest region and every write is acknowledged in microseconds.
//
//	n, err := geocache.Open(geocache.MultiRegion("eu-west", 2, ":7380",
//		"us-east.internal:7380", "ap-south.internal:7380"))
//	...
//	n.Set(ctx, "user:42", data, geocache.WithTTL(time.Minute))
//	v, err := n.Get("user:42")
//
// # Guarantees
//
// Writes are versioned by a hybrid logical clock and merged by
// last-writer-wins, so all regions converge whatever the delivery order;
// this is not linearizable (concurrent writes resolve to the greater
// version). A deleted key never comes back with an older value. An entry
// expires at the same absolute instant everywhere. WithAck(Quorum) waits
// until a majority of regions hold a write, which then survives the loss of
// any minority of regions. A node never serves an entry it cannot vouch
// for: after a long partition it drops such entries (a miss) rather than
// serve them stale.
//
// Values are opaque bytes; SetValue and GetValue store any Go value through
// a Codec (JSON by default). Two kinds merge instead of last-writer-wins:
// counters (IncrBy: increments made at once in several regions all count)
// and hashes (HSet, HDel, UpdateHash, HGetAll: fields written at once in
// several regions all survive, each field last-writer-wins).
//
// The local engine is package lru, usable on its own. The design is in the
// repository's docs/ folder.
package geocache
