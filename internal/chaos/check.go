package chaos

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Checks, by the name a Violation carries.
const (
	CheckConvergence  = "I1-convergence"         // after heal, two nodes hold different versions of a key
	CheckOwnerConv    = "I1-owner-convergence"   // after heal, two owners of a key in one region hold different versions of it (slot-owned nodes; owners.go)
	CheckBehind       = "I1-behind"              // a node holds a version older than a durable acknowledged write
	CheckResurrection = "I3-resurrection"        // a node holds a version older than an acknowledged delete
	CheckAfterExpiry  = "I3-older-after-expiry"  // a node holds a version older than an acknowledged write that has expired
	CheckLostQuorum   = "I4-lost-quorum-write"   // a Quorum-acknowledged set is nowhere, though no majority of regions was lost at once
	CheckLostWrite    = "lost-write"             // a Local-acknowledged set is nowhere, though its origin never stopped
	CheckExpiredRead  = "I5-read-after-expiry"   // a read returned a value after its expiry on the serving node's clock
	CheckPhantom      = "phantom-value"          // a read (or the dump) returned a value never written to that key
	CheckValueVersion = "value-version"          // a node holds a write's version with another value
	CheckHLC          = "hlc-monotonic"          // a node's versions went back within one process
	CheckHLCClock     = "hlc-vs-clock"           // a version's physical time is behind the node's clock, or ahead of every clock
	CheckRYW          = "read-your-writes"       // a read on a node returned an older version than the node had already reported
	CheckCrash        = "node-crash"             // a node exited without being told to
	CheckRefill       = "refill"                 // a restarted node of an ample region misses a key another ample node holds
	CheckWait         = "wait-count"             // WAIT answered more regions than there are others
	CheckLostProbe    = "lost-probe"             // an ample node misses a probe written by an ample node that never stopped
	CheckTLS          = "tls"                    // a run with TLS: a node's replication port did not speak mutual TLS only
	CheckCounter      = "counter-sum"            // after heal, an ample node holds a counter outside the range its history allows (counter.go)
	CheckCounterConv  = "I1-counter-convergence" // after heal, two ample nodes hold different values of a counter
	CheckHashConv     = "I1-hash-convergence"    // after heal, two ample nodes hold different fields of a hash (hash.go)
	CheckHashPhantom  = "hash-phantom"           // after heal, a node holds a hash field value no HSET of that field wrote
	CheckHashLost     = "hash-lost-field"        // after heal, an ample node lacks a hash field never deleted that a durable HSET wrote
)

// Violation is one failed check.
type Violation struct {
	Check   string   `json:"check"`
	Key     string   `json:"key,omitempty"`
	Node    int      `json:"node,omitempty"` // node id
	Detail  string   `json:"detail"`
	Ops     []int    `json:"ops,omitempty"`
	History []string `json:"history,omitempty"`
}

// nodeInfo is what the checker knows of a node: its region and processes.
type nodeInfo struct {
	Region  int           `json:"region"`
	Incs    []incarnation `json:"incarnations"`
	Crashes []string      `json:"crashes,omitempty"`
}

// checkInput is everything a check needs: the history, the nodes'
// processes, the faults, the visibility probes and the final dump.
type checkInput struct {
	Regions int          `json:"regions"`
	Nodes   []nodeInfo   `json:"nodes"`
	Ops     []Op         `json:"ops"` // Ops[i].ID == i
	Events  []FaultEvent `json:"events"`
	Probes  []*probe     `json:"probes"`
	Start   int64        `json:"start"`
	End     int64        `json:"end"`
	Final   *final       `json:"final"`
	// ConvergeGoal is the convergence time the report compares against.
	ConvergeGoal time.Duration `json:"converge_goal_ns"`
	// SmallRegions are the regions run with a small --max-memory: they
	// evict, so what they hold proves nothing about what they were sent.
	SmallRegions []int `json:"small_regions,omitempty"`
	// TLS: the nodes ran with certificates (the links over mutual TLS);
	// TLSProbes is what probing their replication ports found.
	TLS       bool       `json:"tls,omitempty"`
	TLSProbes []TLSProbe `json:"tls_probes,omitempty"`
	// SlotOwned: the nodes kept only their own slots and forwarded the
	// others' commands (Config.SlotOwned): a client's command was served
	// by an owner of its key in the client's region, not always by the
	// node it was sent to.
	SlotOwned bool `json:"slot_owned,omitempty"`
	// WallStep is the most the machine's wall clock moved from the run's
	// clock (wall time at the start plus monotonic time since) while the
	// clients ran: the nodes version and expire by the wall clock, and
	// the clock checks judge by the run's clock.
	WallStep time.Duration `json:"wall_step_ns,omitempty"`
}

