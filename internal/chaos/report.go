package chaos

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run, written as JSON by WriteFiles.
type Report struct {
	Seed           int64  `json:"seed"`
	Regions        int    `json:"regions"`
	NodesPerRegion int    `json:"nodes_per_region"`
	RegionSizes    []int  `json:"region_sizes"`
	Gossip         bool   `json:"gossip,omitempty"`
	SlotOwned      bool   `json:"slot_owned,omitempty"`
	Duration       string `json:"duration"`
	Latency        string `json:"latency"`
	Horizon        string `json:"tombstone_horizon"`
	// OutlastHorizon counts the cuts (isolate, oneway, partial, split) that
	// lasted longer than the tombstone horizon.
	OutlastHorizon int            `json:"cuts_outlasting_horizon"`
	Schedule       Schedule       `json:"schedule"`
	ScheduleText   []string       `json:"schedule_text"`
	FaultMix       map[string]int `json:"fault_mix"`
	Events         []FaultEvent   `json:"events"`

	Ops OpCounts `json:"ops"`

	// Convergence: ms from the heal to all links up, and to the first of
	// the dumps (a second apart) on which every node agreed; -1: never.
	LinksUpMS      float64           `json:"links_up_ms"`
	ConvergedMS    float64           `json:"converged_ms"`
	ConvergeGoalMS float64           `json:"converge_goal_ms"`
	Timeline       []divergencePoint `json:"timeline"`
	Keys           int               `json:"keys"`
	// SmallRegions (indexes) ran with --max-memory SmallRegionMemory.
	SmallRegions      []int  `json:"small_regions,omitempty"`
	SmallRegionMemory string `json:"small_region_memory,omitempty"`
	// TLS: the replication links ran over mutual TLS (Config.Plaintext
	// false); TLSProbes is what probing each node's replication port
	// found (CheckTLS).
	TLS       bool       `json:"tls"`
	TLSProbes []TLSProbe `json:"tls_probes,omitempty"`

	CheckResult
	Nodes []NodeReport `json:"nodes"`
	Pass  bool         `json:"pass"`

	saved *savedRun // the record the report was checked from
}

// savedRun is the record of a run, enough to check it again (Recheck).
type savedRun struct {
	Seed           int64         `json:"seed"`
	Regions        int           `json:"regions"`
	NodesPerRegion int           `json:"nodes_per_region"`
	RegionSizes    []int         `json:"region_sizes,omitempty"` // absent in records before it: NodesPerRegion each
	Duration       time.Duration `json:"duration_ns"`
	Latency        time.Duration `json:"latency_ns"`
	Horizon        time.Duration `json:"tombstone_horizon_ns"`
	SmallMemory    string        `json:"small_region_memory,omitempty"`
	Schedule       Schedule      `json:"schedule"`
	Input          *checkInput   `json:"input"`
}

// OpCounts summarises the history.
type OpCounts struct {
	Total       int            `json:"total"`
	ByKind      map[string]int `json:"by_kind"`
	ByStatus    map[string]int `json:"by_status"`
	Quorum      int            `json:"quorum"` // Quorum or All
	QuorumAcked int            `json:"quorum_acked"`
	All         int            `json:"all"`
	AllAcked    int            `json:"all_acked"`
	Refused     int            `json:"refused_tryagain"` // -TRYAGAIN: clock out of bounds
	// ForwardFailed: -TRYAGAIN forwarding to ...: the key's owner could
	// not be reached (SlotOwned), nothing written.
	ForwardFailed int `json:"forward_failed,omitempty"`
	OwnVersions   int `json:"own_versions"`    // writes whose own version is known
	Large         int `json:"large,omitempty"` // sets of a large value (Config.LargeFraction)
	LargeAcked    int `json:"large_acked,omitempty"`
	Probes        int `json:"probes"`
}

// NodeReport is one node at the end.
type NodeReport struct {
	ID           uint32        `json:"id"`
	Region       string        `json:"region"`
	Incarnations []incarnation `json:"incarnations"`
	Crashes      []string      `json:"crashes,omitempty"`
	Evicted      int64         `json:"evicted"`
	FullSyncs    int64         `json:"full_syncs"`
	Skipped      int64         `json:"skipped"` // writes sent to peers as skips (by its last process)
	// StandIns are the writes it sent peers as stand-ins, and the relays it
	// sent, applied and missed (by its last process).
	StandIns      int64    `json:"stand_ins"`
	RelaysSent    int64    `json:"relays_sent"`
	RelaysApplied int64    `json:"relays_applied"`
	RelaysMissed  int64    `json:"relays_missed"`
	DumpErrors    []string `json:"dump_errors,omitempty"`
}

