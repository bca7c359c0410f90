// Package chaos runs a cluster of real `geocache serve` processes on
// loopback under injected faults, records what concurrent clients did and
// saw, and checks the recorded history and the final state against the
// design's invariants (I1 convergence, I3 no resurrection, I4 no lost
// acknowledged writes, I5 exact expiry) and a few more properties (no
// phantom values, monotonic clocks, read-your-writes on one node).
//
// One run (Run):
//
//  1. starts Regions × NodesPerRegion processes of the geocache binary
//     (or Config.RegionSizes' numbers of them, region by region)
//     (Config.Bin); every replication link from node i to node j goes
//     through its own user-space TCP proxy (toxiproxy, as a library), so
//     node i's --peers lists the proxies for i→j. Links between regions
//     carry Config.Latency of one-way latency. Unless Config.Plaintext,
//     every node runs with a certificate of a CA made for the run (in
//     Dir/certs), so the links run mutual TLS end to end through the
//     proxies, and once the links are up every node's replication port is
//     probed: it must speak mutual TLS and nothing else (CheckTLS). With
//     Config.SmallRegionMemory, the last region's nodes run with that
//     --max-memory and evict heavily: the checks allow absence there;
//  2. runs writer clients (go-redis, one connection each, plus one with
//     GEOCACHE ACK QUORUM and one with GEOCACHE ACK ALL; some Local writes
//     are followed by WAIT for every other region) that write unique values
//     — SET with and without PX, DEL, PEXPIRE, PERSIST — and read, recording for every operation
//     its invoke and completion times, its result and the version that
//     GEOCACHE VERSION reports right after it on the same connection; a
//     share of their operations (Config.CounterFraction) increments
//     counter keys that every writer of every region increments at once
//     (INCR, INCRBY, DECR, DECRBY) and nothing sets, deletes or expires;
//     another share writes and deletes fields of hash keys that every
//     writer of every region writes at once (HSET, HDEL);
//     a prober writes keys that watchers in every region poll, to measure
//     replication visibility;
//  3. meanwhile applies the fault schedule: partitions (a region isolated,
//     one-way cuts, a pair of regions cut apart, a minority split),
//     latency spikes, kill -9 and restart, SIGSTOP/SIGCONT pauses,
//     clock skew through geocache serve's test hook GEOCACHE_TEST_CLOCK_OFFSET
//     (a restart with a new offset), and, in regions of several nodes
//     (Config.Gossip), one node severed from the others of its region
//     (relays in front of its in-region ports: sever.go);
//  4. heals everything, restarts what is down, waits until every node holds
//     the same version of every key it holds, and dumps every node (GEOCACHE
//     VERSION and GET over every key written);
//  5. checks (Check) and returns a Report, with every violation (among
//     them: a restarted node of an ample region that misses a key another
//     ample node holds, the refill check; a counter whose value on an
//     ample node is not the sum of its acknowledged increments, within
//     those of unknown outcome or lost with a stopped process, the counter
//     check; a hash whose ample nodes disagree, that holds a value no
//     HSET wrote, or that lacks a field never deleted that a durable HSET
//     wrote, the hash checks), the convergence time, visibility quantiles and the Local writes lost with
//     a killed node.
//
// Everything is derived from Config.Seed: the fault schedule, the initial
// clock offsets and every client's sequence of operations, so a run is
// replayed from its seed (the timing of a real cluster is not).
package chaos
