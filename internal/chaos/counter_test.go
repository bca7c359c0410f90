package chaos

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Synthetic counter histories: the counter check must pass the values the
// history allows and fail the others.

// incr appends an increment of key by d on node n, with status st.
func (h *hist) incr(n int, key string, d int64, start time.Duration, st string) *Op {
	o := h.op(n, KindIncr, key, start, start+time.Millisecond)
	o.Delta, o.Status = d, st
	return o
}

// counters sets the final counter values (nil: nothing), after final.
func (h *hist) counters(vals map[string][3]*int64) {
	f := h.in.Final
	for k := range vals {
		f.CounterKeys = append(f.CounterKeys, k)
	}
	slices.Sort(f.CounterKeys)
	f.Counters = make([][]CounterState, 3)
	for n := range 3 {
		for _, k := range f.CounterKeys {
			st := CounterState{}
			if v := vals[k][n]; v != nil {
				st = CounterState{Value: strconv.FormatInt(*v, 10), Found: true}
			}
			f.Counters[n] = append(f.Counters[n], st)
		}
	}
}

// all3 is the same value on the three nodes.
func all3(v int64) [3]*int64 { return [3]*int64{&v, &v, &v} }

// counterHist is three regions incrementing c at once, every increment
// acknowledged: +5 and -2 on node 1, +3 on node 2 (Quorum), +7 on node 3
// (All); they must add up to 13.
func counterHist() *hist {
	h := newHist()
	h.incr(0, "c", 5, time.Second, StatusOK)
	h.incr(1, "c", 3, time.Second, StatusOK).Quorum = true
	a := h.incr(2, "c", 7, time.Second, StatusOK)
	a.Quorum, a.All = true, true
	h.incr(0, "c", -2, 2*time.Second, StatusOK)
	h.final(nil)
	return h
}

func TestCheckCounterSum(t *testing.T) {
	h := counterHist()
	h.counters(map[string][3]*int64{"c": all3(13)})
	res := h.expect(t)
	cf := res.Counters
	if cf.Keys != 1 || cf.Incrs != 4 || cf.Acked != 4 || cf.Durable != 4 || cf.Checked != 3 || cf.Exact != 1 || res.Checked[CheckCounter] != 3 {
		t.Errorf("counter figures %+v, checked %v", cf, res.Checked)
	}
	if k := cf.PerKey[0]; k.Sure != 13 || k.Lo != 13 || k.Hi != 13 || !slices.Equal(k.Values, []string{"13", "13", "13"}) {
		t.Errorf("per key %+v", k)
	}

	for _, tt := range []struct {
		name string
		vals [3]*int64
		want []string
	}{
		// last writer wins: node 3's +7 overwrote the others
		{"an acknowledged increment missing everywhere", all3(8), []string{CheckCounter}},
		{"one increment too many", all3(16), []string{CheckCounter}},
		{"one node behind", [3]*int64{ptr(13), ptr(13), ptr(6)}, []string{CheckCounter, CheckCounterConv}},
		{"nothing anywhere", [3]*int64{}, []string{CheckCounter}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := counterHist()
			h.counters(map[string][3]*int64{"c": tt.vals})
			res := h.expect(t, tt.want...)
			if len(res.Violations) != len(tt.want) {
				t.Errorf("%d violations, want one per check (one per key):\n%s", len(res.Violations), describe(res))
			}
		})
	}

	h = counterHist()
	h.final(nil)
	h.in.Final.CounterKeys = []string{"c"}
	h.in.Final.Counters = [][]CounterState{{{Value: "13", Found: true}}, {{Value: "13", Found: true}}, {{Value: "13x", Found: true}}}
	h.expect(t, CheckCounter, CheckCounterConv)
}

func ptr(v int64) *int64 { return &v }

