package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
)

// Synthetic histories: each check must pass a correct history and fail
// the history that breaks it.

const t0 = int64(1_800_000_000_000) * ms // a fixed real time (Unix ns)

// at is t0 plus d.
func at(d time.Duration) int64 { return t0 + int64(d) }

// ver is a version written at t0+wall by node origin.
func ver(wall time.Duration, origin uint32) Version {
	return Version{HLC: uint64((t0+int64(wall))/ms) << 16, Origin: origin, ExpireAt: -1}
}

// hist builds a check input of three regions of one node each.
type hist struct {
	in *checkInput
}

func newHist() *hist {
	in := &checkInput{Regions: 3, Start: t0, End: at(time.Minute)}
	for r := range 3 {
		in.Nodes = append(in.Nodes, nodeInfo{Region: r, Incs: []incarnation{{Start: t0 - int64(time.Second)}}})
	}
	return &hist{in: in}
}

// op appends an op on node n from start to end and returns it.
func (h *hist) op(n int, kind, key string, start, end time.Duration) *Op {
	h.in.Ops = append(h.in.Ops, Op{ID: len(h.in.Ops), Node: n, Kind: kind, Key: key, Invoke: at(start), Complete: at(end), Status: StatusOK})
	return &h.in.Ops[len(h.in.Ops)-1]
}

// set appends an acknowledged set with its own version (written at start).
func (h *hist) set(n int, key, value string, start time.Duration, ttl time.Duration) *Op {
	o := h.op(n, KindSet, key, start, start+time.Millisecond)
	o.Value, o.TTL = value, ttl
	v := ver(start, uint32(n+1))
	if ttl > 0 {
		v.ExpireAt = (at(start) + int64(ttl)) / ms
	}
	o.Ver, o.Own = &v, true
	return o
}

func (h *hist) del(n int, key string, start time.Duration) *Op {
	o := h.op(n, KindDel, key, start, start+time.Millisecond)
	v := ver(start, uint32(n+1))
	v.Deleted = true
	o.Ver, o.Own = &v, true
	return o
}

func (h *hist) get(n int, key string, start time.Duration, value string, found bool) *Op {
	o := h.op(n, KindGet, key, start, start+time.Millisecond)
	o.Value, o.Found = value, found
	return o
}

// final sets the dump: for each key, what each node holds (nil: nothing).
func (h *hist) final(dump map[string][3]*KeyState) {
	f := &final{HealAt: at(50 * time.Second), ConvergedAt: at(51 * time.Second), DumpAt: []int64{at(55 * time.Second), at(55 * time.Second), at(55 * time.Second)}}
	for k := range dump {
		f.Keys = append(f.Keys, k)
	}
	f.Dump = make([][]KeyState, 3)
	for n := range 3 {
		for _, k := range f.Keys {
			st := KeyState{}
			if s := dump[k][n]; s != nil {
				st = *s
			}
			f.Dump[n] = append(f.Dump[n], st)
		}
	}
	h.in.Final = f
}

func live(op *Op) *KeyState {
	return &KeyState{Ver: op.Ver, Value: op.Value, HasValue: true}
}

func tomb(op *Op) *KeyState { return &KeyState{Ver: op.Ver} }

// expect runs the checker and compares the violations by check name.
func (h *hist) expect(t *testing.T, want ...string) *CheckResult {
	t.Helper()
	res := Check(h.in)
	got := map[string]int{}
	for _, v := range res.Violations {
		got[v.Check]++
	}
	for _, w := range want {
		if got[w] == 0 {
			t.Errorf("no %s violation; got %v", w, describe(res))
		}
		delete(got, w)
	}
	if len(got) > 0 {
		t.Errorf("unexpected violations %v:\n%s", got, describe(res))
	}
	return res
}

func describe(res *CheckResult) string {
	var b strings.Builder
	for _, v := range res.Violations {
		b.WriteString(v.Check + ": " + v.Detail + "\n")
		for _, h := range v.History {
			b.WriteString("    " + h + "\n")
		}
	}
	return b.String()
}

func TestCheckCleanHistory(t *testing.T) {
	h := newHist()
	s1 := h.set(0, "a", "a|1", time.Second, 0)
	h.get(1, "a", 2*time.Second, "a|1", true)
	s2 := h.set(1, "a", "a|2", 3*time.Second, 0)
	h.get(1, "a", 4*time.Second, "a|2", true)
	d := h.del(2, "b", 5*time.Second)
	h.get(2, "b", 6*time.Second, "", false)
	_ = s1
	h.final(map[string][3]*KeyState{"a": {live(s2), live(s2), nil}, "b": {tomb(d), nil, tomb(d)}})
	res := h.expect(t)
	if res.Checked[CheckConvergence] != 2 || res.Checked[CheckRYW] == 0 || res.Checked[CheckPhantom] == 0 {
		t.Errorf("checked %v: some check did not look", res.Checked)
	}
}

