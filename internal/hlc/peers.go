package hlc

import (
	"context"
	"log/slog"
	"time"
)

// MaxPeers is the largest number of peers whose offsets a Clock tracks.
// ObservePeerOffset ignores new peers beyond it and counts them in
// Stats.PeersRejected; updates for tracked peers are always applied.
const MaxPeers = 1024

// EstimateOffset returns the offset of a peer's physical clock relative to
// ours, positive when the peer is ahead, from one round trip: a request sent
// at local time sendLocal, answered with the peer's physical time
// peerPhysical, and received at local time recvLocal. All three are in
// nanoseconds since the Unix epoch (PhysicalClock.UnixNano). This is the
// classic NTP estimate peerPhysical - (sendLocal+recvLocal)/2; its error is at
// most half the round trip.
func EstimateOffset(sendLocal, peerPhysical, recvLocal int64) time.Duration {
	mid := sendLocal + (recvLocal-sendLocal)/2 // no overflow of the sum
	return time.Duration(peerPhysical - mid)
}

// ObservePeerOffset records offset as the latest measured offset of peer's
// physical clock relative to ours (positive when the peer is ahead), as
// computed by EstimateOffset. A peer is out of bounds when |offset| exceeds
// MaxOffset; while a strict majority of the peers is (of the tracked ones,
// or of ExpectPeers's number if larger), Now refuses with
// ErrClockOutOfBounds. At most MaxPeers peers are tracked; a new peer
// beyond that is ignored and counted in Stats.PeersRejected.
func (c *Clock) ObservePeerOffset(peer string, offset time.Duration) {
	c.mu.Lock()
	before := c.outOfBoundsLocked()
	old, known := c.peers[peer]
	switch {
	case known:
		if c.isFar(old) {
			c.farPeers--
		}
	case len(c.peers) >= MaxPeers:
		c.stats.PeersRejected++
		c.mu.Unlock()
		return
	}
	c.peers[peer] = offset
	if c.isFar(offset) {
		c.farPeers++
	}
	c.logTransitionAndUnlock(before)
}

// ExpectPeers tells the clock how many peers the node has, measured or
// not. A strict majority of them (or of the tracked peers, if more) must be
// out of bounds for Now to refuse: right after a start or a partition only
// some peers have been measured, and one far peer out of one measured would
// otherwise stop writes that most of the cluster would accept.
func (c *Clock) ExpectPeers(n int) {
	c.mu.Lock()
	before := c.outOfBoundsLocked()
	c.expected = max(n, 0)
	c.logTransitionAndUnlock(before)
}

// ForgetPeer stops tracking peer's offset, for example when it leaves the
// cluster. Forgetting an unknown peer does nothing.
func (c *Clock) ForgetPeer(peer string) {
	c.mu.Lock()
	before := c.outOfBoundsLocked()
	if old, known := c.peers[peer]; known {
		if c.isFar(old) {
			c.farPeers--
		}
		delete(c.peers, peer)
	}
	c.logTransitionAndUnlock(before)
}

// InBounds reports whether this node's clock is within MaxOffset of at least
// half of its known peers, that is whether Now may issue timestamps. With no
// known peers it is always in bounds.
func (c *Clock) InBounds() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.outOfBoundsLocked()
}

// isFar reports whether a peer at offset is out of bounds. It avoids
// negating offset, which overflows for math.MinInt64.
func (c *Clock) isFar(offset time.Duration) bool {
	return offset > c.maxOffset || offset < -c.maxOffset
}

// outOfBoundsLocked reports whether a strict majority of the peers (the
// tracked ones, or the expected number if larger) is out of bounds.
func (c *Clock) outOfBoundsLocked() bool {
	return 2*c.farPeers > max(len(c.peers), c.expected)
}

// logTransitionAndUnlock releases c.mu and then logs if the out-of-bounds
// state differs from before.
func (c *Clock) logTransitionAndUnlock(before bool) {
	after := c.outOfBoundsLocked()
	far, n := c.farPeers, len(c.peers)
	c.mu.Unlock()
	if before == after {
		return
	}
	level, msg := slog.LevelInfo, "hlc: clock back in bounds; issuing timestamps again"
	if after {
		level, msg = slog.LevelError, "hlc: clock out of bounds relative to most peers; refusing to issue timestamps"
	}
	c.logger.LogAttrs(context.Background(), level, msg,
		slog.Int("peers_out_of_bounds", far),
		slog.Int("peers", n),
		slog.Duration("max_offset", c.maxOffset))
}
