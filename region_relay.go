package geocache

import (
	"strings"

	"github.com/geocache/geocache/internal/cluster"
)

// Relays: a write of another region's origin crosses into this region
// once, to the primary of its slot, which hands it on to the other nodes
// that keep it here: the slot's other owners (GossipConfig.SlotsOnly), or
// every other serving member (full copies). Each of those names the slots
// it takes so to the origins of other regions as taken relayed
// (repl.Config.RelayedSlots); the primary relays to them
// (repl.Config.RelayTo). Both follow the node's slot map: while two nodes
// disagree on it for a moment, a write owed and not relayed in time is
// taken whole again (repl.Config.RelayWait).

// relayPlan is what this node hands on and takes relayed under one slot
// map. It is immutable once published.
type relayPlan struct {
	// to is 1 + the index in lists of the replication addresses of the
	// co-owners this node hands a slot's writes on to (0: none): this
	// node is the slot's primary.
	to    [cluster.Slots]uint16
	lists [][]string
	// relayed is the slots this node keeps and owns as a co-owner, whose
	// primary has a replication address, as a wire slot set (nil: none).
	relayed []byte
}

// newRelayPlan returns the plan of the node self under the map m: with
// slotsOnly, keeping the slots of keep (nil: every slot), it relays to and
// takes relayed from the slots' owners; with full copies, from every
// serving member (each keeps every key; one that is not serving yet takes
// every write whole).
func newRelayPlan(m *cluster.Map, self uint32, slotsOnly bool, keep *slotSet) *relayPlan {
	p := new(relayPlan)
	index := map[string]uint16{}
	any := false
	var serving []cluster.Member // with full copies: the nodes that take relays
	selfServing := false
	if !slotsOnly {
		for _, mb := range m.Members() {
			if mb.State == cluster.Serving {
				serving = append(serving, mb)
				selfServing = selfServing || mb.ID == self
			}
		}
	}
	relayed := wireSlots(func(slot int) bool {
		owners := m.Owners(slot)
		takers := owners // who keeps the slot: its owners, or every serving member
		if !slotsOnly {
			takers = serving
		}
		if len(owners) == 0 || len(takers) < 2 {
			return false
		}
		if owners[0].ID == self {
			var addrs []string
			for _, o := range takers {
				if o.ID != self && o.ReplAddr != "" {
					addrs = append(addrs, o.ReplAddr)
				}
			}
			if len(addrs) > 0 && len(p.lists) < 1<<16-1 {
				key := strings.Join(addrs, ",")
				j, ok := index[key]
				if !ok {
					p.lists = append(p.lists, addrs)
					j = uint16(len(p.lists))
					index[key] = j
				}
				p.to[slot] = j
			}
			return false
		}
		takes := selfServing
		if slotsOnly {
			takes = m.Owns(self, slot) && (keep == nil || keep.has(slot))
		}
		take := owners[0].ReplAddr != "" && takes
		any = any || take
		return take
	})
	if any {
		p.relayed = relayed
	}
	return p
}

// relayTo returns the replication addresses of the co-owners this node
// hands on the writes of slot received whole from another region's
// origins (repl.Config.RelayTo).
func (n *Node) relayTo(slot int) []string {
	p := n.relay.Load()
	if p == nil || slot < 0 || slot >= cluster.Slots || p.to[slot] == 0 {
		return nil
	}
	return p.lists[p.to[slot]-1]
}

// relayedSlots returns the slots this node takes relayed from the primary
// of each in its region (repl.Config.RelayedSlots): the same slice while
// the map is the same.
func (n *Node) relayedSlots() []byte {
	if p := n.relay.Load(); p != nil {
		return p.relayed
	}
	return nil
}