// CheckResult is what Check found.
type CheckResult struct {
	Violations []Violation    `json:"violations"`
	Counts     map[string]int `json:"counts"`
	Checked    map[string]int `json:"checked"` // how many items each check examined
	LostLocal  []string       `json:"lost_local,omitempty"`
	NLostLocal int            `json:"lost_local_count"`
	// NLostLocalMaybe counts the sets of a stopped process that are on no
	// node at the end, with no newer version of the key seen anywhere, but
	// a write of unknown outcome that may have replaced them (so they are
	// not provably lost).
	NLostLocalMaybe int `json:"lost_local_maybe"`
	// GhostDropped counts the acknowledged sets on no node at the end
	// whose key shares its tombstone-ghost slot with a key deleted or
	// expired at or above the set's version: a full sync's drop rule may
	// have removed them (the lossy table cannot tell the keys apart), a
	// miss the design allows (I2). They are reported, not failed.
	GhostDropped []string        `json:"ghost_dropped,omitempty"`
	Quorum       QuorumFigures   `json:"quorum"`
	HLCRestart   RestartFigures  `json:"hlc_restart"`
	Refusals     RefusalFigures  `json:"refusals"`
	Visibility   VisibilityStats `json:"visibility"`
	Refill       RefillFigures   `json:"refill"`
	Wait         WaitFigures     `json:"wait"`
	// RYWEvicted counts reads on a small-region node that found nothing
	// where read-your-writes would otherwise have required a value (the
	// node may have evicted it).
	RYWEvicted int `json:"ryw_evicted,omitempty"`
	// RYWFailover counts, with SlotOwned, the reads older than a write the
	// node had reported, within failoverGrace of a fault on a node of its
	// region: a failover moved the key to an owner the write had not
	// reached yet (allowed, reported).
	RYWFailover int `json:"ryw_failover,omitempty"`
	// RYWGhost counts the reads that found nothing after a write whose
	// key's tombstone-ghost slot a delete or an expiry (of any key of the
	// slot) may cover at or above it: a full sync's drop rule may have
	// removed the write (it is lossy by design: a miss, never a stale
	// value), as the lost-write and refill checks allow.
	RYWGhost int `json:"ryw_ghost,omitempty"`
	// OwnerStates counts, with SlotOwned, the (owner, key) pairs the owner
	// dump read: what the owner convergence check compared.
	OwnerStates int `json:"owner_states,omitempty"`
	// OwnerCompared counts the (key, region) pairs with several owners
	// whose states the check compared.
	OwnerCompared int `json:"owner_compared,omitempty"`
	// OwnerGhost counts the keys an owner held nothing of where another
	// owner of its region held a version a tombstone ghost of the key's
	// slot may cover (excused).
	OwnerGhost int `json:"owner_ghost,omitempty"`
	// Counters is what the counter check examined (counter.go).
	Counters CounterFigures `json:"counters"`
	// Hashes is what the hash check examined (hash.go).
	Hashes HashFigures `json:"hashes"`
}

// RefillFigures counts what the refill check examined: per key held live
// by an ample-memory node, whether each restarted ample-memory node
// (not flushed since its last restart) holds it too.
type RefillFigures struct {
	Nodes    int `json:"nodes"`    // restarted ample-memory nodes checked
	Skipped  int `json:"skipped"`  // restarted, but flushed after the last restart
	Refilled int `json:"refilled"` // (node, key) pairs held
	Ghost    int `json:"ghost"`    // missing, excused: a delete or expiry of the same ghost slot may cover it
	Expiring int `json:"expiring"` // missing, excused: it expires near the final dump
	Missing  int `json:"missing"`  // missing, not excused (violations)
	// Probes: (ample node, probe written by an ample node that never
	// stopped) pairs missing at the end, excused by a ghost slot or not
	// (lost-probe violations).
	ProbesExcused int `json:"probes_excused"`
	ProbesMissing int `json:"probes_missing"`
}

// WaitFigures records the WAIT replies: WAIT n answers how many other
// regions had applied the connection's writes when it returned.
type WaitFigures struct {
	Sent    int         `json:"sent"`
	NoReply int         `json:"no_reply"`
	Counts  map[int]int `json:"counts,omitempty"` // reply -> how many
	// AllRegions: replies that claimed every other region. Nothing is
	// checked against the dump: the write can have been evicted, expired
	// or superseded since, and the checker cannot tell from what a node
	// holds whether it applied a write at a given time.
	AllRegions int `json:"all_regions"`
}

// QuorumFigures counts the Quorum-acknowledged sets the I4 check examined.
type QuorumFigures struct {
	Acked           int `json:"acked"`
	Checked         int `json:"checked"`          // with a known version and a surviving majority
	Uncovered       int `json:"uncovered"`        // a majority of regions may have lost it at once since (see lossWindows)
	Superseded      int `json:"superseded"`       // absent, but a newer (or unknown) write may have replaced it, or it expired
	UnderReplicated int `json:"under_replicated"` // present in fewer than a majority of regions at the end (not a violation)
}

// RestartFigures counts writes of a restarted node versioned below what
// its previous process had written (the HLC is not kept across restarts).
type RestartFigures struct {
	Regressions int     `json:"regressions"`
	MaxBehindMS float64 `json:"max_behind_ms"`
}

// RefusalFigures counts the writes refused with -TRYAGAIN (the node's
// clock out of bounds) and, of those, the ones whose node was not clearly
// out of bounds: its injected offset was not more than MaxClockOffset
// (500ms) - 100ms away from a strict majority of the other nodes' at any
// time in the 3s before (offsets are measured by pings, once a second).
type RefusalFigures struct {
	Total       int `json:"total"`
	Unjustified int `json:"unjustified"`
}

// VisibilityStats are the replication visibility quantiles (ms from the
// write's invoke to the first read that saw it in the last region).
type VisibilityStats struct {
	Quiet           Quantiles `json:"quiet"` // no fault within 6s before the write, nor until seen
	All             Quantiles `json:"all"`
	NotVisible      int       `json:"not_visible"`       // not seen everywhere within 10s
	NotVisibleQuiet int       `json:"not_visible_quiet"` // of those, quiet
}

// Quantiles of a sample, in ms.
type Quantiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func quantiles(xs []float64) Quantiles {
	if len(xs) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Quantiles{N: len(s), P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: s[len(s)-1]}
}

const ms = int64(time.Millisecond)

type checker struct {
	in      *checkInput
	res     *CheckResult
	byKey   map[string][]*Op
	valueOp map[string]*Op
	known   map[string][]Version       // every version seen of a key: replies and dump
	owner   map[string]map[Version]*Op // key -> own version -> its write
	keyIdx  map[string]int
	maxAbs  int64           // largest |clock offset| of any process, ns
	flagged map[string]bool // keys with a convergence violation
	windows map[int][]window
	bySlot  map[uint64][]*Op // writes that may leave a tombstone ghost, by ghost slot
}

