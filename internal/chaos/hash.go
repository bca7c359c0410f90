package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The hash workload: every writer writes and deletes fields of every hash
// key (HSET, HDEL) at its own acknowledgement level, so the same hash
// gets field writes in several regions at once, different fields and the
// same ones. Hash keys are never deleted, expired or set as a whole, and
// nothing else writes them. Half of the fields are only ever written
// (HSET), the other half written and deleted. After the heal every ample
// node must hold the same fields with the same values
// (I1-hash-convergence); every value a node holds must be one an HSET of
// that field wrote (hash-phantom); and a field never deleted that a
// durable HSET wrote (the rules of the other writes: a Local one whose
// process never stopped, a Quorum one with no majority lost since) must be
// on every ample node (hash-lost-field). A hash that does not merge field
// by field — a whole-hash last-writer-wins drops the fields the winning
// region had not seen — fails the last.

// maxHashKeys bounds Config.HashKeys.
const maxHashKeys = 64

// hashFields is how many fields (f0…) the writers share per hash key: few,
// so that regions write the same field at once too.
const hashFields = 6

// hashOp writes a random field of hash key number i, or deletes one (1 in
// 5) of the fields that may be deleted (f3…).
func (w *writer) hashOp(i int, ack string) bool {
	key := w.h.hashes[i]
	f := w.rng.IntN(hashFields)
	kind := KindHSet
	if w.rng.IntN(5) == 0 {
		kind = KindHDel
		f = hashFields/2 + f%(hashFields-hashFields/2)
	}
	field := "f" + strconv.Itoa(f)
	op := w.newOp(kind, key, ack)
	op.Field = field
	args := []any{"HDEL", key, field}
	if kind == KindHSet {
		op.Value = fmt.Sprintf("%s.%s|%d.%d", key, field, w.idx, w.seq)
		args = []any{"HSET", key, field, op.Value}
	}
	w.do(op, ack, args...)
	w.ops = append(w.ops, *op)
	return replied(op)
}

// HashState is what a node holds of a hash key at the end: its fields
// (nil: no key).
type HashState map[string]string

func (s HashState) String() string {
	if len(s) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for i, f := range slices.Sorted(maps.Keys(s)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", f, s[f])
	}
	return b.String()
}

// dumpHashes reads every hash key on every node (HGETALL).
func (h *harness) dumpHashes(ctx context.Context, clients []*redis.Client, keys []string) ([][]HashState, []string) {
	if len(keys) == 0 {
		return nil, nil
	}
	out := make([][]HashState, len(clients))
	var errs []string
	for i, c := range clients {
		out[i] = make([]HashState, len(keys))
		for k, key := range keys {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fields, err := c.HGetAll(dctx, key).Result()
			cancel()
			if err != nil {
				errs = append(errs, fmt.Sprintf("node %d: hash %s: %v", i+1, key, err))
				continue
			}
			out[i][k] = fields
		}
	}
	return out, errs
}

// hashDivergent counts the hash keys that two ample-memory nodes hold
// differently (a small region may have evicted a hash: not waited for).
func (h *harness) hashDivergent(dump [][]HashState) int {
	return divergentKeys(h, dump, len(h.hashes), hashEqual)
}

func hashEqual(a, b HashState) bool { return maps.Equal(a, b) }

// HashFigures is what the hash check examined.
type HashFigures struct {
	Keys   int `json:"keys"`
	HSets  int `json:"hsets"`  // HSETs issued
	HDels  int `json:"hdels"`  // HDELs issued
	Acked  int `json:"acked"`  // of both, answered (applied)
	Nodes  int `json:"nodes"`  // (node, key) states compared on ample nodes
	Fields int `json:"fields"` // fields held at the end on ample nodes, all checked against the history
}

// hashes checks the final hash states: the ample nodes agree, and every
// value any node holds was written by an HSET of its field (a write that
// failed with an error was never applied, but one of unknown outcome may
// have been).
func (c *checker) hashes() {
	f := c.in.Final
	if f == nil || len(f.HashKeys) == 0 {
		return
	}
	hf := &c.res.Hashes
	hf.Keys = len(f.HashKeys)
	ample := func(n int) bool { return !c.small(n) }
	for k, key := range f.HashKeys {
		written := map[string]bool{} // field + "\x00" + value
		deleted := map[string]bool{} // fields an HDEL may have deleted
		durable := map[string]*Op{}  // a durable HSET of each field
		for _, op := range c.byKey[key] {
			switch op.Kind {
			case KindHSet:
				hf.HSets++
				if op.Status != StatusFail {
					written[op.Field+"\x00"+op.Value] = true
				}
				if (op.Status == StatusOK || op.Status == StatusNotAcked) && c.durable(op) {
					durable[op.Field] = op
				}
			case KindHDel:
				hf.HDels++
				if op.Status != StatusFail {
					deleted[op.Field] = true
				}
			default:
				continue
			}
			if op.Status == StatusOK || op.Status == StatusNotAcked {
				hf.Acked++
			}
		}
		for n := range f.Hashes {
			if k >= len(f.Hashes[n]) {
				continue
			}
			if ample(n) {
				hf.Nodes++
				hf.Fields += len(f.Hashes[n][k])
				for _, field := range slices.Sorted(maps.Keys(durable)) {
					if deleted[field] {
						continue
					}
					c.res.Checked[CheckHashLost]++
					if _, ok := f.Hashes[n][k][field]; !ok {
						c.fail(Violation{Check: CheckHashLost, Key: key, Node: n + 1, Ops: []int{durable[field].ID},
							Detail: fmt.Sprintf("node %d lacks field %s, never deleted, which a durable HSET wrote", n+1, field)})
					}
				}
			}
			for _, field := range slices.Sorted(maps.Keys(f.Hashes[n][k])) {
				c.res.Checked[CheckHashPhantom]++
				if v := f.Hashes[n][k][field]; !written[field+"\x00"+v] {
					c.fail(Violation{Check: CheckHashPhantom, Key: key, Node: n + 1,
						Detail: fmt.Sprintf("node %d holds field %s = %q, which no HSET of that field wrote", n+1, field, v)})
				}
			}
		}
		c.res.Checked[CheckHashConv]++
		if d := divergence(f.Hashes, k, ample, hashEqual); d != "" {
			c.fail(Violation{Check: CheckHashConv, Key: key, Detail: d})
		}
	}
}