// checkInput gathers the record of the run.
func (h *harness) checkInput(start, end int64, fin *final) *checkInput {
	in := &checkInput{Regions: h.cfg.Regions, Start: start, End: end, Final: fin, ConvergeGoal: 10 * time.Second, SlotOwned: h.cfg.SlotOwned}
	if r := h.cfg.smallRegion(); r >= 0 {
		in.SmallRegions = []int{r}
	}
	for _, w := range h.writers {
		in.Ops = append(in.Ops, w.ops...)
	}
	in.Ops = append(in.Ops, h.prober.ops...)
	slices.SortStableFunc(in.Ops, func(a, b Op) int { return cmpInt64(a.Invoke, b.Invoke) })
	for i := range in.Ops {
		in.Ops[i].ID = i
	}
	for _, nd := range h.cl.nodes {
		nd.mu.Lock()
		in.Nodes = append(in.Nodes, nodeInfo{Region: nd.region, Incs: slices.Clone(nd.incs), Crashes: slices.Clone(nd.crashes)})
		nd.mu.Unlock()
	}
	h.mu.Lock()
	for _, ev := range h.events {
		in.Events = append(in.Events, *ev)
	}
	h.mu.Unlock()
	in.Probes = h.prober.done
	in.TLS, in.TLSProbes = h.cl.certs != nil, h.tls
	return in
}

// wallStepNoted is the move of the machine's wall clock against the
// run's clock past which the summary warns of it.
const wallStepNoted = time.Millisecond

func buildReport(cfg Config, sched Schedule, in *checkInput, res *CheckResult) *Report {
	r := &Report{
		saved: &savedRun{Seed: cfg.Seed, Regions: cfg.Regions, NodesPerRegion: cfg.NodesPerRegion, RegionSizes: cfg.RegionSizes,
			Duration: cfg.Duration, Latency: cfg.Latency, Horizon: cfg.TombstoneHorizon, SmallMemory: cfg.SmallRegionMemory, Schedule: sched, Input: in},
		Seed: cfg.Seed, Regions: cfg.Regions, NodesPerRegion: cfg.NodesPerRegion, RegionSizes: cfg.RegionSizes, Gossip: cfg.Gossip, SlotOwned: cfg.SlotOwned,
		Duration: cfg.Duration.String(), Latency: cfg.Latency.String(), Horizon: "1h (the node default)",
		Schedule: sched, FaultMix: sched.Mix(), Events: in.Events,
		CheckResult:  *res,
		SmallRegions: in.SmallRegions, SmallRegionMemory: cfg.SmallRegionMemory,
		TLS: in.TLS, TLSProbes: in.TLSProbes,
		ConvergeGoalMS: float64(in.ConvergeGoal) / 1e6,
		LinksUpMS:      -1, ConvergedMS: -1,
	}
	for _, f := range sched.Faults {
		r.ScheduleText = append(r.ScheduleText, f.String())
		switch f.Kind {
		case FaultIsolate, FaultOneWay, FaultPartial, FaultSplit:
			if cfg.TombstoneHorizon > 0 && f.For > cfg.TombstoneHorizon {
				r.OutlastHorizon++
			}
		}
	}
	if cfg.TombstoneHorizon > 0 {
		r.Horizon = cfg.TombstoneHorizon.String()
	}
	r.Ops.ByKind, r.Ops.ByStatus = map[string]int{}, map[string]int{}
	for i := range in.Ops {
		op := &in.Ops[i]
		r.Ops.Total++
		r.Ops.ByKind[op.Kind]++
		r.Ops.ByStatus[op.Status]++
		if op.Client < 0 {
			r.Ops.Probes++
		}
		if op.Quorum {
			r.Ops.Quorum++
			if op.Status == StatusOK {
				r.Ops.QuorumAcked++
			}
		}
		if op.All {
			r.Ops.All++
			if op.Status == StatusOK {
				r.Ops.AllAcked++
			}
		}
		if clockRefusal(op.Err) {
			r.Ops.Refused++
		}
		if strings.HasPrefix(op.Err, "TRYAGAIN forwarding to ") {
			r.Ops.ForwardFailed++
		}
		if _, ok := op.known(); ok {
			r.Ops.OwnVersions++
		}
		if op.Large {
			r.Ops.Large++
			if op.Status == StatusOK {
				r.Ops.LargeAcked++
			}
		}
	}
	if f := in.Final; f != nil {
		r.Keys = len(f.Keys)
		r.Timeline = f.Timeline
		if f.LinksAt != 0 {
			r.LinksUpMS = float64(f.LinksAt-f.HealAt) / 1e6
		}
		if f.ConvergedAt != 0 {
			r.ConvergedMS = float64(f.ConvergedAt-f.HealAt) / 1e6
		}
	}
	for i, n := range in.Nodes {
		nr := NodeReport{ID: uint32(i + 1), Region: regionName(n.Region), Incarnations: n.Incs, Crashes: n.Crashes}
		if f := in.Final; f != nil && i < len(f.Evicted) {
			nr.Evicted, nr.FullSyncs = f.Evicted[i], f.FullSyncs[i]
			if i < len(f.Skipped) {
				nr.Skipped = f.Skipped[i]
			}
			if i < len(f.StandIns) && i < len(f.Relays) {
				nr.StandIns = f.StandIns[i]
				nr.RelaysSent, nr.RelaysApplied, nr.RelaysMissed = f.Relays[i][0], f.Relays[i][1], f.Relays[i][2]
			}
			prefix := fmt.Sprintf("node %d:", i+1)
			for _, e := range f.DumpErr {
				if strings.HasPrefix(e, prefix) {
					nr.DumpErrors = append(nr.DumpErrors, e)
				}
			}
		}
		r.Nodes = append(r.Nodes, nr)
	}
	// A node that could not be dumped hides what it holds: not a pass.
	r.Pass = len(r.Violations) == 0 && r.ConvergedMS >= 0 && (in.Final == nil || len(in.Final.DumpErr) == 0)
	return r
}

