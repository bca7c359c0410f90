package geocache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/repl"
)

// GossipConfig makes a node one of several nodes of its region. The nodes
// find each other by gossip (hashicorp/memberlist), share the keyspace by
// Redis Cluster's hash slots (each slot owned by Copies of them, computed by
// every node from the live membership alone), and replicate to each other
// as regions do: by default every node of the region holds every key, so
// any node serves any key; with SlotsOnly each keeps only its own slots. A
// node that joins owns no slot until it holds what
// the others hold (until Synced), so cluster-aware clients are not sent to
// it while it would answer misses; a node that leaves (LeaveRegion, or
// Close) gives its slots up first. A node of a region that fails is
// declared dead by the others in about a second; its slots pass to their
// other owners and cluster-aware clients follow the new map (CLUSTER
// SLOTS, SHARDS, NODES).
type GossipConfig struct {
	// Addr is the host:port gossip listens on, UDP and TCP (port 0 picks a
	// free one). Required.
	Addr string
	// AdvertiseAddr is the host:port the other members reach this node's
	// gossip at. Default Addr.
	AdvertiseAddr string
	// Join lists gossip addresses of live members of the region; any one
	// answering is enough. Empty starts a region that others join.
	Join []string
	// Key (16, 24 or 32 bytes) encrypts and authenticates every gossip
	// message; members without it are not heard. Required unless every
	// gossip address is loopback or Insecure is set on the node.
	Key []byte
	// Copies is the number of nodes owning each slot. Default 2.
	Copies int
	// ClientAddr is the Redis address this node announces to
	// cluster-aware clients (CLUSTER SLOTS and friends).
	ClientAddr string
	// ReplAddr is the replication address this node announces to the
	// region. Default the listener's address (PeerAddr or Listener), which
	// must then not listen on every interface (Open refuses it: the others
	// would dial 0.0.0.0).
	ReplAddr string
	// ProbeInterval and ProbeTimeout tune failure detection (defaults
	// 200 ms and 100 ms: a dead member is declared in about a second).
	ProbeInterval, ProbeTimeout time.Duration
	// SlotsOnly makes this node keep only the entries of the slots it
	// owns, so that a region of N nodes holds about N/Copies times what
	// one node holds. Any node still serves any key: a read of a key of a
	// slot this node does not hold (Get, GetShared, Lookup, TTL,
	// Contains, Type, HGet, HGetAll) is answered by an owner, asked over
	// the replication port (a round trip inside the region; ErrUnavailable
	// if no owner answers), and a write of one is applied here and
	// replicated to the owners as any write. Cluster-aware Redis clients
	// (serve's --cluster-redirect), or an embedding that routes each key
	// by SlotMap and KeySlot, save that round trip; serve's
	// --cluster-forward forwards whole commands instead. Without it every
	// node keeps every key. A replicated write of a key of another node's
	// slot is not kept here; a local write of one is kept until the next
	// change of the slot map (and a read of that key merges it with the
	// owner's version). A node that loses slots forgets their entries; a
	// node that gains slots it did not keep takes them by a full sync
	// from every peer (Resync), and until that completes the slots are
	// cold (ColdSlot): reads of them here are answered by a co-owner that
	// holds them, and a redirecting or forwarding server sends their
	// commands to one. A joining node keeps the slots it will own once
	// serving.
	SlotsOnly bool
}