// Check runs every check over a run's record.
func Check(in *checkInput) *CheckResult {
	c := &checker{
		in:      in,
		res:     &CheckResult{Counts: map[string]int{}, Checked: map[string]int{}},
		byKey:   map[string][]*Op{},
		valueOp: map[string]*Op{},
		known:   map[string][]Version{},
		owner:   map[string]map[Version]*Op{},
		keyIdx:  map[string]int{},
		flagged: map[string]bool{},
	}
	for i := range in.Ops {
		op := &in.Ops[i]
		c.byKey[op.Key] = append(c.byKey[op.Key], op)
		if op.Kind == KindSet {
			c.valueOp[op.Value] = op
		}
		if op.Ver != nil {
			c.known[op.Key] = append(c.known[op.Key], *op.Ver)
		}
		if v, ok := op.known(); ok {
			if c.owner[op.Key] == nil {
				c.owner[op.Key] = map[Version]*Op{}
			}
			c.owner[op.Key][v] = op
		}
	}
	for _, n := range in.Nodes {
		for _, inc := range n.Incs {
			c.maxAbs = max(c.maxAbs, abs(int64(inc.Offset)))
		}
	}
	if f := in.Final; f != nil {
		for k, key := range f.Keys {
			c.keyIdx[key] = k
			for n := range f.Dump {
				if v := f.Dump[n][k].Ver; v != nil {
					c.known[key] = append(c.known[key], *v)
				}
			}
		}
	}
	c.crashes()
	if in.Final != nil {
		c.convergence()
		c.ownerConvergence()
		c.finalVsHistory()
		c.lostWrites()
		c.dumpValues()
		c.refill()
		c.counters()
		c.hashes()
	}
	c.reads()
	c.waits()
	c.clocks()
	c.refusals()
	c.readYourWrites()
	c.visibility()
	c.tls()
	slices.SortStableFunc(c.res.Violations, func(a, b Violation) int {
		if a.Check != b.Check {
			if a.Check < b.Check {
				return -1
			}
			return 1
		}
		return 0
	})
	return c.res
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// maxViolationsPerCheck bounds what a report lists (counts stay exact).
const maxViolationsPerCheck = 50

func (c *checker) fail(v Violation) {
	c.res.Counts[v.Check]++
	if c.res.Counts[v.Check] > maxViolationsPerCheck {
		return
	}
	v.History = c.excerpt(v.Key, v.Ops)
	c.res.Violations = append(c.res.Violations, v)
}

// excerpt is the history of key around the given ops: the ops themselves
// and the writes of the key just before the first of them (or the last
// writes of the key).
func (c *checker) excerpt(key string, ids []int) []string {
	if key == "" {
		return nil
	}
	ops := c.byKey[key]
	until := int64(math.MaxInt64)
	if len(ids) > 0 {
		until = 0
		for _, id := range ids {
			until = max(until, c.in.Ops[id].Complete)
		}
	}
	var sel []*Op
	for _, op := range ops {
		if op.Invoke <= until && (op.write() || slices.Contains(ids, op.ID)) {
			sel = append(sel, op)
		}
	}
	if len(sel) > 14 {
		keep := sel[len(sel)-14:]
		for _, op := range sel[:len(sel)-14] {
			if slices.Contains(ids, op.ID) {
				keep = append([]*Op{op}, keep...)
			}
		}
		sel = keep
	}
	out := make([]string, 0, len(sel))
	for _, op := range sel {
		out = append(out, op.Format(c.in.Start))
	}
	return out
}

// offsets returns the smallest and largest clock offset of node's
// processes inc0..inc1.
func (c *checker) offsets(node, inc0, inc1 int) (lo, hi int64) {
	incs := c.in.Nodes[node].Incs
	lo, hi = math.MaxInt64, math.MinInt64
	for i := max(0, inc0); i <= min(inc1, len(incs)-1); i++ {
		lo, hi = min(lo, int64(incs[i].Offset)), max(hi, int64(incs[i].Offset))
	}
	if lo > hi {
		return 0, 0
	}
	return lo, hi
}

// served returns the smallest and largest clock offset the node that
// served op can have had: its own node's, or with SlotOwned any node's of
// its region (an owner the command was forwarded to ran it by its clock:
// a write's expiry, a read's judgement of it).
func (c *checker) served(op *Op) (lo, hi int64) {
	lo, hi = c.offsets(op.Node, op.Inc0, op.Inc1)
	if !c.in.SlotOwned {
		return lo, hi
	}
	for i, n := range c.in.Nodes {
		if n.Region == c.in.Nodes[op.Node].Region {
			l, h := c.offsets(i, 0, len(n.Incs)-1)
			lo, hi = min(lo, l), max(hi, h)
		}
	}
	return lo, hi
}

// failoverNear reports whether, with SlotOwned, the slot map of node's
// region may have changed between from and to: a node of the region was
// killed, paused, restarted or stopped within failoverGrace of that span.
// The owners of a key then change, and a read may be served by an owner
// that has not yet received a write another owner acknowledged (the
// replication between owners is asynchronous, as between regions).
func (c *checker) failoverNear(node int, from, to int64) bool {
	if !c.in.SlotOwned {
		return false
	}
	from, to = from-int64(failoverGrace), to+int64(failoverGrace)
	region := c.in.Nodes[node].Region
	for i := range c.in.Events {
		ev := &c.in.Events[i]
		if ev.onNode() && c.in.Nodes[ev.Node].Region == region &&
			ev.Start <= to && (ev.End == 0 || ev.End >= from) {
			return true
		}
	}
	for _, n := range c.in.Nodes {
		if n.Region != region {
			continue
		}
		for _, inc := range n.Incs {
			if inc.Start >= from && inc.Start <= to || inc.Stop != 0 && inc.Stop >= from && inc.Stop <= to {
				return true
			}
		}
	}
	return false
}

// failoverGrace is how long around a fault a region's map may be moving:
// a dead node leaves it in about 1.2 s, a gained slot fills after that.
const failoverGrace = 3 * time.Second

// stopped reports whether node's process inc was stopped before the final
// phase (killed, restarted, crashed): its unsent writes may be lost.
func (c *checker) stopped(node, inc int) bool {
	incs := c.in.Nodes[node].Incs
	if inc < 0 || inc >= len(incs) {
		return true
	}
	return incs[inc].Stop != 0 && incs[inc].How != "final"
}

// resyncGrace is how long a restarted node is given to refill from its
// peers once it can reach one (a link redials within 2s of its backoff; a
// full sync of the run's keys takes milliseconds).
const resyncGrace = 4 * time.Second

// window is a time interval [from, to] in Unix ns.
type window struct{ from, to int64 }

// lossWindows returns, per region, the intervals during which the region
// may hold no copy of a write it had acknowledged: from a process stop
// until resyncGrace after the restarted process could first reach a live
// node of another region (no cut between them, not paused, not down).
func (c *checker) lossWindows() map[int][]window {
	if c.windows != nil {
		return c.windows
	}
	c.windows = map[int][]window{}
	healAt := c.in.End
	if c.in.Final != nil {
		healAt = c.in.Final.HealAt
	}
	for _, n := range c.in.Nodes {
		for i, inc := range n.Incs {
			if inc.Stop == 0 || inc.How == "final" {
				continue
			}
			restart := healAt
			if i+1 < len(n.Incs) {
				restart = n.Incs[i+1].Start
			}
			t := restart
			for t < healAt && !c.canSync(n.Region, t, healAt) {
				t += int64(50 * time.Millisecond)
			}
			c.windows[n.Region] = append(c.windows[n.Region], window{inc.Stop, max(t, restart) + int64(resyncGrace)})
		}
	}
	for _, r := range c.in.SmallRegions {
		c.windows[r] = append(c.windows[r], window{math.MinInt64, math.MaxInt64})
	}
	return c.windows
}

// canSync reports whether region r can receive from a live node of another
// region at time t.
func (c *checker) canSync(r int, t, healAt int64) bool {
	active := func(ev *FaultEvent) bool {
		end := ev.End
		if end == 0 {
			end = healAt
		}
		return ev.Start <= t && t < end
	}
	for x := range c.in.Regions {
		if x == r {
			continue
		}
		cut := false
		for i := range c.in.Events {
			ev := &c.in.Events[i]
			if !active(ev) {
				continue
			}
			switch ev.Kind {
			case FaultIsolate:
				cut = cut || ev.Region == r || ev.Region == x
			case FaultOneWay, FaultPartial:
				cut = cut || (ev.From == r && ev.To == x) || (ev.From == x && ev.To == r)
			case FaultSplit:
				cut = cut || slices.Contains(ev.Minority, r) != slices.Contains(ev.Minority, x)
			}
		}
		if cut {
			continue
		}
		for i, n := range c.in.Nodes {
			if n.Region == x && c.upAt(i, t) {
				paused := false
				for j := range c.in.Events {
					ev := &c.in.Events[j]
					paused = paused || (ev.Kind == FaultPause && ev.Node == i && active(ev))
				}
				if !paused {
					return true
				}
			}
		}
	}
	return false
}

// upAt reports whether node i had a process running at t.
func (c *checker) upAt(i int, t int64) bool {
	for _, inc := range c.in.Nodes[i].Incs {
		if inc.Start <= t && (inc.Stop == 0 || t < inc.Stop) {
			return true
		}
	}
	return false
}

// lostSince reports whether, at some time from t on, need regions were at
// once in a loss window: with half of the regions or more, a Quorum write
// made at t may be gone with them, and I4 does not cover it (with every
// region, an All write).
func (c *checker) lostSince(t int64, need int) bool {
	type edge struct {
		t      int64
		region int
		open   bool
	}
	var edges []edge
	for r, ws := range c.lossWindows() {
		for _, w := range ws {
			if w.to < t {
				continue
			}
			edges = append(edges, edge{max(w.from, t), r, true}, edge{w.to, r, false})
		}
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if a.t != b.t {
			return cmpInt64(a.t, b.t)
		}
		if a.open != b.open {
			if a.open {
				return -1
			}
			return 1
		}
		return 0
	})
	open := map[int]int{}
	for _, e := range edges {
		if e.open {
			open[e.region]++
			if len(open) >= need {
				return true
			}
		} else if open[e.region]--; open[e.region] == 0 {
			delete(open, e.region)
		}
	}
	return false
}

