package chaos

import (
	"fmt"
	"time"
)

// ghostSlots is the size of the tombstone-ghost table a node sends with a
// full sync (store.DefaultGhostSlots); ghostSlot is the slot of a key in
// it (FNV-1a, as store.GhostCovers; TestGhostSlotMatchesStore pins the
// two together).
const ghostSlots = 1 << 16

func ghostSlot(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h & (ghostSlots - 1)
}

// refillExpiryMargin: a key whose live entry expires within this long
// after a node's final dump (on that node's clock) may be missing there.
const refillExpiryMargin = 2 * time.Second

// refill: after heal and convergence, a node of an ample-memory region
// that was restarted during the run (kill, skew, or restarted in the final
// phase) holds every key another ample-memory node holds live. A
// restarted node refills by full sync and takes every live entry some
// peer holds unless a delete or an expiry supersedes it: the only
// supersession it can learn of without the exact tombstone is the
// sender's tombstone-ghost table, which is lossy (65,536 slots), so a miss
// is excused when a delete or an expiring write of a key of the same slot
// (the key itself included) may carry an HLC at or above the entry's. A
// node FLUSHALLed after its last restart is skipped; a key expiring near
// the dump is excused. Small regions evict: they are neither checked nor
// used as holders, and only versions every node must receive (mustReach)
// are checked.
func (c *checker) refill() {
	f := c.in.Final
	c.lostProbes()
	ample := func(n int) bool { return !c.small(n) && n < len(f.Dump) && len(f.Dump[n]) == len(f.Keys) }
	for i, n := range c.in.Nodes {
		last := len(n.Incs) - 1
		if !ample(i) || last < 1 {
			continue
		}
		restarted := false
		for j := range last {
			restarted = restarted || c.stopped(i, j)
		}
		if !restarted {
			continue
		}
		since := n.Incs[last].Start
		flushed := false
		for _, ev := range c.in.Events {
			flushed = flushed || (ev.Kind == FaultFlush && ev.Node == i && ev.Start >= since)
		}
		if flushed {
			c.res.Refill.Skipped++
			continue
		}
		c.res.Refill.Nodes++
		off := int64(n.Incs[last].Offset)
		for k, key := range f.Keys {
			// the newest live entry another ample node holds
			var hv *Version
			holder := -1
			for j := range c.in.Nodes {
				if j == i || !ample(j) {
					continue
				}
				if st := f.Dump[j][k]; st.Ver != nil && !st.Ver.Deleted && (hv == nil || st.Ver.Compare(*hv) > 0) {
					hv, holder = st.Ver, j
				}
			}
			if hv == nil || !c.mustReach(*hv) {
				continue
			}
			c.res.Checked[CheckRefill]++
			if f.Dump[i][k].Ver != nil {
				c.res.Refill.Refilled++ // held (a different version is I1's business)
				continue
			}
			switch {
			case hv.ExpireAt >= 0 && hv.ExpireAt*ms <= f.DumpAt[i]+off+int64(refillExpiryMargin):
				c.res.Refill.Expiring++
			case c.ghostMayCover(key, *hv):
				c.res.Refill.Ghost++
			default:
				c.res.Refill.Missing++
				c.fail(Violation{Check: CheckRefill, Key: key, Node: i + 1,
					Detail: fmt.Sprintf("node %d, restarted at %.3fs, holds nothing of %s, which node %d holds live at %s; no delete or expiry of its ghost slot can cover it%s",
						i+1, float64(since-c.in.Start)/1e9, key, holder+1, hv, c.dumpLine(k))})
			}
		}
	}
}

// ghostMayCover reports whether a tombstone ghost of key's slot may
// cover v: a delete, or a write that set an expiry (the ghost of an
// expiry carries the expired entry's version), of a key of the same slot
// (key included) whose version may be at or above v.
func (c *checker) ghostMayCover(key string, v Version) bool {
	if c.bySlot == nil {
		c.bySlot = map[uint64][]*Op{}
		for i := range c.in.Ops {
			op := &c.in.Ops[i]
			if !op.mayApply() || (op.Kind != KindDel && op.Kind != KindPExpire && (op.Kind != KindSet || op.TTL <= 0)) {
				continue
			}
			s := ghostSlot(op.Key)
			c.bySlot[s] = append(c.bySlot[s], op)
		}
	}
	for _, op := range c.bySlot[ghostSlot(key)] {
		if w, ok := op.known(); ok {
			// A delete's tombstone carries its version, an expiry's its
			// expiry time.
			if w.Compare(v) >= 0 || w.ExpireAt > 0 && w.ExpireAt*int64(time.Millisecond) >= v.WallNS() {
				return true
			}
			continue
		}
		if op.Late || op.Complete+c.maxAbs+5*ms >= v.WallNS() {
			return true
		}
	}
	return false
}

