package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// DefaultCopies is the number of owners of each slot when New is given 0.
const DefaultCopies = 2

// The slots are assigned in contiguous ranges of slotsPerRange slots, each
// range by rendezvous hashing on its own. doc.go says why; the figures
// behind the choice are in map_test.go (TestRangeCountChoice).
//
// rangeShift, primarySlack, the weight function and the choice of primary
// (assign) are part of the protocol: every node of a region must compute
// the same map, so changing any of them needs a new scheme number and a
// rolling-upgrade story. TestGolden pins them.
const (
	rangeShift    = 4 // log2 of slotsPerRange
	slotsPerRange = 1 << rangeShift
	numRanges     = Slots / slotsPerRange

	// scheme numbers the assignment rule; it is hashed into Version, so
	// nodes that assign differently never believe they agree.
	scheme = 1

	// primarySlack is how many more primaries (in ranges) than the least
	// loaded owner a range's owner may have and still stay primary of the
	// next range too; see assign.
	primarySlack = 2
)

// Errors returned by New.
var (
	ErrNoMembers   = errors.New("cluster: no members")
	ErrDuplicateID = errors.New("cluster: duplicate node id")
	ErrCopies      = errors.New("cluster: copies must not be negative")
)

// A Member is a live node of the region.
type Member struct {
	// ID is the node's id: stable across restarts and unique in the
	// region. It alone decides which slots the node owns.
	ID uint32
	// Name is the node's human name (--node); carried, not interpreted.
	Name string
	// Addr is the address Redis clients reach the node at (host:port):
	// the one CLUSTER SLOTS, SHARDS and NODES announce and -MOVED points to.
	Addr string
	// ReplAddr is the node's replication address; carried, not interpreted.
	ReplAddr string
	// State says whether the member takes slots: only Serving members own
	// any, unless none is serving (see New).
	State MemberState
}

// A MemberState is what a member announces of its part in the region.
type MemberState uint8

const (
	// Serving members own their share of the slots.
	Serving MemberState = iota
	// Joining members are filling up from the others (their first sync):
	// they own no slot yet, so that clients are not sent to a node that
	// would answer misses, and take their share once they hold what the
	// others held.
	Joining
	// Leaving members are shutting down: they own no slot, so that their
	// slots pass to the others while they still serve and replicate what
	// they hold.
	Leaving
)

