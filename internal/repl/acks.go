package repl

import (
	"context"
	"time"
)

// Acknowledgements count per region, not per link: a write is applied in a
// region once any node of that region has acknowledged it, however many of
// its nodes this node links to (all of them today; one owner per slot once
// regions grow past one machine). Peers of this node's own region never
// count toward Quorum and All, which are about other regions.

// regionAcksLocked returns, for each other region a peer has announced,
// the highest sequence number of this node's log that some node of that
// region has applied, and the number of peer addresses never reached (whose
// region is unknown). r.mu is held.
func (r *Replicator) regionAcksLocked() (acked map[string]uint64, unknown int) {
	acked = make(map[string]uint64, len(r.links))
	for _, l := range r.links {
		l.mu.Lock()
		region, a := l.region, l.acked
		l.mu.Unlock()
		switch {
		case region == "":
			unknown++
		case region != r.cfg.Region:
			acked[region] = max(acked[region], a)
		}
	}
	return acked, unknown
}

// appliedRegionsLocked counts the regions other than this node's in which
// some node has acknowledged seq.
func (r *Replicator) appliedRegionsLocked(seq uint64) int {
	acked, _ := r.regionAcksLocked()
	n := 0
	for _, a := range acked {
		if a >= seq {
			n++
		}
	}
	return n
}

// Regions returns the number of regions in the cluster as far as this node
// knows: its own, every other region a peer announced, and one for each
// peer address never reached (which may be a region of its own).
func (r *Replicator) Regions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	acked, unknown := r.regionAcksLocked()
	return 1 + len(acked) + unknown
}

// ackAdvancedLocked wakes every Wait and Drain; r.mu is held.
func (r *Replicator) ackAdvancedLocked() {
	if r.closed {
		return
	}
	close(r.ackCh)
	r.ackCh = make(chan struct{})
}

// Wait blocks until the write with sequence number seq (and every earlier
// one) has been applied in at least regions other regions, or ctx ends. It
// returns the number of other regions that have applied it when it returns
// (so a caller can report partial progress, like Redis's WAIT) and ctx's
// error if it gave up.
func (r *Replicator) Wait(ctx context.Context, seq uint64, regions int) (int, error) {
	for {
		r.mu.Lock()
		n := r.appliedRegionsLocked(seq)
		ch := r.ackCh
		closed := r.closed
		r.mu.Unlock()
		if n >= regions || seq == 0 {
			return n, nil
		}
		if closed {
			return n, ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

// Drain waits until every peer connected now has acknowledged every write
// appended before the call, so that a node shutting down gracefully hands
// its last writes over instead of losing them. A link that went down less
// than twice ReconnectMax ago is waited for too, as its dial loop is
// expected to bring it back within that: a blip during a shutdown must not
// lose the last writes for a region. A link down for longer (or never up)
// is not waited for: its peer catches up from the other regions'
// anti-entropy, or not at all. It returns ctx's error if it gave up,
// ErrClosed if the replicator closed first, nil once drained.
func (r *Replicator) Drain(ctx context.Context) error {
	target := r.LastSeq()
	recheck := time.NewTicker(50 * time.Millisecond) // a link that drops does not signal ackCh
	defer recheck.Stop()
	for {
		r.mu.Lock()
		done := true
		for _, l := range r.links {
			l.mu.Lock()
			if l.acked < target && (l.connected || l.region != "" && time.Since(l.since) < 2*r.cfg.ReconnectMax) {
				done = false
			}
			l.mu.Unlock()
		}
		ch, closed := r.ackCh, r.closed
		r.mu.Unlock()
		switch {
		case done:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-recheck.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