// Summary is the report for a human.
func (r *Report) Summary() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "chaos run seed %d: %s\n", r.Seed, verdict)
	joined := ""
	if r.Gossip {
		joined = " joined by gossip"
	}
	if r.SlotOwned {
		joined += ", each keeping its own slots (--cluster-forward)"
	}
	fmt.Fprintf(&b, "  cluster: %s%s, %s of faults and writes, %s one-way latency between regions\n",
		sizes(r.RegionSizes), joined, r.Duration, r.Latency)
	fmt.Fprintf(&b, "  faults: %s; tombstone horizon %s, outlasted by %d cut(s)\n", mixString(r.FaultMix), r.Horizon, r.OutlastHorizon)
	fmt.Fprintf(&b, "  replication links: %s\n", r.tlsLine())
	fmt.Fprintf(&b, "  initial clock offsets: %v\n", r.Schedule.Offsets)
	for _, ev := range r.Events {
		mark := ""
		if ev.Healed {
			mark = " (healed at the end)"
		}
		if ev.Err != "" {
			mark += " ERROR: " + ev.Err
		}
		fmt.Fprintf(&b, "    %s%s\n", ev.Fault, mark)
	}
	fmt.Fprintf(&b, "  ops: %d (%s); statuses %s; Quorum or All %d (%d acknowledged), of which All %d (%d acknowledged); refused with TRYAGAIN %d; own versions known %d\n",
		r.Ops.Total, mixString(r.Ops.ByKind), mixString(r.Ops.ByStatus), r.Ops.Quorum, r.Ops.QuorumAcked, r.Ops.All, r.Ops.AllAcked, r.Ops.Refused, r.Ops.OwnVersions)
	if r.SlotOwned {
		fmt.Fprintf(&b, "  commands whose owner could not be reached through forwarding (-TRYAGAIN forwarding to ..., nothing written): %d\n", r.Ops.ForwardFailed)
	}
	if r.Ops.Large > 0 {
		fmt.Fprintf(&b, "  large values: %d sets of 300 KiB to 1 MiB (%d acknowledged), crossing regions in parts\n", r.Ops.Large, r.Ops.LargeAcked)
	}
	if len(r.SmallRegions) > 0 {
		fmt.Fprintf(&b, "  small region(s) %v (--max-memory %s): reads that found nothing there, allowed: %d\n", r.smallNames(), r.SmallRegionMemory, r.RYWEvicted)
	}
	if r.RYWGhost > 0 {
		fmt.Fprintf(&b, "  reads that found nothing after a write a tombstone-ghost slot may cover (a full sync's lossy drop rule; allowed): %d\n", r.RYWGhost)
	}
	if r.SlotOwned {
		fmt.Fprintf(&b, "  reads older than a write their node had reported, within %v of a fault in its region (a failover moved the key to an owner the write had not reached yet; allowed): %d\n", failoverGrace, r.RYWFailover)
		fmt.Fprintf(&b, "  owner dump: %d (owner, key) states read without forwarding, %d (key, region) pairs of several owners compared; keys an owner lacks that a ghost slot may cover (excused): %d\n", r.OwnerStates, r.OwnerCompared, r.OwnerGhost)
	}
	rf := r.Refill
	fmt.Fprintf(&b, "  refill: %d restarted ample node(s) checked (%d skipped: flushed since), %d (node, key) held, %d missing excused by a ghost slot, %d by expiry near the dump, %d missing; probes missing on ample nodes: %d excused by a ghost slot, %d not\n",
		rf.Nodes, rf.Skipped, rf.Refilled, rf.Ghost, rf.Expiring, rf.Missing, rf.ProbesExcused, rf.ProbesMissing)
	wf := r.Wait
	fmt.Fprintf(&b, "  WAIT: %d sent, %d without a reply, replies %v (%d claimed every other region)\n", wf.Sent, wf.NoReply, wf.Counts, wf.AllRegions)
	conv := "NEVER"
	if r.ConvergedMS >= 0 {
		conv = fmt.Sprintf("%.0f ms", r.ConvergedMS)
		if r.ConvergedMS > r.ConvergeGoalMS {
			conv += fmt.Sprintf(" (over the %.0f ms goal)", r.ConvergeGoalMS)
		}
	}
	fmt.Fprintf(&b, "  after heal: links up in %.0f ms, converged in %s over %d keys\n", r.LinksUpMS, conv, r.Keys)
	if r.saved != nil && r.saved.Input != nil && r.saved.Input.WallStep > wallStepNoted {
		step := r.saved.Input.WallStep
		fmt.Fprintf(&b, "  MACHINE CLOCK: the wall clock moved %v from the run's monotonic clock while the clients ran; the nodes version and expire by the wall clock, so hlc-vs-clock, read-your-writes and expiry violations of that size are the machine's\n", step.Round(time.Microsecond))
	}
	v := r.Visibility
	fmt.Fprintf(&b, "  visibility in every region: quiet n=%d p50 %.1f ms p90 %.1f ms p99 %.1f ms max %.1f ms; all n=%d p50 %.1f p99 %.1f max %.1f; not visible within 10s: %d (%d quiet)\n",
		v.Quiet.N, v.Quiet.P50, v.Quiet.P90, v.Quiet.P99, v.Quiet.Max, v.All.N, v.All.P50, v.All.P99, v.All.Max, v.NotVisible, v.NotVisibleQuiet)
	q := r.Quorum
	fmt.Fprintf(&b, "  Quorum sets: %d acknowledged, %d checked (I4), %d not covered (a majority of regions may have lost it at once), %d absent but maybe superseded or expired, %d on a minority of regions at the end\n",
		q.Acked, q.Checked, q.Uncovered, q.Superseded, q.UnderReplicated)
	fmt.Fprintf(&b, "  Local writes lost with a stopped node: %d provably, %d more on no node with no newer version seen (a write of unknown outcome may have replaced them)\n", r.NLostLocal, r.NLostLocalMaybe)
	fmt.Fprintf(&b, "  acknowledged writes on no node whose tombstone-ghost slot a delete or expiry may cover (dropped by a full sync's lossy drop rule, allowed): %d\n", len(r.GhostDropped))
	for _, s := range r.GhostDropped {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	for _, l := range r.LostLocal {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	if cf := r.Counters; cf.Keys > 0 {
		fmt.Fprintf(&b, "  counters: %d key(s), %d increments: %d acknowledged (%d must count, %d of them pinned by a later one of their stopped process; %d may be lost with a stopped process or a lost majority), %d of unknown outcome, %d failed; %d values checked on ample nodes (%d in small regions not), %d key(s) exact; values outside their range: %d\n",
			cf.Keys, cf.Incrs, cf.Acked, cf.Durable, cf.Pinned, cf.MaybeLost, cf.Unknown, cf.Failed, cf.Checked, cf.Small, cf.Exact, cf.Outside)
		for _, k := range cf.PerKey {
			fmt.Fprintf(&b, "    %s: must count %+d, allowed [%d, %d], %+d if every uncertain one counted; final per node %s\n", k.Key, k.Sure, k.Lo, k.Hi, k.Every, strings.Join(k.Values, " "))
		}
	}
	if hf := r.Hashes; hf.Keys > 0 {
		fmt.Fprintf(&b, "  hashes: %d key(s), %d HSET and %d HDEL (%d applied); %d (node, key) states compared on ample nodes, holding %d fields, every value checked against the HSETs of its field\n",
			hf.Keys, hf.HSets, hf.HDels, hf.Acked, hf.Nodes, hf.Fields)
	}
	fmt.Fprintf(&b, "  writes refused for clock skew (-TRYAGAIN): %d, of which not explained by the injected offsets: %d\n",
		r.Refusals.Total, r.Refusals.Unjustified)
	fmt.Fprintf(&b, "  restarted nodes' writes versioned below their previous process's: %d (at most %.0f ms behind)\n",
		r.HLCRestart.Regressions, r.HLCRestart.MaxBehindMS)
	fmt.Fprintf(&b, "  checked: %s\n", mixString(r.Checked))
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "  node %d (%s): %d process(es), evicted %d, full syncs %d, skips sent %d, stand-ins sent %d, relays sent %d, applied %d, missed %d",
			n.ID, n.Region, len(n.Incarnations), n.Evicted, n.FullSyncs, n.Skipped, n.StandIns, n.RelaysSent, n.RelaysApplied, n.RelaysMissed)
		var exits []string
		for _, inc := range n.Incarnations {
			exits = append(exits, fmt.Sprintf("%s/%v", inc.How, inc.ExitCode))
		}
		fmt.Fprintf(&b, ", stops %s\n", strings.Join(exits, " "))
		for _, c := range n.Crashes {
			fmt.Fprintf(&b, "    CRASH %s\n", c)
		}
		for _, e := range n.DumpErrors {
			fmt.Fprintf(&b, "    dump error %s\n", e)
		}
	}
	if len(r.Violations) == 0 {
		fmt.Fprintf(&b, "  violations: none\n")
		return b.String()
	}
	fmt.Fprintf(&b, "  VIOLATIONS: %s\n", mixString(r.Counts))
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  - [%s] key %q: %s\n", v.Check, v.Key, v.Detail)
		for _, h := range v.History {
			fmt.Fprintf(&b, "        %s\n", h)
		}
	}
	return b.String()
}