// startRegion joins the region's gossip and links to its members; repl
// is created and not started, so the members found by the join count
// toward Ready and Synced like configured peers. The node joins as
// Joining and announces itself Serving once Synced.
func (n *Node) startRegion(g *GossipConfig, replAddr string) error {
	self := cluster.Member{ID: n.id, Name: n.cfg.NodeName, Addr: g.ClientAddr, ReplAddr: replAddr, State: cluster.Joining}
	n.regionPeers = map[string]bool{}
	n.applyMembers([]cluster.Member{self})
	m, err := cluster.StartMembership(cluster.MembershipConfig{
		Cluster: n.cfg.Cluster, Region: n.cfg.Region, Self: self,
		BindAddr: g.Addr, AdvertiseAddr: g.AdvertiseAddr, Join: g.Join, SecretKey: g.Key,
		ProbeInterval: g.ProbeInterval, ProbeTimeout: g.ProbeTimeout,
		OnChange: n.applyMembers, Logger: n.cfg.Logger,
	})
	if err != nil {
		return err
	}
	n.members = m
	n.applyMembers(m.Members())
	if g.SlotsOnly {
		n.readyWait.Go(n.keepSlots)
	}
	n.readyWait.Go(func() {
		<-n.repl.Synced() // closed by repl.Close at the latest
		if g.SlotsOnly {
			// The slots taken from their owners after the first syncs
			// (warmRound) too: the others forget them once this node
			// serves.
			n.waitWarm()
		}
		// After LeaveRegion or Close this fails, as it should.
		if err := m.SetState(cluster.Serving, announceTimeout); err == nil {
			n.cfg.Logger.Info("region: synced; taking this node's share of the slots")
		} else if !errors.Is(err, cluster.ErrLeaving) && !errors.Is(err, cluster.ErrClosed) {
			n.cfg.Logger.Warn("region: serving state not announced in time; gossip spreads it", "err", err)
		}
	})
	return nil
}

// waitWarm waits until this node has no cold slot, Close, or SyncTimeout.
func (n *Node) waitWarm() {
	giveUp := time.NewTimer(n.cfg.SyncTimeout)
	defer giveUp.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for n.cold.Load() != nil {
		select {
		case <-poll.C:
		case <-giveUp.C:
			n.cfg.Logger.Warn("region: slots still cold after the sync timeout; serving all the same", "timeout", n.cfg.SyncTimeout)
			return
		case <-n.regionStop:
			return
		}
	}
}

// announceTimeout bounds the wait for a state announcement to be sent.
const announceTimeout = time.Second

// LeaveRegion announces that this node is leaving its region: the other
// members drop it from the slot map, so its slots pass to their other
// owners and cluster-aware clients that reload the map are sent there,
// while this node goes on serving and replicating. This node drops itself
// from its own map last, once the others have had time to hear of it
// (five gossip rounds after the announcement went out: 0.5 s with the
// default probe interval; they take one to three on a quiet network), so
// that it does not redirect a client to a node that would send it back.
// For a graceful stop call it first, then stop taking requests, Drain
// (every write made here reaches the others), and Close. It returns when
// this node's map no longer gives it slots, or when ctx ends. It does
// nothing without Config.Gossip; after it, the node never owns slots again
// (Close follows).
func (n *Node) LeaveRegion(ctx context.Context) error {
	if n.members == nil {
		return nil
	}
	timeout := announceTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	n.regionMu.Lock()
	n.regionLeavingFrom = n.members.State()
	n.regionMu.Unlock()
	if err := n.members.SetState(cluster.Leaving, timeout); errors.Is(err, cluster.ErrClosed) {
		return ErrClosed
	} else if err != nil {
		return err
	}
	probe := n.cfg.Gossip.ProbeInterval
	if probe == 0 {
		probe = cluster.DefaultProbeInterval
	}
	wait := time.NewTimer(5 * probe / 2) // memberlist gossips every half probe interval
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	n.regionMu.Lock()
	n.regionLeft = true
	n.regionMu.Unlock()
	n.applyMembers(n.members.Members())
	return nil
}

// applyMembers follows a change of the region's live members: the slot map
// is recomputed and the replication links to the members are added and
// removed to match. Calls are serialized by regionMu.
func (n *Node) applyMembers(members []cluster.Member) {
	n.regionMu.Lock()
	defer n.regionMu.Unlock()
	if !n.regionLeft {
		// This node announced its leave and the others are still hearing
		// of it: it keeps its state (and slots) meanwhile (LeaveRegion).
		for i, mb := range members {
			if mb.ID == n.id && mb.State == cluster.Leaving {
				members = slices.Clone(members)
				members[i].State = n.regionLeavingFrom
			}
		}
	}
	m, err := cluster.New(members, n.cfg.Gossip.Copies)
	if err != nil {
		n.cfg.Logger.Error("region: slot map not computed", "err", err)
		return
	}
	old := n.slots.Load()
	if old != nil && old.m.Version() == m.Version() {
		return
	}
	// The new map first: routing (CLUSTER SLOTS, failover) must not wait
	// for the links below, and RemovePeer waits for its link to stop.
	epoch := uint64(1)
	if old != nil {
		epoch = old.epoch + 1
	}
	if n.cfg.Gossip.SlotsOnly {
		// Before the map: a slot gained is cold (-ASK) from the moment
		// the map gives it to this node.
		var prev *cluster.Map
		if old != nil {
			prev = old.m
		}
		n.updateKeep(members, prev, m)
	}
	n.slots.Store(&slotMap{m: m, epoch: epoch})
	n.relay.Store(newRelayPlan(m, n.id, n.cfg.Gossip.SlotsOnly, n.keep.Load()))
	n.cfg.Logger.Info("region: slot map", "members", len(members), "copies", m.Copies(), "epoch", epoch, "version", fmt.Sprintf("%016x", m.Version()))
	want := map[string]bool{}
	for _, mb := range members {
		if mb.ID != n.id && mb.ReplAddr != "" {
			want[mb.ReplAddr] = true
		}
	}
	for addr := range n.regionPeers {
		if !want[addr] && !slices.Contains(n.cfg.Peers, addr) {
			n.repl.RemovePeer(addr)
			delete(n.regionPeers, addr)
		}
	}
	for addr := range want {
		if !n.regionPeers[addr] {
			n.repl.AddPeer(addr)
			n.regionPeers[addr] = true
		}
	}
}