func TestCheckConvergence(t *testing.T) {
	h := newHist()
	s1 := h.set(0, "a", "a|1", time.Second, 0)
	s2 := h.set(1, "a", "a|2", 2*time.Second, 0)
	h.final(map[string][3]*KeyState{"a": {live(s2), live(s2), live(s1)}})
	h.expect(t, CheckConvergence)

	// Same version, different values.
	h = newHist()
	s1 = h.set(0, "a", "a|1", time.Second, 0)
	other := *live(s1)
	other.Value = "a|1"
	h.set(0, "a", "a|x", 500*time.Millisecond, 0) // another value of the key, older
	other.Value = "a|x"
	h.final(map[string][3]*KeyState{"a": {live(s1), &other, nil}})
	h.expect(t, CheckConvergence, CheckValueVersion)
}

func TestCheckResurrection(t *testing.T) {
	h := newHist()
	s1 := h.set(0, "a", "a|1", time.Second, 0)
	d := h.del(1, "a", 2*time.Second)
	h.final(map[string][3]*KeyState{"a": {tomb(d), nil, live(s1)}})
	h.expect(t, CheckConvergence, CheckResurrection)

	// The same end state, but the delete's node was killed after
	// acknowledging it Local: the delete may be lost with it. Counted, not
	// failed.
	h = newHist()
	s1 = h.set(0, "a", "a|1", time.Second, 0)
	h.del(1, "a", 2*time.Second)
	h.in.Nodes[1].Incs[0].Stop, h.in.Nodes[1].Incs[0].How = at(3*time.Second), "kill"
	h.in.Nodes[1].Incs = append(h.in.Nodes[1].Incs, incarnation{Start: at(4 * time.Second)})
	h.final(map[string][3]*KeyState{"a": {live(s1), nil, live(s1)}})
	res := h.expect(t)
	if res.NLostLocal != 1 {
		t.Errorf("lost Local writes %d, want 1 (the delete)", res.NLostLocal)
	}
}

func TestCheckOlderAfterExpiry(t *testing.T) {
	h := newHist()
	s1 := h.set(0, "a", "a|1", time.Second, 0)
	h.set(1, "a", "a|2", 2*time.Second, time.Second) // newer, expired by the end
	h.final(map[string][3]*KeyState{"a": {live(s1), nil, nil}})
	h.expect(t, CheckAfterExpiry)
}

func TestCheckBehind(t *testing.T) {
	h := newHist()
	s1 := h.set(0, "a", "a|1", time.Second, 0)
	h.set(1, "a", "a|2", 2*time.Second, 0) // its node stayed up: it must arrive
	h.final(map[string][3]*KeyState{"a": {live(s1), nil, nil}})
	h.expect(t, CheckBehind, CheckLostWrite)
}

func TestCheckLostQuorumWrite(t *testing.T) {
	h := newHist()
	q := h.set(0, "a", "a|1", time.Second, 0)
	q.Quorum = true
	h.in.Nodes[0].Incs[0].Stop, h.in.Nodes[0].Incs[0].How = at(2*time.Second), "kill"
	h.in.Nodes[0].Incs = append(h.in.Nodes[0].Incs, incarnation{Start: at(3 * time.Second)})
	h.final(map[string][3]*KeyState{"a": {nil, nil, nil}})
	h.expect(t, CheckLostQuorum)

	// Two regions lost processes since: I4 does not cover it.
	h.in.Nodes[1].Incs[0].Stop, h.in.Nodes[1].Incs[0].How = at(4*time.Second), "kill"
	h.in.Nodes[1].Incs = append(h.in.Nodes[1].Incs, incarnation{Start: at(5 * time.Second)})
	res := h.expect(t)
	if res.Quorum.Uncovered != 1 {
		t.Errorf("uncovered %d, want 1", res.Quorum.Uncovered)
	}

	// The second region lost its process only after the first had
	// refilled: the write must have survived in the first.
	h.in.Nodes[1].Incs[0].Stop = at(10 * time.Second)
	h.in.Nodes[1].Incs[1].Start = at(11 * time.Second)
	h.expect(t, CheckLostQuorum)

	// ... unless the first could not refill: it was isolated meanwhile.
	h.in.Events = []FaultEvent{{Fault: Fault{Kind: FaultIsolate, Region: 0}, Start: at(2500 * time.Millisecond), End: at(12 * time.Second)}}
	res = h.expect(t)
	if res.Quorum.Uncovered != 1 {
		t.Errorf("uncovered %d, want 1", res.Quorum.Uncovered)
	}

	// A newer write of unknown outcome may have replaced it.
	h = newHist()
	q = h.set(0, "a", "a|1", time.Second, 0)
	q.Quorum = true
	u := h.op(2, KindDel, "a", 2*time.Second, 3*time.Second)
	u.Status = StatusUnknown
	h.final(map[string][3]*KeyState{"a": {nil, nil, nil}})
	res = h.expect(t)
	if res.Quorum.Superseded != 1 {
		t.Errorf("superseded %d, want 1", res.Quorum.Superseded)
	}
}