// tlsLine says how the links ran and what the TLS probes found.
func (r *Report) tlsLine() string {
	if !r.TLS {
		return "plaintext (geocache-chaos --tls=false, or a record from before TLS)"
	}
	ok := 0
	for _, p := range r.TLSProbes {
		if p.ok() {
			ok++
		}
	}
	return fmt.Sprintf("mutual TLS 1.3 (a throwaway CA, certificates in %s/); %d of %d nodes' replication ports accepted the run's certificate and refused a plaintext peer, a peer without a certificate and one of another CA",
		certDir, ok, len(r.TLSProbes))
}

func (r *Report) smallNames() []string {
	var s []string
	for _, i := range r.SmallRegions {
		s = append(s, regionName(i))
	}
	return s
}

func mixString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteFiles writes report.json, summary.txt and the run's record,
// history.json.gz (every operation, fault, probe and the final dump: what
// Recheck reads), into dir.
func (r *Report) WriteFiles(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(r.Summary()), 0o644); err != nil {
		return err
	}
	if r.saved == nil {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, "history.json.gz"))
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	err = json.NewEncoder(zw).Encode(r.saved)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Recheck checks the record a run left in dir (history.json.gz) again,
// with this version of the checker.
func Recheck(dir string) (*Report, error) {
	f, err := os.Open(filepath.Join(dir, "history.json.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var s savedRun
	if err := json.NewDecoder(zr).Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if s.Input == nil {
		return nil, fmt.Errorf("%s: no record", f.Name())
	}
	if len(s.RegionSizes) == 0 { // a record from before RegionSizes
		for range s.Regions {
			s.RegionSizes = append(s.RegionSizes, s.NodesPerRegion)
		}
	}
	cfg := Config{Seed: s.Seed, Regions: s.Regions, NodesPerRegion: s.NodesPerRegion, RegionSizes: s.RegionSizes, Duration: s.Duration, Latency: s.Latency, TombstoneHorizon: s.Horizon, SmallRegionMemory: s.SmallMemory,
		SlotOwned: s.Input.SlotOwned, Gossip: s.Input.SlotOwned} // slot-owned nodes gossip
	return buildReport(cfg, s.Schedule, s.Input, Check(s.Input)), nil
}