// lostProbes: a visibility probe (a key written once, never deleted, with
// no expiry) acknowledged by an ample-memory node whose process ran until
// the final phase is held at the end by every ample-memory node: its
// origin keeps it and sends it to every node (stream or full sync), and
// nothing may supersede it but a tombstone ghost of its slot. This is
// where a node that takes another region's eviction ghosts for deletes
// shows: it drops keys nobody deleted, on restarted and running nodes
// alike.
func (c *checker) lostProbes() {
	f := c.in.Final
	for i := range c.in.Ops {
		op := &c.in.Ops[i]
		if op.Client >= 0 || op.Kind != KindSet || op.Status != StatusOK || op.Inc0 != op.Inc1 || c.small(op.Node) || c.stopped(op.Node, op.Inc0) {
			continue
		}
		k, ok := c.keyIdx[op.Key]
		if !ok {
			continue
		}
		// the probe's version is at least its invoke on the slowest clock
		lo := Version{HLC: uint64(max(0, op.Invoke-c.maxAbs-5*ms)/ms) << 16}
		for n := range c.in.Nodes {
			if c.small(n) || n >= len(f.Dump) || len(f.Dump[n]) != len(f.Keys) {
				continue
			}
			c.res.Checked[CheckLostProbe]++
			if f.Dump[n][k].Ver != nil {
				continue
			}
			if c.ghostMayCover(op.Key, lo) {
				c.res.Refill.ProbesExcused++
				continue
			}
			c.res.Refill.ProbesMissing++
			c.fail(Violation{Check: CheckLostProbe, Key: op.Key, Node: n + 1, Ops: []int{op.ID},
				Detail: fmt.Sprintf("node %d holds nothing of probe %s (op #%d on node %d, which never stopped), never deleted and without expiry%s", n+1, op.Key, op.ID, op.Node+1, c.dumpLine(k))})
		}
	}
}

// mustReach reports whether every node must end up with v once the
// cluster has converged: its origin is an ample-memory node whose process
// that wrote it ran until the final phase (v is newer than every stop of
// that node but the final one, by more than any clock offset). Such an
// origin still holds v (or what superseded it) and sends it to every node,
// by its stream or by a full sync. A version from a small region may be
// evicted before it is sent, and one from a process that was stopped may
// have reached only some regions: then only anti-entropy between the
// regions that hold it would bring it to the others, and convergence
// allows absence.
func (c *checker) mustReach(v Version) bool {
	o := int(v.Origin) - 1
	if o < 0 || o >= len(c.in.Nodes) || c.small(o) {
		return false
	}
	for j, inc := range c.in.Nodes[o].Incs {
		if c.stopped(o, j) && inc.Stop+c.maxAbs+5*ms >= v.WallNS() {
			return false
		}
	}
	return true
}

// waits records the WAIT replies, and fails one that claims more regions
// than there are others.
func (c *checker) waits() {
	for i := range c.in.Ops {
		op := &c.in.Ops[i]
		if !op.Waited {
			continue
		}
		w := &c.res.Wait
		w.Sent++
		if op.Wait < 0 {
			w.NoReply++
			continue
		}
		if w.Counts == nil {
			w.Counts = map[int]int{}
		}
		w.Counts[op.Wait]++
		c.res.Checked[CheckWait]++
		switch {
		case op.Wait > c.in.Regions-1:
			c.fail(Violation{Check: CheckWait, Key: op.Key, Node: op.Node + 1, Ops: []int{op.ID},
				Detail: fmt.Sprintf("WAIT after op #%d answered %d, but there are only %d other regions", op.ID, op.Wait, c.in.Regions-1)})
		case op.Wait == c.in.Regions-1:
			w.AllRegions++
		}
	}
}