func TestCheckExpiredRead(t *testing.T) {
	h := newHist()
	h.set(0, "a", "a|1", time.Second, time.Second) // expires at about 2.001s
	h.get(1, "a", 1500*time.Millisecond, "a|1", true)
	h.get(1, "a", 2100*time.Millisecond, "a|1", true)
	res := h.expect(t, CheckExpiredRead)
	if res.Counts[CheckExpiredRead] != 1 {
		t.Errorf("%d expired reads, want 1:\n%s", res.Counts[CheckExpiredRead], describe(res))
	}

	// A node whose clock is 200ms behind serves it 200ms longer.
	h = newHist()
	h.in.Nodes[1].Incs[0].Offset = -200 * time.Millisecond
	h.set(0, "a", "a|1", time.Second, time.Second)
	h.get(1, "a", 2100*time.Millisecond, "a|1", true)
	h.expect(t)

	// A PEXPIRE of the value after the set extends it.
	h = newHist()
	h.set(0, "a", "a|1", time.Second, time.Second)
	e := h.op(0, KindPExpire, "a", 1500*time.Millisecond, 1501*time.Millisecond)
	e.TTL = 5 * time.Second
	h.get(0, "a", 3*time.Second, "a|1", true)
	h.expect(t)
}

func TestCheckPhantom(t *testing.T) {
	h := newHist()
	h.set(0, "a", "a|1", time.Second, 0)
	h.get(0, "a", 2*time.Second, "b|7", true)
	f := h.op(0, KindSet, "a", 3*time.Second, 3*time.Second+1)
	f.Value, f.Status, f.Err = "a|9", StatusFail, "TRYAGAIN clock"
	h.get(0, "a", 4*time.Second, "a|9", true)
	res := h.expect(t, CheckPhantom)
	if res.Counts[CheckPhantom] != 2 {
		t.Errorf("%d phantoms, want 2", res.Counts[CheckPhantom])
	}
}

func TestCheckHLC(t *testing.T) {
	h := newHist()
	a := h.set(0, "a", "a|1", time.Second, 0)
	b := h.set(0, "b", "b|1", 2*time.Second, 0)
	*b.Ver = *a.Ver // not newer than a write that completed before it started
	b.Ver.HLC--
	h.expect(t, CheckHLC, CheckHLCClock) // b is also behind the node's clock

	// A restarted process may start below its predecessor: counted only.
	h = newHist()
	h.set(0, "a", "a|1", 2400*time.Millisecond, 0)
	h.in.Nodes[0].Incs[0].Stop, h.in.Nodes[0].Incs[0].How = at(2420*time.Millisecond), "term"
	h.in.Nodes[0].Incs = append(h.in.Nodes[0].Incs, incarnation{Start: at(2430 * time.Millisecond), Offset: -400 * time.Millisecond})
	c := h.set(0, "c", "c|1", 2450*time.Millisecond, 0)
	c.Inc0, c.Inc1 = 1, 1
	c.Ver.HLC = uint64((at(2050*time.Millisecond))/ms) << 16 // its clock: 400ms behind
	res := h.expect(t)
	if res.HLCRestart.Regressions != 1 {
		t.Errorf("restart regressions %d, want 1", res.HLCRestart.Regressions)
	}
}

