package geocache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/repl"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// Errors. Each method's doc lists those it returns; test with errors.Is.
var (
	// ErrNotFound: the key holds no live entry.
	ErrNotFound = errors.New("geocache: not found")
	// ErrInvalidConfig: Open refused the Config.
	ErrInvalidConfig = errors.New("geocache: invalid config")
	// ErrTooLarge: a key or value exceeds its limit (MaxKeyBytes,
	// Config.MaxValueBytes, or what one shard of the memory budget holds).
	ErrTooLarge = errors.New("geocache: key or value too large")
	// ErrClockSkew: this node's clock is further than MaxClockOffset from
	// most of its peers; it refuses writes until it is back in bounds.
	ErrClockSkew = errors.New("geocache: clock out of bounds relative to peers")
	// ErrAckTimeout: a write was applied locally but not acknowledged by
	// enough regions before the context ended. It stays applied and keeps
	// replicating.
	ErrAckTimeout = errors.New("geocache: write not acknowledged by enough regions in time")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("geocache: node closed")
	// ErrStarting wraps the context's error of a write that ended while
	// the node was still merging its peers' clocks after Open (see
	// Node.Ready).
	ErrStarting = errors.New("geocache: node starting: waiting for the peers' clocks")
	// ErrContended: a read-modify-write (Update, IncrBy, UpdateHash,
	// SetAllIfAbsent, Rename, Copy, …) found its key rewritten with a newer
	// version before each of its attempts applied, and wrote nothing.
	// Retrying is safe.
	ErrContended = errors.New("geocache: the key was rewritten during every attempt of a conditional write")
)

// Ack is how far a write must have travelled before the call returns.
type Ack uint8

const (
	// Local acknowledges a write once it is applied on this node
	// (microseconds); it reaches other regions about one network delay
	// later. A write acknowledged only locally is lost if this node dies
	// before sending it.
	Local Ack = iota
	// Quorum waits until a majority of regions (this one included) have
	// applied the write: it then survives the loss of any minority of
	// regions.
	Quorum
	// All waits until every known region has applied the write.
	All
)

// String returns the level's name.
func (a Ack) String() string {
	switch a {
	case Local:
		return "local"
	case Quorum:
		return "quorum"
	case All:
		return "all"
	}
	return fmt.Sprintf("Ack(%d)", uint8(a))
}

// Option modifies one write.
type Option func(*writeOpts)

type writeOpts struct {
	expiry   expiryMode
	ttl      time.Duration
	expireAt time.Time
	ack      Ack
	ackSet   bool
}

type expiryMode uint8

const (
	expiryDefault expiryMode = iota // Config.DefaultTTL
	expiryNone
	expiryTTL
	expiryAt
)

// WithTTL makes the entry expire after d. d <= 0 stores nothing and
// removes the key, as for an entry that has already expired.
func WithTTL(d time.Duration) Option {
	return func(o *writeOpts) { o.expiry, o.ttl = expiryTTL, d }
}

// WithExpireAt makes the entry expire at t, the same instant in every
// region. A t not in the future stores nothing and removes the key.
func WithExpireAt(t time.Time) Option {
	return func(o *writeOpts) { o.expiry, o.expireAt = expiryAt, t }
}

// NoExpiry stores the entry without expiry, overriding Config.DefaultTTL.
func NoExpiry() Option {
	return func(o *writeOpts) { o.expiry = expiryNone }
}

// WithAck sets the acknowledgement level of the write (default Local).
func WithAck(a Ack) Option {
	return func(o *writeOpts) { o.ack, o.ackSet = a, true }
}

