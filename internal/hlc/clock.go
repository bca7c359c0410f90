package hlc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/clock"
)

// DefaultMaxOffset is the MaxOffset used when Config.MaxOffset is zero.
const DefaultMaxOffset = 500 * time.Millisecond

// logInterval is the shortest time between two log records about remote
// timestamps ahead of MaxOffset; the records in between are only counted.
const logInterval = time.Second

var (
	// ErrClockOutOfBounds is returned by Clock.Now when a strict majority of
	// the known peers report a physical clock offset larger than MaxOffset:
	// this node's own clock is then the likely culprit, and versioning writes
	// with it could let them win over later writes elsewhere.
	ErrClockOutOfBounds = errors.New("hlc: clock out of bounds relative to most peers")

	// ErrExhausted is returned by Clock.Now when the clock has reached
	// MaxTimestamp and can issue no larger timestamp. It only happens after
	// merging a corrupt remote timestamp from the far future.
	ErrExhausted = errors.New("hlc: timestamp range exhausted")

	// ErrRemoteAhead is returned by Clock.Merge and Clock.Check for a remote
	// timestamp ahead of local physical time by more than the remote
	// tolerance (RemoteTolerance: 2 × MaxOffset). Merging it would drag this
	// clock (and every version it issues later) into the future: one forged
	// stamp at MaxTimestamp would exhaust it for good.
	ErrRemoteAhead = errors.New("hlc: remote timestamp ahead of local physical clock by more than max offset")

	// ErrInvalidConfig is wrapped by the errors New returns for a bad Config.
	ErrInvalidConfig = errors.New("hlc: invalid config")
)

// PhysicalClock is the source of physical time: geocache's one clock
// interface (internal/clock). *testkit.Clock implements it.
type PhysicalClock = clock.Clock

// Config configures a Clock. The zero value is valid.
type Config struct {
	// Physical is the source of physical time.
	// Default (nil): the system clock, clock.NewReal.
	Physical PhysicalClock

	// MaxOffset is the largest offset between two nodes' physical clocks the
	// cluster tolerates, as a duration. Remote timestamps further ahead are
	// counted and logged; a node whose clock is further than this from a
	// strict majority of its peers refuses to issue timestamps.
	// Default (0): DefaultMaxOffset, 500ms. Negative: an error.
	MaxOffset time.Duration

	// Logger receives the clock's warnings (remote timestamps too far ahead,
	// at most one record per second; entering and leaving the out-of-bounds
	// state). Records are emitted after the clock's lock is released.
	// Default (nil): discard.
	Logger *slog.Logger
}

// MaxMaxOffset is the largest MaxOffset accepted: clocks further apart than
// this are broken, not skewed, and a restarted node waits 2 × MaxOffset
// before it takes writes when it cannot reach its peers.
const MaxMaxOffset = time.Minute