func TestCheckReadYourWrites(t *testing.T) {
	h := newHist()
	h.set(0, "a", "a|1", time.Second, 0)
	h.set(0, "a", "a|2", 2*time.Second, 0)
	h.get(0, "a", 3*time.Second, "a|1", true) // older than what the node reported
	h.expect(t, CheckRYW)

	h = newHist()
	h.set(0, "a", "a|1", time.Second, 0)
	h.get(0, "a", 2*time.Second, "", false) // gone, not expired, nothing newer
	h.expect(t, CheckRYW)

	// Gone because a delete from another region started before the read.
	h = newHist()
	h.set(0, "a", "a|1", time.Second, 0)
	h.del(1, "a", 1500*time.Millisecond)
	h.get(0, "a", 2*time.Second, "", false)
	h.expect(t)

	// A read after a delete returning the value it deleted.
	h = newHist()
	h.set(0, "a", "a|1", time.Second, 0)
	h.del(0, "a", 2*time.Second)
	h.get(0, "a", 3*time.Second, "a|1", true)
	h.expect(t, CheckResurrection)

	// Gone, and the key's tombstone-ghost slot may cover the write: a
	// delete of another key of the slot, newer than the write, may have
	// made a full sync's drop rule remove it (lossy by design).
	h = newHist()
	other := ""
	for i := 0; other == ""; i++ {
		if k := fmt.Sprint("x", i); ghostSlot(k) == ghostSlot("a") {
			other = k
		}
	}
	h.set(0, "a", "a|1", time.Second, 0)
	h.del(1, other, 1500*time.Millisecond)
	h.get(0, "a", 2*time.Second, "", false)
	if res := h.expect(t); res.RYWGhost != 1 {
		t.Errorf("reads excused by a ghost slot: %d, want 1", res.RYWGhost)
	}

	// Another process of the node (a restart in between) owes nothing.
	h = newHist()
	h.set(0, "a", "a|1", time.Second, 0)
	g := h.get(0, "a", 3*time.Second, "", false)
	g.Inc0, g.Inc1 = 1, 1
	h.in.Nodes[0].Incs[0].Stop, h.in.Nodes[0].Incs[0].How = at(2*time.Second), "kill"
	h.in.Nodes[0].Incs = append(h.in.Nodes[0].Incs, incarnation{Start: at(2500 * time.Millisecond)})
	h.expect(t)
}

func TestCheckCrash(t *testing.T) {
	h := newHist()
	h.in.Nodes[2].Crashes = []string{"node 3 exited on its own: signal: segmentation fault"}
	h.expect(t, CheckCrash)
}

func TestCheckVisibility(t *testing.T) {
	h := newHist()
	for i := range 100 {
		t1 := at(time.Duration(i) * 100 * time.Millisecond)
		h.in.Probes = append(h.in.Probes, &probe{Key: "p", Node: i % 3, T0: t1, Seen: map[int]int64{
			0: t1 + int64(10*time.Millisecond), 1: t1 + int64(11*time.Millisecond), 2: t1 + int64(time.Duration(12+i/50)*time.Millisecond)}})
	}
	h.in.Events = []FaultEvent{{Fault: Fault{Kind: FaultIsolate}, Start: at(8 * time.Second), End: at(9 * time.Second)}}
	res := h.expect(t)
	v := res.Visibility
	if v.All.N != 100 || v.Quiet.N >= 100 || v.Quiet.N == 0 || v.All.Max < 12 || v.All.Max > 14 {
		t.Errorf("visibility %+v", v)
	}
}

func TestScheduleReplay(t *testing.T) {
	c := Config{Seed: 42, Duration: 5 * time.Minute}
	a, b := Generate(c), Generate(c)
	if a.String() != b.String() {
		t.Fatalf("the same seed gave two schedules:\n%s\n%s", a, b)
	}
	c.Seed = 43
	if Generate(c).String() == a.String() {
		t.Error("seeds 42 and 43 gave the same schedule")
	}
	if len(a.Faults) < 20 {
		t.Errorf("5 minutes of seed 42 have only %d faults", len(a.Faults))
	}
	c.Seed = 42
	cc, err := c.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.validate(cc); err != nil {
		t.Errorf("generated schedule is invalid: %v", err)
	}
	if err := FixedSchedule().validate(Config{Regions: 3, NodesPerRegion: 1, Duration: 20 * time.Second, MaxOffset: 400 * time.Millisecond}); err != nil {
		t.Errorf("fixed schedule: %v", err)
	}
	for regions := 1; regions <= 5; regions++ {
		s := Generate(Config{Seed: 5, Regions: regions, NodesPerRegion: 2, Duration: time.Minute})
		cc, _ := Config{Regions: regions, NodesPerRegion: 2, Duration: time.Minute}.withDefaults(false)
		if err := s.validate(cc); err != nil || len(s.Faults) == 0 {
			t.Errorf("%d regions: %d faults, %v", regions, len(s.Faults), err)
		}
	}
	bad := Schedule{Faults: []Fault{{Kind: FaultKill, At: time.Second, For: 2 * time.Second, Node: 0}, {Kind: FaultPause, At: 2 * time.Second, For: time.Second, Node: 0}}}
	if err := bad.validate(cc); err == nil {
		t.Error("overlapping process faults of one node accepted")
	}
}

// smallHist is newHist with region 2 (node 3) evicting, and node 1
// (region 0) killed at 20s and restarted at 22s.
func smallHist() *hist {
	h := newHist()
	h.in.SmallRegions = []int{2}
	h.in.Nodes[0].Incs = []incarnation{{Start: t0 - int64(time.Second), Stop: at(20 * time.Second), How: "kill"}, {Start: at(22 * time.Second)}}
	return h
}

