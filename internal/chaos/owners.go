package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// With slot-owned nodes (Config.SlotOwned) the final dump reads every key
// through every node, and a node forwards a read of another node's slot to
// that slot's owner: the dump compares regions, not the owners of a slot
// inside one. The owner dump reads each key from every node that owns it,
// without forwarding, and the owner convergence check (CheckOwnerConv)
// requires the owners of a key in a region to hold the same version.

// ownerExpiryMargin: a live entry whose expiry is within this long after
// a dump (plus the largest clock offset) may have expired on one owner
// and not yet on another; such a key is not judged.
const ownerExpiryMargin = 2 * time.Second

// redirectClients are admin clients whose connections are told GEOCACHE
// REDIRECT: a node answers them for its own slots only (-MOVED for the
// others), as it answers another node's forwarding.
func (h *harness) redirectClients() []*redis.Client {
	var cs []*redis.Client
	for _, nd := range h.cl.nodes {
		opt := newClient(nd.addr, "", 10*time.Second).Options()
		opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "GEOCACHE", "REDIRECT").Err()
		}
		cs = append(cs, redis.NewClient(opt))
	}
	return cs
}

// ownerDump reads every key's version and value on every node that owns
// it ([node][key]; nil where the node answered -MOVED: not an owner). An
// -ASK (the owner is still filling the slot) or any other error is
// reported: the region has not settled.
func (h *harness) ownerDump(ctx context.Context, clients []*redis.Client, keys []string) ([][]*KeyState, []string) {
	out := make([][]*KeyState, len(clients))
	var errs []string
	for i, c := range clients {
		out[i] = make([]*KeyState, len(keys))
		vers, gets := readKeys(ctx, c, keys)
		failed := 0
		for k := range keys {
			raw, err := vers[k].Result()
			if err != nil && strings.HasPrefix(err.Error(), "MOVED ") {
				continue
			}
			v, err := parseVersion(raw, err)
			if err == nil {
				if _, err = gets[k].Result(); errors.Is(err, redis.Nil) {
					err = nil
				}
			}
			if err != nil {
				// -ASK (a cold slot) or a failure: this key is not known
				// here; the others still are. A few lines per node say it.
				if failed++; failed <= maxOwnerDumpErrors {
					errs = append(errs, fmt.Sprintf("node %d: %s, read on its own slots: %v", i+1, keys[k], err))
				}
				continue
			}
			st := keyState(v, gets[k])
			out[i][k] = &st
		}
		if failed > maxOwnerDumpErrors {
			errs = append(errs, fmt.Sprintf("node %d: %d more keys not read on its own slots", i+1, failed-maxOwnerDumpErrors))
		}
	}
	return out, errs
}

// maxOwnerDumpErrors bounds the lines the owner dump reports per node.
const maxOwnerDumpErrors = 5

// ownerDivergence describes how the owners of key index k disagree inside
// one region, or "". Owners agree when each holds a live entry of the same
// version and value, or none holds a live entry (nothing and a tombstone
// agree). Nodes skip says are not judged (they evict); a key with a live
// entry that expires by expiresBy (ns, on the run's clock) is not judged.
// An owner without a live entry where another holds version v disagrees
// unless absent(v) excuses it (nil: never).
//
// compared, if not nil, counts the regions where the key has several
// owners to compare.
func ownerDivergence(dump [][]*KeyState, regionOf func(int) int, skip func(int) bool, expiresBy int64, absent func(Version) bool, compared *int, k int) string {
	type holder struct {
		n  int
		st *KeyState
	}
	byRegion := map[int][]holder{}
	for n := range dump {
		if st := dump[n][k]; st != nil && !skip(n) {
			byRegion[regionOf(n)] = append(byRegion[regionOf(n)], holder{n, st})
		}
	}
	for _, hs := range byRegion {
		if compared != nil && len(hs) > 1 {
			*compared++
		}
		var live *holder
		for i := range hs {
			v := hs[i].st.Ver
			if v == nil || v.Deleted {
				continue
			}
			if v.ExpireAt >= 0 && v.ExpireAt*ms <= expiresBy {
				live = nil
				break
			}
			if live == nil {
				live = &hs[i]
			}
		}
		if live == nil {
			continue
		}
		for _, o := range hs {
			switch {
			case o.st.Ver == nil || o.st.Ver.Deleted:
				if absent != nil && absent(*live.st.Ver) {
					continue
				}
				return fmt.Sprintf("owner node %d holds %s, owner node %d %s", live.n+1, live.st.Ver, o.n+1, describeAbsent(o.st))
			case o.st.Ver.Compare(*live.st.Ver) != 0:
				return fmt.Sprintf("owner node %d holds %s, owner node %d holds %s", live.n+1, live.st.Ver, o.n+1, o.st.Ver)
			case o.st.HasValue && live.st.HasValue && o.st.Value != live.st.Value:
				return fmt.Sprintf("owner nodes %d and %d hold version %s with different values %q and %q", live.n+1, o.n+1, live.st.Ver, live.st.Value, o.st.Value)
			}
		}
	}
	return ""
}

func describeAbsent(st *KeyState) string {
	if st.Ver == nil {
		return "holds nothing"
	}
	return "holds the tombstone " + st.Ver.String()
}

// ownerDivergent returns the indexes of the keys whose owners hold
// different live versions: what the final phase waits to settle. An owner
// holding nothing where another holds the key is the checker's to judge
// (a full sync's lossy drop rule may have dropped it there, for good), as
// the dump through forwarding treats absence.
func (h *harness) ownerDivergent(dump [][]*KeyState, keys []string, at int64) []int {
	small := h.cfg.smallRegion()
	skip := func(n int) bool { return h.cfg.regionOf(n) == small }
	expiresBy := at + int64(h.cfg.MaxOffset+ownerExpiryMargin)
	var out []int
	for k := range keys {
		if ownerDivergence(dump, h.cfg.regionOf, skip, expiresBy, func(Version) bool { return true }, nil, k) != "" {
			out = append(out, k)
		}
	}
	return out
}

// ownerConvergence: after heal, with slot-owned nodes, the owners of a key
// in a region hold the same version of it (I1 inside a region). An owner
// holding nothing of a version another owner holds is excused, and
// counted, where a tombstone ghost of the key's slot may cover the version
// (a full sync's lossy drop rule may have dropped it: ghostMayCover).
func (c *checker) ownerConvergence() {
	f := c.in.Final
	if len(f.OwnerDump) == 0 {
		return
	}
	regionOf := func(n int) int { return c.in.Nodes[n].Region }
	expiresBy := f.OwnerDumpAt + c.maxAbs + int64(ownerExpiryMargin)
	for n := range f.OwnerDump {
		for _, st := range f.OwnerDump[n] {
			if st != nil {
				c.res.OwnerStates++
			}
		}
	}
	for k, key := range f.Keys {
		c.res.Checked[CheckOwnerConv]++
		excused := false
		ghost := func(v Version) bool {
			if c.ghostMayCover(key, v) {
				excused = true
				return true
			}
			return false
		}
		d := ownerDivergence(f.OwnerDump, regionOf, c.small, expiresBy, ghost, &c.res.OwnerCompared, k)
		if excused {
			c.res.OwnerGhost++
		}
		if d != "" {
			c.flagged[key] = true
			c.fail(Violation{Check: CheckOwnerConv, Key: key, Detail: d + c.dumpLine(k)})
		}
	}
}
