package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Schedule is what a run injects: each node's initial clock offset and the
// faults, by time since the clients started.
type Schedule struct {
	Offsets []time.Duration `json:"offsets_ns"`
	Faults  []Fault         `json:"faults"`
}

// Fault is one injected fault. Which fields count depends on Kind:
//
//	isolate  Region
//	oneway   From → To (regions)
//	partial  From ↔ To (regions)
//	split    Minority (regions) against the rest
//	latency  From → To (regions; both ways if Both), Latency more one-way
//	kill     Node (index: node id - 1), down for For
//	pause    Node, stopped for For
//	skew     Node restarted with clock offset Offset (For unused)
//	sever    Node cut from the other nodes of its region for For
type Fault struct {
	Kind     string        `json:"kind"`
	At       time.Duration `json:"at_ns"`
	For      time.Duration `json:"for_ns,omitempty"`
	Region   int           `json:"region,omitempty"`
	From     int           `json:"from,omitempty"`
	To       int           `json:"to,omitempty"`
	Both     bool          `json:"both,omitempty"`
	Minority []int         `json:"minority,omitempty"`
	Latency  time.Duration `json:"latency_ns,omitempty"`
	Node     int           `json:"node,omitempty"`
	Offset   time.Duration `json:"offset_ns,omitempty"`
}

// process reports whether the fault stops or restarts a process.
func (f Fault) process() bool {
	return f.Kind == FaultKill || f.Kind == FaultPause || f.Kind == FaultSkew
}

// onNode reports whether the fault strikes one node: at most one such
// fault at a time in a random schedule, so it is always a minority.
func (f Fault) onNode() bool { return f.process() || f.Kind == FaultSever }

// instant reports whether the fault is a single action with no end.
func (f Fault) instant() bool { return f.Kind == FaultSkew || f.Kind == FaultFlush }

// End is when the fault is over (for skew and flush: when it was injected).
func (f Fault) End() time.Duration {
	if f.instant() {
		return f.At
	}
	return f.At + f.For
}

func (f Fault) String() string {
	at := fmt.Sprintf("%6.1fs", f.At.Seconds())
	dur := fmt.Sprintf(" for %.1fs", f.For.Seconds())
	switch f.Kind {
	case FaultIsolate:
		return fmt.Sprintf("%s isolate %s%s", at, regionName(f.Region), dur)
	case FaultOneWay:
		return fmt.Sprintf("%s oneway cut %s→%s%s", at, regionName(f.From), regionName(f.To), dur)
	case FaultPartial:
		return fmt.Sprintf("%s partial cut %s↔%s%s", at, regionName(f.From), regionName(f.To), dur)
	case FaultSplit:
		var names []string
		for _, r := range f.Minority {
			names = append(names, regionName(r))
		}
		return fmt.Sprintf("%s split {%s} from the rest%s", at, strings.Join(names, ","), dur)
	case FaultLatency:
		arrow := "→"
		if f.Both {
			arrow = "↔"
		}
		return fmt.Sprintf("%s latency +%v %s%s%s%s", at, f.Latency, regionName(f.From), arrow, regionName(f.To), dur)
	case FaultKill:
		return fmt.Sprintf("%s kill -9 node %d%s", at, f.Node+1, dur)
	case FaultPause:
		return fmt.Sprintf("%s SIGSTOP node %d%s", at, f.Node+1, dur)
	case FaultSkew:
		return fmt.Sprintf("%s restart node %d with clock offset %v", at, f.Node+1, f.Offset)
	case FaultSever:
		return fmt.Sprintf("%s sever node %d from its region%s", at, f.Node+1, dur)
	case FaultFlush:
		return fmt.Sprintf("%s FLUSHALL node %d (checker self-test)", at, f.Node+1)
	}
	return at + " " + f.Kind
}

