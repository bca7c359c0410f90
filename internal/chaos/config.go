package chaos

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config describes one chaos run. The zero value of every field but Bin
// and Dir means its default.
type Config struct {
	// Bin is the geocache binary to run (`Bin serve ...`). Required.
	Bin string
	// Dir receives the nodes' logs (and is where Run's caller may write the
	// report). Required; it must exist.
	Dir string

	// Seed decides the fault schedule, the initial clock offsets and every
	// client's operations.
	Seed int64
	// Regions and NodesPerRegion: 3 and 1 by default.
	Regions, NodesPerRegion int
	// RegionSizes, if set, gives each region its own number of nodes
	// (1 to 5 each), in place of Regions and NodesPerRegion: regions of
	// different sizes.
	RegionSizes []int
	// Gossip makes the nodes of each region one region of several nodes
	// (--gossip-addr, --join): they find each other by gossip, share the
	// slot map and replicate to each other over the links gossip announces,
	// directly (no proxy: the faults between regions cut and slow only the
	// links between regions; kills, pauses and skews hit single nodes).
	// Without it the nodes of a region list each other in --peers, through
	// proxies, as regions do.
	Gossip bool
	// SlotOwned, with Gossip, runs every node with --cluster-forward: each
	// keeps only the slots it owns (two copies of each slot per region),
	// and forwards the clients' commands on other slots to their owners,
	// so the writers, readers and the final dump see each region through
	// any of its nodes.
	SlotOwned bool
	// Duration is how long the clients write and faults are injected
	// (default 60s); healing and the final checks come after.
	Duration time.Duration
	// Latency is the one-way latency of every link between two regions
	// (default 10ms; negative: none).
	Latency time.Duration
	// WritersPerNode is how many writer clients each node serves (default 2).
	WritersPerNode int
	// OwnKeys is how many keys each writer writes alone (default 16);
	// SharedKeys is how many keys every node writes (default 16).
	OwnKeys, SharedKeys int
	// ThinkTime is the mean pause of a writer between operations
	// (default 10ms; negative: none).
	ThinkTime time.Duration
	// QuorumFraction is the share of writes sent on the writer's QUORUM
	// connection (default 0.15; negative: none).
	QuorumFraction float64
	// AllFraction is the share of writes sent on the writer's ALL
	// connection (`GEOCACHE ACK ALL`: every region applied it; default
	// 0.05; negative: none).
	AllFraction float64
	// WaitFraction is the share of the writes sent on the Local connection
	// that are followed by `WAIT <regions-1> 1000` (default 0.05; negative:
	// none).
	WaitFraction float64
	// LargeFraction is the share of SETs whose value is large: 300 KiB to
	// 1 MiB, more than a replication frame's batch, so it crosses regions
	// as a large op in parts that the writes behind it pass (default 0.02;
	// negative: none). The value is its write's usual tag padded with '~'
	// to a length derived from the tag (padValue): a read of a truncated,
	// mixed or misplaced value matches no write.
	LargeFraction float64
	// ProbeInterval is the time between visibility probes (default 200ms).
	ProbeInterval time.Duration
	// CounterKeys is how many counter keys the run has (default 4;
	// negative: none, and no increments). Every writer of every node
	// increments every one of them — INCR, INCRBY, DECR, DECRBY, with
	// deltas of both signs — so the same counter is incremented in
	// several regions at once. They are never set, deleted or expired:
	// after the heal, every ample-memory node's value must be the sum of
	// the acknowledged increments (CheckCounter).
	CounterKeys int
	// CounterFraction is the share of a writer's operations that are
	// increments (default 0.1; negative: none).
	CounterFraction float64
	// HashKeys is how many hash keys the run has (default 2; negative:
	// none). Every writer of every node writes and deletes their fields
	// (HSET, HDEL) and nothing else writes them: after the heal every
	// ample node must hold the same fields, each a value an HSET of it
	// wrote (hash.go).
	HashKeys int
	// HashFraction is the share of a writer's operations (after the
	// increments) that are hash writes (default 0.1; negative: none).
	HashFraction float64

	// Faults lists the fault kinds the random schedule may use (default
	// AllFaults). Ignored when Schedule is set.
	Faults []string
	// MaxOffset bounds the injected clock offsets (default 400ms).
	MaxOffset time.Duration
	// Schedule, if not nil, is used instead of the random schedule of Seed
	// (the clients' operations still come from Seed).
	Schedule *Schedule

	// ConvergeTimeout bounds the wait for convergence after healing
	// (default 30s).
	ConvergeTimeout time.Duration
	// MaxMemory is each node's --max-memory (default 1GB: nothing is
	// evicted, so that every missing write is a finding).
	MaxMemory string
	// SmallRegionMemory, if set, is the --max-memory of the nodes of the
	// last region (the "small" region), so that it evicts heavily while
	// the others keep everything (DefaultSmallRegionMemory holds a few
	// dozen of the workload's entries). Empty: every node has MaxMemory.
	SmallRegionMemory string
	// TombstoneHorizon is each node's --tombstone-horizon (default 3s, so
	// that the longer cuts outlast it and the runs check that no delete
	// comes back after a partition longer than the horizon; negative: the
	// node's own default, 1h).
	TombstoneHorizon time.Duration

	// Plaintext runs the replication links without TLS. By default the
	// run makes a throwaway CA and one certificate per node (for
	// 127.0.0.1) in Dir/certs, starts every node with --tls-cert,
	// --tls-key and --tls-ca, so that every link runs mutual TLS 1.3 end
	// to end through its proxy, and checks that every node's replication
	// port speaks TLS only (CheckTLS).
	Plaintext bool

	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

// DefaultSmallRegionMemory is the small region's --max-memory of the long
// runs: about 30 of the workload's entries (each is charged its key, its
// value and about 120 bytes of the engine's overhead), for about 400 keys
// written in a minute.
const DefaultSmallRegionMemory = "4KB"

// memorySize is what `geocache serve --max-memory` accepts (a positive
// size; a number without a unit is bytes).
var memorySize = regexp.MustCompile(`^[1-9][0-9]{0,12}([KMGT]i?B|B)?$`)

// Fault kinds.
const (
	FaultIsolate = "isolate" // every link to and from one region is cut
	FaultOneWay  = "oneway"  // the links from one region to another are cut (the other way stays up)
	FaultPartial = "partial" // the links between two regions are cut both ways; a third still reaches both
	FaultSplit   = "split"   // the regions are split into a minority and a majority
	FaultLatency = "latency" // 50–500ms more one-way latency between two regions
	FaultKill    = "kill"    // kill -9 a node; restart it later with the same flags and ports
	FaultPause   = "pause"   // SIGSTOP a node; SIGCONT it later
	FaultSkew    = "skew"    // restart a node (SIGTERM) with a new clock offset (GEOCACHE_TEST_CLOCK_OFFSET)
	FaultSever   = "sever"   // cut one node from the other nodes of its region (with Gossip); its clients and other regions still reach it

	// FaultFlush empties one node with FLUSHALL (not replicated): data
	// loss the system does not cause by itself, which the checker must
	// report (read-your-writes). Only for testing the checker: not in
	// AllFaults.
	FaultFlush = "flush"
)

// AllFaults is every fault kind.
var AllFaults = []string{FaultIsolate, FaultOneWay, FaultPartial, FaultSplit, FaultLatency, FaultKill, FaultPause, FaultSkew, FaultSever}

// withDefaults fills in the defaults and checks the settings (Bin and Dir
// too if needBinDir).
func (c Config) withDefaults(needBinDir bool) (Config, error) {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if len(c.RegionSizes) > 0 {
		c.RegionSizes = slices.Clone(c.RegionSizes)
		c.Regions, c.NodesPerRegion = len(c.RegionSizes), slices.Max(c.RegionSizes)
		if slices.Min(c.RegionSizes) < 1 {
			return c, fmt.Errorf("chaos: region sizes %v: 1 to 5 nodes each", c.RegionSizes)
		}
	}
	def(&c.Regions, 3)
	def(&c.NodesPerRegion, 1)
	if len(c.RegionSizes) == 0 {
		for range c.Regions {
			c.RegionSizes = append(c.RegionSizes, c.NodesPerRegion)
		}
	}
	def(&c.WritersPerNode, 2)
	def(&c.OwnKeys, 16)
	def(&c.SharedKeys, 16)
	defD(&c.Duration, time.Minute)
	defD(&c.Latency, 10*time.Millisecond)
	defaultOrNone(&c.ThinkTime, 10*time.Millisecond)
	defD(&c.ProbeInterval, 200*time.Millisecond)
	defD(&c.MaxOffset, 400*time.Millisecond)
	defD(&c.ConvergeTimeout, 30*time.Second)
	defaultOrNone(&c.TombstoneHorizon, 3*time.Second)
	if c.Latency < 0 {
		c.Latency = 0
	}
	defaultOrNone(&c.QuorumFraction, 0.15)
	defaultOrNone(&c.AllFraction, 0.05)
	defaultOrNone(&c.WaitFraction, 0.05)
	defaultOrNone(&c.LargeFraction, 0.02)
	defaultOrNone(&c.CounterKeys, 4)
	defaultOrNone(&c.CounterFraction, 0.1)
	defaultOrNone(&c.HashKeys, 2)
	defaultOrNone(&c.HashFraction, 0.1)
	if c.MaxMemory == "" {
		c.MaxMemory = "1GB"
	}
	if len(c.Faults) == 0 {
		c.Faults = AllFaults
	}
	for _, f := range c.Faults {
		if !isFault(f) {
			return c, fmt.Errorf("chaos: unknown fault kind %q (known: %v)", f, AllFaults)
		}
	}
	switch {
	case c.Regions < 1 || c.Regions > 9:
		return c, fmt.Errorf("chaos: %d regions: 1 to 9", c.Regions)
	case c.SlotOwned && !c.Gossip:
		return c, errors.New("chaos: SlotOwned needs Gossip (regions of several nodes)")
	case c.NodesPerRegion < 1 || c.NodesPerRegion > 5:
		return c, fmt.Errorf("chaos: %d nodes per region: 1 to 5", c.NodesPerRegion)
	case c.WritersPerNode < 1 || c.WritersPerNode > 16:
		return c, fmt.Errorf("chaos: %d writers per node: 1 to 16", c.WritersPerNode)
	case c.Duration < time.Second || c.Duration > 24*time.Hour:
		return c, fmt.Errorf("chaos: duration %v: 1s to 24h", c.Duration)
	case c.MaxOffset > 400*time.Millisecond:
		return c, fmt.Errorf("chaos: max clock offset %v: at most 400ms (the node refuses writes at 500ms)", c.MaxOffset)
	case c.OwnKeys < 1 || c.SharedKeys < 0:
		return c, errors.New("chaos: OwnKeys must be at least 1 and SharedKeys not negative")
	case c.CounterKeys > maxCounterKeys || c.CounterFraction > 1:
		return c, fmt.Errorf("chaos: %d counter keys (at most %d), counter fraction %v (at most 1)", c.CounterKeys, maxCounterKeys, c.CounterFraction)
	case c.HashKeys > maxHashKeys || c.HashFraction > 1:
		return c, fmt.Errorf("chaos: %d hash keys (at most %d), hash fraction %v (at most 1)", c.HashKeys, maxHashKeys, c.HashFraction)
	case c.QuorumFraction+c.AllFraction > 1 || c.WaitFraction > 1:
		return c, fmt.Errorf("chaos: Quorum (%v) and All (%v) fractions add up to more than 1, or Wait fraction %v above 1", c.QuorumFraction, c.AllFraction, c.WaitFraction)
	case c.SmallRegionMemory != "" && !memorySize.MatchString(c.SmallRegionMemory):
		return c, fmt.Errorf("chaos: small region memory %q: a positive size such as 4KB, 64KiB or 4096", c.SmallRegionMemory)
	case c.SmallRegionMemory != "" && c.Regions < 2:
		return c, fmt.Errorf("chaos: a small region needs at least 2 regions (the others keep everything), not %d", c.Regions)
	}
	if c.Schedule != nil {
		if err := c.Schedule.validate(c); err != nil {
			return c, err
		}
	}
	switch {
	case needBinDir && c.Bin == "":
		return c, errors.New("chaos: Config.Bin (the geocache binary) is required")
	case needBinDir && c.Dir == "":
		return c, errors.New("chaos: Config.Dir is required")
	}
	return c, nil
}

func isFault(kind string) bool {
	for _, f := range AllFaults {
		if f == kind {
			return true
		}
	}
	return kind == FaultFlush
}

// smallRegion is the index of the region that evicts heavily, or -1.
func (c Config) smallRegion() int {
	if c.SmallRegionMemory == "" {
		return -1
	}
	return c.Regions - 1
}

// maxMemory is the --max-memory of the nodes of region r.
// defaultOrNone gives *p its default v if it is 0, and makes a negative
// one 0: the Config fields where negative means "none".
func defaultOrNone[T int | float64 | time.Duration](p *T, v T) {
	if *p == 0 {
		*p = v
	}
	if *p < 0 {
		*p = 0
	}
}

func (c Config) maxMemory(r int) string {
	if r == c.smallRegion() {
		return c.SmallRegionMemory
	}
	return c.MaxMemory
}

// nodes is the number of nodes of every region.
func (c Config) nodes() int {
	if len(c.RegionSizes) == 0 {
		return c.Regions * c.NodesPerRegion
	}
	n := 0
	for _, s := range c.RegionSizes {
		n += s
	}
	return n
}

// shared reports whether node index i has another node in its region
// that it gossips with.
func (c Config) shared(i int) bool {
	if !c.Gossip {
		return false
	}
	if len(c.RegionSizes) == 0 {
		return c.NodesPerRegion > 1
	}
	return c.RegionSizes[c.regionOf(i)] > 1
}

// regionOf is the region of node index i: the regions' nodes are numbered
// in region order.
func (c Config) regionOf(i int) int {
	if len(c.RegionSizes) == 0 {
		return i / c.NodesPerRegion
	}
	for r, s := range c.RegionSizes {
		if i < s {
			return r
		}
		i -= s
	}
	return len(c.RegionSizes) - 1
}

// sizes describes the regions' sizes: "3 region(s) × 2 node(s)", or
// "3 region(s) of 3, 1, 2 nodes".
func sizes(regionSizes []int) string {
	if len(regionSizes) > 0 && slices.Min(regionSizes) != slices.Max(regionSizes) {
		s := fmt.Sprint(regionSizes)
		return fmt.Sprintf("%d region(s) of %s nodes", len(regionSizes), strings.ReplaceAll(s[1:len(s)-1], " ", ", "))
	}
	n := 1
	if len(regionSizes) > 0 {
		n = regionSizes[0]
	}
	return fmt.Sprintf("%d region(s) × %d node(s)", len(regionSizes), n)
}

func (c Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// regionNames are the names of the first regions; more are "r<i>".
var regionNames = []string{"us", "eu", "ap", "sa", "af", "me", "oc", "ca", "in"}

func regionName(i int) string {
	if i < len(regionNames) {
		return regionNames[i]
	}
	return fmt.Sprintf("r%d", i)
}