// Node is one member of a geocache cluster, embedded in the process. All
// methods are safe for concurrent use.
type Node struct {
	cfg   Config
	id    uint32
	clock *hlc.Clock
	store *store.Store
	repl  *repl.Replicator
	phys  Clock
	acks  ackLatency // time writes wait for Quorum and All (stats.go)
	// maxBytes is the memory budget in force (SetMaxBytes, which
	// maxBytesMu serializes); Config reports it.
	maxBytes   atomic.Int64
	maxBytesMu sync.Mutex

	// ready is closed once writes no longer wait for the peers' clocks
	// (see Ready); readyTimer and readyWait end with Close.
	ready     chan struct{}
	readyOnce sync.Once
	// boot is an HLC timestamp at or before every version this process
	// issues and after every version an earlier process of this node
	// issued (set when ready): a counter's contribution opened at or
	// after it is this process's own (internal/store's IncrBy).
	boot       atomic.Uint64
	readyTimer *time.Timer
	readyWait  sync.WaitGroup

	// The region's gossip and slot map (region.go); nil without
	// Config.Gossip. regionMu serializes membership changes and guards
	// regionPeers, the replication peers added for the region's members,
	// regionLeft and regionLeavingFrom.
	members     *cluster.Membership
	slots       atomic.Pointer[slotMap]
	relay       atomic.Pointer[relayPlan] // GossipConfig.SlotsOnly (region_relay.go)
	regionMu    sync.Mutex
	regionPeers map[string]bool
	regionLeft  bool // LeaveRegion dropped this node from its own map
	// regionLeavingFrom is this node's state before LeaveRegion.
	regionLeavingFrom cluster.MemberState
	// Slot-owned storage (region_keep.go; GossipConfig.SlotsOnly): the
	// slots kept and cold, coldGen the last warming round marked (under
	// regionMu), keepWake wakes keepSlots, regionStop (closed by Close)
	// stops it, forgotten counts the entries forgotten, slotSyncFallbacks
	// the warming rounds whose slot syncs failed (warmRound).
	keep              atomic.Pointer[slotSet]
	cold              atomic.Pointer[coldSlots]
	coldGen           uint32
	keepWake          chan struct{}
	regionStop        chan struct{}
	stopRegion        sync.Once
	forgotten         atomic.Uint64
	slotSyncFallbacks atomic.Uint64
	vouchMemo         atomic.Pointer[vouchMemo] // vouched's last answer
	keptMemo          atomic.Pointer[keptMemo]  // keptSlots' last answer
	// fetchedReads counts the reads answered by an owner (region_fetch.go),
	// fetchUnavailable those no owner answered.
	fetchedReads, fetchUnavailable atomic.Uint64

	listeners listeners                 // of published messages (pubsub.go)
	gate      atomic.Pointer[BatchGate] // SetBatchGate
	notify    atomic.Uint32             // keyspace notification classes (notify.go)
	// notifyMu serializes SetKeyspaceEvents, which sets notify and the
	// store's removal reports: two calls at once must not leave each with
	// the other's value.
	notifyMu sync.Mutex
}