// String lists the schedule, one fault a line.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "initial clock offsets %v\n", s.Offsets)
	for _, f := range s.Faults {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Mix counts the faults by kind.
func (s Schedule) Mix() map[string]int {
	m := map[string]int{}
	for _, f := range s.Faults {
		m[f.Kind]++
	}
	return m
}

func (s *Schedule) validate(c Config) error {
	if len(s.Offsets) != 0 && len(s.Offsets) != c.nodes() {
		return fmt.Errorf("chaos: schedule has %d offsets for %d nodes", len(s.Offsets), c.nodes())
	}
	okRegion := func(r int) bool { return r >= 0 && r < c.Regions }
	off := func(d time.Duration) bool { return d >= -c.MaxOffset && d <= c.MaxOffset }
	for _, o := range s.Offsets {
		if !off(o) {
			return fmt.Errorf("chaos: clock offset %v beyond ±%v", o, c.MaxOffset)
		}
	}
	busy := map[int]time.Duration{} // node -> end of its last process fault
	for i, f := range s.Faults {
		bad := func(why string) error { return fmt.Errorf("chaos: fault %d (%s): %s", i, f, why) }
		if !isFault(f.Kind) {
			return bad("unknown kind")
		}
		if f.At < 0 || f.End() > c.Duration || (!f.instant() && f.For <= 0) {
			return bad("must start and end within the run")
		}
		switch f.Kind {
		case FaultIsolate:
			if !okRegion(f.Region) {
				return bad("no such region")
			}
		case FaultOneWay, FaultPartial, FaultLatency:
			if !okRegion(f.From) || !okRegion(f.To) || f.From == f.To {
				return bad("needs two different regions")
			}
			if f.Kind == FaultLatency && (f.Latency <= 0 || f.Latency > 10*time.Second) {
				return bad("latency out of range")
			}
		case FaultSplit:
			if len(f.Minority) == 0 || 2*len(f.Minority) >= c.Regions {
				return bad("the minority must be fewer than half of the regions")
			}
			for _, r := range f.Minority {
				if !okRegion(r) {
					return bad("no such region")
				}
			}
		case FaultFlush:
			if f.Node < 0 || f.Node >= c.nodes() {
				return bad("no such node")
			}
		case FaultKill, FaultPause, FaultSkew, FaultSever:
			if f.Node < 0 || f.Node >= c.nodes() {
				return bad("no such node")
			}
			if f.Kind == FaultSkew && !off(f.Offset) {
				return bad("offset out of range")
			}
			if f.Kind == FaultSever && !c.shared(f.Node) {
				return bad("the node has no other node of its region to be cut from (sever needs gossip and a region of several nodes)")
			}
			if end, ok := busy[f.Node]; ok && f.At < end+time.Second {
				return bad("overlaps (or follows within 1s) another fault of the node")
			}
			busy[f.Node] = f.End()
		}
	}
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	return nil
}

// Generate returns the random schedule of a seed: about one fault episode
// every few seconds (one fault, or two at once), with quiet gaps between,
// some of them long enough to measure visibility without faults.
// Only the seed, the topology, the duration, Faults and MaxOffset count.
func Generate(c Config) Schedule {
	c.Schedule = nil
	c, _ = c.withDefaults(false)
	rng := rand.New(rand.NewPCG(uint64(c.Seed), 0x5eed))
	s := Schedule{Offsets: make([]time.Duration, c.nodes())}
	kinds := c.Faults
	skew := slices.Contains(kinds, FaultSkew)
	for i := range s.Offsets {
		if skew && rng.IntN(2) == 0 {
			s.Offsets[i] = randOffset(rng, c.MaxOffset)
		}
	}
	kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool {
		switch k {
		case FaultKill, FaultPause, FaultSkew:
			return false
		case FaultSever:
			return !slices.ContainsFunc(nodeIdx(c.nodes()), c.shared)
		case FaultSplit:
			return c.Regions < 3 // a minority needs three regions
		case FaultFlush:
			return true // only by hand
		}
		return c.Regions < 2 // links between regions
	})
	if len(kinds) == 0 {
		return s
	}
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	t := 3 * time.Second
	limit := c.Duration - time.Second
	busy := map[int]time.Duration{}
	for t < limit-time.Second {
		n := 1
		if rng.IntN(10) < 4 {
			n = 2
		}
		end := t
		process := false
		for k := range n {
			f := Fault{Kind: kinds[rng.IntN(len(kinds))], At: t}
			if k > 0 {
				f.At += between(0, time.Second)
			}
			if f.onNode() {
				if process {
					continue // one fault on a node at a time: always a minority
				}
				process = true
			}
			f.For = between(time.Second, 6*time.Second)
			other := func(r int) int { return (r + 1 + rng.IntN(c.Regions-1)) % c.Regions }
			switch f.Kind {
			case FaultIsolate:
				f.Region = rng.IntN(c.Regions)
			case FaultOneWay, FaultPartial:
				f.From = rng.IntN(c.Regions)
				f.To = other(f.From)
			case FaultSplit:
				perm := rng.Perm(c.Regions)
				f.Minority = perm[:1+rng.IntN((c.Regions-1)/2)]
				slices.Sort(f.Minority)
			case FaultLatency:
				f.From = rng.IntN(c.Regions)
				f.To = other(f.From)
				f.Both = rng.IntN(2) == 0
				f.Latency = time.Duration(50+rng.IntN(451)) * time.Millisecond
			case FaultKill:
				f.Node = rng.IntN(c.nodes())
				f.For = between(time.Second, 5*time.Second)
			case FaultPause:
				f.Node = rng.IntN(c.nodes())
				f.For = between(500*time.Millisecond, 5*time.Second)
			case FaultSkew:
				f.Node = rng.IntN(c.nodes())
				f.For = 0
				f.Offset = randOffset(rng, c.MaxOffset)
			case FaultSever:
				nodes := slices.DeleteFunc(nodeIdx(c.nodes()), func(i int) bool { return !c.shared(i) })
				f.Node = nodes[rng.IntN(len(nodes))]
				f.For = between(2*time.Second, 8*time.Second)
				if rng.IntN(4) == 0 {
					// Past memberlist's 30 s of gossip to the dead: the
					// region heals only by re-joining the failed member.
					f.For = between(32*time.Second, 40*time.Second)
				}
			}
			if f.onNode() {
				if e, ok := busy[f.Node]; ok && f.At < e+time.Second {
					continue
				}
			}
			if f.End() > limit {
				if f.Kind == FaultSkew || f.At+500*time.Millisecond > limit {
					continue
				}
				f.For = limit - f.At
			}
			if f.onNode() {
				busy[f.Node] = f.End()
			}
			s.Faults = append(s.Faults, f)
			end = max(end, f.End())
		}
		gap := between(time.Second, 4*time.Second)
		if rng.IntN(4) == 0 {
			gap = between(8*time.Second, 14*time.Second)
		}
		t = end + gap
	}
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	return s
}