// durable reports whether an acknowledged write with a known version must
// survive: a Quorum-acknowledged one unless a majority of regions were
// lost at once since it was sent, a Local one while its origin's process
// was never stopped.
//
// A small region (SmallRegions) counts as always in a loss window: it may
// have evicted anything. A Local write of its nodes is not durable (it may
// be evicted before it is sent, when a full sync replaces the stream). An
// All-acknowledged write was applied by every region: it may be lost only
// if every region was in a loss window at once.
func (c *checker) durable(op *Op) bool {
	if op.Quorum && op.Status == StatusOK {
		need := c.in.Regions/2 + c.in.Regions%2 // half or more: no majority left
		if op.All {
			need = c.in.Regions
		}
		return !c.lostSince(op.Invoke, need)
	}
	if c.small(op.Node) {
		return false
	}
	return !c.stopped(op.Node, op.Inc0)
}

// small reports whether node n is in a region that evicts heavily.
func (c *checker) small(n int) bool {
	return slices.Contains(c.in.SmallRegions, c.in.Nodes[n].Region)
}

// unknownMayExceed reports whether a write whose version is unknown may
// be newer than v: its HLC cannot exceed the most advanced clock of the
// cluster when it ran, at the latest when it completed (or never, for a
// late op).
func (c *checker) unknownMayExceed(op *Op, v Version) bool {
	if !op.mayApply() {
		return false
	}
	if _, ok := op.known(); ok {
		return false
	}
	if op.Ver != nil && op.Ver.Origin != uint32(op.Node+1) && (op.Status == StatusOK || op.Status == StatusNotAcked) && op.Ver.Compare(v) <= 0 {
		// older than the other node's version it reported, itself not
		// newer than v (a Quorum or All write reports a version after its
		// acknowledgement, which can be seconds later: a newer version
		// from elsewhere says nothing of how old the write's own is)
		return false
	}
	return op.Late || op.Complete+c.maxAbs+5*ms >= v.WallNS()
}

// newerKnown reports whether a version of key newer than v was seen.
func (c *checker) newerKnown(key string, v Version) bool {
	for _, w := range c.known[key] {
		if w.Compare(v) > 0 {
			return true
		}
	}
	return false
}

// mayBeSuperseded reports whether a write of key started before t may be
// newer than v. A version seen in a reply or in the dump counts from when
// its write started, if its write is known, else always.
func (c *checker) mayBeSuperseded(key string, v Version, t int64) bool {
	for _, w := range c.known[key] {
		if w.Compare(v) <= 0 {
			continue
		}
		if o := c.owner[key][w]; o == nil || o.Invoke < t {
			return true
		}
	}
	for _, op := range c.byKey[key] {
		if op.Invoke < t && c.unknownMayExceed(op, v) {
			return true
		}
	}
	return false
}

