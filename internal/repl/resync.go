package repl

import (
	"net"
	"time"
)

// Resync asks every origin this node has heard from for a full sync: what
// a node needs once it keeps keys it did not keep before (Config.Keeps
// grew, as when a region node takes over slots), since the origins'
// streams passed over those keys' writes and only a full sync brings what
// each origin holds. The streams of the origins connected now are ended
// with RejectResync, so that they reconnect at once and are asked for a
// full sync in the handshake; the others are asked when they come back.
// The channel returned is closed once every origin connected at the call,
// or whose peer this node's link reached until lately, has completed a
// full sync since or is gone (this node's own link to it was
// removed, or has been down for DeadTimeout: a peer that died is not
// waited for, while one whose link a Resync of its own just cut is), once
// SyncTimeout has passed (a warning names the origins still missing), or
// at Close.
func (r *Replicator) Resync() <-chan struct{} {
	done := make(chan struct{})
	type wanted struct {
		o     *originState
		syncs uint64 // its full syncs at the call
	}
	var wants []wanted
	var conns []net.Conn // of the streams to end
	alive := r.linksAlive()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		close(done)
		return done
	}
	r.resyncs++
	for _, o := range r.origins {
		o.mu.Lock()
		if o.synced {
			o.fill = true // it asks only for what it came to keep
		}
		o.synced = false
		if o.connected || alive[o.id] {
			// Connected, or about to be (its link from this node is up):
			// either way its next full sync is the one wanted.
			wants = append(wants, wanted{o, o.fullSyncs})
		}
		if o.connected && o.conn != nil {
			o.resync.Store(true)
			conns = append(conns, o.conn)
		}
		o.mu.Unlock()
	}
	for _, c := range conns {
		// Cut the stream's read short: its goroutine sees o.resync and
		// ends the stream with RejectResync (a stream busy applying sees
		// it after its frame).
		c.SetReadDeadline(time.Now())
	}
	r.wg.Go(func() { // under mu while open: Close has not begun its Wait
		defer close(done)
		giveUp := time.NewTimer(r.cfg.SyncTimeout)
		defer giveUp.Stop()
		poll := time.NewTicker(20 * time.Millisecond)
		defer poll.Stop()
		for {
			up := r.linksAlive()
			missing := wants[:0]
			for _, w := range wants {
				w.o.mu.Lock()
				synced := w.o.fullSyncs > w.syncs
				w.o.mu.Unlock()
				if !synced && up[w.o.id] {
					missing = append(missing, w)
				}
			}
			wants = missing
			if len(wants) == 0 {
				return
			}
			select {
			case <-poll.C:
			case <-giveUp.C:
				for _, w := range wants {
					w.o.mu.Lock()
					name := w.o.name
					w.o.mu.Unlock()
					r.cfg.Logger.Warn("full sync asked for not complete in time: going on without it", "origin", name, "timeout", r.cfg.SyncTimeout)
				}
				return
			case <-r.ctx.Done():
				return
			}
		}
	})
	return done
}

// linksAlive returns the node ids of the peers this node's links are
// connected to, or were until less than DeadTimeout ago.
func (r *Replicator) linksAlive() map[uint32]bool {
	up := map[uint32]bool{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.links {
		l.mu.Lock()
		if l.nodeID != 0 && (l.connected || time.Since(l.since) < r.cfg.DeadTimeout) {
			up[l.nodeID] = true
		}
		l.mu.Unlock()
	}
	return up
}