// Increments of unknown outcome may count or not, each on its own sign's
// side; failed ones must not.
func TestCheckCounterUnknown(t *testing.T) {
	mk := func() *hist {
		h := newHist()
		h.incr(0, "c", 10, time.Second, StatusOK)
		h.incr(1, "c", 4, time.Second, StatusUnknown)
		h.incr(2, "c", -3, time.Second, StatusUnknown).Late = true
		h.incr(2, "c", 6, 2*time.Second, StatusFail).Err = "TRYAGAIN clock"
		h.incr(1, "c", 2, 2*time.Second, StatusNotAcked).Quorum = true // applied on node 2, which never stopped
		h.final(nil)
		return h
	}
	for v, ok := range map[int64]bool{9: true, 12: true, 16: true, 8: false, 17: false, 18: false, 10: true} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			h := mk()
			h.counters(map[string][3]*int64{"c": all3(v)})
			want := []string{CheckCounter}
			if ok {
				want = nil
			}
			res := h.expect(t, want...)
			if k := res.Counters.PerKey[0]; k.Sure != 12 || k.Lo != 9 || k.Hi != 16 || k.Every != 13 {
				t.Errorf("sure %d, range [%d, %d], every %d; want 12, [9, 16], 13", k.Sure, k.Lo, k.Hi, k.Every)
			}
			if cf := res.Counters; cf.Unknown != 2 || cf.Failed != 1 || cf.Acked != 2 || cf.Exact != 0 {
				t.Errorf("figures %+v", cf)
			}
		})
	}
}

// A Local increment whose process was killed afterwards may be lost; a
// Quorum one of the same process may not, unless a majority of regions
// was in a loss window at once since. (A sum cannot tell which increment
// is missing: 12, the Quorum +3 lost and the Local +7 kept, passes.)
func TestCheckCounterKilledOrigin(t *testing.T) {
	mk := func() *hist {
		h := newHist()
		h.incr(0, "c", 5, time.Second, StatusOK)
		h.incr(1, "c", 3, time.Second, StatusOK).Quorum = true
		h.incr(1, "c", 7, 1500*time.Millisecond, StatusOK) // after the Quorum +3
		h.in.Nodes[1].Incs[0].Stop, h.in.Nodes[1].Incs[0].How = at(2*time.Second), "kill"
		h.in.Nodes[1].Incs = append(h.in.Nodes[1].Incs, incarnation{Start: at(3 * time.Second)})
		h.final(nil)
		return h
	}
	for _, tt := range []struct {
		v    int64
		want []string
	}{{15, nil}, {8, nil}, {12, nil}, {7, []string{CheckCounter}}, {16, []string{CheckCounter}}} {
		h := mk()
		h.counters(map[string][3]*int64{"c": all3(tt.v)})
		res := h.expect(t, tt.want...)
		if cf := res.Counters; cf.MaybeLost != 1 || cf.Durable != 2 || cf.Pinned != 0 {
			t.Errorf("value %d: figures %+v, want 1 maybe lost (the Local +7), 2 durable", tt.v, cf)
		}
	}

	// A second region lost a process at once: the Quorum +3 may be lost too.
	h := mk()
	h.in.Nodes[2].Incs[0].Stop, h.in.Nodes[2].Incs[0].How = at(2500*time.Millisecond), "kill"
	h.in.Nodes[2].Incs = append(h.in.Nodes[2].Incs, incarnation{Start: at(3500 * time.Millisecond)})
	h.counters(map[string][3]*int64{"c": all3(5)})
	if res := h.expect(t); res.Counters.MaybeLost != 2 {
		t.Errorf("figures %+v, want 2 maybe lost", res.Counters)
	}

	// The Local +7 was acknowledged before the Quorum +3 was sent: the
	// copy of the process's slot that holds the +3 holds the +7.
	for _, tt := range []struct {
		v    int64
		want []string
	}{{15, nil}, {8, []string{CheckCounter}}, {12, []string{CheckCounter}}} {
		h := mk()
		h.in.Ops[2].Invoke, h.in.Ops[2].Complete = at(500*time.Millisecond), at(501*time.Millisecond)
		h.counters(map[string][3]*int64{"c": all3(tt.v)})
		res := h.expect(t, tt.want...)
		if cf := res.Counters; cf.MaybeLost != 0 || cf.Durable != 3 || cf.Pinned != 1 {
			t.Errorf("pinned, value %d: figures %+v, want 3 durable, 1 of them pinned", tt.v, cf)
		}
	}
	// ... not if it overlapped the +3, nor if the +3 may be lost itself.
	h = mk()
	h.in.Ops[2].Invoke, h.in.Ops[2].Complete = at(900*time.Millisecond), at(1100*time.Millisecond)
	h.counters(map[string][3]*int64{"c": all3(8)})
	h.expect(t)
	h = mk()
	h.in.Ops[2].Invoke, h.in.Ops[2].Complete = at(500*time.Millisecond), at(501*time.Millisecond)
	h.in.Nodes[2].Incs[0].Stop, h.in.Nodes[2].Incs[0].How = at(2500*time.Millisecond), "kill"
	h.in.Nodes[2].Incs = append(h.in.Nodes[2].Incs, incarnation{Start: at(3500 * time.Millisecond)})
	h.counters(map[string][3]*int64{"c": all3(5)})
	h.expect(t)
}

