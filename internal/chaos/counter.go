package chaos

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The counter workload: every writer increments every counter key
// (INCR, INCRBY, DECR, DECRBY; deltas of both signs) at its own
// acknowledgement level, so the same counter is incremented in several
// regions at once. Counter keys are never set, deleted or expired, and
// nothing else writes them: the expected final value is the sum of the
// increments that took effect, with no reset whose version would decide
// which of them count. The check (checker.counters) bounds that sum by
// what the history says of each increment.

// maxCounterKeys bounds Config.CounterKeys.
const maxCounterKeys = 64

// maxCounterDelta bounds the size of one increment (1 to 10, either sign).
const maxCounterDelta = 10

// counterKeys names n counter keys ("c<i>") whose tombstone-ghost slots
// are none of avoid's (the keys the workload deletes or lets expire): a
// full sync's lossy drop rule then has no delete of another key that it
// could mistake for a reset of a counter.
func counterKeys(n int, avoid []string) []string { return workloadKeys("c", n, avoid) }

// workloadKeys names n keys ("<prefix><i>") whose tombstone-ghost slots are
// none of avoid's.
func workloadKeys(prefix string, n int, avoid []string) []string {
	slots := make(map[uint64]bool, len(avoid))
	for _, k := range avoid {
		slots[ghostSlot(k)] = true
	}
	var out []string
	for i := 0; len(out) < n; i++ { // avoid holds far fewer than ghostSlots keys
		if k := fmt.Sprintf("%s%d", prefix, i); !slots[ghostSlot(k)] {
			out = append(out, k)
		}
	}
	return out
}

// incr increments counter number i by a random delta of either sign,
// with the command that fits it. The deltas of counter i lean to one sign
// (4 in 5 positive for an even i, negative for an odd one): an increment
// of unknown outcome widens the allowed range only on its own sign's side,
// so the other side stays close to the sum that must count, and a counter
// that drops increments (as a last-writer-wins one does) leaves it.
func (w *writer) incr(i int, ack string) bool {
	key := w.h.counters[i]
	op := w.newOp(KindIncr, key, ack)
	d := int64(1 + w.rng.IntN(maxCounterDelta))
	if (w.rng.IntN(5) == 0) == (i%2 == 0) {
		d = -d
	}
	op.Delta = d
	var args []any
	switch {
	case d == 1:
		args = []any{"INCR", key}
	case d == -1:
		args = []any{"DECR", key}
	case d < 0 && w.rng.IntN(2) == 0:
		args = []any{"DECRBY", key, -d}
	default:
		args = []any{"INCRBY", key, d}
	}
	n, err := w.do(op, ack, args...)
	if err == nil {
		op.Value = strconv.FormatInt(n, 10)
	}
	w.ops = append(w.ops, *op)
	return replied(op)
}

// CounterState is what a node holds of a counter key: its value, if any.
type CounterState struct {
	Value string `json:"value,omitempty"`
	Found bool   `json:"found,omitempty"`
}

// dumpCounters reads every counter key on every node.
func (h *harness) dumpCounters(ctx context.Context, clients []*redis.Client, keys []string) ([][]CounterState, []string) {
	if len(keys) == 0 {
		return nil, nil
	}
	out := make([][]CounterState, len(clients))
	var errs []string
	for i, c := range clients {
		out[i] = make([]CounterState, len(keys))
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		vals, err := c.MGet(dctx, keys...).Result()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("node %d: counters: %v", i+1, err))
			continue
		}
		for k, v := range vals {
			if s, ok := v.(string); ok {
				out[i][k] = CounterState{Value: s, Found: true}
			}
		}
	}
	return out, errs
}

// counterDivergent counts the counter keys whose value differs between two
// ample-memory nodes (a small region may have evicted a counter and hold
// part of it since: it is not waited for).
func (h *harness) counterDivergent(dump [][]CounterState) int {
	return divergentKeys(h, dump, len(h.counters), func(a, b CounterState) bool { return a == b })
}

// divergentKeys counts the keys (of n, indexing dump's rows) that two
// ample-memory nodes hold differently.
func divergentKeys[T fmt.Stringer](h *harness, dump [][]T, n int, equal func(a, b T) bool) int {
	small := h.cfg.smallRegion()
	ample := func(node int) bool { return h.cfg.regionOf(node) != small }
	d := 0
	for k := range n {
		if divergence(dump, k, ample, equal) != "" {
			d++
		}
	}
	return d
}

