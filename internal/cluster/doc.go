// Package cluster is the keyspace of a region of many nodes: which hash
// slot a key is in, and which nodes own which slots. It is pure and
// deterministic (no goroutines, no I/O, no clock): membership (who is live)
// comes from outside, and every node that sees the same members computes
// the same map without a consensus round.
//
// # Slots
//
// The keyspace is Redis Cluster's, so that cluster-aware Redis clients
// route to geocache as they route to Redis: 16,384 slots, a key's slot the
// CRC16/XMODEM of the key mod 16,384 (KeySlot). If the key has a hash tag,
// only the tag is hashed: the bytes between its first '{' and the first
// '}' after it, if there is at least one, so "{user1}.name" and
// "{user1}.mail" share a slot and multi-key commands on them stay on one
// node. The tests hold slots computed by redis-server 7.0.15 and compare
// 10,000 random keys with a live one (REDIS_CLUSTER_ADDR). The CRC folds
// eight bytes per step ("slicing by 8"): 24-byte keys hash about three
// times as fast as with Redis's byte-at-a-time loop.
//
// # The map
//
// New(members, copies) gives each slot copies owners (default 2) among
// the live members of the region, each member known by a stable uint32
// id; names and addresses are carried along for the replies to clients.
// Every owner holds the slot's data and accepts writes; the first owner is
// the slot's primary, the master that Redis clients are told about.
// Owners, Owns and Primary answer for a slot without allocating; Ranges
// lists the runs of slots with the same owners (CLUSTER SLOTS), Shards
// groups them by owner list (CLUSTER SHARDS), Diff lists what each node
// gains and loses from one map to the next and from or to whom (the warm
// hand-over), and Version is a digest of the inputs, so two nodes can tell
// that they agree.
//
// # Why rendezvous hashing over ranges
//
// The slots are cut into 1,024 ranges of 16 contiguous slots, and each
// range goes to the copies members with the highest weight
// mix64(range, id) (rendezvous, or highest-random-weight, hashing):
//
//   - It needs nothing but the member set: no ring of virtual nodes, no
//     table to agree on, no history.
//   - It moves only what it must: a member that joins enters the owner
//     lists of the ranges where it outweighs an owner, and nothing else
//     changes; a member that leaves is replaced, in the ranges it owned,
//     by the next in line, and the other owners keep the slot, so with
//     copies ≥ 2 no slot loses all its owners at once (TestMinimalMovement).
//   - Ranges keep CLUSTER SLOTS short: adjacent slots share owners, and a
//     client's slot table has one entry per run instead of per slot.
//
// The number of ranges trades balance against the length of CLUSTER
// SLOTS, which clients such as ioredis and Envoy fetch every few seconds.
// A member owns each range with probability copies/n, so its share is
// binomial and more ranges even it out. Measured over 50 random id sets
// (TestRangeCountChoice, plain rendezvous order), mean of max/mean slots
// owned per node, and entries in CLUSTER SLOTS for 3 to 20 nodes with two
// copies:
//
//	ranges  entries        3 nodes c2  5 nodes c2  10 nodes c2  20 nodes c2  20 nodes c1
//	   256    214-255         1.044       1.104       1.182        1.384        1.569
//	   512    428-511         1.029       1.062       1.140        1.263        1.386
//	  1024    855-1021        1.024       1.052       1.108        1.192        1.290
//	  2048   1706-2043        1.018       1.036       1.068        1.125        1.191
//	  4096   3404-4085        1.011       1.025       1.054        1.087        1.139
//	 16384  13664-16342       1.006       1.012       1.026        1.044        1.069
//
// 1,024 ranges keep a 3-node region with two copies within 2-6% of an even
// share (it holds 1.43 to 1.47 times the keys of one node, against 1.5 for
// a perfect split) and a 20-node one within about 20%, with a CLUSTER
// SLOTS reply of 123 KB (3 nodes, 712 entries) to 177 KB (20 nodes, 1,023
// entries); 16,384 ranges would be even but send some 2.8 MB.
//
// Within a range's owners the primary is chosen greedily, range after
// range, as the owner with the fewest primaries so far (a primary that
// is also an owner of the next range keeps it while within two ranges of
// the least loaded, so runs merge): with two copies every node is the
// primary of its share of slots to within about 3% (TestBalance), where
// plain rendezvous order would leave the primaries, and so the requests of
// Redis clients, as uneven as ownership with one copy. Which owner is the
// primary moves no data.
//
// The range size, the weight function and the choice of primary are part
// of the protocol: nodes running different rules would disagree. TestGolden
// pins them; a change needs a new scheme number, which Version includes.
package cluster