// Open starts a node: its store, its clock and, if PeerAddr, Listener or
// Peers are set, replication. It returns an error wrapping ErrInvalidConfig
// for a bad Config, or the listen error.
func Open(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	phys := cfg.Clock // validate filled it in
	clock, err := hlc.New(hlc.Config{Physical: phys, MaxOffset: cfg.MaxClockOffset, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, clock: clock, phys: phys}
	n.maxBytes.Store(cfg.MaxBytes)
	st, err := store.Open(store.Config{
		MaxBytes: cfg.MaxBytes, MaxEntries: cfg.MaxEntries, Clock: phys,
		// A value of the largest size allowed fits in one shard of the
		// budget, unless the budget is smaller than the value.
		LargestEntry:  int64(cfg.MaxValueBytes) + MaxKeyBytes,
		MaxTombstones: cfg.MaxTombstones, TombstoneHorizon: cfg.TombstoneHorizon,
		OnChange: n.onChange,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	n.store = st
	n.SetKeyspaceEvents(cfg.KeyspaceEvents) // validated
	ln := cfg.Listener
	if ln == nil && cfg.PeerAddr != "" {
		if ln, err = net.Listen("tcp", cfg.PeerAddr); err != nil {
			st.Close()
			return nil, fmt.Errorf("geocache: listen for replication: %w", err)
		}
	}
	var keeps func(string) bool
	var vouched func() []byte
	var wanted func(bool) []byte
	var kept func() []byte
	var keepsSlot, holds func(int) bool
	var relayed func() []byte
	var relayTo func(int) []string
	if cfg.Gossip != nil && cfg.Gossip.SlotsOnly {
		keeps, vouched, wanted = n.keeps, n.vouched, n.wanted
		kept, keepsSlot, holds = n.keptSlots, n.keepsSlot, n.holdsSlot
		n.keepWake, n.regionStop = make(chan struct{}, 1), make(chan struct{})
	}
	if cfg.Gossip != nil {
		// Slot-owned or full copies: a write of another region crosses
		// into the region once, to its slot's primary (region_relay.go).
		relayed, relayTo = n.relayedSlots, n.relayTo
	}
	dial := cfg.Dial
	if cfg.TLS != nil {
		pt := newPeerTLS(&cfg, phys)
		if ln != nil {
			ln = pt.listen(ln)
		}
		dial = pt.dialer(dial)
	}
	n.repl, err = repl.New(repl.Config{
		Cluster: cfg.Cluster, Region: cfg.Region, NodeID: cfg.NodeID, NodeName: cfg.NodeName,
		Store: st, Clock: clock, Physical: phys,
		Listener: ln, Peers: cfg.Peers, Dial: dial,
		Log:          repl.LogConfig{MaxBytes: cfg.ReplicationLogBytes},
		PingInterval: cfg.PeerTimeout / 4,
		DeadTimeout:  cfg.PeerTimeout,
		// A primary that relays nothing for a dead-peer timeout is taken
		// for gone: the stream resumes with the writes owed whole.
		RelayWait:           cfg.PeerTimeout,
		AntiEntropyInterval: cfg.AntiEntropyInterval,
		TombstoneHorizon:    cfg.TombstoneHorizon,
		ReconnectMax:        min(2*time.Second, cfg.PeerTimeout),
		SyncTimeout:         cfg.SyncTimeout,
		// Tracking a full sync's keys costs at most what holding them
		// does: a peer with this node's budget never exceeds it.
		MaxSnapshotBytes: max(repl.DefaultMaxSnapshotBytes, cfg.MaxBytes),
		// Any transaction a peer's clients can make, whatever its
		// MaxValueBytes: a batch a receiver refused would stop the stream.
		MaxBatchBytes: wire.MaxValueLen + 64<<20,
		LargeWindow:   cfg.LargeValueWindow,
		OnPublish:     func(channel string, payload []byte) { n.listeners.deliver(channel, payload) },
		ApplyBatch:    n.applyBatch,
		Keeps:         keeps,
		Vouched:       vouched,
		Wanted:        wanted,
		KeptSlots:     kept,
		KeepsSlot:     keepsSlot,
		Holds:         holds,
		RelayedSlots:  relayed,
		RelayTo:       relayTo,
		Logger:        cfg.Logger,
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		st.Close()
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if g := cfg.Gossip; g != nil {
		replAddr := g.ReplAddr
		if replAddr == "" && ln != nil {
			replAddr = ln.Addr().String()
			if ip, ok := ln.Addr().(*net.TCPAddr); ok && ip.IP.IsUnspecified() {
				n.repl.Close()
				st.Close()
				return nil, fmt.Errorf("%w: Gossip.ReplAddr: the replication listener %s listens on every interface; give the address the region's other nodes dial", ErrInvalidConfig, replAddr)
			}
		}
		// Joined before replication starts: the members found now count
		// toward Ready and Synced like configured peers.
		if err := n.startRegion(g, replAddr); err != nil {
			n.repl.Close()
			st.Close()
			return nil, fmt.Errorf("geocache: region gossip: %w", err)
		}
	}
	n.repl.Start()
	n.ready = make(chan struct{})
	if len(n.repl.Peers()) == 0 {
		n.markReady()
	} else {
		// One millisecond more: a version of the old process may share its
		// last millisecond, with a logical counter above 0.
		n.readyTimer = time.AfterFunc(2*clock.MaxOffset()+time.Millisecond, n.markReady)
		n.readyWait.Go(func() {
			<-n.repl.ClockMerged() // closed by repl.Close at the latest
			n.markReady()
		})
	}
	return n, nil
}

func (n *Node) markReady() {
	n.readyOnce.Do(func() {
		// Every version issued from now on is above the clock's last
		// reading and not behind the physical clock, which (Ready's
		// wait) is past every version of an earlier process.
		phys := hlc.MakeTimestamp(n.phys.UnixNano()/int64(time.Millisecond), 0)
		n.boot.Store(uint64(max(n.clock.Last()+1, phys)))
		close(n.ready)
	})
}

// Ready is closed once the node versions writes without waiting. A node
// with peers starts by merging their clocks (each peer's answer to its
// first connection carries the peer's hybrid logical clock, which is past
// every write the peer received from this node's earlier processes), so
// that a node restarted with its clock behind never versions a write below
// one it made before the restart: such a write would lose, everywhere, to
// the older one. Writes made before then wait: until every peer has
// answered, or 2 × MaxClockOffset after Open when some cannot be reached
// (by then the node's clock is past the versions its earlier process can
// have issued, if clocks keep within MaxClockOffset), or until the write's
// context ends. Reads never wait. A node without peers is ready at once.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// ClockInBounds reports whether this node's clock is within MaxClockOffset
// of most of its peers, as measured at each link's handshake and by its
// pings, that is whether writes are versioned; while it is not, they fail
// with ErrClockSkew. A node started with its clock far from its peers is out
// of bounds from the handshakes on, so by the time Ready is closed its first
// write is refused. So is a node whose clock was set back by more than
// 2 × MaxClockOffset (a clock that ran ahead, fixed): its versions, up to
// there, would be held by every peer, until its physical time catches up. A
// node without peers is in bounds unless its clock was set back.
func (n *Node) ClockInBounds() bool { return n.clock.Writable() }

// Synced is closed once the node holds what its peers could give it at
// start: for every peer it reached, the peer's first full sync to it has
// completed (a restarted node has refilled), or Config.SyncTimeout passed
// (a warning names the peer). A peer that could not be reached at start is
// not waited for. A node without peers is synced at once. Readiness checks
// (geocache serve's /readyz) wait for it; reads and writes do not.
func (n *Node) Synced() <-chan struct{} { return n.repl.Synced() }

// IDConflict is closed once a replication handshake, in either direction,
// has revealed another node with this node's NodeID. Both refuse the link
// (an error is logged on each side); Stats().IDConflicts counts them. A
// node that sees it while starting is the misconfigured one, most likely.
func (n *Node) IDConflict() <-chan struct{} { return n.repl.IDConflict() }

// Get returns a copy of the value of key, served by this node (or, on a
// node that keeps only its own slots, by an owner of the key's slot:
// GossipConfig.SlotsOnly). It returns ErrNotFound if the key holds no
// live entry (it never returns an entry after its expiry time),
// ErrWrongType if it holds a hash (HGetAll reads it), ErrUnavailable if
// it had to ask the owners and none answered.
func (n *Node) Get(key string) ([]byte, error) {
	v, err := n.GetShared(key)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), v...), nil
}

// GetShared is Get without the copy: the returned bytes are the node's own
// and must not be modified, nor kept past the caller's immediate use if it
// cares about memory (they keep the value alive). The node never modifies
// a value in place (a write stores new bytes), so a reader holding them
// sees the value as it was read. The Redis server uses it to write values
// to the socket without a copy.
func (n *Node) GetShared(key string) ([]byte, error) {
	var e store.Entry
	var ok bool
	if n.keep.Load() == nil { // every key kept here: the hot path, direct
		e, ok = n.store.Get(key)
	} else {
		var err error
		if e, ok, err = n.readEntry(key, true); err != nil {
			return nil, err
		}
	}
	switch {
	case !ok || e.Empty:
		n.keyMiss(key)
		return nil, ErrNotFound
	case e.Kind == store.KindHash:
		return nil, ErrWrongType
	}
	return e.Value, nil
}

// Set stores value under key (copying it), versions the write, applies it
// here and streams it to every other region. With WithAck(Quorum) or
// WithAck(All) it then waits, within ctx, for other regions to apply it.
// Errors: ErrTooLarge, ErrClockSkew, ErrAckTimeout (applied here, not yet
// acknowledged), ErrClosed.
func (n *Node) Set(ctx context.Context, key string, value []byte, opts ...Option) error {
	return n.set(ctx, nil, key, value, opts)
}

func (n *Node) set(ctx context.Context, s *Session, key string, value []byte, opts []Option) error {
	o := n.options(s, opts)
	if err := n.checkSizes(key, value); err != nil {
		return err
	}
	op := store.Op{Kind: store.KindSet, Key: key, Value: append([]byte(nil), value...)}
	return n.write(ctx, s, op, o)
}

// CheckSize reports whether a write of a key of keyLen bytes with a value
// of valueLen bytes is within the limits on keys and values (MaxKeyBytes,
// Config.MaxValueBytes): nil, or the error wrapping ErrTooLarge that Set
// would return. Set also refuses an entry too large for one shard of the
// memory budget, which it can only tell when it applies it. A caller that
// writes several keys checks them all first, so that a refusal leaves none
// of them written.
func (n *Node) CheckSize(keyLen int, valueLen int64) error {
	if keyLen > MaxKeyBytes || valueLen > int64(n.cfg.MaxValueBytes) {
		return fmt.Errorf("%w: key of %d bytes, value of %d (limits %d, %d)", ErrTooLarge, keyLen, valueLen, MaxKeyBytes, n.cfg.MaxValueBytes)
	}
	return nil
}

func (n *Node) checkSizes(key string, value []byte) error {
	return n.CheckSize(len(key), int64(len(value)))
}

// Delete removes key everywhere: a versioned delete that beats every older
// write of key in every region. Deleting an absent key is not an error (it
// still orders the delete after older writes in flight). Errors as Set.
func (n *Node) Delete(ctx context.Context, key string, opts ...Option) error {
	return n.delete(ctx, nil, key, opts)
}

func (n *Node) delete(ctx context.Context, s *Session, key string, opts []Option) error {
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: key of %d bytes", ErrTooLarge, len(key))
	}
	return n.write(ctx, s, store.Op{Kind: store.KindDelete, Key: key}, n.options(s, opts))
}

func (n *Node) options(s *Session, opts []Option) writeOpts {
	if len(opts) == 0 {
		// Without options o's address is never taken, so it stays on the
		// stack: most writes allocate only their value's copy.
		var o writeOpts
		if s != nil {
			o.ack = Ack(s.ack.Load())
		}
		return o
	}
	return applyOptions(s, opts)
}

func applyOptions(s *Session, opts []Option) writeOpts {
	var o writeOpts
	for _, f := range opts {
		f(&o)
	}
	if !o.ackSet && s != nil {
		o.ack = Ack(s.ack.Load())
	}
	return o
}

// DefaultExpireAt returns the expiry that a write made now without one
// gets: now plus Config.DefaultTTL, or the zero time (never) if that is 0.
// An Update callback that stores a new key returns it as Change.ExpireAt to
// expire the key as Set would.
func (n *Node) DefaultExpireAt() time.Time {
	if at := n.defaultExpireAt(); at != 0 {
		return time.Unix(0, at)
	}
	return time.Time{}
}

func (n *Node) defaultExpireAt() int64 {
	if n.cfg.DefaultTTL > 0 {
		return n.phys.UnixNano() + int64(n.cfg.DefaultTTL)
	}
	return 0
}

// expireAt turns the options into an absolute expiry (Unix ns, 0 = none)
// for a write made at now (Unix ns, a reading of n.phys).
func (n *Node) expireAt(o writeOpts, now int64) int64 {
	switch o.expiry {
	case expiryDefault:
		if n.cfg.DefaultTTL > 0 {
			return now + int64(n.cfg.DefaultTTL)
		}
	case expiryTTL:
		return now + max(int64(o.ttl), 0)
	case expiryAt:
		return max(o.expireAt.UnixNano(), 1)
	}
	return 0
}

func (n *Node) version(ctx context.Context) (store.Version, error) {
	ver, _, err := n.versionAt(ctx)
	return ver, err
}

// versionAt returns the version of a write made now and the physical time
// (Unix ns, a reading of n.phys) it was taken at, which a Set's expiry
// counts from: one clock read for both.
func (n *Node) versionAt(ctx context.Context) (store.Version, int64, error) {
	select {
	case <-n.ready:
	default:
		select {
		case <-n.ready:
		case <-ctx.Done():
			return store.Version{}, 0, fmt.Errorf("%w: %w", ErrStarting, ctx.Err())
		}
	}
	now := n.phys.UnixNano()
	ts, err := n.clock.NowWithinAt(now)
	if err != nil {
		if errors.Is(err, hlc.ErrClockOutOfBounds) || errors.Is(err, hlc.ErrAheadOfPhysical) {
			return store.Version{}, 0, fmt.Errorf("%w: %w", ErrClockSkew, err)
		}
		return store.Version{}, 0, err
	}
	return store.Version{HLC: ts, Origin: n.id}, now, nil
}

// write versions op, gives a Set its expiry from o, applies op here and
// publishes it.
func (n *Node) write(ctx context.Context, s *Session, op store.Op, o writeOpts) error {
	ver, now, err := n.versionAt(ctx)
	if err != nil {
		return err
	}
	op.Version = ver
	if op.Kind == store.KindSet {
		op.ExpireAt = n.expireAt(o, now)
		if o.expiry >= expiryTTL { // an expiry of its own: "set", "expire"
			op.Event = store.Event(EventSetExpire)
		}
	}
	if res := n.store.Apply(op); res == store.TooLarge {
		return fmt.Errorf("%w: the entry does not fit in one shard of the memory budget", ErrTooLarge)
	}
	return n.await(ctx, n.publish(s, op), o.ack, op.Key)
}

// maxWriteAttempts bounds the attempts of one read-modify-write (Update
// and the writes built on it, IncrBy, UpdateHash): each takes a version,
// then the key's lock, and starts again if a newer write of the key came
// in between. Each attempt's version is newer than the one that came first.
const maxWriteAttempts = 8

// storeUpdate is store.Update at a version taken now. The version is taken
// before the key's lock, so a write that reaches the key in between with a
// newer version (another caller's, or one replicated from another region)
// makes the op Stale: fn decided on a state the op's version does not
// follow, and nothing was written. Reporting that as done would lose the
// write while the caller counts it made (a "set if absent" reporting true
// with its key deleted), so fn runs again at a new version: the clock is
// past every version this node has made or merged, so another attempt is
// Stale only if yet another newer write came in between. After
// maxWriteAttempts the write gives up with ErrContended, having written
// nothing. fn may therefore run more than once.
func (n *Node) storeUpdate(ctx context.Context, key string, fn func(cur store.Entry, found bool) (store.Op, bool)) (prev store.Entry, found bool, op store.Op, res store.Result, err error) {
	if err := n.pull(ctx, key); err != nil {
		return store.Entry{}, false, store.Op{}, store.Declined, err
	}
	for range maxWriteAttempts {
		ver, err := n.version(ctx)
		if err != nil {
			return store.Entry{}, false, store.Op{}, store.Declined, err
		}
		if prev, found, op, res = n.store.Update(key, ver, fn); res != store.Stale {
			return prev, found, op, res, nil
		}
	}
	return prev, found, op, res, fmt.Errorf("%w: %d attempts", ErrContended, maxWriteAttempts)
}

// publish hands a write applied here to replication and records it in its
// session.
func (n *Node) publish(s *Session, op store.Op) uint64 {
	if s != nil && s.collect(op) {
		return 0 // appended with its batch (Session.EndBatch)
	}
	seq := n.repl.Append(op)
	if s != nil {
		if op.Kind != store.KindPublish {
			s.noteSlot(op.Key) // before its seq: a Wait that sees the seq sees its slot
		}
		s.noteWrite(seq)
	}
	return seq
}

// await waits for the acknowledgement level of the write with sequence seq
// (0: a write of a batch, waited for by Session.EndBatch) of keys (nil:
// any key): a region counts once a node of it holding the keys' slots
// acknowledged it (repl.Replicator.Wait).
func (n *Node) await(ctx context.Context, seq uint64, ack Ack, keys ...string) error {
	var need int
	switch {
	case ack == Local || seq == 0:
		return nil
	case ack == Quorum:
		need = n.repl.Regions() / 2 // others, with this region: a majority
	case ack == All:
		need = n.repl.Regions() - 1
	default:
		return fmt.Errorf("geocache: unknown acknowledgement level %v", ack)
	}
	start := time.Now()
	var slots []uint16
	if keys != nil {
		slots = make([]uint16, len(keys))
		for i, k := range keys {
			slots[i] = uint16(cluster.KeySlot(k))
		}
	}
	got, err := n.repl.Wait(ctx, seq, slots, need)
	n.acks.observe(ack, start, err)
	switch {
	case errors.Is(err, repl.ErrClosed):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("%w: %d of %d other regions applied it: %w", ErrAckTimeout, got, need, err)
	}
	return nil
}

// Expire sets key to expire after ttl in every region (ttl <= 0 deletes
// it), as a new versioned write of its current value. Errors: ErrNotFound,
// and those of Set.
func (n *Node) Expire(ctx context.Context, key string, ttl time.Duration, opts ...Option) error {
	return n.expire(ctx, nil, key, n.phys.UnixNano()+int64(ttl), opts)
}

// ExpireAt sets key to expire at t in every region (a t not in the future
// deletes it). Errors as Expire.
func (n *Node) ExpireAt(ctx context.Context, key string, t time.Time, opts ...Option) error {
	return n.expire(ctx, nil, key, t.UnixNano(), opts)
}

// Persist removes the expiry of key in every region. Errors as Expire.
func (n *Node) Persist(ctx context.Context, key string, opts ...Option) error {
	return n.expire(ctx, nil, key, 0, opts)
}

// expire rewrites key's expiry (Unix ns; 0 = none; not after now =
// delete) in one atomic read-modify-write.
func (n *Node) expire(ctx context.Context, s *Session, key string, at int64, opts []Option) error {
	ev := EventExpire
	if at == 0 {
		ev = EventPersist
	}
	_, found, err := n.update(ctx, s, key, func(cur Item, found bool) Change {
		if !found {
			return Change{}
		}
		if at != 0 && at <= n.phys.UnixNano() {
			return Change{Action: Remove, Event: ev} // "del"
		}
		return Change{Action: Put, Value: cur.Value, expireAt: at, rawExpiry: true, Event: ev}
	}, opts)
	if err == nil && !found {
		return ErrNotFound
	}
	return err
}

// Action says what an Update callback does with the key.
type Action uint8

const (
	// Keep leaves the key as it is; nothing is written or replicated.
	Keep Action = iota
	// Put stores Change.Value with Change.ExpireAt.
	Put
	// Remove deletes the key.
	Remove
)

// Change is what an Update callback decides.
type Change struct {
	Action Action
	// Value is the new value for Put. It may be the current value passed to
	// the callback, unchanged, to change only the expiry (a counter then
	// keeps its contributions: see IncrBy); otherwise it is copied.
	Value []byte
	// ExpireAt is the expiry for Put; the zero time means none.
	ExpireAt time.Time
	// Event is the keyspace notification the change announces, if
	// enabled (SetKeyspaceEvents): EventAuto, the default, announces
	// "set" for a new value, "expire" (or "persist") for the current
	// value with another expiry, "del" for a removal; a command that
	// Redis names otherwise names its event (EventAppend for an APPEND
	// made with Update). A Remove announces "del" (after "hdel" for
	// EventHdel) whatever the event.
	Event Event

	expireAt  int64 // Unix ns, used instead of ExpireAt when rawExpiry
	rawExpiry bool
}

// Update reads key and writes what fn decides, atomically on this node:
// no other write to key on this node comes between the read and the write.
// The write is versioned and replicated like any other (and other regions
// may hold concurrent writes: last-writer-wins still decides there). It is
// the building block of conditional writes such as "set if absent".
//
// fn runs under the key's lock with the live entry (found is false if there
// is none); it must be quick, must not call the node, and must not keep or
// modify cur.Value. It may run more than once: if a write with a newer
// version reached the key first, fn decides again on what it wrote.
// Update returns a copy of the entry before the change. Errors as Set, and
// ErrContended if the key was rewritten during every attempt; Update
// itself returns ErrNotFound never.
func (n *Node) Update(ctx context.Context, key string, fn func(cur Item, found bool) Change, opts ...Option) (prev Item, found bool, err error) {
	return n.update(ctx, nil, key, fn, opts)
}

func (n *Node) update(ctx context.Context, s *Session, key string, fn func(cur Item, found bool) Change, opts []Option) (Item, bool, error) {
	if len(key) > MaxKeyBytes {
		return Item{}, false, fmt.Errorf("%w: key of %d bytes", ErrTooLarge, len(key))
	}
	var sizeErr error
	prevEntry, found, op, res, err := n.storeUpdate(ctx, key, func(cur store.Entry, found bool) (store.Op, bool) {
		sizeErr = nil
		ch := fn(itemOf(cur, false), found)
		ev := ch.Event
		if ev >= eventCopyTo {
			ev = EventAuto // the node's own codes are not for callers
		}
		switch ch.Action {
		case Put:
			exp := ch.expireAt
			if !ch.rawExpiry && !ch.ExpireAt.IsZero() {
				exp = max(ch.ExpireAt.UnixNano(), 1)
			}
			v, base := ch.Value, cur.Value
			if cur.Kind == store.KindHash {
				base = cur.State // a hash's Item.Value
			}
			if found && len(v) == len(base) && len(v) > 0 && &v[0] == &base[0] {
				// The value passed in: only the expiry changes, a counter
				// keeps its contributions and a hash its fields.
				if ev == EventAuto {
					ev = EventExpire
					if exp == 0 {
						ev = EventPersist
					}
				}
				return store.Op{Kind: store.KindExpire, ExpireAt: exp, Event: store.Event(ev)}, true
			}
			if sizeErr = n.checkSizes(key, ch.Value); sizeErr != nil {
				return store.Op{}, false
			}
			return store.Op{Kind: store.KindSet, Value: append([]byte(nil), v...), ExpireAt: exp, Event: store.Event(ev)}, true
		case Remove:
			return store.Op{Kind: store.KindDelete, Event: store.Event(ev)}, true
		}
		return store.Op{}, false
	})
	prev := itemOf(prevEntry, true)
	switch {
	case err != nil:
		return prev, found, err
	case sizeErr != nil:
		return prev, found, sizeErr
	case res == store.Declined:
		return prev, found, nil // the callback kept the key
	case res == store.TooLarge:
		return prev, found, fmt.Errorf("%w: the entry does not fit in one shard of the memory budget", ErrTooLarge)
	}
	return prev, found, n.await(ctx, n.publish(s, op), n.options(s, opts).ack, key)
}

func itemOf(e store.Entry, copyValue bool) Item {
	it := Item{Value: e.Value, HLC: uint64(e.Version.HLC), Origin: e.Version.Origin, Type: TypeString}
	if e.Kind == store.KindHash {
		it.Type, it.Value = TypeHash, e.State
	}
	if copyValue && e.Value != nil {
		it.Value = append([]byte(nil), e.Value...)
	}
	if e.ExpireAt != 0 {
		it.ExpireAt = time.Unix(0, e.ExpireAt)
	}
	return it
}

// TTL returns the time key has left to live on this node's clock (0 if it
// never expires), or ErrNotFound. The time left of a key that expires is
// at least 1 ns: 0 always means "never".
func (n *Node) TTL(key string) (time.Duration, error) {
	e, ok, err := n.readEntry(key, false)
	if err != nil {
		return 0, err
	}
	if !ok || e.Empty {
		return 0, ErrNotFound
	}
	if e.ExpireAt == 0 {
		return 0, nil
	}
	// The clock read here may be past the store's read in Peek: a key
	// that expired in between is reported with the least time left, not
	// as one that never expires.
	return time.Duration(max(e.ExpireAt-n.phys.UnixNano(), 1)), nil
}

// Contains reports whether key holds a live entry on this node, without
// making it more recently used (as Lookup, without copying the value).
func (n *Node) Contains(key string) bool {
	e, ok, err := n.readEntry(key, false)
	return err == nil && ok && !e.Empty
}

// Item is a key's entry with its version, as Lookup returns it.
type Item struct {
	Value []byte
	// HLC and Origin are the version of the write that produced the entry:
	// the hybrid logical clock value and the node id where it was written.
	HLC    uint64
	Origin uint32
	// ExpireAt is when the entry expires everywhere; zero if never.
	ExpireAt time.Time
	// Type is the type of the value: TypeString, or TypeHash for a hash,
	// whose Value is its state in an internal encoding (HGetAll reads its
	// fields). An Update callback that Puts a hash's Value back, unchanged,
	// changes only its expiry, as for a string.
	Type Type
}

// Lookup returns key's entry with its version without making it more
// recently used, or ErrNotFound.
func (n *Node) Lookup(key string) (Item, error) {
	e, ok, err := n.readEntry(key, false)
	if err != nil {
		return Item{}, err
	}
	if !ok || e.Empty {
		return Item{}, ErrNotFound
	}
	return itemOf(e, true), nil
}

// Wait blocks until every write made on this node so far has been applied
// in at least regions other regions, or ctx ends, and returns how many
// other regions have applied them (like Redis's WAIT, which counts
// replicas). It returns ctx's error if it gave up.
func (n *Node) Wait(ctx context.Context, regions int) (int, error) {
	got, err := n.repl.Wait(ctx, n.repl.LastSeq(), nil, regions)
	if errors.Is(err, repl.ErrClosed) {
		return got, ErrClosed
	}
	return got, err
}

// Close stops replication and background work and waits for every
// goroutine the node started. It is idempotent.
func (n *Node) Close() error {
	if n.readyTimer != nil {
		n.readyTimer.Stop()
	}
	if n.members != nil {
		// Tell the region at once rather than let it detect a failure.
		// Leave announces Leaving first; until Close ends, the membership
		// changes still reported here keep this node in the state it had
		// (as after LeaveRegion), not one it never held.
		n.regionMu.Lock()
		if st := n.members.State(); !n.regionLeft && st != cluster.Leaving {
			n.regionLeavingFrom = st
		}
		n.regionMu.Unlock()
		if err := n.members.Leave(time.Second); err != nil {
			n.cfg.Logger.Warn("region: leave not announced", "err", err)
		}
		n.members.Close()
		if n.regionStop != nil {
			n.stopRegion.Do(func() { close(n.regionStop) })
		}
	}
	n.repl.Close()
	n.readyWait.Wait()
	return n.store.Close()
}

// Drain waits until every peer connected now has applied every write made
// on this node before the call, or ctx ends (it then returns ctx's error).
// Call it before Close for a graceful shutdown, once no more writes come:
// writes still in the replication log when Close runs are lost for the
// other regions (unless anti-entropy from a region that has them repairs
// it). A peer whose link dropped moments ago (within twice the reconnect
// backoff's cap) is waited for; peers down for longer are not. It returns
// ErrClosed after Close.
func (n *Node) Drain(ctx context.Context) error {
	if err := n.repl.Drain(ctx); errors.Is(err, repl.ErrClosed) {
		return ErrClosed
	} else if err != nil {
		return err
	}
	return nil
}

// FlushLocal removes every entry and tombstone on this node only; nothing
// is replicated. Versions of what it removes are remembered (in the ghost
// table), so older writes still in flight are refused rather than brought
// back.
func (n *Node) FlushLocal() { n.store.Purge() }

// Config returns the node's configuration, with defaults filled in and
// the memory budget in force (SetMaxBytes).
func (n *Node) Config() Config {
	c := n.cfg
	c.Peers = append([]string(nil), n.cfg.Peers...)
	c.MaxBytes = n.maxBytes.Load()
	return c
}

// Tombstone returns the version of key's delete, or of the write whose
// expiry removed it, if this node remembers it (up to Config.MaxTombstones
// of each and TombstoneHorizon), for diagnostics and consistency checkers.
func (n *Node) Tombstone(key string) (hlc uint64, origin uint32, ok bool) {
	v, ok := n.store.Tombstone(key)
	return uint64(v.HLC), v.Origin, ok
}
