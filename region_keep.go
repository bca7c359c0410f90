package geocache

import (
	"context"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/wire"
)

// Slot-owned storage (GossipConfig.SlotsOnly): which slots this node keeps,
// forgetting the ones it stops keeping, and warming the ones it starts
// keeping.

// slotSet is a set of hash slots. It is immutable once published.
type slotSet [cluster.Slots / 64]uint64

func (s *slotSet) has(slot int) bool { return s[slot>>6]&(1<<(slot&63)) != 0 }

func (s *slotSet) set(slot int) { s[slot>>6] |= 1 << (slot & 63) }

func (s *slotSet) add(r cluster.SlotRange) {
	for slot := r.First; slot <= r.Last; slot++ {
		s[slot>>6] |= 1 << (slot & 63)
	}
}

// minus returns the slots of s not in o, and whether there are any.
func (s *slotSet) minus(o *slotSet) (*slotSet, bool) {
	d, any := new(slotSet), false
	for i := range s {
		d[i] = s[i] &^ o[i]
		any = any || d[i] != 0
	}
	return d, any
}

func (s *slotSet) count() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

func setOf(ranges []cluster.SlotRange) *slotSet {
	s := new(slotSet)
	for _, r := range ranges {
		s.add(r)
	}
	return s
}

// coldSlots are the slots this node keeps without holding what the region
// holds of them yet: gained since its last full syncs. It is immutable
// once published.
type coldSlots struct {
	// gen is the warming round that will make the slot warm (0: warm).
	gen [cluster.Slots]uint32
	// ask is 1 + the index in addrs of a co-owner that owned the slot
	// before this node gained it (0: none known), the client address a
	// redirecting server sends the slot's commands to meanwhile.
	ask   [cluster.Slots]uint16
	addrs []string
	// from is 1 + the index in replAddrs of a co-owner that owned the slot
	// before this node gained it (0: none known), asked for the slot's
	// entries (warmRound).
	from      [cluster.Slots]uint16
	replAddrs []string
	n         int // cold slots
}

// ColdSlot reports whether this node owns slot without holding what the
// region holds of it yet (GossipConfig.SlotsOnly: gained since the node's
// last full syncs, which are under way), and if so the client address of
// a co-owner that owned it before ("" if none is known). Reads of a cold
// slot here may miss entries the region holds; they never return a
// version older than one this node has applied.
func (n *Node) ColdSlot(slot int) (ask string, cold bool) {
	c := n.cold.Load()
	if c == nil || slot < 0 || slot >= cluster.Slots || c.gen[slot] == 0 {
		return "", false
	}
	if i := c.ask[slot]; i > 0 {
		return c.addrs[i-1], true
	}
	return "", true
}

// keeps reports whether this node keeps key's entries (repl.Config.Keeps).
func (n *Node) keeps(key string) bool {
	k := n.keep.Load()
	return k == nil || k.has(cluster.KeySlot(key))
}

// keepsSlot reports whether this node keeps the entries of slot
// (repl.Config.KeepsSlot).
func (n *Node) keepsSlot(slot int) bool {
	k := n.keep.Load()
	return k == nil || k.has(slot)
}

// keptSlots returns the slots this node keeps as a wire slot set, nil
// while it keeps every key (repl.Config.KeptSlots): the origins send the
// writes of the other slots' keys as skips. It runs before every
// acknowledgement, so it answers from keptMemo while the slots kept are
// the same: the same slice, which no one modifies.
func (n *Node) keptSlots() []byte {
	k := n.keep.Load()
	if k == nil {
		return nil
	}
	if m := n.keptMemo.Load(); m != nil && m.keep == k {
		return m.set
	}
	set := wireSlots(k.has)
	n.keptMemo.Store(&keptMemo{keep: k, set: set})
	return set
}

// keptMemo is an answer of keptSlots and the set it was computed from.
type keptMemo struct {
	keep *slotSet
	set  []byte
}