func (c *checker) crashes() {
	for i, n := range c.in.Nodes {
		for _, msg := range n.Crashes {
			c.fail(Violation{Check: CheckCrash, Node: i + 1, Detail: msg})
		}
	}
}

// convergence: after heal, every node holding a key holds the same version
// (I1), and no live entry is older than a delete another node remembers.
func (c *checker) convergence() {
	f := c.in.Final
	for k, key := range f.Keys {
		c.res.Checked[CheckConvergence]++
		if d := keyDivergence(f.Dump, k); d != "" {
			c.flagged[key] = true
			c.fail(Violation{Check: CheckConvergence, Key: key, Detail: d + c.dumpLine(k)})
		}
	}
}

// dumpLine lists what every node holds of key index k.
func (c *checker) dumpLine(k int) string {
	s := "; final:"
	for n := range c.in.Final.Dump {
		st := c.in.Final.Dump[n][k]
		switch {
		case st.Ver == nil:
			s += fmt.Sprintf(" n%d=none", n+1)
		case st.HasValue:
			s += fmt.Sprintf(" n%d=%s %q", n+1, st.Ver, st.Value)
		default:
			s += fmt.Sprintf(" n%d=%s", n+1, st.Ver)
		}
	}
	return s
}

// possiblyExpired reports whether a version's expiry may have passed on
// node n's clock by the time its dump completed.
func (c *checker) possiblyExpired(v Version, n int) bool {
	if v.Deleted || v.ExpireAt < 0 {
		return false
	}
	f := c.in.Final
	inc := c.in.Nodes[n].Incs
	off := int64(inc[len(inc)-1].Offset)
	return f.DumpAt[n]+off >= v.ExpireAt*ms
}

// finalVsHistory: no node may hold a live entry older than an acknowledged
// write that must survive (durable): the newer write reaches every node
// after heal (from its origin's stream, or by anti-entropy from the region
// that acknowledged it), and replaces or removes the older entry — whether
// it is a delete (I3), a set that has expired since (the ghost rule), or a
// live set (I1).
func (c *checker) finalVsHistory() {
	f := c.in.Final
	for key, ops := range c.byKey {
		k, ok := c.keyIdx[key]
		if !ok {
			continue
		}
		var g *Op
		var gv Version
		for _, op := range ops {
			v, ok := op.known()
			if !ok || op.Status != StatusOK || !c.durable(op) {
				continue
			}
			if g == nil || v.Compare(gv) > 0 {
				g, gv = op, v
			}
		}
		if g == nil {
			continue
		}
		for n := range f.Dump {
			st := f.Dump[n][k]
			if st.Ver == nil || st.Ver.Deleted {
				continue
			}
			c.res.Checked["final-vs-acknowledged"]++
			if st.Ver.Compare(gv) >= 0 {
				continue
			}
			check := CheckBehind
			what := "an acknowledged newer write"
			switch {
			case gv.Deleted:
				check, what = CheckResurrection, "an acknowledged delete"
			case c.possiblyExpired(gv, n):
				check, what = CheckAfterExpiry, "an acknowledged newer write that has expired since"
			}
			if check == CheckBehind && c.flagged[key] {
				continue // already reported as a divergence
			}
			c.fail(Violation{Check: check, Key: key, Node: n + 1, Ops: []int{g.ID},
				Detail: fmt.Sprintf("node %d holds %s %q, older than %s %s (op #%d)%s", n+1, st.Ver, st.Value, what, gv, g.ID, c.dumpLine(k))})
		}
	}
}

// present reports whether some node holds key at v or newer (an entry or
// a remembered delete).
func (c *checker) present(key string, v Version) (regions map[int]bool) {
	regions = map[int]bool{}
	k, ok := c.keyIdx[key]
	if !ok {
		return regions
	}
	for n := range c.in.Final.Dump {
		if st := c.in.Final.Dump[n][k]; st.Ver != nil && st.Ver.Compare(v) >= 0 {
			regions[c.in.Nodes[n].Region] = true
		}
	}
	return regions
}

// lostWrites: a durable acknowledged set is held somewhere at the end,
// unless a newer write may have replaced it or it may have expired (I4 for
// Quorum writes); Local writes of a stopped process that are provably gone
// are counted, not failed.
func (c *checker) lostWrites() {
	f := c.in.Final
	for key, ops := range c.byKey {
		k, inDump := c.keyIdx[key]
		if !inDump {
			continue
		}
		for _, op := range ops {
			if op.Quorum && op.Status == StatusOK && op.Kind != KindDel && op.Kind != KindGet {
				c.res.Quorum.Acked++
			}
			v, ok := op.known()
			if !ok || op.Kind == KindGet {
				continue
			}
			durable := c.durable(op)
			if op.Kind == KindDel {
				if durable {
					continue // checked by finalVsHistory
				}
				// A delete of a stopped process is lost if some node still
				// holds an older entry.
				for n := range f.Dump {
					if st := f.Dump[n][k]; st.Ver != nil && !st.Ver.Deleted && st.Ver.Compare(v) < 0 {
						c.lostLocal(op, v, fmt.Sprintf("node %d still holds %s", n+1, st.Ver))
						break
					}
				}
				continue
			}
			quorum := op.Quorum && op.Status == StatusOK
			if quorum && !durable {
				c.res.Quorum.Uncovered++
				continue
			}
			expired := false
			for n := range f.Dump {
				expired = expired || c.possiblyExpired(v, n)
			}
			regions := c.present(key, v)
			if quorum {
				c.res.Quorum.Checked++
				if len(regions) > 0 && 2*len(regions) <= c.in.Regions && !expired && !c.mayBeSuperseded(key, v, math.MaxInt64) {
					c.res.Quorum.UnderReplicated++
				}
			}
			if len(regions) > 0 || expired {
				continue
			}
			if c.mayBeSuperseded(key, v, math.MaxInt64) {
				if quorum {
					c.res.Quorum.Superseded++
				}
				if !durable && !c.newerKnown(key, v) {
					c.res.NLostLocalMaybe++
				}
				continue
			}
			if op.Status == StatusOK && (quorum || durable) && c.ghostMayCover(key, v) {
				c.res.GhostDropped = append(c.res.GhostDropped, fmt.Sprintf("%s (version %s): on no node; a delete or expiry of ghost slot %d may cover it", op.Format(c.in.Start), v, ghostSlot(key)))
				continue
			}
			switch {
			case quorum:
				c.fail(Violation{Check: CheckLostQuorum, Key: key, Ops: []int{op.ID},
					Detail: fmt.Sprintf("Quorum-acknowledged %s (op #%d, version %s) is on no node, though no majority of regions was lost at once since%s", op.Kind, op.ID, v, c.dumpLine(k))})
			case durable && op.Status == StatusOK:
				c.fail(Violation{Check: CheckLostWrite, Key: key, Ops: []int{op.ID},
					Detail: fmt.Sprintf("acknowledged %s (op #%d, version %s) is on no node, and its origin node %d never stopped%s", op.Kind, op.ID, v, op.Node+1, c.dumpLine(k))})
			case !durable:
				c.lostLocal(op, v, "on no node")
			}
		}
	}
}

