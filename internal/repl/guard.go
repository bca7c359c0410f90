package repl

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/wire"
)

// What a peer can make this node hold or do is bounded; docs/replication.md
// ("What a peer can and cannot do") lists the bounds.
const (
	// maxHelloFrame bounds the first frame of a connection, which must be
	// a Hello (at most 4 + 3 × wire.MaxNameLen + 20 bytes), and the read
	// buffer of an accepted connection until its handshake completes: the
	// bytes held for a peer that has not said who it is.
	maxHelloFrame = 4 << 10
	// handshakeTimeout bounds the wait for a peer's Hello (or
	// Config.DeadTimeout if shorter).
	handshakeTimeout = 5 * time.Second
	// snapshotKeyOverhead is what tracking one key of a full sync in
	// flight costs besides the key's bytes: a map entry and a string
	// header, rounded up.
	snapshotKeyOverhead = 64
	// DefaultMaxSnapshotBytes is the default Config.MaxSnapshotBytes.
	DefaultMaxSnapshotBytes = 64 << 20
)

// errSnapshotBudget is why a full sync that outgrows
// Config.MaxSnapshotBytes or MaxSnapshotKeys is refused.
var errSnapshotBudget = errors.New("repl: full sync over budget")

// maxInboundLocked is the cap on accepted connections open at once; r.mu
// is held.
func (r *Replicator) maxInboundLocked() int {
	if r.cfg.MaxInbound > 0 {
		return r.cfg.MaxInbound
	}
	return 4*len(r.links) + 8
}

// admit counts an accepted connection against the cap, or reports false
// (the caller closes it at once): a flood of connections costs a counter,
// not a goroutine and a buffer each.
func (r *Replicator) admit(remote net.Addr) bool {
	r.mu.Lock()
	if r.inbound < r.maxInboundLocked() {
		r.inbound++
		r.mu.Unlock()
		return true
	}
	r.inboundRefused++
	log, suppressed := r.inboundWarn.allow(time.Now(), r.cfg.WarnInterval)
	limit := r.maxInboundLocked()
	r.mu.Unlock()
	if log {
		r.cfg.Logger.Warn("replication connection refused: too many inbound connections",
			"remote", remote.String(), "limit", limit, "suppressed", suppressed)
	}
	return false
}

func (r *Replicator) leave() {
	r.mu.Lock()
	r.inbound--
	r.mu.Unlock()
}

// holdAhead ends an origin's stream at a version too far ahead of this
// node's clock (err wraps hlc.ErrRemoteAhead): nothing from that version
// on is applied, the origin hears RejectClockAhead (its link then counts
// this node as out of bounds and redials with backoff, resuming after the
// last op applied), and a warning names the origin, at most one per origin
// per WarnInterval.
func (r *Replicator) holdAhead(fc *frameConn, o *originState, h *wire.Hello, what string, err error) error {
	o.mu.Lock()
	o.heldAhead++
	log, suppressed := o.aheadWarn.allow(time.Now(), r.cfg.WarnInterval)
	o.mu.Unlock()
	if log {
		r.cfg.Logger.Warn("replication from origin held: a version is ahead of this node's clock by more than twice the max clock offset; its clock or this node's is wrong",
			"origin", h.NodeName, "region", h.Region, "in", what, "err", err, "suppressed", suppressed)
	}
	return fc.reject(wire.RejectClockAhead, "%s of origin %d: %v", what, h.NodeID, err)
}

// checkGhosts refuses a tombstone-ghost table with a slot ahead of this
// node's clock: a ghost from the future proves nothing, and would refuse
// every version up to it.
func (r *Replicator) checkGhosts(ghosts []uint64) error {
	if err := r.cfg.Clock.Check(hlc.Timestamp(maxSlot(ghosts))); err != nil {
		return fmt.Errorf("tombstone-ghost table: %w", err)
	}
	return nil
}

// ghostTableShape refuses a tombstone-ghost table that is not a power of
// two in size (a malformed SnapshotEnd).
func ghostTableShape(ghosts []uint64) error {
	if n := len(ghosts); n == 0 || n&(n-1) != 0 {
		return fmt.Errorf("snapshot end with a tombstone-ghost table of %d slots (want a power of two)", n)
	}
	return nil
}

// maxSlot returns the greatest slot of a ghost table (0 for an empty one).
func maxSlot(ghosts []uint64) uint64 {
	var top uint64
	for _, g := range ghosts {
		top = max(top, g)
	}
	return top
}