// slotMate returns a key other than key in the same tombstone-ghost slot.
func slotMate(t *testing.T, key string) string {
	t.Helper()
	for i := range 1 << 24 {
		if k := fmt.Sprintf("k%d", i); k != key && ghostSlot(k) == ghostSlot(key) {
			return k
		}
	}
	t.Fatal("no key shares the slot")
	return ""
}

func TestCheckRefill(t *testing.T) {
	t.Run("restarted node misses a key another holds", func(t *testing.T) {
		h := smallHist()
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 0)
		h.final(map[string][3]*KeyState{"o1.1": {nil, live(s), nil}})
		res := h.expect(t, CheckRefill)
		if r := res.Refill; r.Nodes != 1 || r.Missing != 1 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("held after the restart", func(t *testing.T) {
		h := smallHist()
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 0)
		h.final(map[string][3]*KeyState{"o1.1": {live(s), live(s), nil}})
		if r := h.expect(t).Refill; r.Refilled != 1 || r.Missing != 0 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("a delete of the same ghost slot may cover it", func(t *testing.T) {
		h := smallHist()
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 0)
		mate := slotMate(t, "o1.1")
		d := h.del(1, mate, 12*time.Second)
		h.final(map[string][3]*KeyState{"o1.1": {nil, live(s), nil}, mate: {nil, tomb(d), nil}})
		if r := h.expect(t).Refill; r.Ghost != 1 || r.Missing != 0 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("an older delete of the same slot does not", func(t *testing.T) {
		h := smallHist()
		mate := slotMate(t, "o1.1")
		h.del(1, mate, 5*time.Second)
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 0)
		h.final(map[string][3]*KeyState{"o1.1": {nil, live(s), nil}})
		h.expect(t, CheckRefill)
	})
	t.Run("expires near the dump", func(t *testing.T) {
		h := smallHist()
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 46*time.Second) // expires at 56s, dump at 55s
		h.final(map[string][3]*KeyState{"o1.1": {nil, live(s), nil}})
		if r := h.expect(t).Refill; r.Expiring != 1 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("flushed after the restart", func(t *testing.T) {
		h := smallHist()
		h.in.Events = []FaultEvent{{Fault: Fault{Kind: FaultFlush, Node: 0}, Start: at(30 * time.Second), End: at(30 * time.Second)}}
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 0)
		h.final(map[string][3]*KeyState{"o1.1": {nil, live(s), nil}})
		if r := h.expect(t).Refill; r.Skipped != 1 || r.Nodes != 0 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("written by the small region, held by another", func(t *testing.T) {
		h := smallHist()
		s := h.set(2, "p7", "p7|probe", 40*time.Second, 0) // evicted at its origin before it reached node 1
		h.final(map[string][3]*KeyState{"p7": {nil, live(s), nil}})
		h.expect(t)
	})
	t.Run("written by a process that stopped since", func(t *testing.T) {
		h := smallHist()
		h.in.Nodes[1].Incs = []incarnation{{Start: t0 - int64(time.Second), Stop: at(45 * time.Second), How: "kill"}, {Start: at(47 * time.Second)}}
		s := h.set(1, "o1.1", "o1.1|1.1", 40*time.Second, 0)
		h.final(map[string][3]*KeyState{"o1.1": {nil, live(s), nil}})
		h.expect(t)
	})
	t.Run("only the small region holds it", func(t *testing.T) {
		h := smallHist()
		s := h.set(2, "o2.1", "o2.1|2.1", 10*time.Second, 0)
		h.final(map[string][3]*KeyState{"o2.1": {nil, nil, live(s)}})
		h.expect(t) // the small region's Local write is not durable either
	})
}

// A small region may evict: a Local write of its node on no node at the
// end, and a read there that finds nothing, are allowed; elsewhere they
// are violations.
func TestCheckSmallRegionEvicts(t *testing.T) {
	for _, small := range []bool{false, true} {
		h := newHist()
		if small {
			h.in.SmallRegions = []int{2}
		}
		h.set(2, "o2.1", "o2.1|2.1", 10*time.Second, 0)
		h.get(2, "o2.1", 11*time.Second, "", false)
		h.final(map[string][3]*KeyState{"o2.1": {nil, nil, nil}})
		if small {
			h.expect(t)
		} else {
			h.expect(t, CheckLostWrite, CheckRYW)
		}
	}
}

// An All-acknowledged write was applied by every region: it survives a
// restart of one region while the small region evicts, which a Quorum
// write need not.
func TestCheckAllAcknowledged(t *testing.T) {
	for _, all := range []bool{false, true} {
		h := smallHist()
		s := h.set(1, "o1.1", "o1.1|1.1", 10*time.Second, 0)
		s.Quorum, s.All = true, all
		h.final(map[string][3]*KeyState{"o1.1": {nil, nil, nil}})
		if all {
			h.expect(t, CheckLostQuorum)
		} else {
			res := h.expect(t)
			if res.Quorum.Uncovered != 1 {
				t.Errorf("Quorum figures %+v", res.Quorum)
			}
		}
	}
}

// WAIT cannot claim more regions than the others.
func TestCheckWaitCount(t *testing.T) {
	h := newHist()
	s := h.set(0, "o0.1", "o0.1|0.1", 10*time.Second, 0)
	s.Waited, s.Wait = true, 2
	s = h.set(0, "o0.2", "o0.2|0.2", 11*time.Second, 0)
	s.Waited, s.Wait = true, 3
	res := h.expect(t, CheckWait)
	if w := res.Wait; w.Sent != 2 || w.AllRegions != 1 || w.Counts[3] != 1 {
		t.Errorf("wait figures %+v", w)
	}
}

// ghostSlot is the slot store.GhostCovers reads.
func TestGhostSlotMatchesStore(t *testing.T) {
	table := make([]uint64, store.DefaultGhostSlots)
	if len(table) != ghostSlots {
		t.Fatalf("store has %d ghost slots, the checker %d", len(table), ghostSlots)
	}
	for i := range 2000 {
		key := fmt.Sprintf("o%d.%d", i%7, i)
		if i%3 == 0 {
			key = fmt.Sprintf("p%d", i)
		}
		s := ghostSlot(key)
		table[s] = 100
		if !store.GhostCovers(table, key, hlc.Timestamp(100)) {
			t.Fatalf("store does not read %q's ghost in slot %d", key, s)
		}
		table[s] = 0
		table[(s+1)%ghostSlots] = 100
		if store.GhostCovers(table, key, hlc.Timestamp(100)) {
			t.Fatalf("store reads %q's ghost in slot %d", key, (s+1)%ghostSlots)
		}
		table[(s+1)%ghostSlots] = 0
	}
}

// A write acknowledged late (All, during a partition) reports a version
// from another node that arrived meanwhile; its own version may still be
// newer than what a read must see: a read that found nothing after it
// started is no read-your-writes violation.
func TestCheckLateAckReportsOtherVersion(t *testing.T) {
	h := newHist()
	s := h.set(1, "s1", "s1|1.1", 10*time.Second, 0)
	d := h.op(0, KindDel, "s1", 20*time.Second, 22*time.Second) // applied at once, acknowledged at 22s
	d.Quorum, d.All = true, true
	other := ver(21500*time.Millisecond, 2) // node 2's newer write, seen by the VERSION after the DEL
	d.Ver = &other
	h.get(1, "s1", 21*time.Second, "", false)
	w := h.set(1, "s1", "s1|1.2", 21500*time.Millisecond, 0)
	h.final(map[string][3]*KeyState{"s1": {live(w), live(w), live(w)}})
	_ = s
	h.expect(t)
}

// A probe of an ample node that never stopped is on every ample node at
// the end, unless a tombstone ghost of its slot may cover it.
func TestCheckLostProbe(t *testing.T) {
	probe := func(h *hist) *Op {
		o := h.op(1, KindSet, "p3", 10*time.Second, 10*time.Second+time.Millisecond)
		o.Client, o.Value = -1, "p3|probe"
		return o
	}
	t.Run("held by every ample node", func(t *testing.T) {
		h := smallHist()
		o := probe(h)
		st := &KeyState{Ver: new(ver(10*time.Second, 2)), Value: o.Value, HasValue: true}
		h.final(map[string][3]*KeyState{"p3": {st, st, nil}})
		h.expect(t)
	})
	t.Run("missing everywhere", func(t *testing.T) {
		h := smallHist()
		probe(h)
		h.final(map[string][3]*KeyState{"p3": {nil, nil, nil}})
		if r := h.expect(t, CheckLostProbe).Refill; r.ProbesMissing != 2 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("a later delete of its slot may cover it", func(t *testing.T) {
		h := smallHist()
		probe(h)
		mate := slotMate(t, "p3")
		d := h.del(0, mate, 30*time.Second)
		h.final(map[string][3]*KeyState{"p3": {nil, nil, nil}, mate: {tomb(d), tomb(d), nil}})
		if r := h.expect(t).Refill; r.ProbesExcused != 2 {
			t.Errorf("refill figures %+v", r)
		}
	})
	t.Run("written by the small region", func(t *testing.T) {
		h := smallHist()
		o := probe(h)
		o.Node = 2
		h.final(map[string][3]*KeyState{"p3": {nil, nil, nil}})
		h.expect(t)
	})
}

// A durable acknowledged set on no node at the end fails lost-write,
// unless a delete of a key of its tombstone-ghost slot at or above its
// version may have made a full sync drop it (seen in the suite: "o1.10"
// and "o5.5" share slot 31816): then it is reported, not failed.
func TestCheckLostWriteGhostSlot(t *testing.T) {
	t.Run("no ghost can cover it", func(t *testing.T) {
		h := newHist()
		h.set(0, "o1.10", "o1.10|1", 10*time.Second, 0)
		h.final(map[string][3]*KeyState{"o1.10": {nil, nil, nil}})
		if res := h.expect(t, CheckLostWrite); len(res.GhostDropped) != 0 {
			t.Errorf("ghost-dropped %v", res.GhostDropped)
		}
	})
	t.Run("a newer delete of its slot may cover it", func(t *testing.T) {
		if ghostSlot("o1.10") != ghostSlot("o5.5") {
			t.Fatal("o1.10 and o5.5 no longer share a ghost slot")
		}
		h := newHist()
		h.set(0, "o1.10", "o1.10|1", 10*time.Second, 0)
		d := h.del(2, "o5.5", 12*time.Second)
		h.final(map[string][3]*KeyState{"o1.10": {nil, nil, nil}, "o5.5": {tomb(d), tomb(d), tomb(d)}})
		if res := h.expect(t); len(res.GhostDropped) != 1 {
			t.Errorf("ghost-dropped %v, want the one set", res.GhostDropped)
		}
	})
}

// With SlotOwned a read is served by an owner of its key: a read older
// than a write its node reported is allowed near a fault on a node of the
// read's region (a failover moved the key), and still fails away from
// one; an expiry is judged by the clock of any node of the read's region.
func TestCheckSlotOwned(t *testing.T) {
	stale := func(fault bool) *hist {
		h := newHist()
		h.in.SlotOwned = true
		h.in.Nodes = append(h.in.Nodes, nodeInfo{Region: 0, Incs: []incarnation{{Start: t0 - int64(time.Second)}}})
		h.set(0, "a", "a|1", 10*time.Second, 0)
		h.set(0, "a", "a|2", 11*time.Second, 0)
		h.get(0, "a", 12*time.Second, "a|1", true)
		if fault {
			h.in.Events = append(h.in.Events, FaultEvent{Fault: Fault{Kind: FaultPause, Node: 3}, Start: at(10500 * time.Millisecond), End: at(11500 * time.Millisecond)})
		}
		return h
	}
	if res := stale(true).expect(t); res.RYWFailover != 1 {
		t.Errorf("reads excused by a failover: %d, want 1", res.RYWFailover)
	}
	stale(false).expect(t, CheckRYW)
	far := stale(true)
	far.in.Events[0].Start, far.in.Events[0].End = at(40*time.Second), at(41*time.Second)
	far.expect(t, CheckRYW)

	// Node 1 reads 200ms after the expiry on its own clock; node 4, of
	// the same region, runs 300ms behind: its owner may have served it.
	expiry := func(slotOwned bool) *hist {
		h := newHist()
		h.in.SlotOwned = slotOwned
		h.in.Nodes = append(h.in.Nodes, nodeInfo{Region: 0, Incs: []incarnation{{Start: t0 - int64(time.Second), Offset: -300 * time.Millisecond}}})
		h.set(0, "b", "b|1", time.Second, time.Second)
		h.get(0, "b", 2200*time.Millisecond, "b|1", true)
		return h
	}
	expiry(false).expect(t, CheckExpiredRead)
	expiry(true).expect(t)
}

// Regions of different sizes: the nodes are numbered region by region,
// and a schedule generated for them is valid for them.
func TestRegionSizes(t *testing.T) {
	c, err := Config{RegionSizes: []int{3, 1, 2}, Duration: time.Minute}.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Regions != 3 || c.nodes() != 6 {
		t.Fatalf("%d regions, %d nodes; want 3 and 6", c.Regions, c.nodes())
	}
	var regions []int
	for i := range c.nodes() {
		regions = append(regions, c.regionOf(i))
	}
	if !slices.Equal(regions, []int{0, 0, 0, 1, 2, 2}) {
		t.Errorf("regions of the nodes %v", regions)
	}
	if got := sizes(c.RegionSizes); got != "3 region(s) of 3, 1, 2 nodes" {
		t.Errorf("sizes %q", got)
	}
	c.Seed = 9
	s := Generate(c)
	if err := s.validate(c); err != nil {
		t.Errorf("generated schedule: %v", err)
	}
	uniform, _ := Config{Regions: 2, NodesPerRegion: 3}.withDefaults(false)
	if !slices.Equal(uniform.RegionSizes, []int{3, 3}) || sizes(uniform.RegionSizes) != "2 region(s) × 3 node(s)" {
		t.Errorf("uniform: %v, %q", uniform.RegionSizes, sizes(uniform.RegionSizes))
	}
	for _, bad := range [][]int{{3, 0}, {6, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}} {
		if _, err := (Config{RegionSizes: bad}).withDefaults(false); err == nil {
			t.Errorf("sizes %v accepted", bad)
		}
	}
}

// A write refused for the clock is explained when its node was more than
// 400 ms from most of its peers, a peer that is down counting with the
// offset of its last process (the node keeps its measurement); with
// slot-owned nodes the refusal may be any node's of the region (the key's
// owner, forwarded).
func TestRefusalsExplainedByOffsets(t *testing.T) {
	h := newHist()
	h.in.Nodes[0].Incs[0].Offset = 450 * time.Millisecond
	refuse := func(n int, when time.Duration) {
		o := h.op(n, KindSet, "k", when, when+time.Millisecond)
		o.Status, o.Err = StatusFail, "TRYAGAIN this node's clock is out of bounds relative to its peers"
	}
	refuse(0, 10*time.Second) // 450 ms from both peers
	h.in.Nodes[1].Incs = []incarnation{{Start: t0 - int64(time.Second), Stop: at(20 * time.Second), How: "kill"}, {Start: at(30 * time.Second)}}
	refuse(0, 25*time.Second) // node 1 down: still 450 ms from its last process
	refuse(2, 40*time.Second) // node 2 is far from node 0 only: one peer of two
	res := Check(h.in)
	if res.Refusals.Total != 3 || res.Refusals.Unjustified != 1 {
		t.Errorf("refusals %+v; want 3, 1 of them unexplained (node 2's)", res.Refusals)
	}
	// Node 2 in node 0's region, slot-owned: its client's write may have
	// been forwarded to node 0, whose offset explains the refusal.
	h.in.SlotOwned, h.in.Nodes[2].Region = true, 0
	if res := Check(h.in); res.Refusals.Unjustified != 0 {
		t.Errorf("slot-owned: refusals %+v; want none unexplained", res.Refusals)
	}
}

// With slot-owned nodes, the owners of a key in one region must hold the
// same version: the dump through forwarding cannot see an owner that
// misses a key the other owner holds.
func TestCheckOwnerConvergence(t *testing.T) {
	owners := func(states ...*KeyState) *hist {
		h := newHist()
		h.in.SlotOwned = true
		h.in.Nodes[1].Region = 0 // nodes 1 and 2 (indexes 0 and 1) share region us
		s1 := h.set(0, "a", "a|1", time.Second, 0)
		h.final(map[string][3]*KeyState{"a": {live(s1), live(s1), live(s1)}})
		h.in.Final.OwnerDump = [][]*KeyState{{states[0]}, {states[1]}, {states[2]}}
		h.in.Final.OwnerDumpAt = at(55 * time.Second)
		return h
	}
	h := newHist()
	s1 := h.set(0, "a", "a|1", time.Second, 0)
	s2 := h.set(0, "a", "a|2", 2*time.Second, 0)

	res := owners(live(s1), live(s1), live(s1)).expect(t)
	if res.Checked[CheckOwnerConv] != 1 || res.OwnerStates != 3 || res.OwnerCompared != 1 {
		t.Errorf("owner convergence checked %d keys, %d owner states, %d compared; want 1, 3 and 1", res.Checked[CheckOwnerConv], res.OwnerStates, res.OwnerCompared)
	}
	owners(live(s1), &KeyState{}, live(s1)).expect(t, CheckOwnerConv) // an owner holds nothing
	owners(live(s1), live(s2), live(s1)).expect(t, CheckOwnerConv)    // another version
	owners(live(s1), nil, live(s1)).expect(t)                         // node 2 is not an owner
	owners(live(s1), live(s1), &KeyState{}).expect(t)                 // the only owner in its region
	h = newHist()
	d := h.del(0, "a", 2*time.Second)
	owners(tomb(d), &KeyState{}, nil).expect(t) // nothing and a tombstone agree

	// A delete of another key of the same tombstone-ghost slot, newer than
	// the version: a full sync's lossy drop rule may have dropped it on
	// one owner. Excused and counted.
	other := "b"
	for i := 0; ghostSlot(other) != ghostSlot("a"); i++ {
		other = fmt.Sprint("b", i)
	}
	h = owners(live(s1), &KeyState{}, live(s1))
	od := h.del(1, other, 3*time.Second)
	h.in.Final.Keys = append(h.in.Final.Keys, other)
	for n := range h.in.Final.Dump {
		h.in.Final.Dump[n] = append(h.in.Final.Dump[n], *tomb(od))
		h.in.Final.OwnerDump[n] = append(h.in.Final.OwnerDump[n], tomb(od))
	}
	if res := h.expect(t); res.OwnerGhost != 1 {
		t.Errorf("%d keys excused by a ghost slot, want 1", res.OwnerGhost)
	}
}