func randOffset(rng *rand.Rand, maxOff time.Duration) time.Duration {
	ms := maxOff.Milliseconds()
	return time.Duration(rng.Int64N(2*ms+1)-ms) * time.Millisecond
}

// FixedSchedule is a small hand-written schedule of every fault kind for a
// run of at least 20 seconds with 3 regions of one node: the one the test
// suite runs.
func FixedSchedule() *Schedule {
	s := time.Second
	return &Schedule{
		Offsets: []time.Duration{0, 150 * time.Millisecond, -150 * time.Millisecond},
		Faults: []Fault{
			{Kind: FaultIsolate, At: 4 * s, For: 3 * s, Region: 2},
			{Kind: FaultKill, At: 8 * s, For: 2 * s, Node: 0},
			{Kind: FaultLatency, At: 8 * s, For: 3 * s, From: 1, To: 2, Both: true, Latency: 200 * time.Millisecond},
			{Kind: FaultOneWay, At: 12 * s, For: 2 * s, From: 0, To: 1},
			{Kind: FaultPause, At: 12500 * time.Millisecond, For: 1500 * time.Millisecond, Node: 1},
			{Kind: FaultSkew, At: 15 * s, Node: 2, Offset: 300 * time.Millisecond},
			{Kind: FaultPartial, At: 16 * s, For: 2 * s, From: 0, To: 2},
			{Kind: FaultSplit, At: 18 * s, For: 1500 * time.Millisecond, Minority: []int{1}},
		},
	}
}

// nodeIdx returns 0, 1, …, n-1.
func nodeIdx(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
