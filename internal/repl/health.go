package repl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// Reason classifies why a link is down: the key of its warnings (rate
// limited per peer and reason) and of its failure counters.
type Reason uint8

// Reasons a link is down.
const (
	ReasonNone          Reason = iota
	ReasonUnresolvable         // the peer's host name does not resolve
	ReasonUnreachable          // the dial failed: refused, timed out, no route
	ReasonHandshake            // the connection failed before the handshake completed
	ReasonCluster              // the peer belongs to another cluster (--cluster)
	ReasonDuplicateNode        // the peer has this node's id (--node)
	ReasonSelf                 // the peer address is this node itself
	ReasonProtocol             // the peer speaks another protocol version
	ReasonRefused              // the peer refused the link for another reason
	ReasonLost                 // an established link failed
	ReasonClockAhead           // the peer holds this node's writes: they are too far ahead of its clock
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:          "",
	ReasonUnresolvable:  "unresolvable",
	ReasonUnreachable:   "unreachable",
	ReasonHandshake:     "handshake failed",
	ReasonCluster:       "cluster mismatch",
	ReasonDuplicateNode: "duplicate node id",
	ReasonSelf:          "peer is this node",
	ReasonProtocol:      "protocol mismatch",
	ReasonRefused:       "refused",
	ReasonLost:          "connection lost",
	ReasonClockAhead:    "clock ahead of peer",
}

// String returns the reason's name, such as "cluster mismatch".
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons returns every reason but ReasonNone, in order: the label values
// of per-reason metrics.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// linkError is why a link went down, classified.
type linkError struct {
	reason Reason
	err    error
}

func (e *linkError) Error() string { return e.reason.String() + ": " + e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

func reasonOf(err error) Reason {
	var le *linkError
	if errors.As(err, &le) {
		return le.reason
	}
	return ReasonLost
}

func dialReason(err error) Reason {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return ReasonUnresolvable
	}
	return ReasonUnreachable
}

// selfDial starts the message of the Reject a node sends to itself: a peer
// address that is the node's own (under another name, say). Both ends of
// such a connection are this node, so the dialing side recognises it by
// this prefix.
const selfDial = "this node dialed itself"

func rejectReason(rej *wire.Reject) Reason {
	switch rej.Code {
	case wire.RejectCluster:
		return ReasonCluster
	case wire.RejectDuplicateNode:
		if strings.HasPrefix(rej.Message, selfDial) {
			return ReasonSelf
		}
		return ReasonDuplicateNode
	case wire.RejectProtocol:
		return ReasonProtocol
	}
	return ReasonRefused
}

// warnState rate-limits the warnings of one reason.
type warnState struct {
	last       time.Time // when the last warning was logged
	suppressed uint64    // failures since then that logged none
}

// allow reports whether a failure at now is logged as a warning, and how
// many were suppressed before it.
func (w *warnState) allow(now time.Time, every time.Duration) (bool, uint64) {
	if !w.last.IsZero() && now.Sub(w.last) < every {
		w.suppressed++
		return false, 0
	}
	n := w.suppressed
	w.last, w.suppressed = now, 0
	return true, n
}

// linkDown reports a failed attempt or a lost link: a warning (an error
// for a duplicate node id) at most once per WarnInterval per reason, debug
// lines otherwise.
func (r *Replicator) linkDown(l *link, err error, retry time.Duration) {
	reason := reasonOf(err)
	if reason == ReasonDuplicateNode {
		r.noteIDConflict(err)
	}
	now := time.Now()
	l.mu.Lock()
	emit, suppressed := l.warns[reason].allow(now, r.cfg.WarnInterval)
	if emit {
		l.warned = true
	}
	if l.sync == syncPending && l.reconnects == 0 {
		l.sync = syncSkipped // not reachable at start: nothing to wait for
	}
	l.mu.Unlock()
	r.wakeSync()
	level := slog.LevelDebug
	if emit {
		level = slog.LevelWarn
		if reason == ReasonDuplicateNode || reason == ReasonSelf {
			level = slog.LevelError
		}
	}
	r.cfg.Logger.Log(context.Background(), level, "replication link down",
		"peer", l.addr, "reason", reason.String(), "err", errors.Unwrap(err), "retry_in", retry, "suppressed", suppressed)
}

// maxRefusalKeys bounds the remote hosts whose refusals are rate-limited
// separately; past it the oldest state is forgotten (a warning may repeat
// early, nothing grows).
const maxRefusalKeys = 256

type refusalKey struct {
	host   string
	reason Reason
}