// A small region may have evicted a counter and received part of it
// since: its values are not checked, and its Local increments may be lost.
func TestCheckCounterSmallRegion(t *testing.T) {
	h := newHist()
	h.in.SmallRegions = []int{2}
	h.incr(0, "c", 5, time.Second, StatusOK)
	h.incr(2, "c", 4, time.Second, StatusOK) // Local, on a small node: may be lost
	h.final(nil)
	h.counters(map[string][3]*int64{"c": {ptr(9), ptr(9), ptr(4)}})
	res := h.expect(t)
	if cf := res.Counters; cf.Checked != 2 || cf.Small != 1 || cf.MaybeLost != 1 {
		t.Errorf("figures %+v", cf)
	}
	h.in.Final.Counters[1][0].Value = "3"
	h.expect(t, CheckCounter, CheckCounterConv)

	// A small node may open a new slot after each eviction: a durable
	// increment pins none of its earlier ones (the +4 may be lost with an
	// eviction, the Quorum +1 not).
	h = newHist()
	h.in.SmallRegions = []int{2}
	h.incr(0, "c", 5, time.Second, StatusOK)
	h.incr(2, "c", 4, time.Second, StatusOK)
	h.incr(2, "c", 1, 2*time.Second, StatusOK).Quorum = true
	h.final(nil)
	h.counters(map[string][3]*int64{"c": {ptr(6), ptr(6), nil}})
	if res := h.expect(t); res.Counters.Pinned != 0 {
		t.Errorf("figures %+v, want nothing pinned", res.Counters)
	}
}

// The counter keys avoid the ghost slots of the keys the workload deletes.
func TestCounterKeysAvoidGhostSlots(t *testing.T) {
	var clash string
	for i := 0; clash == ""; i++ {
		if k := ownKey(i/16, i%16); ghostSlot(k) == ghostSlot("c1") {
			clash = k
		}
	}
	got := counterKeys(3, []string{clash, "s0"})
	if len(got) != 3 || slices.Contains(got, "c1") || got[0] != "c0" {
		t.Errorf("counterKeys with %s (slot of c1): %v", clash, got)
	}
	for _, k := range got {
		if ghostSlot(k) == ghostSlot(clash) || ghostSlot(k) == ghostSlot("s0") {
			t.Errorf("%s shares a ghost slot", k)
		}
	}
}

func TestIncrFormat(t *testing.T) {
	o := Op{ID: 3, Client: 1, Node: 0, Kind: KindIncr, Key: "c0", Delta: -4, Value: "17", Invoke: t0, Complete: t0 + ms, Status: StatusOK}
	if got, want := o.Format(t0), `#3 c1 n1/0 L incr    c0 -4 -> 17 [0.000, 0.001]s ok`; got != want {
		t.Errorf("Format: %q, want %q", got, want)
	}
}