func (c *checker) lostLocal(op *Op, v Version, why string) {
	c.res.NLostLocal++
	if len(c.res.LostLocal) < 20 {
		c.res.LostLocal = append(c.res.LostLocal, fmt.Sprintf("%s (version %s): %s", op.Format(c.in.Start), v, why))
	}
}

// dumpValues: every value a node holds was written to that key, and a
// node holding a set's own version holds that set's value.
func (c *checker) dumpValues() {
	f := c.in.Final
	for k, key := range f.Keys {
		for n := range f.Dump {
			st := f.Dump[n][k]
			if !st.HasValue {
				continue
			}
			c.res.Checked[CheckPhantom]++
			w := c.valueOp[st.Value]
			if w == nil || w.Key != key || w.Status == StatusFail {
				c.fail(Violation{Check: CheckPhantom, Key: key, Node: n + 1,
					Detail: fmt.Sprintf("node %d holds %q under %s at the end: no write of this key wrote it", n+1, st.Value, key)})
				continue
			}
			if st.Ver == nil {
				continue
			}
			if o := c.owner[key][*st.Ver]; o != nil && o.Kind == KindSet && o.Value != st.Value {
				c.fail(Violation{Check: CheckValueVersion, Key: key, Node: n + 1, Ops: []int{o.ID},
					Detail: fmt.Sprintf("node %d holds version %s with value %q; that version is op #%d's, which wrote %q", n+1, st.Ver, st.Value, o.ID, o.Value)})
			}
		}
	}
}

// carriers are the writes that may have stored value v of op s: s itself
// and the rewrites of the key (PEXPIRE, PERSIST keep the value) after it
// (or given up on by timeout, which may have run after it).
func (c *checker) carriers(s *Op, until int64) []*Op {
	out := []*Op{s}
	for _, op := range c.byKey[s.Key] {
		if (op.Kind == KindPExpire || op.Kind == KindPersist) && op.mayApply() && (op.Invoke > s.Invoke || op.Late) && op.Invoke < until && op != s {
			out = append(out, op)
		}
	}
	return out
}

// reads: every value read was written to that key before the read ended
// (no phantom), and was not past its expiry on the serving node's clock
// (I5).
func (c *checker) reads() {
	for i := range c.in.Ops {
		r := &c.in.Ops[i]
		if r.Kind != KindGet || !r.Found {
			continue
		}
		c.res.Checked[CheckPhantom]++
		s := c.valueOp[r.Value]
		if s == nil || s.Key != r.Key || s.Status == StatusFail || s.Invoke > r.Complete {
			why := "no write of this key wrote it"
			if s != nil && s.Key == r.Key && s.Status == StatusFail {
				why = fmt.Sprintf("its write (op #%d) failed: %s", s.ID, s.Err)
			} else if s != nil && s.Key == r.Key {
				why = fmt.Sprintf("its write (op #%d) started after the read ended", s.ID)
			}
			c.fail(Violation{Check: CheckPhantom, Key: r.Key, Node: r.Node + 1, Ops: []int{r.ID},
				Detail: fmt.Sprintf("read #%d on node %d returned %q: %s", r.ID, r.Node+1, r.Value, why)})
			continue
		}
		// The latest expiry any carrier of the value can have had: a TTL
		// counts from the writer's clock when the write ran, at the latest
		// when it completed.
		latest := int64(math.MinInt64)
		for _, w := range c.carriers(s, r.Complete) {
			if w.TTL <= 0 || (w.Kind != KindSet && w.Kind != KindPExpire) || w.Late {
				latest = math.MaxInt64
				break
			}
			_, hi := c.served(w)
			latest = max(latest, w.Complete+hi+int64(w.TTL)+ms)
		}
		if latest == math.MaxInt64 {
			continue
		}
		c.res.Checked[CheckExpiredRead]++
		lo, _ := c.served(r)
		if served := r.Invoke + lo; served >= latest+ms {
			c.fail(Violation{Check: CheckExpiredRead, Key: r.Key, Node: r.Node + 1, Ops: []int{r.ID, s.ID},
				Detail: fmt.Sprintf("read #%d on node %d returned %q at %.3fs on the node's clock (offset %v), %v after the latest expiry any write of that value can have had",
					r.ID, r.Node+1, r.Value, float64(served-c.in.Start)/1e9, time.Duration(lo), time.Duration(served-latest))})
		}
	}
}

// ownWrite is a write with its own version, for the clock checks.
type ownWrite struct {
	op *Op
	v  Version
}