// refused reports a connection this node refused at the handshake: a
// warning (an error for a duplicate node id) at most once per WarnInterval
// per remote host and reason.
func (r *Replicator) refused(remote net.Addr, h *wire.Hello, rej *wire.Reject) {
	reason := rejectReason(rej)
	if reason == ReasonSelf {
		return // the dialing side, this node too, reports it
	}
	if reason == ReasonDuplicateNode {
		r.noteIDConflict(errors.New(rej.Message))
	}
	host := remote.String()
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp // the port of an inbound connection changes every time
	}
	k := refusalKey{host, reason}
	now := time.Now()
	r.mu.Lock()
	if r.refusals == nil {
		r.refusals = map[refusalKey]*warnState{}
	}
	w := r.refusals[k]
	if w == nil {
		if len(r.refusals) >= maxRefusalKeys {
			for k, w := range r.refusals {
				if now.Sub(w.last) >= r.cfg.WarnInterval {
					delete(r.refusals, k)
				}
			}
			if len(r.refusals) >= maxRefusalKeys {
				clear(r.refusals)
			}
		}
		w = &warnState{}
		r.refusals[k] = w
	}
	emit, suppressed := w.allow(now, r.cfg.WarnInterval)
	r.mu.Unlock()
	level := slog.LevelDebug
	if emit {
		level = slog.LevelWarn
		if reason == ReasonDuplicateNode {
			level = slog.LevelError
		}
	}
	r.cfg.Logger.Log(context.Background(), level, "replication peer refused",
		"remote", remote.String(), "node", h.NodeName, "node_id", h.NodeID, "region", h.Region,
		"reason", reason.String(), "err", rej.Message, "suppressed", suppressed)
}

// noteIDConflict records that a handshake revealed another node with this
// node's id.
func (r *Replicator) noteIDConflict(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idConflicts++
	r.idConflict = err.Error()
	if !r.conflicted {
		r.conflicted = true
		close(r.conflictCh)
	}
}

// IDConflict is closed once a handshake, in either direction, has revealed
// another node with this node's id (Stats tells which and how often). Both
// nodes refuse the link; the one that is starting should stop.
func (r *Replicator) IDConflict() <-chan struct{} { return r.conflictCh }

// syncState is how far the first sync from one peer has come.
type syncState uint8

const (
	syncPending syncState = iota
	syncDone              // the peer's first full sync to this node completed
	syncSkipped           // the peer could not be reached at start
	syncGaveUp            // not complete within SyncTimeout
)

// Synced is closed once this node has completed its first sync from every
// peer it reached at start: for each configured peer address, either the
// peer's stream to this node delivered its first full sync, or this node's
// first attempt to reach it failed (a peer that is down at start is not
// waited for: it refills this node when it comes back), or SyncTimeout
// passed (a warning names each peer given up on). A node without peers is
// synced at once; Close closes it too. Until then a restarted node may
// still lack data its peers hold, and should not be reported ready.
func (r *Replicator) Synced() <-chan struct{} { return r.syncedCh }

func (r *Replicator) wakeSync() {
	select {
	case r.syncWake <- struct{}{}:
	default:
	}
}

// watchSync closes Synced when every link has settled its first sync. The
// receive side completes a full sync without telling anyone, so it also
// polls, briefly, until then.
func (r *Replicator) watchSync() {
	giveUp := time.NewTimer(r.cfg.SyncTimeout)
	defer giveUp.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		done, skipped, gaveUp, pending := r.syncProgress()
		if pending == 0 {
			r.cfg.Logger.Info("first sync with the peers complete", "synced", done, "unreachable", skipped, "given_up", gaveUp)
			r.closeSynced()
			return
		}
		select {
		case <-r.syncWake:
		case <-poll.C:
		case <-giveUp.C:
			r.giveUpSync()
		case <-r.ctx.Done():
			return
		}
	}
}

// syncProgress marks the links whose peer's first full sync has arrived,
// and counts the links in each state.
func (r *Replicator) syncProgress() (done, skipped, gaveUp, pending int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.links {
		l.mu.Lock()
		st, id := l.sync, l.nodeID
		l.mu.Unlock()
		if st == syncPending && id != 0 {
			if o := r.origins[id]; o != nil {
				o.mu.Lock()
				if o.synced {
					st = syncDone
				}
				o.mu.Unlock()
			}
			if st == syncDone {
				l.mu.Lock()
				l.sync = syncDone
				l.mu.Unlock()
			}
		}
		switch st {
		case syncDone:
			done++
		case syncSkipped:
			skipped++
		case syncGaveUp:
			gaveUp++
		default:
			pending++
		}
	}
	return done, skipped, gaveUp, pending
}

// giveUpSync settles every link still waiting for its first sync, with a
// warning for each.
func (r *Replicator) giveUpSync() {
	var given []*link
	r.mu.Lock()
	for _, l := range r.links {
		l.mu.Lock()
		if l.sync == syncPending {
			l.sync = syncGaveUp
			given = append(given, l)
		}
		l.mu.Unlock()
	}
	r.mu.Unlock()
	for _, l := range given { // logged outside the locks
		l.mu.Lock()
		name, connected := l.name, l.connected
		l.mu.Unlock()
		r.cfg.Logger.Warn("first sync from peer not complete: reporting synced without it",
			"peer", l.addr, "node", name, "connected", connected, "timeout", r.cfg.SyncTimeout)
	}
}

func (r *Replicator) closeSynced() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.synced {
		r.synced = true
		close(r.syncedCh)
	}
}

// publicReject is the Reject sent to the peer: the message checkHello
// wrote for this node's log may name this node (a duplicate id names both
// nodes), and a refusal tells an unauthenticated peer nothing about this
// node's configuration.
func publicReject(rej *wire.Reject, h *wire.Hello) *wire.Reject {
	if rej.Code == wire.RejectDuplicateNode && !strings.HasPrefix(rej.Message, selfDial) {
		return &wire.Reject{Code: rej.Code, Message: fmt.Sprintf(
			"duplicate node id %d: another node of the cluster has it; every node needs its own id (--node)", h.NodeID)}
	}
	return rej
}
