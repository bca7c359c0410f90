package repl

import (
	"context"
	"slices"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// The peer set is dynamic: Config.Peers is the set at start, AddPeer and
// RemovePeer change it while the replicator runs (a peer joining or leaving
// the cluster, or later an in-region owner gaining or losing a slot range)
// without touching the other links.

// newLinkLocked adds a link to addr; r.mu is held. It does not start it.
func (r *Replicator) newLinkLocked(addr string) *link {
	ctx, cancel := context.WithCancel(r.ctx)
	l := &link{addr: addr, kick: make(chan struct{}, 1), window: make(chan struct{}, 1), relayWake: make(chan struct{}, 1), since: time.Now(), ctx: ctx, cancel: cancel, done: make(chan struct{}), proto: wire.Proto}
	if r.synced {
		// Synced is settled: a peer added later is not waited for (it
		// refills this node through its stream like any peer).
		l.sync = syncSkipped
	}
	if !r.clockMergedClosed {
		r.unmerged++
	} else {
		l.clockMerged = true // counts toward nothing: ClockMerged is settled
	}
	r.links[addr] = l
	if len(r.links) == 1 {
		r.log.SetMaxRecords(r.cfg.Log.MaxRecords) // a node with peers keeps its whole log
	}
	r.cfg.Clock.ExpectPeers(len(r.links))
	return l
}

// startLinkLocked starts l's dial loop; r.mu is held and r is started.
func (r *Replicator) startLinkLocked(l *link) {
	r.wg.Go(func() {
		defer close(l.done)
		r.dialLoop(l)
	})
}

// AddPeer adds a peer address to dial and stream this node's writes to. On
// a started replicator the link starts at once; it reports false if addr
// is already a peer or the replicator is closed. The peer's stream starts
// where it asks: from the log if it reaches back that far, else with a full
// sync.
func (r *Replicator) AddPeer(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.links[addr]; dup || r.closed {
		return false
	}
	l := r.newLinkLocked(addr)
	if m, ok := r.removed[addr]; ok {
		// The same process coming back (a region healed after a
		// partition) is resumed from its last ack; with a full sync, the
		// log replays from there after the snapshot, carrying this node's
		// writes of slots it has since stopped keeping and forgotten.
		delete(r.removed, addr)
		l.nodeID, l.peerInc, l.lastAck = m.nodeID, m.peerInc, m.lastAck
	}
	if r.started {
		r.startLinkLocked(l)
	}
	r.cfg.Logger.Info("replication peer added", "peer", addr)
	return true
}

// RemovePeer stops streaming to a peer address: its link stops, its
// connection closes, and it no longer counts for acknowledgements, Regions
// or Synced. It returns once the link's goroutines have ended, false if
// addr was not a peer. What this node received from the peer is kept, and
// a stream the peer itself dialed here is not affected (the peer removes
// this node on its side). How far the peer had acknowledged this node's
// log is remembered (for the last maxRemovedLinks addresses), so that the
// same process added again resumes from there.
func (r *Replicator) RemovePeer(addr string) bool {
	r.mu.Lock()
	l, ok := r.links[addr]
	if !ok {
		r.mu.Unlock()
		return false
	}
	delete(r.links, addr)
	if !l.clockMerged && r.unmerged > 0 {
		l.clockMerged = true
		r.unmerged--
		if r.unmerged == 0 {
			r.closeClockMergedLocked()
		}
	}
	r.cfg.Clock.ExpectPeers(len(r.links))
	started := r.started
	r.ackAdvancedLocked() // a Wait may now be satisfied, or Drain done
	r.mu.Unlock()
	l.cancel()
	if started {
		<-l.done
	}
	l.mu.Lock()
	name := l.name
	memo := removedLink{nodeID: l.nodeID, peerInc: l.peerInc, lastAck: l.lastAck}
	l.mu.Unlock()
	if memo.nodeID != 0 {
		r.mu.Lock()
		if _, back := r.links[addr]; !back { // added again meanwhile: that link starts afresh
			if len(r.removed) >= maxRemovedLinks {
				for a := range r.removed { // any one: the bound matters, not which
					delete(r.removed, a)
					break
				}
			}
			r.removed[addr] = memo
		}
		r.mu.Unlock()
	}
	if name != "" {
		r.cfg.Clock.ForgetPeer(name)
	}
	r.wakeSync()
	r.cfg.Logger.Info("replication peer removed", "peer", addr, "node", name)
	return true
}

// Peers returns the peer addresses this node dials, sorted.
func (r *Replicator) Peers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	addrs := make([]string, 0, len(r.links))
	for a := range r.links {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	return addrs
}

// Acked returns the sequence number up to which the peer at addr has
// acknowledged this node's log, and false if this node has no link to
// addr.
func (r *Replicator) Acked(addr string) (uint64, bool) {
	r.mu.Lock()
	l := r.links[addr]
	r.mu.Unlock()
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked, true
}

// removedLink is what RemovePeer remembers of a link.
type removedLink struct {
	nodeID  uint32
	peerInc uint64
	lastAck uint64
}

// maxRemovedLinks bounds RemovePeer's memory.
const maxRemovedLinks = 1024