// clocks: within one process a node's versions increase with real time
// (an op that starts after another ended gets a greater HLC); a version's
// physical part is not behind the node's clock when the write started,
// nor ahead of the most advanced clock when it ended. A restarted node's
// first versions below its previous process's are counted (the HLC is not
// kept across restarts), not failed.
func (c *checker) clocks() {
	type nodeInc struct{ node, inc int }
	groups := map[nodeInc][]ownWrite{}
	for i := range c.in.Ops {
		op := &c.in.Ops[i]
		v, ok := op.known()
		if !ok {
			continue
		}
		groups[nodeInc{op.Node, op.Inc0}] = append(groups[nodeInc{op.Node, op.Inc0}], ownWrite{op, v})
		c.res.Checked[CheckHLCClock]++
		lo, _ := c.served(op)
		if phys := op.Invoke + lo; v.WallNS() < phys-ms {
			c.fail(Violation{Check: CheckHLCClock, Key: op.Key, Node: op.Node + 1, Ops: []int{op.ID},
				Detail: fmt.Sprintf("op #%d got version %s, %v behind the node's clock when it started", op.ID, v, time.Duration(phys-v.WallNS()))})
		}
		if limit := op.Complete + c.maxAbs + 5*ms; v.WallNS() > limit {
			c.fail(Violation{Check: CheckHLCClock, Key: op.Key, Node: op.Node + 1, Ops: []int{op.ID},
				Detail: fmt.Sprintf("op #%d got version %s, %v ahead of the most advanced clock of the cluster", op.ID, v, time.Duration(v.WallNS()-limit))})
		}
	}
	maxBefore := map[int]Version{} // node -> max version of its earlier processes
	keys := make([]nodeInc, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b nodeInc) int {
		if a.node != b.node {
			return a.node - b.node
		}
		return a.inc - b.inc
	})
	for _, k := range keys {
		ws := groups[k]
		byComplete := slices.Clone(ws)
		slices.SortFunc(byComplete, func(a, b ownWrite) int { return cmpInt64(a.op.Complete, b.op.Complete) })
		slices.SortFunc(ws, func(a, b ownWrite) int { return cmpInt64(a.op.Invoke, b.op.Invoke) })
		var best *ownWrite
		j := 0
		for i := range ws {
			w := &ws[i]
			for j < len(byComplete) && byComplete[j].op.Complete < w.op.Invoke {
				if best == nil || byComplete[j].v.Compare(best.v) > 0 {
					best = &byComplete[j]
				}
				j++
			}
			c.res.Checked[CheckHLC]++
			if best != nil && w.v.Compare(best.v) <= 0 {
				c.fail(Violation{Check: CheckHLC, Key: w.op.Key, Node: k.node + 1, Ops: []int{best.op.ID, w.op.ID},
					Detail: fmt.Sprintf("node %d (process %d): op #%d got version %s after op #%d had got %s and completed", k.node+1, k.inc, w.op.ID, w.v, best.op.ID, best.v)})
			}
		}
		if prev, ok := maxBefore[k.node]; ok {
			for _, w := range ws {
				if w.v.Compare(prev) < 0 {
					c.res.HLCRestart.Regressions++
					c.res.HLCRestart.MaxBehindMS = max(c.res.HLCRestart.MaxBehindMS, float64(prev.WallNS()-w.v.WallNS())/1e6)
				}
			}
		}
		for _, w := range ws {
			if m, ok := maxBefore[k.node]; !ok || w.v.Compare(m) > 0 {
				maxBefore[k.node] = w.v
			}
		}
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// observation is a version a node reported for a key at a time.
type observation struct {
	t  int64
	v  Version
	op *Op
}

// readYourWrites: a read on a node returns a version at least as new as
// every version the same process had reported for the key (GEOCACHE
// VERSION after a write, by any client of that node) before the read
// started — in particular a client's own write. An absent key is allowed
// only if what the node had was a delete, or has expired by the node's
// clock, or a newer write (a delete, an expiring set) may have replaced it.
func (c *checker) readYourWrites() {
	type nki struct {
		node int
		key  string
		inc  int
	}
	obs := map[nki][]observation{}
	for i := range c.in.Ops {
		op := &c.in.Ops[i]
		if !op.write() || op.Ver == nil || op.Inc0 != op.Inc1 || (op.Status != StatusOK && op.Status != StatusNotAcked && op.Status != StatusNoop) {
			continue
		}
		k := nki{op.Node, op.Key, op.Inc0}
		obs[k] = append(obs[k], observation{op.Complete, *op.Ver, op})
	}
	// prefix maxima by completion time
	for k, os := range obs {
		slices.SortFunc(os, func(a, b observation) int { return cmpInt64(a.t, b.t) })
		for i := 1; i < len(os); i++ {
			if os[i-1].v.Compare(os[i].v) > 0 {
				os[i].v, os[i].op = os[i-1].v, os[i-1].op
			}
		}
		obs[k] = os
	}
	for i := range c.in.Ops {
		r := &c.in.Ops[i]
		if r.Kind != KindGet || r.Status != StatusOK || r.Inc0 != r.Inc1 {
			continue
		}
		os := obs[nki{r.Node, r.Key, r.Inc0}]
		j := sort.Search(len(os), func(j int) bool { return os[j].t >= r.Invoke })
		if j == 0 {
			continue
		}
		b := os[j-1]
		c.res.Checked[CheckRYW]++
		if !r.Found {
			if b.v.Deleted {
				continue
			}
			if c.small(r.Node) {
				c.res.RYWEvicted++ // absence is allowed where the node evicts
				continue
			}
			_, hi := c.offsets(r.Node, r.Inc0, r.Inc1)
			if b.v.ExpireAt >= 0 && r.Complete+hi+ms >= b.v.ExpireAt*ms {
				continue
			}
			if c.mayBeSuperseded(r.Key, b.v, r.Complete) {
				continue
			}
			if c.failoverNear(r.Node, b.op.Invoke, r.Complete) {
				c.res.RYWFailover++
				continue
			}
			if c.ghostMayCover(r.Key, b.v) {
				c.res.RYWGhost++
				continue
			}
			c.fail(Violation{Check: CheckRYW, Key: r.Key, Node: r.Node + 1, Ops: []int{b.op.ID, r.ID},
				Detail: fmt.Sprintf("read #%d on node %d found nothing, after the node had reported %s (op #%d), which had not expired and no newer write may have replaced", r.ID, r.Node+1, b.v, b.op.ID)})
			continue
		}
		s := c.valueOp[r.Value]
		if s == nil || s.Key != r.Key {
			continue // a phantom, reported by reads()
		}
		sv, ok := s.known()
		if !ok {
			continue
		}
		vmax := sv
		unknown := false
		for _, w := range c.carriers(s, r.Complete)[1:] {
			wv, ok := w.known()
			if !ok {
				unknown = true
				break
			}
			if wv.Compare(vmax) > 0 {
				vmax = wv
			}
		}
		if unknown || vmax.Compare(b.v) >= 0 {
			continue
		}
		if c.failoverNear(r.Node, b.op.Invoke, r.Complete) {
			c.res.RYWFailover++
			continue
		}
		check := CheckRYW
		if b.v.Deleted {
			check = CheckResurrection
		}
		c.fail(Violation{Check: check, Key: r.Key, Node: r.Node + 1, Ops: []int{b.op.ID, s.ID, r.ID},
			Detail: fmt.Sprintf("read #%d on node %d returned %q (version at most %s), after the node had reported %s (op #%d)", r.ID, r.Node+1, r.Value, vmax, b.v, b.op.ID)})
	}
}

// quietMargin is how long after a fault visibility samples are not
// "quiet": a cut link is detected within the peer timeout (4s) and redialed
// with a backoff of up to 2s.
const quietMargin = 6 * time.Second

// visibility computes the time until a probe was readable in every region
// (the earliest node of each region other than the writer).
func (c *checker) visibility() {
	var all, quiet []float64
	regionsOf := map[int][]int{}
	for i, n := range c.in.Nodes {
		regionsOf[n.Region] = append(regionsOf[n.Region], i)
	}
	for _, p := range c.in.Probes {
		isQuiet := true
		end := p.T0 + int64(probeTimeout)
		var last int64
		complete := true
		for r, nodes := range regionsOf {
			first := int64(math.MaxInt64)
			counted := false
			for _, n := range nodes {
				if n == p.Node {
					continue
				}
				counted = true
				if t, ok := p.Seen[n]; ok {
					first = min(first, t)
				}
			}
			_ = r
			if !counted {
				continue
			}
			if first == math.MaxInt64 {
				complete = false
				continue
			}
			last = max(last, first)
		}
		if complete && last > 0 {
			end = last
		}
		for _, ev := range c.in.Events {
			evEnd := ev.End
			if evEnd == 0 {
				evEnd = math.MaxInt64
			}
			if ev.Start <= end && evEnd+int64(quietMargin) >= p.T0 {
				isQuiet = false
				break
			}
		}
		if !complete {
			c.res.Visibility.NotVisible++
			if isQuiet {
				c.res.Visibility.NotVisibleQuiet++
			}
			continue
		}
		if last == 0 {
			continue // a single region
		}
		d := float64(last-p.T0) / 1e6
		all = append(all, d)
		if isQuiet {
			quiet = append(quiet, d)
		}
	}
	c.res.Visibility.All = quantiles(all)
	c.res.Visibility.Quiet = quantiles(quiet)
}

// refusals counts the writes refused for clock skew, and those the
// injected offsets do not explain.
func (c *checker) refusals() {
	offsetAt := func(n int, t int64) (int64, bool) {
		for _, inc := range c.in.Nodes[n].Incs {
			if inc.Start <= t && (inc.Stop == 0 || t < inc.Stop) {
				return int64(inc.Offset), true
			}
		}
		return 0, false
	}
	// lastOffset is a peer's offset as a node last measured it: its
	// process's at t, or, while it is down, its last process's (a node
	// keeps a peer's measured offset while the peer is away).
	lastOffset := func(n int, t int64) (int64, bool) {
		off, ok := int64(0), false
		for _, inc := range c.in.Nodes[n].Incs {
			if inc.Start <= t {
				off, ok = int64(inc.Offset), true
			}
		}
		return off, ok
	}
	far := func(n int, t int64) bool {
		on, ok := offsetAt(n, t)
		if !ok {
			return false
		}
		farPeers, peers := 0, 0
		for m := range c.in.Nodes {
			if m == n {
				continue
			}
			peers++
			if om, ok := lastOffset(m, t); ok && abs(om-on) > int64(400*time.Millisecond) {
				farPeers++
			}
		}
		return 2*farPeers > peers
	}
	for i := range c.in.Ops {
		op := &c.in.Ops[i]
		if !clockRefusal(op.Err) {
			continue
		}
		c.res.Refusals.Total++
		// With slot-owned nodes the refusal may be the key's owner's,
		// forwarded: any node of the client's node's region may be far.
		refusers := []int{op.Node}
		if c.in.SlotOwned {
			refusers = refusers[:0]
			for m, n := range c.in.Nodes {
				if n.Region == c.in.Nodes[op.Node].Region {
					refusers = append(refusers, m)
				}
			}
		}
		justified := false
		for d := int64(0); d <= int64(3*time.Second) && !justified; d += int64(100 * time.Millisecond) {
			for _, m := range refusers {
				justified = justified || far(m, op.Invoke-d)
			}
		}
		if !justified {
			c.res.Refusals.Unjustified++
		}
	}
}

// clockRefusal reports whether an error is a node's refusal of a write
// for its clock (-TRYAGAIN), not a forwarding node's answer that the
// key's owner could not be reached (-TRYAGAIN forwarding to ...).
func clockRefusal(err string) bool {
	return strings.HasPrefix(err, "TRYAGAIN") && !strings.HasPrefix(err, "TRYAGAIN forwarding to ")
}

// tls checks, in a run with TLS, that every node's replication port was
// probed and spoke mutual TLS only.
func (c *checker) tls() {
	if !c.in.TLS {
		return
	}
	probed := map[uint32]bool{}
	for _, p := range c.in.TLSProbes {
		probed[p.Node] = true
		c.res.Checked[CheckTLS]++
		if !p.ok() {
			c.fail(Violation{Check: CheckTLS, Node: int(p.Node), Detail: fmt.Sprintf("node %d's replication port: %s", p.Node, p.Err)})
		}
	}
	for i := range c.in.Nodes {
		if id := uint32(i + 1); !probed[id] {
			c.fail(Violation{Check: CheckTLS, Node: int(id), Detail: fmt.Sprintf("node %d's replication port was not probed", id)})
		}
	}
}