// String returns the state's name as gossip announces it: "serving",
// "joining" or "leaving".
func (s MemberState) String() string {
	switch s {
	case Serving:
		return "serving"
	case Joining:
		return "joining"
	case Leaving:
		return "leaving"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// ParseMemberState returns the state String names.
func ParseMemberState(name string) (MemberState, bool) {
	for s := Serving; s <= Leaving; s++ {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}

// A SlotRange is the slots First to Last, both included.
type SlotRange struct {
	First, Last int
}

// Len returns the number of slots in r.
func (r SlotRange) Len() int { return r.Last - r.First + 1 }

// A Range is a run of adjacent slots with the same owners.
type Range struct {
	SlotRange
	// Owners are the slots' owners: the primary (the master in Redis's
	// view) first, then the others by weight. Shared with the Map: do not
	// modify.
	Owners []Member
}

// A Map says which members of a region own which slots. It is computed
// from the member set alone, so every node that sees the same members
// computes the same Map without talking to the others. A Map is immutable
// and safe for concurrent use; the slices it returns are shared with it
// and must not be modified.
type Map struct {
	members []Member // by ID
	owning  []int32  // indexes in members of the members that own slots
	copies  int      // owners per slot: min(requested copies, len(owning))
	ranges  []Range  // adjacent ranges with the same owners merged
	// rangeOf is, for each fixed range of slotsPerRange slots, the index
	// in ranges of the merged range that holds it.
	rangeOf [numRanges]uint16
	version uint64
}

// New computes the map of a region whose live members are members, each
// slot owned by copies of them (DefaultCopies if copies is 0; all of them
// if there are fewer). The order of members does not matter. New returns
// ErrNoMembers if members is empty, ErrDuplicateID if two members share an
// id, and ErrCopies if copies is negative.
//
// Each range of slots goes to the copies members with the highest weight
// hash(range, member id) (rendezvous hashing): a member that joins takes,
// in each range where it outweighs an owner, the place of the lightest
// one, and a member that leaves is replaced by the next in line, so a
// change of membership moves only the slots it must. Among a range's
// owners, the primary is chosen to spread primaries evenly (see assign).
//
// Only Serving members own slots; the others are listed (Members) and own
// nothing. A region with no serving member (every node starting at once)
// gives the slots to its joining members, and one whose members are all
// leaving to all of them, so that every slot always has an owner.
func New(members []Member, copies int) (*Map, error) {
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	if copies < 0 {
		return nil, fmt.Errorf("%w: %d", ErrCopies, copies)
	}
	if copies == 0 {
		copies = DefaultCopies
	}
	m := &Map{members: slices.Clone(members)}
	slices.SortFunc(m.members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < len(m.members); i++ {
		if m.members[i].ID == m.members[i-1].ID {
			return nil, fmt.Errorf("%w: %d", ErrDuplicateID, m.members[i].ID)
		}
	}
	for _, take := range []func(MemberState) bool{
		func(s MemberState) bool { return s == Serving },
		func(s MemberState) bool { return s != Leaving },
		func(MemberState) bool { return true },
	} {
		for i, mb := range m.members {
			if take(mb.State) {
				m.owning = append(m.owning, int32(i))
			}
		}
		if len(m.owning) > 0 {
			break
		}
	}
	m.copies = min(copies, len(m.owning))
	m.merge(m.assign())
	m.version = m.digest()
	return m, nil
}

// assign chooses the owners of each range: the copies members of highest
// weight (rendezvous hashing), and among them a primary. It returns, for
// each range r, the indexes in members of its owners, primary first, at
// [r*copies : (r+1)*copies].
//
// Which members own a range is pure rendezvous hashing, so only the slots
// that must move do. The primary is chosen among them greedily, range
// after range: the owner with the fewest primaries so far (the heavier on
// a tie), unless the previous range's primary is also an owner here and
// has at most primarySlack more, in which case it stays, so that adjacent
// ranges merge into fewer CLUSTER SLOTS entries. The others follow by
// weight. Plain rendezvous order would leave primaries, and with them the
// requests of Redis clients, as uneven as copies 1 leaves ownership; the
// greedy "best of copies choices" makes them nearly even (TestBalance).
// It costs no data: every owner holds the slot and accepts writes, so a
// primary that changes with the membership only sends clients to another
// owner.
func (m *Map) assign() []int32 {
	c := m.copies
	owners := make([]int32, numRanges*c)
	// best[:n] holds the n best (weight, member index) of the current
	// range, highest weight first; a short insertion sort is all it takes
	// for the usual copies of 1 to 3.
	type cand struct {
		w uint64
		i int32
	}
	best := make([]cand, c)
	primaries := make([]int, len(m.members))
	prevPrimary := int32(-1)
	for r := range numRanges {
		n := 0
		for _, i := range m.owning {
			w := weight(uint32(r), m.members[i].ID)
			if n == c && w <= best[c-1].w {
				continue
			}
			j := min(n, c-1) // where the newcomer starts from
			for j > 0 && best[j-1].w < w {
				best[j] = best[j-1]
				j--
			}
			best[j] = cand{w, i}
			n = min(n+1, c)
		}
		p := 0
		for k := 1; k < c; k++ {
			if primaries[best[k].i] < primaries[best[p].i] {
				p = k
			}
		}
		for k := range c {
			if best[k].i == prevPrimary && primaries[best[k].i] <= primaries[best[p].i]+primarySlack {
				p = k
			}
		}
		prevPrimary = best[p].i
		primaries[best[p].i]++
		own := owners[r*c : (r+1)*c]
		own[0] = best[p].i
		k := 1
		for q := range c {
			if q != p {
				own[k] = best[q].i
				k++
			}
		}
	}
	return owners
}

// weight is the rendezvous weight of a member for a range: SplitMix64's
// finalizer (Stafford's Mix13) of the pair packed into 64 bits. The mix is
// a bijection, so distinct (range, id) pairs never tie, and it avalanches
// fully, so a member's weights over the ranges are as good as independent
// of its id and of the other members' weights, even for ids 1, 2, 3.
func weight(r, id uint32) uint64 {
	z := uint64(id)<<32 | uint64(r)
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// merge builds ranges and rangeOf from the owners assign chose: adjacent
// ranges with the same owners, in the same order, become one. The owner
// lists of all merged ranges share one backing array, allocated once.
func (m *Map) merge(owners []int32) {
	c := m.copies
	n := 1
	for r := 1; r < numRanges; r++ {
		if !slices.Equal(owners[(r-1)*c:r*c], owners[r*c:(r+1)*c]) {
			n++
		}
	}
	m.ranges = make([]Range, 0, n)
	flat := make([]Member, n*c)
	for r := range numRanges {
		own := owners[r*c : (r+1)*c]
		if r > 0 && slices.Equal(owners[(r-1)*c:r*c], own) {
			m.ranges[len(m.ranges)-1].Last = (r+1)*slotsPerRange - 1
		} else {
			k := len(m.ranges)
			list := flat[k*c : (k+1)*c : (k+1)*c]
			for j, i := range own {
				list[j] = m.members[i]
			}
			m.ranges = append(m.ranges, Range{
				SlotRange: SlotRange{First: r * slotsPerRange, Last: (r+1)*slotsPerRange - 1},
				Owners:    list,
			})
		}
		m.rangeOf[r] = uint16(len(m.ranges) - 1)
	}
}

func sameIDs(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

// digest is FNV-1a over the scheme, copies and every member's fields in id
// order, each string preceded by its length.
func (m *Map) digest() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	word := func(v uint64) {
		for range 8 {
			h = (h ^ v&0xff) * prime
			v >>= 8
		}
	}
	str := func(s string) {
		word(uint64(len(s)))
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
	}
	word(scheme)
	word(uint64(m.copies))
	word(uint64(len(m.members)))
	for _, mb := range m.members {
		word(uint64(mb.ID))
		str(mb.Name)
		str(mb.Addr)
		str(mb.ReplAddr)
		word(uint64(mb.State))
	}
	return h
}

// Version is a 64-bit digest of everything the map was computed from: the
// assignment scheme, the effective copies and every member's id, name,
// addresses and state. Two nodes whose maps have the same Version agree on every
// owner and every address (up to a hash collision); it is not ordered.
func (m *Map) Version() uint64 { return m.version }

// Members returns the members, by id, those that own no slot (joining or
// leaving) included.
func (m *Map) Members() []Member { return m.members[:len(m.members):len(m.members)] }

// Member returns the member with the given id, and whether there is one.
func (m *Map) Member(id uint32) (Member, bool) {
	i, ok := slices.BinarySearchFunc(m.members, id, func(mb Member, id uint32) int { return cmp.Compare(mb.ID, id) })
	if !ok {
		return Member{}, false
	}
	return m.members[i], true
}

// Copies returns the number of owners of each slot: the copies New was
// given (or DefaultCopies), capped by the number of members.
func (m *Map) Copies() int { return m.copies }

// Owners returns the owners of slot, its primary first; slot must be in
// [0, Slots). It does not allocate.
func (m *Map) Owners(slot int) []Member {
	return m.ranges[m.rangeOf[slot>>rangeShift]].Owners
}

// Primary returns the first owner of slot: the master of the slot in the
// replies to Redis clients. Every owner accepts writes.
func (m *Map) Primary(slot int) Member {
	return m.ranges[m.rangeOf[slot>>rangeShift]].Owners[0]
}

// Owns reports whether the node with the given id owns slot.
func (m *Map) Owns(id uint32, slot int) bool {
	for _, o := range m.Owners(slot) {
		if o.ID == id {
			return true
		}
	}
	return false
}

// Ranges returns the whole keyspace as runs of adjacent slots with the
// same owners in the same order, by slot: what CLUSTER SLOTS lists.
func (m *Map) Ranges() []Range { return m.ranges[:len(m.ranges):len(m.ranges)] }

// RangesOf returns the slots the node with the given id owns (as any
// copy), as runs of adjacent slots, by slot; nil if it owns none.
func (m *Map) RangesOf(id uint32) []SlotRange {
	var out []SlotRange
	for _, rg := range m.ranges {
		if !containsID(rg.Owners, id) {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].Last+1 == rg.First {
			out[k].Last = rg.Last
			continue
		}
		out = append(out, rg.SlotRange)
	}
	return out
}

func containsID(ms []Member, id uint32) bool {
	for _, mb := range ms {
		if mb.ID == id {
			return true
		}
	}
	return false
}