// divergence describes how the ample nodes disagree on key index k, or "".
func divergence[T fmt.Stringer](dump [][]T, k int, ample func(int) bool, equal func(a, b T) bool) string {
	first := -1
	for n := range dump {
		if !ample(n) || k >= len(dump[n]) {
			continue
		}
		if first < 0 {
			first = n
			continue
		}
		if a, b := dump[first][k], dump[n][k]; !equal(a, b) {
			return fmt.Sprintf("node %d holds %s, node %d holds %s", first+1, a, n+1, b)
		}
	}
	return ""
}

func (s CounterState) String() string {
	if !s.Found {
		return "nothing"
	}
	return strconv.Quote(s.Value)
}

// CounterFigures is what the counter check examined.
type CounterFigures struct {
	Keys  int `json:"keys"`
	Incrs int `json:"incrs"`
	// Acked increments were acknowledged (or applied at their node and
	// refused a Quorum: -TIMEOUT); of those, Durable must count, and
	// MaybeLost may be lost: a Local one whose process was stopped
	// before the final phase, a Quorum one after which a majority of
	// regions was in a loss window at once (the rules of I4, durable),
	// unless a later durable increment of its process pins it.
	Acked     int `json:"acked"`
	Durable   int `json:"durable"`
	MaybeLost int `json:"maybe_lost"`
	// Pinned counts the Durable increments that are so only because a
	// later durable increment of the same process counts (counterPins).
	Pinned int `json:"pinned"`
	// Unknown got no reply: it may or may not count. Failed got an error
	// reply or was never sent: it must not count.
	Unknown int `json:"unknown"`
	Failed  int `json:"failed"`
	// Checked counts the (ample node, key) values checked; Small the
	// values of small-region nodes, not checked (they may have evicted
	// a counter, then received part of it again).
	Checked int `json:"checked"`
	Small   int `json:"small"`
	// Exact counts the keys without an uncertain increment (maybe lost or
	// unknown): their value is fixed exactly by the history.
	Exact   int          `json:"exact"`
	PerKey  []CounterKey `json:"per_key,omitempty"`
	Outside int          `json:"outside"` // (node, key) values outside their range
}

// CounterKey is one counter's expected range and final values.
type CounterKey struct {
	Key string `json:"key"`
	// Sure is the sum of the increments that must count; the value must
	// lie in [Lo, Hi] = [Sure + the negative uncertain ones, Sure + the
	// positive uncertain ones].
	Sure int64 `json:"sure"`
	Lo   int64 `json:"lo"`
	Hi   int64 `json:"hi"`
	// Every is the value if every uncertain increment counted: a
	// counter that loses only what a killed process had not sent yet
	// ends close to it (reported, not checked).
	Every  int64    `json:"every"`
	Values []string `json:"values"` // per node: the value, "-" for none
}

