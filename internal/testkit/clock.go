// Package testkit holds test helpers shared by geocache's packages: a manual
// clock, an in-memory network with user-space fault injection (latency,
// one-way cuts, resets) for multi-node tests in one process, and
// Eventually for conditions that become true asynchronously.
package testkit

import (
	"sync"
	"time"
)

// Clock is a manual clock for tests. Its zero value is not usable; create it
// with NewClock. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now int64 // nanoseconds since the Unix epoch
}

// NewClock returns a clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start.UnixNano()}
}

// UnixNano returns the clock's time in nanoseconds since the Unix epoch.
func (c *Clock) UnixNano() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.UnixNano()) }

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += int64(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t.UnixNano()
	c.mu.Unlock()
}