// slotMap is the region's current map and its epoch: 1 for the first map
// this node computed, one more at each change (the config epoch CLUSTER
// NODES and INFO report).
type slotMap struct {
	m     *cluster.Map
	epoch uint64
}

// SlotMap returns the current slot map of this node's region and its
// epoch, or nil for a node without Config.Gossip (a region of one node,
// which answers no CLUSTER command). The map is immutable; a membership
// change replaces it and increments the epoch.
func (n *Node) SlotMap() (*cluster.Map, uint64) {
	sm := n.slots.Load()
	if sm == nil {
		return nil, 0
	}
	return sm.m, sm.epoch
}

// KeySlot returns the hash slot of key (0 to 16,383), as Redis Cluster
// computes it: CRC16 of the key, or of its hash tag (the bytes between the
// first '{' and the next '}', if not empty), mod 16,384. With SlotMap it
// routes a key to its owners: SlotMap().Primary(KeySlot(key)).
func KeySlot(key string) int { return cluster.KeySlot(key) }

// regionStats returns the figures of Stats.RegionNodes (some from the
// replicator's Stats, which the caller has), or nil without Config.Gossip.
func (n *Node) regionStats(rst *repl.Stats) *RegionStats {
	sm := n.slots.Load()
	if n.members == nil || sm == nil {
		return nil
	}
	rs := &RegionStats{State: n.members.State().String(), Members: map[string]int{}, Epoch: sm.epoch}
	rs.Failed, rs.Rejoins = n.members.Failed()
	rs.MergesRefused = n.members.MergesRefused()
	for _, mb := range n.members.Members() {
		rs.Members[mb.State.String()]++
	}
	for _, r := range sm.m.RangesOf(n.id) {
		rs.Slots += r.Len()
	}
	for _, r := range sm.m.PrimaryRanges(n.id) {
		rs.PrimarySlots += r.Len()
	}
	if k := n.keep.Load(); k != nil {
		rs.KeptSlots = k.count()
		if c := n.cold.Load(); c != nil {
			rs.ColdSlots = c.n
		}
		rs.Forgotten, rs.Resyncs = n.forgotten.Load(), rst.Resyncs
		rs.SlotSyncs, rs.SlotSyncFailures, rs.SlotSyncFallbacks = rst.SlotSyncs, rst.SlotSyncFailures, n.slotSyncFallbacks.Load()
		rs.OwnerReads, rs.ReadsUnavailable = n.fetchedReads.Load(), n.fetchUnavailable.Load()
		rs.FetchFailures, rs.FetchesServed = rst.FetchFailures, rst.FetchesServed
	}
	return rs
}

// RegionMembers returns the live members of this node's region as gossip
// knows them (this node included), or nil without Config.Gossip.
func (n *Node) RegionMembers() []cluster.Member {
	if n.members == nil {
		return nil
	}
	return n.members.Members()
}

// RegionGossipAddr returns the address the region's members reach this
// node's gossip at (useful with GossipConfig.Addr port 0), or "" without
// Config.Gossip.
func (n *Node) RegionGossipAddr() string {
	if n.members == nil {
		return ""
	}
	return n.members.Addr()
}