// counters checks every counter's final value on every ample node against
// the range the history allows: each increment counts (acknowledged and
// durable), may count (acknowledged but not durable, or of unknown
// outcome) or must not (failed). Deltas have both signs, so the
// uncertain ones widen the range each way by their own sign's sum.
func (c *checker) counters() {
	f := c.in.Final
	if f == nil || len(f.CounterKeys) == 0 {
		return
	}
	cf := &c.res.Counters
	cf.Keys = len(f.CounterKeys)
	for k, key := range f.CounterKeys {
		ck := CounterKey{Key: key}
		uncertain := 0
		pins := c.counterPins(key)
		for _, op := range c.byKey[key] {
			if op.Kind != KindIncr {
				continue
			}
			cf.Incrs++
			switch op.Status {
			case StatusOK, StatusNotAcked:
				cf.Acked++
				if must, pinned := c.mustCount(op, pins); must {
					cf.Durable++
					if pinned {
						cf.Pinned++
					}
					ck.Sure += op.Delta
					continue
				}
				cf.MaybeLost++
			case StatusUnknown:
				cf.Unknown++
			default:
				cf.Failed++
				continue
			}
			uncertain++
			if op.Delta < 0 {
				ck.Lo += op.Delta
			} else {
				ck.Hi += op.Delta
			}
		}
		ck.Every = ck.Lo + ck.Hi + ck.Sure
		ck.Lo += ck.Sure
		ck.Hi += ck.Sure
		if uncertain == 0 {
			cf.Exact++
		}
		var bad []string // the ample nodes whose value is outside [Lo, Hi]
		badNode := 0
		for n := range f.Counters {
			if k >= len(f.Counters[n]) {
				ck.Values = append(ck.Values, "?")
				continue
			}
			st := f.Counters[n][k]
			val := "-"
			if st.Found {
				val = st.Value
			}
			ck.Values = append(ck.Values, val)
			if c.small(n) {
				cf.Small++
				continue
			}
			cf.Checked++
			c.res.Checked[CheckCounter]++
			v := int64(0) // an absent counter reads as 0 (INCRBY starts there)
			var why string
			if st.Found {
				var err error
				if v, err = strconv.ParseInt(st.Value, 10, 64); err != nil {
					why = fmt.Sprintf("node %d holds %q (not an integer)", n+1, st.Value)
				}
			}
			switch {
			case why != "":
			case v < ck.Lo:
				why = fmt.Sprintf("node %d holds %d (%d below)", n+1, v, ck.Lo-v)
			case v > ck.Hi:
				why = fmt.Sprintf("node %d holds %d (%d above)", n+1, v, v-ck.Hi)
			default:
				continue
			}
			cf.Outside++
			if len(bad) == 0 {
				badNode = n + 1
			}
			bad = append(bad, why)
		}
		if len(bad) > 0 {
			c.fail(Violation{Check: CheckCounter, Key: key, Node: badNode,
				Detail: fmt.Sprintf("counter %s is outside [%d, %d], what the history allows (the increments that must count add up to %+d): %s%s",
					key, ck.Lo, ck.Hi, ck.Sure, strings.Join(bad, "; "), c.counterLine(key))})
		}
		c.res.Checked[CheckCounterConv]++
		if d := divergence(f.Counters, k, func(n int) bool { return !c.small(n) }, func(a, b CounterState) bool { return a == b }); d != "" {
			c.fail(Violation{Check: CheckCounterConv, Key: key, Detail: d})
		}
		if len(cf.PerKey) < maxCounterKeys {
			cf.PerKey = append(cf.PerKey, ck)
		}
	}
}

// procKey is one process of a node: its increments of a counter are one
// contribution (a slot), whose copies grow with it.
type procKey struct{ node, inc int }

// counterPins returns, per process of an ample node, when the latest of
// its increments of key that must count (durable) was invoked. A slot's
// sum and the version of its latest increment grow together, so a copy
// that holds an increment holds every earlier one of the slot: an
// increment the process had applied (acknowledged) before that one was
// even sent must count too, though the process was stopped since. (A
// small region's process may open a new slot after each eviction of the
// key, so its increments pin nothing.)
func (c *checker) counterPins(key string) map[procKey]int64 {
	pins := map[procKey]int64{}
	for _, op := range c.byKey[key] {
		if op.Kind != KindIncr || op.Status != StatusOK || op.Inc0 != op.Inc1 || c.small(op.Node) || !c.durable(op) {
			continue
		}
		if p := (procKey{op.Node, op.Inc0}); op.Invoke > pins[p] {
			pins[p] = op.Invoke
		}
	}
	return pins
}

// mustCount reports whether an applied increment must count: it is
// durable, or pinned: its process applied it before a durable one of the
// same slot was sent (counterPins).
func (c *checker) mustCount(op *Op, pins map[procKey]int64) (must, pinned bool) {
	if c.durable(op) {
		return true, false
	}
	if op.Inc0 == op.Inc1 && !c.small(op.Node) && op.Complete < pins[procKey{op.Node, op.Inc0}] {
		return true, true
	}
	return false, false
}

// counterLine summarises the increments of counter key by status and
// acknowledgement level.
func (c *checker) counterLine(key string) string {
	type agg struct{ n, sum int }
	m := map[string]*agg{}
	pins := c.counterPins(key)
	for _, op := range c.byKey[key] {
		if op.Kind != KindIncr {
			continue
		}
		lvl := "local"
		switch {
		case op.All:
			lvl = "all"
		case op.Quorum:
			lvl = "quorum"
		}
		what := op.Status
		if op.Status == StatusOK || op.Status == StatusNotAcked {
			switch must, pinned := c.mustCount(op, pins); {
			case pinned:
				what += "-pinned"
			case !must:
				what += "-maybe-lost"
			}
		}
		name := lvl + " " + what
		if m[name] == nil {
			m[name] = &agg{}
		}
		m[name].n++
		m[name].sum += int(op.Delta)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d (sum %+d)", n, m[n].n, m[n].sum))
	}
	return "; increments: " + strings.Join(parts, ", ")
}