// validate checks cfg and returns it with defaults filled in.
func (cfg Config) validate() (Config, error) {
	if cfg.MaxOffset < 0 || cfg.MaxOffset > MaxMaxOffset {
		return cfg, fmt.Errorf("%w: MaxOffset %v is outside [0, %v]", ErrInvalidConfig, cfg.MaxOffset, MaxMaxOffset)
	}
	if cfg.MaxOffset == 0 {
		cfg.MaxOffset = DefaultMaxOffset
	}
	if cfg.Physical == nil {
		cfg.Physical = clock.NewReal()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Stats holds a Clock's counters since New.
type Stats struct {
	// RemoteAhead counts Update calls whose remote timestamp was ahead of
	// local physical time by more than MaxOffset.
	RemoteAhead uint64
	// MaxRemoteLead is the largest lead of a remote timestamp over local
	// physical time seen by Update, Merge or Check (zero if none was ahead).
	MaxRemoteLead time.Duration
	// RemoteRefused counts Merge and Check calls refused with
	// ErrRemoteAhead (they are also counted in RemoteAhead, whose
	// threshold is MaxOffset).
	RemoteRefused uint64
	// OutOfBoundsRefusals counts Now calls refused with ErrClockOutOfBounds.
	OutOfBoundsRefusals uint64
	// LogicalOverflows counts events whose logical counter was full, so the
	// clock carried into the millisecond part.
	LogicalOverflows uint64
	// Exhausted counts Now calls refused with ErrExhausted.
	Exhausted uint64
	// Peers is the number of peers whose offset is tracked.
	Peers int
	// PeersOutOfBounds is how many of them are further than MaxOffset away.
	PeersOutOfBounds int
	// PeersRejected counts ObservePeerOffset calls ignored because MaxPeers
	// peers were already tracked.
	PeersRejected uint64
}

// Clock is a hybrid logical clock. Create it with New. It is safe for
// concurrent use.
type Clock struct {
	physical  PhysicalClock // read-only after New
	maxOffset time.Duration // read-only after New
	logger    *slog.Logger  // read-only after New

	mu sync.Mutex
	// last is the latest timestamp issued or merged; every event moves it up.
	last Timestamp
	// peers maps a peer to its latest measured offset; farPeers counts the
	// entries whose |offset| > maxOffset. len(peers) <= MaxPeers.
	peers    map[string]time.Duration
	farPeers int
	// expected is the number of peers the node has (ExpectPeers): the
	// majority is of those, not only of the peers measured so far.
	expected int
	// loggedAhead and lastAheadLog (physical nanoseconds) rate-limit the
	// remote-ahead log; suppressedAhead counts the records skipped since.
	loggedAhead     bool
	lastAheadLog    int64
	suppressedAhead uint64
	stats           Stats
}

// New returns a Clock configured by cfg, or an error wrapping
// ErrInvalidConfig. The clock starts at the zero Timestamp; its first event
// moves it to physical time.
func New(cfg Config) (*Clock, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Clock{
		physical:  cfg.Physical,
		maxOffset: cfg.MaxOffset,
		logger:    cfg.Logger,
		peers:     make(map[string]time.Duration),
	}, nil
}

// MaxOffset returns the configured maximum clock offset.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// readPhysical returns physical time in nanoseconds, clamped at the epoch so
// that it converts to a valid millisecond part.
func (c *Clock) readPhysical() int64 {
	return max(c.physical.UnixNano(), 0)
}

// Now records a local or send event and returns its timestamp, which is
// strictly greater than every timestamp this clock issued or merged before.
//
// It returns ErrClockOutOfBounds, and issues nothing, while a strict majority
// of the known peers is more than MaxOffset away (see ObservePeerOffset). It
// returns ErrExhausted once the clock has reached MaxTimestamp.
func (c *Clock) Now() (Timestamp, error) {
	pt := c.readPhysical() / int64(time.Millisecond)
	c.mu.Lock()
	return c.nowAndUnlock(pt)
}

// nowAndUnlock is Now with the physical time pt (Unix ms) read and c.mu
// held; it unlocks c.mu.
func (c *Clock) nowAndUnlock(pt int64) (Timestamp, error) {
	if c.outOfBoundsLocked() {
		c.stats.OutOfBoundsRefusals++
		c.mu.Unlock()
		return 0, ErrClockOutOfBounds
	}
	if c.last == MaxTimestamp {
		c.stats.Exhausted++
		c.mu.Unlock()
		return 0, ErrExhausted
	}
	ts := c.advanceLocked(c.last, pt)
	c.mu.Unlock()
	return ts, nil
}

// ErrAheadOfPhysical is returned by Clock.NowWithin while the clock's last
// timestamp is more than RemoteTolerance ahead of local physical time.
var ErrAheadOfPhysical = errors.New("hlc: clock ahead of local physical time by more than twice max offset")

// NowWithin is Now for versioning writes that peers must accept: besides
// Now's refusals, it returns ErrAheadOfPhysical, and issues nothing, while
// the clock's last timestamp is more than RemoteTolerance ahead of local
// physical time. That only happens when the physical clock stepped back
// that far (an operator fixed a clock that ran ahead, and the clock had
// merged its own skewed time): every peer would hold such a version until
// its own clock reached it, and every later write of this node behind it,
// so the node refuses writes instead, until physical time catches up or it
// restarts. Refusals are counted in Stats.OutOfBoundsRefusals.
func (c *Clock) NowWithin() (Timestamp, error) {
	return c.NowWithinAt(c.physical.UnixNano())
}

// NowWithinAt is NowWithin given the physical time, physNanos (Unix ns),
// which the caller has just read from Config.Physical: a caller that needs
// that reading too (a write's version and its expiry) reads the clock once.
// Both checks and the timestamp use this one reading under one hold of the
// clock's lock: writes from every goroutine of a node pass through here.
func (c *Clock) NowWithinAt(physNanos int64) (Timestamp, error) {
	pt := max(physNanos, 0) / int64(time.Millisecond)
	c.mu.Lock()
	if c.aheadLocked(pt) {
		c.stats.OutOfBoundsRefusals++
		c.mu.Unlock()
		return 0, ErrAheadOfPhysical
	}
	return c.nowAndUnlock(pt)
}

// Writable reports whether NowWithin may issue a timestamp now: the clock
// is in bounds (InBounds) and not ahead of physical time by more than
// RemoteTolerance.
func (c *Clock) Writable() bool {
	pt := c.readPhysical() / int64(time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.outOfBoundsLocked() && !c.aheadLocked(pt)
}

func (c *Clock) aheadLocked(ptMillis int64) bool {
	return c.last.WallMillis()-ptMillis > c.RemoteTolerance().Milliseconds()
}

// Last returns the latest timestamp this clock issued or merged, without
// recording an event.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Update records the receipt of a message stamped remote and returns the new
// local timestamp. It is strictly greater than remote and than every
// timestamp this clock issued or merged before, except that it saturates at
// MaxTimestamp.
//
// A remote timestamp ahead of local physical time by more than MaxOffset is
// merged all the same, but counted in Stats and logged at most once per
// second; Merge is the variant that refuses it, and the one to use for
// anything received from the network. Update works while the clock is out
// of bounds.
func (c *Clock) Update(remote Timestamp) Timestamp {
	ptNanos := c.readPhysical()
	pt := ptNanos / int64(time.Millisecond)
	lead := remoteLead(remote, ptNanos)

	c.mu.Lock()
	ts := c.advanceLocked(max(c.last, remote), pt)
	if lead <= c.maxOffset {
		c.mu.Unlock()
		return ts
	}
	c.stats.RemoteAhead++
	c.stats.MaxRemoteLead = max(c.stats.MaxRemoteLead, lead)
	since := ptNanos - c.lastAheadLog
	if c.loggedAhead && since >= 0 && since < int64(logInterval) {
		c.suppressedAhead++
		c.mu.Unlock()
		return ts
	}
	suppressed := c.suppressedAhead
	c.loggedAhead, c.lastAheadLog, c.suppressedAhead = true, ptNanos, 0
	c.mu.Unlock()

	// Log outside the lock: the handler is the caller's code.
	c.logger.LogAttrs(context.Background(), slog.LevelWarn,
		"hlc: remote timestamp ahead of local physical clock by more than max offset",
		slog.String("remote", remote.String()),
		slog.Duration("lead", lead),
		slog.Duration("max_offset", c.maxOffset),
		slog.Uint64("suppressed", suppressed))
	return ts
}

// RemoteTolerance returns how far ahead of local physical time a remote
// timestamp may be for Merge and Check to take it: 2 × MaxOffset. A version
// is never ahead of the physical clock of the node that issued it, and two
// nodes that are each within MaxOffset of the others (the rule of Now) can
// be up to 2 × MaxOffset apart; so can a node and its own previous process,
// whose versions its peers hand back at a restart.
func (c *Clock) RemoteTolerance() time.Duration { return 2 * c.maxOffset }

// Merge is Update for a remote timestamp that must not move the clock
// beyond the cluster's tolerance: a remote timestamp ahead of local physical
// time by more than RemoteTolerance is not merged, and Merge returns
// ErrRemoteAhead (wrapped with the lead) and leaves the clock as it was. The
// replication layer merges every received version with it and does not
// apply a refused one: it holds the stream until the version is in bounds.
// A refusal is counted in Stats (RemoteAhead, RemoteRefused) and not logged
// here: the caller knows the origin and logs it.
func (c *Clock) Merge(remote Timestamp) (Timestamp, error) {
	ptNanos := c.readPhysical()
	lead := remoteLead(remote, ptNanos)
	c.mu.Lock()
	defer c.mu.Unlock()
	if lead > c.RemoteTolerance() {
		c.refuseLocked(lead)
		return 0, fmt.Errorf("%w: %v ahead (tolerance 2 × max offset %v)", ErrRemoteAhead, lead, c.maxOffset)
	}
	return c.advanceLocked(max(c.last, remote), ptNanos/int64(time.Millisecond)), nil
}

// Check reports, without recording an event, whether remote is within
// RemoteTolerance of local physical time: it returns nil, or ErrRemoteAhead
// (wrapped with the lead, and counted as by Merge). It vets remote
// timestamps that bound a decision without being merged, such as a full
// sync's snapshot time or the slots of a tombstone-ghost table.
func (c *Clock) Check(remote Timestamp) error {
	lead := remoteLead(remote, c.readPhysical())
	if lead <= c.RemoteTolerance() {
		return nil
	}
	c.mu.Lock()
	c.refuseLocked(lead)
	c.mu.Unlock()
	return fmt.Errorf("%w: %v ahead (tolerance 2 × max offset %v)", ErrRemoteAhead, lead, c.maxOffset)
}

func (c *Clock) refuseLocked(lead time.Duration) {
	c.stats.RemoteAhead++
	c.stats.RemoteRefused++
	c.stats.MaxRemoteLead = max(c.stats.MaxRemoteLead, lead)
}

// advanceLocked moves c.last past m, the largest timestamp the event has
// seen, given physical time pt in milliseconds, and returns the new value.
//
// Packing the counter into the low bits makes the paper's rules integer
// arithmetic: when pt is ahead of m the result is (pt, 0); otherwise it is
// m+1, which increments m's counter (the paper's "max(c_j, c_m)+1" when the
// millisecond parts tie, since m is the larger of the two) and, when that
// counter is full, carries into the millisecond part rather than wrapping.
func (c *Clock) advanceLocked(m Timestamp, pt int64) Timestamp {
	switch {
	case pt > m.WallMillis():
		c.last = MakeTimestamp(pt, 0)
	case m == MaxTimestamp:
		c.last = MaxTimestamp // saturate rather than wrap to zero
	default:
		if m.Logical() == MaxLogical {
			c.stats.LogicalOverflows++
		}
		c.last = m + 1
	}
	return c.last
}

// remoteLead returns how far remote's millisecond part is ahead of physical
// time ptNanos (>= 0), saturating instead of overflowing for remote
// timestamps beyond the year 2262.
func remoteLead(remote Timestamp, ptNanos int64) time.Duration {
	const maxMillis = math.MaxInt64 / int64(time.Millisecond)
	ms := remote.WallMillis()
	if ms > maxMillis {
		return math.MaxInt64
	}
	return time.Duration(ms*int64(time.Millisecond) - ptNanos)
}

// Stats returns a snapshot of the clock's counters.
func (c *Clock) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Peers = len(c.peers)
	s.PeersOutOfBounds = c.farPeers
	return s
}
