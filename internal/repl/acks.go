package repl

import (
	"context"
	"slices"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// Acknowledgements count per region, not per link: a write is applied in a
// region once a node of that region that holds the write's keys has
// acknowledged it, however many of its nodes this node links to. A node
// that keeps every key speaks for every write it acknowledges; a node of a
// region that keeps only its own slots says which slots its acks speak for
// (wire.Vouched: those it holds all of), so that a node that merely
// skipped a write of another node's slot never counts for it. Peers of
// this node's own region never count toward Quorum and All, which are
// about other regions.

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
// seq is applied for the hash slots of its keys (nil: for every slot):
// each slot is vouched for by a node of the region that has acknowledged
// seq. r.mu is held.
func (r *Replicator) appliedRegionsLocked(seq uint64, slots []uint16) int {
	type cover struct {
		all  bool     // a node keeping every key acknowledged seq
		sets [][]byte // the slot sets of the others that did
	}
	regions := make(map[string]*cover, len(r.links))
	for _, l := range r.links {
		l.mu.Lock()
		region, acked, known, vouched := l.region, l.acked, l.vouchKnown, l.vouched
		l.mu.Unlock()
		if region == "" || region == r.cfg.Region || !known || acked < seq {
			continue
		}
		c := regions[region]
		if c == nil {
			c = &cover{}
			regions[region] = c
		}
		if vouched == nil {
			c.all = true
		} else {
			c.sets = append(c.sets, vouched)
		}
	}
	n := 0
	for _, c := range regions {
		if c.all || covers(c.sets, slots) {
			n++
		}
	}
	return n
}

// covers reports whether every slot of slots (nil: all of them) is in one
// of sets (wire slot sets).
func covers(sets [][]byte, slots []uint16) bool {
	if slots == nil {
		for i := range wire.SlotSetLen {
			var b byte
			for _, s := range sets {
				b |= s[i]
			}
			if b != 0xff {
				return false
			}
		}
		return true
	}
	for _, slot := range slots {
		if !slices.ContainsFunc(sets, func(s []byte) bool { return slotIn(s, int(slot)) }) {
			return false
		}
	}
	return true
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
// one) has been applied in at least regions other regions, or ctx ends.
// slots are the hash slots of the keys it must be applied for (nil: every
// slot, as for "every write so far"). It returns the number of other
// regions that have applied it when it returns (so a caller can report
// partial progress, like Redis's WAIT) and ctx's error if it gave up.
func (r *Replicator) Wait(ctx context.Context, seq uint64, slots []uint16, regions int) (int, error) {
	for {
		r.mu.Lock()
		n := r.appliedRegionsLocked(seq, slots)
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