// updateKeep follows a new slot map m (the one before was prev, nil for the
// first) with the slots this node keeps: a serving node keeps the slots it
// owns, a joining one those it will own once serving, and a leaving one
// what it kept. Slots it stops keeping are forgotten, and slots it starts
// keeping are cold until the full syncs asked for complete (keepSlots does
// both). Called by applyMembers, under regionMu.
func (n *Node) updateKeep(members []cluster.Member, prev, m *cluster.Map) {
	i := slices.IndexFunc(members, func(mb cluster.Member) bool { return mb.ID == n.id })
	if n.regionLeft || i < 0 || members[i].State == cluster.Leaving {
		return
	}
	// Filling up before it serves (decided before the map it will own
	// once serving replaces members[i]'s state below).
	joining := members[i].State == cluster.Joining && !isClosed(n.repl.Synced())
	owning := m
	if members[i].State == cluster.Joining {
		members = slices.Clone(members)
		members[i].State = cluster.Serving
		pm, err := cluster.New(members, n.cfg.Gossip.Copies)
		if err != nil {
			n.cfg.Logger.Error("region: slots to keep not computed", "err", err)
			return
		}
		owning = pm
	}
	next := setOf(owning.RangesOf(n.id))
	old := n.keep.Load() // updateKeep runs under regionMu: nothing stores it meanwhile
	if old == nil {
		n.keep.Store(next)
		return // the first map: the node is empty, and its first syncs fill it
	}
	_, lost := old.minus(next)
	gained, any := next.minus(old)
	if joining {
		// A node filling up before it serves takes from its first syncs
		// only what no other member owns: the rest it takes from an owner
		// once those are done (cold, filled by a slot sync; wanted).
		for slot := range cluster.Slots {
			if next.has(slot) && !gained.has(slot) && !n.isCold(slot) && ownedByOther(m, n.id, slot) {
				gained.set(slot)
				any = true
			}
		}
	}
	if any {
		// Cold before kept: an ack must never vouch for a slot gained
		// and not filled yet (vouched reads both).
		n.markCold(gained, prev, m, joining)
	}
	n.keep.Store(next)
	if lost || any {
		select {
		case n.keepWake <- struct{}{}:
		default:
		}
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// isCold reports whether slot is cold here now.
func (n *Node) isCold(slot int) bool {
	c := n.cold.Load()
	return c != nil && c.gen[slot] != 0
}

// ownedByOther reports whether a member other than self owns slot in m.
func ownedByOther(m *cluster.Map, self uint32, slot int) bool {
	return slices.ContainsFunc(m.Owners(slot), func(o cluster.Member) bool { return o.ID != self })
}

// markCold publishes the slots of gained as cold, to be warmed by the next
// warming round, each with a co-owner in m that owned it in prev (with
// anyOwner, any other owner in m: a joining node's), and refreshes the
// co-owners of the slots still cold.
func (n *Node) markCold(gained *slotSet, prev, m *cluster.Map, anyOwner bool) {
	n.coldGen++
	c := new(coldSlots)
	if old := n.cold.Load(); old != nil {
		c.gen = old.gen
	}
	index, replIndex := map[string]uint16{}, map[string]uint16{}
	for slot := range cluster.Slots {
		if gained.has(slot) {
			c.gen[slot] = n.coldGen
		}
		if c.gen[slot] == 0 {
			continue
		}
		c.n++
		if prev == nil && !anyOwner {
			continue
		}
		owned := func(id uint32) bool { return anyOwner || prev.Owns(id, slot) }
		c.ask[slot] = pickOwner(m.Owners(slot), n.id, owned, func(o cluster.Member) string { return o.Addr }, index, &c.addrs)
		c.from[slot] = pickOwner(m.Owners(slot), n.id, owned, func(o cluster.Member) string { return o.ReplAddr }, replIndex, &c.replAddrs)
	}
	n.cold.Store(c)
	n.cfg.Logger.Info("region: slots gained; taking them from their owners", "gained", gained.count(), "cold", c.n, "joining", anyOwner)
}

// pickOwner returns 1 + the index in addrs of the address (addrOf) of the
// first of owners, other than self, that owned the slot before (owned),
// adding it to addrs and index if new; 0 if there is none.
func pickOwner(owners []cluster.Member, self uint32, owned func(id uint32) bool, addrOf func(cluster.Member) string, index map[string]uint16, addrs *[]string) uint16 {
	for _, o := range owners {
		addr := addrOf(o)
		if o.ID == self || addr == "" || !owned(o.ID) {
			continue
		}
		j, ok := index[addr]
		if !ok && len(*addrs) < 1<<16-1 {
			*addrs = append(*addrs, addr)
			j = uint16(len(*addrs))
			index[addr] = j
		}
		return j
	}
	return 0
}

// keepSlots runs while the node is open (GossipConfig.SlotsOnly): at each
// change of the slots kept, it forgets the entries of the slots no longer
// kept and, if slots were gained, fills them (warmRound, one round at a
// time) and marks them warm once that completes (or times out).
func (n *Node) keepSlots() {
	var (
		resynced <-chan struct{} // the warming round under way; nil: none
		warming  uint32          // the cold generation it warms
		warm     uint32          // the last generation warmed
	)
	startRound := func() {
		n.regionMu.Lock()
		gen := n.coldGen
		n.regionMu.Unlock()
		if gen != warm && resynced == nil {
			resynced, warming = n.warmRound(), gen
		}
	}
	for {
		select {
		case <-n.keepWake:
			// Forgotten at once, even while a round waits: a slot lost
			// and soon regained must not keep what it held before.
			n.forget()
			startRound()
		case <-resynced:
			warm, resynced = warming, nil
			n.regionMu.Lock()
			n.warmUpTo(warming)
			n.regionMu.Unlock()
			startRound() // slots gained meanwhile
		case <-n.regionStop:
			return
		}
	}
}

// warmRound fills the cold slots: from one co-owner of each that owned it
// before (repl.SlotSync, to the co-owners in parallel), or, if some cold
// slot has none, this node is still taking its first syncs, or a slot sync
// fails, by asking every peer for a full sync of them (repl.Resync). The
// channel returned is closed when the round is over.
func (n *Node) warmRound() <-chan struct{} {
	done := make(chan struct{})
	n.readyWait.Go(func() {
		defer close(done)
		// After the first syncs: they leave the cold slots out (wanted),
		// and the positions a slot sync names are theirs.
		select {
		case <-n.repl.Synced():
		case <-n.regionStop:
			return
		}
		// From every peer: the way without a plan, or after a failure.
		resync := func() {
			select {
			case <-n.repl.Resync():
			case <-n.regionStop:
			}
		}
		plan := n.slotSyncPlan()
		if plan == nil {
			resync()
			return
		}
		// Bounded as Resync's full syncs are (a co-owner may answer
		// slowly for ever); Close ends a slot sync under way sooner:
		// repl.Close closes its connection.
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.SyncTimeout)
		defer cancel()
		var wg sync.WaitGroup
		var failed atomic.Bool
		for addr, slots := range plan {
			wg.Go(func() {
				got, err := n.repl.SlotSync(ctx, addr, slots)
				if err != nil {
					failed.Store(true)
					n.cfg.Logger.Warn("region: gained slots not taken from their owner; asking every peer", "owner", addr, "err", err)
					return
				}
				n.cfg.Logger.Info("region: gained slots taken from their owner", "owner", addr, "entries", got.Entries, "dropped", got.Dropped)
			})
		}
		wg.Wait()
		select {
		case <-n.regionStop:
			return
		default:
		}
		if !failed.Load() {
			return
		}
		n.slotSyncFallbacks.Add(1)
		resync()
	})
	return done
}

// slotSyncPlan returns the cold slots by the replication address of the
// co-owner to take them from, or nil if they are to be taken from every
// peer: some cold slot has no co-owner that owned it before. (Called once
// the first syncs are done: positions taken before would not cover what
// this node never received.)
func (n *Node) slotSyncPlan() map[string][]byte {
	c := n.cold.Load()
	if c == nil {
		return nil
	}
	plan := map[string][]byte{}
	for slot := range cluster.Slots {
		if c.gen[slot] == 0 {
			continue
		}
		j := c.from[slot]
		if j == 0 {
			return nil
		}
		addr := c.replAddrs[j-1]
		set := plan[addr]
		if set == nil {
			set = make([]byte, wire.SlotSetLen)
			plan[addr] = set
		}
		set[slot>>3] |= 1 << (slot & 7)
	}
	if len(plan) == 0 {
		return nil
	}
	return plan
}

// forget removes the entries of the slots this node does not keep, judged
// by the slots kept at each entry (a slot regained during the walk keeps
// what arrived meanwhile).
func (n *Node) forget() {
	// The relays remembered of those slots first: a stand-in they settled
	// later would be acknowledged with the write forgotten.
	n.repl.ForgetRelayed(n.keepsSlot)
	gone := n.store.Forget(func(key string) bool {
		k := n.keep.Load()
		return k != nil && !k.has(cluster.KeySlot(key))
	})
	if gone > 0 {
		n.forgotten.Add(uint64(gone))
		n.cfg.Logger.Info("region: forgot the entries of slots no longer kept", "entries", gone)
	}
}

// wanted returns the slots a full sync this node asks for is to carry
// (repl.Config.Wanted): to fill what it came to keep, its cold slots (if
// any); otherwise every slot it keeps.
func (n *Node) wanted(fill bool) []byte {
	k := n.keep.Load()
	if k == nil {
		return nil // nothing decided yet: every key
	}
	c := n.cold.Load()
	onlyCold := fill && c != nil && c.n > 0
	// The first syncs leave the cold slots out: a warming round takes
	// them from their owners once those syncs are done (warmRound). Only
	// before then: a first sync asked later (an origin new to this node)
	// carries every slot kept.
	skipCold := !fill && c != nil && c.n > 0 && !isClosed(n.repl.Synced())
	return wireSlots(func(slot int) bool {
		return k.has(slot) && (!onlyCold || c.gen[slot] != 0) && (!skipCold || c.gen[slot] == 0)
	})
}

// vouched returns the slots whose entries this node holds all of (kept and
// not cold), as a wire slot set (repl.Config.Vouched): sent with each full
// sync, so that the receiver's drop rule judges only those keys, and to
// each origin before the acknowledgements it speaks for. It runs before
// every acknowledgement, so it answers from vouchMemo while the slots kept
// and cold are the same (each change stores new ones): the same slice,
// which no one modifies.
func (n *Node) vouched() []byte {
	k, c := n.keep.Load(), n.cold.Load()
	synced := false
	select {
	case <-n.repl.Synced():
		synced = true
	default: // still taking its first syncs: no key vouched for
	}
	if m := n.vouchMemo.Load(); m != nil && m.keep == k && m.cold == c && m.synced == synced {
		return m.set
	}
	set := wireSlots(func(slot int) bool { return synced && k != nil && k.has(slot) && (c == nil || c.gen[slot] == 0) })
	n.vouchMemo.Store(&vouchMemo{keep: k, cold: c, synced: synced, set: set})
	return set
}

// vouchMemo is an answer of vouched and what it was computed from.
type vouchMemo struct {
	keep   *slotSet
	cold   *coldSlots
	synced bool
	set    []byte
}

// wireSlots returns the slots include accepts as a wire slot set.
func wireSlots(include func(slot int) bool) []byte {
	set := make([]byte, wire.SlotSetLen)
	for slot := range cluster.Slots {
		if include(slot) {
			set[slot>>3] |= 1 << (slot & 7)
		}
	}
	return set
}

// warmUpTo marks warm the cold slots of warming rounds up to gen. Called
// under regionMu.
func (n *Node) warmUpTo(gen uint32) {
	old := n.cold.Load()
	if old == nil {
		return
	}
	c := *old
	c.n = 0
	for slot := range cluster.Slots {
		if c.gen[slot] != 0 && c.gen[slot] <= gen {
			c.gen[slot], c.ask[slot], c.from[slot] = 0, 0, 0
		}
		if c.gen[slot] != 0 {
			c.n++
		}
	}
	if c.n == 0 {
		n.cold.Store(nil)
	} else {
		n.cold.Store(&c)
	}
	n.cfg.Logger.Info("region: gained slots warm", "still_cold", c.n)
}
