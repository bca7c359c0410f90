// Package clock is geocache's one source of physical time: the Clock
// interface that every layer takes (lru.Clock, geocache.Clock and
// hlc.PhysicalClock are aliases of it) and Real, the system clock that each
// of them uses when none is injected. Tests inject a manual clock
// (internal/testkit) or run in testing/synctest bubbles, where Real reads
// the bubble's virtual time.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock supplies physical time.
type Clock interface {
	// UnixNano returns the current time in nanoseconds since the Unix epoch.
	UnixNano() int64
}

// Checks of a wall-following Real against the operating system's wall
// clock.
const (
	// CheckInterval is how often, in monotonic time, a wall-following Real
	// compares its reading with the wall clock.
	CheckInterval = time.Second
	// StepThreshold is the difference from the wall clock beyond which a
	// wall-following Real takes the wall clock's reading (a step: NTP at
	// boot, an operator fixing a clock). Below it the Real keeps its own
	// timeline, which never goes back.
	StepThreshold = time.Millisecond
)

// Real is the system clock, read for the cost of one monotonic clock read:
// a reading is the wall time of an anchor plus the monotonic time elapsed
// since it (time.Now reads two clocks, the wall clock and the monotonic
// one). Both clocks run at the rate NTP disciplines, so between anchors the
// reading follows the wall clock; what it does not see by itself is a step
// of the wall clock. A Real from NewReal therefore compares itself with the
// wall clock every CheckInterval and takes a step larger than
// StepThreshold (forward or back); one from NewMonotonic never does, and
// never goes back.
//
// Create it with NewReal or NewMonotonic; it is safe for concurrent use.
type Real struct {
	anchor     atomic.Pointer[anchor]
	check      time.Duration // CheckInterval, or "never" for a monotonic Real
	followWall bool
}

type anchor struct {
	wall int64     // Unix ns at mono
	mono time.Time // a time.Now reading, which carries the monotonic clock
}

// NewReal returns the system clock that follows the wall clock's steps
// within CheckInterval. Nodes version their writes and measure their
// peers' offsets with it: a node started before NTP set its clock must
// see the correction, or its peers would find it skewed until it
// restarts.
func NewReal() *Real { return newReal(true) }

// NewMonotonic returns the system clock read as the wall time at creation
// plus the monotonic time since: it never goes back and ignores later
// steps of the wall clock. The cache engines (lru, store) use it for
// expiry when no clock is injected.
func NewMonotonic() *Real { return newReal(false) }

func newReal(followWall bool) *Real {
	r := &Real{check: CheckInterval, followWall: followWall}
	if !followWall {
		r.check = 1<<63 - 1
	}
	now := time.Now()
	r.anchor.Store(&anchor{wall: now.UnixNano(), mono: now})
	return r
}

// UnixNano returns the current time in nanoseconds since the Unix epoch.
func (r *Real) UnixNano() int64 {
	a := r.anchor.Load()
	if d := time.Since(a.mono); d >= 0 && d < r.check {
		return a.wall + int64(d)
	}
	return r.checkWall(a)
}

// checkWall is the slow path of UnixNano, kept out of it so that UnixNano
// inlines.
func (r *Real) checkWall(a *anchor) int64 {
	now := time.Now()
	return r.resync(a, now, now.UnixNano())
}

// resync moves the anchor to now, whose wall clock reads wall, and returns
// the reading at now. Without a step (or for a monotonic Real) the new
// anchor continues the old one's timeline, so readings never go back. A
// negative elapsed time means the anchor's monotonic reading is from
// another clock (a Real created outside a synctest bubble and read inside):
// the wall clock is then the only reference.
func (r *Real) resync(a *anchor, now time.Time, wall int64) int64 {
	next := &anchor{wall: wall, mono: now}
	if d := now.Sub(a.mono); d >= 0 {
		if cont := a.wall + int64(d); !r.followWall || abs(wall-cont) <= int64(StepThreshold) {
			next.wall = cont
		}
	}
	r.anchor.CompareAndSwap(a, next) // a concurrent resync may have won: both readings are valid
	return next.wall
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
