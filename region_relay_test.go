package geocache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
)

// A write of another region crosses into a region of several nodes once:
// whole to its slot's primary there, which relays it to the other nodes
// that keep it, while the origin sends those a stand-in (version and slot)
// and the others a skip. With slot-owned storage (two copies of three)
// that is one stand-in and one skip per write; with full copies, two
// stand-ins. ALL writes are acknowledged by the region (a relayed write
// counts once relayed), every node holds what it keeps, and when the
// region loses a node the survivors relay under the new map.
func TestRemoteWritesCrossIntoARegionOnce(t *testing.T) {
	for _, slotsOnly := range []bool{true, false} {
		t.Run(map[bool]string{true: "slot-owned", false: "full copies"}[slotsOnly], func(t *testing.T) {
			remoteWritesCrossOnce(t, slotsOnly)
		})
	}
}

func remoteWritesCrossOnce(t *testing.T, slotsOnly bool) {
	addrs, ls := freeAddrs(t, 4)
	eu := make([]*Node, 3)
	for i := range eu {
		var join []string
		if i > 0 {
			join = []string{eu[0].members.Addr()}
		}
		n, err := Open(Config{Region: "eu", NodeID: uint32(i + 1), PeerAddr: addrs[i], Listener: ls[i], PeerTimeout: time.Second,
			Gossip: &GossipConfig{Addr: "127.0.0.1:0", Join: join, SlotsOnly: slotsOnly, ClientAddr: fmt.Sprint("127.0.0.1:", 6394+i)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		eu[i] = n
	}
	if slotsOnly {
		settled(t, "three members, each keeping its own slots", eu...)
	} else {
		for _, n := range eu {
			testkit.Eventually(t, "three members serving", func() bool {
				m, _ := n.SlotMap()
				return m != nil && len(m.Members()) == 3 && allServing(m) && len(n.repl.Peers()) == 2
			})
		}
	}
	cfg := MultiRegion("us", 9, addrs[3], addrs[:3]...)
	cfg.Listener, cfg.PeerTimeout = ls[3], time.Second
	us, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })
	testkit.Eventually(t, "us to link to the three eu nodes", func() bool {
		up := 0
		for _, l := range us.Stats().Peers {
			if l.Connected && l.Region == "eu" && l.Protocol >= 12 {
				up++
			}
		}
		return up == 3
	})

	const keys = 600
	ctx := context.Background()
	write := func(value string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := us.Set(wctx, userKey(i), []byte(value), WithAck(All))
			cancel()
			if err != nil {
				t.Fatalf("ALL write of %s: %v", userKey(i), err)
			}
		}
	}
	// The first writes of each link carry the Keeps that name the slots
	// taken relayed: the counts start after them.
	write("v0", 0, keys)
	// Counted once every eu node acknowledged every write: an ALL write
	// returns once one owner in eu holds it, and a co-owner acknowledges
	// a write it takes relayed once relayed.
	totals := func(live ...*Node) (standIns, skipped, sent, applied, missed uint64) {
		testkit.Eventually(t, "eu to acknowledge every write", func() bool {
			for _, p := range us.Stats().Peers {
				if p.Connected && p.Lag > 0 {
					return false
				}
			}
			return true
		})
		for _, p := range us.Stats().Peers {
			standIns += p.StandIns
			skipped += p.Skipped
		}
		for _, n := range live {
			st := n.Stats()
			sent, applied, missed = sent+st.RelaysSent, applied+st.RelaysApplied, missed+st.RelaysMissed
		}
		return
	}
	s0, k0, r0, a0, m0 := totals(eu...)
	write("v1", 0, keys)
	s1, k1, r1, a1, m1 := totals(eu...)
	standIns, skips := uint64(keys), uint64(keys) // per write: a co-owner, and the third node
	if !slotsOnly {
		standIns, skips = 2*keys, 0 // per write: both other nodes keep it
	}
	if s1-s0 != standIns || k1-k0 != skips {
		t.Errorf("%d stand-ins and %d skips for %d writes; want %d and %d", s1-s0, k1-k0, keys, standIns, skips)
	}
	if r1-r0 != standIns || a1-a0 != standIns || m1 != m0 {
		t.Errorf("%d relays sent, %d applied, %d missed for %d writes; want %d, %d, 0", r1-r0, a1-a0, m1-m0, keys, standIns, standIns)
	}
	// An ALL write counts a region once an owner of its key there holds
	// it: the other owner may still be taking it from its relay.
	checkHeld := func(what, value string, live ...*Node) {
		t.Helper()
		if slotsOnly {
			holds(t, keys, what, live...)
		}
		for _, n := range live {
			m, _ := n.SlotMap()
			testkit.Eventually(t, what, func() bool {
				for i := range keys {
					if slotsOnly && !m.Owns(n.id, cluster.KeySlot(userKey(i))) {
						continue
					}
					if e, ok := n.store.Peek(userKey(i)); !ok || string(e.Value) != value {
						return false
					}
				}
				return true
			})
		}
	}
	checkHeld("every owner holds the remote writes", "v1", eu...)

	// A node goes: the survivors own every slot, each slot's new primary
	// relays to the other, and nothing is lost.
	if err := eu[2].Close(); err != nil {
		t.Fatal(err)
	}
	if slotsOnly {
		settled(t, "two members, warm again", eu[:2]...)
	} else {
		for _, n := range eu[:2] {
			testkit.Eventually(t, "two members", func() bool {
				m, _ := n.SlotMap()
				return m != nil && len(m.Members()) == 2
			})
		}
	}
	write("v2", 0, keys)
	checkHeld("the survivors hold the remote writes", "v2", eu[:2]...)
	_, _, r1, _, _ = totals(eu[:2]...)
	write("v3", 0, keys)
	if _, _, r2, _, _ := totals(eu[:2]...); r2 == r1 {
		t.Error("no write relayed in the region of two")
	}
}
