package repl

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/geocache/geocache/internal/clock"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// Errors returned by the replicator.
var (
	// ErrInvalidConfig is wrapped by New's errors for a bad Config.
	ErrInvalidConfig = errors.New("repl: invalid config")
	// ErrClosed is returned by Wait after Close.
	ErrClosed = errors.New("repl: closed")
)

// Config configures a Replicator. Zero values are defaults.
type Config struct {
	// Cluster names the cluster; nodes of different clusters refuse each
	// other. Default "geocache".
	Cluster string
	// Region is this node's region. Default "local".
	Region string
	// NodeID is this node's numeric id, the origin of its writes. Required
	// (non-zero) and unique in the cluster.
	NodeID uint32
	// NodeName names the node in logs and stats. Default "node-<id>".
	NodeName string

	// Store receives replicated writes and is walked for full syncs and
	// anti-entropy. Required.
	Store Store
	// Clock is the node's hybrid logical clock. Required.
	Clock *hlc.Clock
	// Physical is the physical clock used for clock-offset measurement.
	// nil means the real clock. It should be the one Clock reads.
	Physical hlc.PhysicalClock

	// Listener accepts connections from peers. nil means the node only
	// dials out (it then receives nothing).
	Listener net.Listener
	// Peers are the addresses this node dials to stream its writes.
	Peers []string
	// Dial connects to a peer. nil means a net.Dialer over TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// Log bounds the replication log.
	Log LogConfig
	// MaxFrame bounds frames read and written, in bytes. Default
	// wire.DefaultMaxFrame (4 MiB).
	MaxFrame int
	// BatchBytes is the most op bytes sent in one frame. Default 256 KiB;
	// at most MaxFrame - wire.MaxOpsHeader.
	BatchBytes int
	// Coalesce is how long a busy link holds writes so that they go out
	// in one frame: once a frame of writes is sent, the next waits until
	// Coalesce has passed, unless BatchBytes of writes are ready. An idle
	// link sends a write at once. Default 500 µs (a small part of any
	// one-way delay between regions; it turns one write(2) per write and
	// per link into one per frame); negative sends every write at once.
	Coalesce time.Duration
	// PingInterval is how often an idle link sends a Ping (which also
	// measures round-trip time and clock offset). Default 1 s.
	PingInterval time.Duration
	// DeadTimeout closes a connection that has received nothing for this
	// long, or cannot complete a write in this long. Default 5 s; at least
	// twice PingInterval.
	DeadTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between dial
	// attempts. Defaults 50 ms and 2 s.
	ReconnectMin, ReconnectMax time.Duration
	// MaxSnapshotKeys bounds the keys a receiver tracks during one full
	// sync. Default 4 Mi; a larger snapshot is refused (the link resets).
	MaxSnapshotKeys int
	// MaxSnapshotBytes bounds the memory a receiver holds for one full sync
	// in flight: the keys it tracks, each counted with its length plus a
	// fixed overhead (the values go to the store, which is bounded by its
	// own budget). A larger sync is refused with an error naming the
	// budget. Default DefaultMaxSnapshotBytes (64 MiB).
	MaxSnapshotBytes int64
	// MaxInbound caps the accepted connections open at once; one more is
	// closed at once, counted (Stats.InboundRefused) and logged at most once
	// per WarnInterval. Default 4 × the number of peers + 8.
	MaxInbound int
	// AntiEntropyInterval is how often every link runs an anti-entropy
	// round besides those after reconnects and peer restarts. Default
	// 10 min; negative disables the periodic rounds.
	AntiEntropyInterval time.Duration
	// TombstoneHorizon is how long the store keeps tombstones. An origin
	// that has been unreachable for longer is sent for a full sync when it
	// comes back, whose drop rule removes what this node can no longer
	// vouch for (deletes it missed whose tombstones are gone everywhere:
	// invariants I2 and I3 of docs/design.md). 0 never forces one.
	TombstoneHorizon time.Duration

	// WarnInterval rate-limits the warnings about a link that cannot be
	// established or was lost: at most one per peer and reason per
	// interval (the others are debug lines, counted in the next warning).
	// Default 1 min.
	WarnInterval time.Duration
	// SyncTimeout bounds how long Synced waits for the first full sync
	// from a peer reached at start. Default 1 min.
	SyncTimeout time.Duration

	// OnPublish receives each pub/sub message (a KindPublish op) of an
	// origin's stream, once per message and in the origin's order: a
	// message already delivered is not delivered again when the stream
	// replays it (after a full sync). It runs on the origin's receiving
	// goroutine and must not block. nil drops messages.
	OnPublish func(channel string, payload []byte)

	// ApplyBatch, if set, runs apply — which applies every op of one of
	// an origin's batches (a transaction: wire.KindBatch) — as one unit
	// for this node's readers: the node layer holds back its clients'
	// commands on those keys meanwhile. keys are the batch's keys. nil
	// runs apply directly (the store applies each op atomically, not the
	// batch).
	ApplyBatch func(keys []string, apply func())
	// Keeps, if set, says whether this node keeps the live entries of a
	// key (a node of a region that stores only its own slots). A
	// replicated write of a key it does not keep — from a stream, a full
	// sync or an anti-entropy repair — is merged into the clock and
	// counted, not applied. Deletes are applied whatever the key, so that
	// a node that comes to keep the key later still refuses an older write
	// of it arriving late (I3). Keeps is called on the receiving
	// goroutines and must be fast. nil keeps every key.
	Keeps func(key string) bool
	// Vouched, if set, returns the hash slots (a wire.SlotSetLen-byte set)
	// whose entries this node holds all of, or nil for every key: sent with
	// each full sync (SnapshotBegin), so that the receiver's drop rule
	// judges only those keys by it. A node keeping only some slots must set
	// it (its slots kept and warm): a snapshot of part of the keyspace says
	// nothing of the rest.
	Vouched func() []byte
	// Wanted, if set, returns the hash slots (a wire.SlotSetLen-byte set)
	// a full sync this node asks for is to carry, or nil for every key;
	// fill is true when the sync only fills keys this node came to keep
	// (Resync) rather than vouching for everything it keeps (a first sync,
	// an absence past the tombstone horizon). The sender sends only those
	// slots' keys, and the drop rule judges only them.
	Wanted func(fill bool) []byte
	// KeptSlots, if set, returns the hash slots (a wire.SlotSetLen-byte
	// set) whose writes this node keeps, or nil for every key: sent to
	// each origin with the Resume, so that the origin sends the writes of
	// other slots' keys as skips (wire.KindSkip: version and slot only).
	// KeepsSlot must then say the same of one slot, as Keeps does of a
	// key: a skip of a slot this node has come to keep since it resumed
	// ends the stream, which resumes at once from that op with the slots
	// kept now (wire.RejectKeeps).
	KeptSlots func() []byte
	KeepsSlot func(slot int) bool
	// RelayedSlots, if set, returns the hash slots (a wire.SlotSetLen-byte
	// set within KeptSlots' if that is set; nil for none) whose writes by origins of
	// other regions this node takes from its region's primary of the
	// slot, which hands each on (RelayTo), rather than whole from the
	// origin: the origin sends each as a stand-in (wire.KindRelayed), and
	// this node acknowledges it once relayed. It runs at every frame
	// received and must be fast: return the same slice while the set is
	// the same.
	RelayedSlots func() []byte
	// RelayTo, if set, returns the replication addresses of the peers
	// (links of this node) to hand on a write of slot received whole from
	// an origin of another region: the slot's other owners in this
	// region, when this node is its primary (nil or empty: none). It
	// runs for every such write and must be fast and not allocate.
	RelayTo func(slot int) []string
	// RelayWait is how long a write taken relayed may wait for its relay
	// before the stream ends and resumes from it with every kept slot
	// whole (a change of the slots taken relayed ends it at once). It
	// should outlast the time the origin's links take to reconnect after
	// a cut (ReconnectMax): the primary's may come back after this node's.
	// Default DefaultRelayWait.
	RelayWait time.Duration
	// Holds, if set, reports whether this node holds every write its
	// region holds of slot's keys (it keeps the slot and has filled it):
	// the answer to a Fetch of another slot's key says it may be partial.
	Holds func(slot int) bool

	// MaxBatchBytes bounds the ops of one batch buffered while its frames
	// arrive. Default 64 MiB.
	MaxBatchBytes int64
	// LargeWindow bounds the bytes of a large op's value sent on a stream
	// and not yet acknowledged by the peer (PartAck): what a write that
	// passes the large op may find queued before it on the way. It also
	// bounds a large value's speed to LargeWindow per round trip. Default
	// 4 MiB (100 MB/s at 40 ms).
	LargeWindow int
	// MaxValueBytes bounds the value of one large op (an op too large for
	// a frame, sent in parts) collected from a peer: at most one per
	// connection is in memory, growing with the parts received. A peer
	// that announces more is refused. Default and most wire.MaxValueLen
	// (512 MiB): peers of one cluster should all take what any of them
	// may send, or a stream stops at the first value one cannot take.
	MaxValueBytes int

	// Logger receives structured logs. nil discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.NodeID == 0:
		return fmt.Errorf("%w: NodeID must be non-zero", ErrInvalidConfig)
	case c.Store == nil:
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	case c.Clock == nil:
		return fmt.Errorf("%w: Clock is required", ErrInvalidConfig)
	case len(c.Cluster) > wire.MaxNameLen || len(c.Region) > wire.MaxNameLen || len(c.NodeName) > wire.MaxNameLen:
		return fmt.Errorf("%w: cluster, region and node names are limited to %d bytes", ErrInvalidConfig, wire.MaxNameLen)
	case c.MaxFrame < 0 || c.BatchBytes < 0 || c.PingInterval < 0 || c.DeadTimeout < 0 ||
		c.ReconnectMin < 0 || c.ReconnectMax < 0 || c.MaxSnapshotKeys < 0 || c.WarnInterval < 0 || c.SyncTimeout < 0 ||
		c.MaxSnapshotBytes < 0 || c.MaxInbound < 0 || c.MaxBatchBytes < 0:
		return fmt.Errorf("%w: limits and durations must not be negative", ErrInvalidConfig)
	case (c.KeptSlots == nil) != (c.KeepsSlot == nil):
		return fmt.Errorf("%w: KeptSlots and KeepsSlot go together", ErrInvalidConfig)
	case c.RelayWait < 0:
		return fmt.Errorf("%w: RelayWait must not be negative", ErrInvalidConfig)
	}
	if c.RelayWait == 0 {
		c.RelayWait = DefaultRelayWait
	}
	if c.Cluster == "" {
		c.Cluster = "geocache"
	}
	if c.Region == "" {
		c.Region = "local"
	}
	if c.NodeName == "" {
		c.NodeName = fmt.Sprintf("node-%d", c.NodeID)
	}
	if c.Physical == nil {
		c.Physical = clock.NewReal()
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	if c.MaxFrame < 64<<10 {
		return fmt.Errorf("%w: MaxFrame %d is below 64 KiB", ErrInvalidConfig, c.MaxFrame)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = min(256<<10, c.MaxFrame-wire.MaxOpsHeader)
	}
	if c.BatchBytes > c.MaxFrame-wire.MaxOpsHeader {
		return fmt.Errorf("%w: BatchBytes %d does not fit in MaxFrame %d", ErrInvalidConfig, c.BatchBytes, c.MaxFrame)
	}
	if c.Coalesce == 0 {
		c.Coalesce = DefaultCoalesce
	}
	if c.PingInterval == 0 {
		c.PingInterval = time.Second
	}
	if c.DeadTimeout == 0 {
		c.DeadTimeout = max(5*time.Second, 2*c.PingInterval)
	}
	if c.DeadTimeout < 2*c.PingInterval {
		return fmt.Errorf("%w: DeadTimeout %v is under twice PingInterval %v", ErrInvalidConfig, c.DeadTimeout, c.PingInterval)
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 50 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 2 * time.Second
	}
	c.ReconnectMax = max(c.ReconnectMax, c.ReconnectMin)
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = 10 * time.Minute
	}
	if c.MaxSnapshotKeys == 0 {
		c.MaxSnapshotKeys = 4 << 20
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if c.WarnInterval == 0 {
		c.WarnInterval = time.Minute
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 64 << 20
	}
	if c.LargeWindow <= 0 {
		c.LargeWindow = 4 << 20
	}
	if c.MaxValueBytes <= 0 || c.MaxValueBytes > wire.MaxValueLen {
		c.MaxValueBytes = wire.MaxValueLen
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Replicator streams this node's writes to its peers and applies theirs.
// Append adds a local write to the log; one goroutine per peer address
// sends the log, one goroutine per accepted connection receives. Close stops
// them all.
type Replicator struct {
	cfg         Config
	incarnation uint64
	log         *Log[store.Op]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below. Lock order: mu before a link's or an
	// origin's own mutex; never a store lock while holding mu.
	mu      sync.Mutex
	links   map[string]*link        // by dialed address
	origins map[uint32]*originState // receive side, by origin node id
	conns   map[net.Conn]struct{}   // every open connection, for Close
	ackCh   chan struct{}           // closed and replaced when any ack advances
	closed  bool

	// removed remembers, by address, how far the peers of removed links
	// had acknowledged this node's log (see RemovePeer).
	removed map[string]removedLink

	started bool // Start ran: links added now start at once

	// unmerged counts the links whose peer's clock has not been merged
	// yet; clockMerged is closed (clockMergedClosed) when it reaches 0.
	unmerged          int
	clockMerged       chan struct{}
	clockMergedClosed bool

	// synced is set when syncedCh is closed (see Synced); syncWake wakes
	// the goroutine that decides it.
	synced   bool
	syncedCh chan struct{}
	syncWake chan struct{}

	// idConflicts counts the handshakes that revealed another node with
	// this node's id, the last of them described by idConflict;
	// conflictCh is closed at the first (conflicted).
	idConflicts uint64
	idConflict  string
	conflicted  bool
	conflictCh  chan struct{}

	refusals map[refusalKey]*warnState // rate limit of inbound refusals; bounded

	// inbound counts the accepted connections open now (at most
	// Config.MaxInbound); inboundRefused those closed at once for the cap.
	inbound        int
	inboundRefused uint64
	inboundWarn    warnState
	// repairsHeld counts repair ops too far ahead to apply; repairWarn
	// rate-limits their warning.
	repairsHeld uint64
	repairWarn  warnState
	// probedDeletes counts the probed tombstones applied (answerProbe).
	probedDeletes atomic.Uint64

	// notKept counts the replicated writes not applied because this node
	// does not keep their keys (Config.Keeps).
	notKept atomic.Uint64
	// fetchPeers are the fetch connections by peer address (fetchMu);
	// the counters are of fetches answered, asked and failed (fetch.go).
	fetchMu                                   sync.Mutex
	fetchPeers                                map[string]*fetchPeer
	fetchesServed, fetchesSent, fetchFailures atomic.Uint64
	// The slot syncs answered, taken and failed (slotsync.go).
	slotSyncsServed, slotSyncs, slotSyncFailures atomic.Uint64
	// keepsGrew counts the streams ended by a skip of a slot this node
	// has come to keep since the stream resumed.
	keepsGrew atomic.Uint64
	resyncs   uint64 // Resync calls; guarded by mu
	// Relays (relay.go): handed on, not queued (no link up, or its queue
	// full), applied, not applied (taken whole already, or of an origin
	// never streamed here), and streams ended for a relay missed.
	relaysSent, relaysDropped, relaysApplied, relaysIgnored, relaysMissed atomic.Uint64
}

// New validates cfg and returns a replicator that has started nothing yet;
// Start starts it.
func New(cfg Config) (*Replicator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l, err := NewLog[store.Op](cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("repl: incarnation id: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replicator{
		cfg:         cfg,
		incarnation: binary.BigEndian.Uint64(b[:]) | 1, // never 0
		log:         l,
		ctx:         ctx,
		cancel:      cancel,
		links:       map[string]*link{},
		removed:     map[string]removedLink{},
		origins:     map[uint32]*originState{},
		conns:       map[net.Conn]struct{}{},
		ackCh:       make(chan struct{}),
		clockMerged: make(chan struct{}),
		syncedCh:    make(chan struct{}),
		syncWake:    make(chan struct{}, 1),
		conflictCh:  make(chan struct{}),
	}
	// Only a link to a peer reads the log (a receiving stream reads the
	// store): while this node dials nobody it keeps one record, for its
	// sequence numbers; the first peer added restores the bound.
	l.SetMaxRecords(1)
	r.mu.Lock()
	for _, addr := range cfg.Peers {
		if _, dup := r.links[addr]; !dup {
			r.newLinkLocked(addr)
		}
	}
	if r.unmerged == 0 {
		r.closeClockMergedLocked()
	}
	r.mu.Unlock()
	return r, nil
}

// ClockMerged is closed once this node has merged the clock of every
// configured peer (the HLC in its Resume), which is at least the version of
// every write the peer received from this node's earlier incarnations, or
// when the replicator closes. A
// restarted node whose clock is behind versions it issued before must not
// version writes until then, or they would lose to its own older writes
// (the node layer waits for it, within a bound).
func (r *Replicator) ClockMerged() <-chan struct{} { return r.clockMerged }

// mergePeerClock merges the HLC of a peer's Resume, once per link counting
// toward ClockMerged. An HLC further ahead of this node's physical clock
// than the max offset is not merged (one node cannot drag another's clock
// into the future) but counts as heard: the handshake measured the peer's
// physical clock, and if most peers are that far off this node refuses
// writes (hlc.ErrClockOutOfBounds) rather than waiting.
func (r *Replicator) mergePeerClock(l *link, name string, ts uint64) {
	if _, err := r.cfg.Clock.Merge(hlc.Timestamp(ts)); err != nil {
		l.mu.Lock()
		log, suppressed := l.clockWarn.allow(time.Now(), r.cfg.WarnInterval)
		l.mu.Unlock()
		if log {
			r.cfg.Logger.Warn("replication peer's clock not merged: ahead of this node's clock by more than twice the max clock offset",
				"peer", l.addr, "node", name, "err", err, "suppressed", suppressed)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if l.clockMerged || r.unmerged == 0 {
		return
	}
	l.clockMerged = true
	r.unmerged--
	if r.unmerged == 0 {
		r.closeClockMergedLocked()
	}
}

func (r *Replicator) closeClockMergedLocked() {
	if !r.clockMergedClosed {
		r.clockMergedClosed = true
		close(r.clockMerged)
	}
}

// Start begins accepting connections and dialing peers.
func (r *Replicator) Start() {
	if r.cfg.Listener != nil {
		r.wg.Go(r.acceptLoop)
	}
	r.mu.Lock()
	r.started = true
	for _, l := range r.links {
		r.startLinkLocked(l)
	}
	noPeers := len(r.links) == 0
	r.mu.Unlock()
	if r.cfg.AntiEntropyInterval > 0 {
		r.wg.Go(func() { r.repairPeriodically(r.cfg.AntiEntropyInterval) })
	}
	if noPeers {
		r.closeSynced()
	} else {
		r.wg.Go(r.watchSync)
	}
}

// Append appends a local write to the log and wakes the senders. It
// returns the write's sequence number, which Wait takes.
func (r *Replicator) Append(op store.Op) uint64 {
	return r.log.Append(op, opSize(&op))
}

// AppendBatch appends ops as one transaction: a KindBatch marker, then the
// ops, consecutive in the log, which every receiver applies as one unit
// (Config.ApplyBatch). It returns the sequence number of the last op. One
// op is appended alone; more than wire.MaxBatchOps are appended as
// batches of at most that many.
func (r *Replicator) AppendBatch(ops []store.Op) uint64 {
	var last uint64
	for len(ops) > 0 {
		chunk := ops[:min(len(ops), wire.MaxBatchOps)]
		ops = ops[len(chunk):]
		if len(chunk) == 1 {
			last = r.Append(chunk[0])
			continue
		}
		recs := make([]store.Op, 0, len(chunk)+1)
		recs = append(recs, store.Op{Kind: store.KindBatch, ExpireAt: int64(len(chunk)), Version: chunk[0].Version})
		recs = append(recs, chunk...)
		sizes := make([]int64, len(recs))
		for i := range recs {
			sizes[i] = opSize(&recs[i])
		}
		last = r.log.AppendAll(recs, sizes) + uint64(len(chunk))
	}
	return last
}

// LastSeq returns the sequence number of the latest published write (0 if
// none).
func (r *Replicator) LastSeq() uint64 { return r.log.Next() - 1 }

// opSize is what a log record costs: its key and value and the record's
// own slot in the log's ring.
func opSize(op *store.Op) int64 {
	return int64(len(op.Key)+len(op.Value)) + logRecordSize
}

var logRecordSize = int64(unsafe.Sizeof(logRecord[store.Op]{}))

// Close stops every goroutine and closes every connection, then waits for
// them. It is idempotent. It does not close the Listener's underlying
// resources beyond the listener itself.
func (r *Replicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.unmerged = 0
	r.closeClockMergedLocked() // nobody waits for a closed replicator
	if !r.synced {
		r.synced = true
		close(r.syncedCh)
	}
	for c := range r.conns {
		c.Close()
	}
	close(r.ackCh)
	r.mu.Unlock()
	r.cancel()
	if r.cfg.Listener != nil {
		r.cfg.Listener.Close()
	}
	r.wg.Wait()
	return nil
}

// track registers an open connection so Close can close it; it reports
// false (and closes conn) if the replicator is closing.
func (r *Replicator) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Replicator) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

// hello is this node's Hello announcing wire.Proto; helloAt one
// announcing proto.
func (r *Replicator) hello() *wire.Hello { return r.helloAt(wire.Proto) }

func (r *Replicator) helloAt(proto uint16) *wire.Hello {
	return &wire.Hello{
		Proto:         proto,
		Cluster:       r.cfg.Cluster,
		Region:        r.cfg.Region,
		NodeName:      r.cfg.NodeName,
		NodeID:        r.cfg.NodeID,
		Incarnation:   r.incarnation,
		PhysicalNanos: r.cfg.Physical.UnixNano(),
	}
}

// checkHello validates a peer's Hello; a non-nil Reject says why it is
// refused.
func (r *Replicator) checkHello(h *wire.Hello) *wire.Reject {
	switch {
	case h.Proto < wire.MinProto:
		return &wire.Reject{Code: wire.RejectProtocol, Message: fmt.Sprintf("protocol %d; this node speaks %d to %d", h.Proto, wire.MinProto, wire.Proto)}
	case h.Cluster != r.cfg.Cluster:
		// The peer is not told this node's cluster: a wrong guess must
		// not learn the right one.
		return &wire.Reject{Code: wire.RejectCluster, Message: fmt.Sprintf(
			"node %q says it is in cluster %q, which is not this node's; nodes of different clusters do not replicate (--cluster)",
			h.NodeName, h.Cluster)}
	case h.NodeID == 0:
		return &wire.Reject{Code: wire.RejectBadFrame, Message: "node id 0"}
	case h.NodeID == r.cfg.NodeID && h.Incarnation == r.incarnation:
		return &wire.Reject{Code: wire.RejectDuplicateNode, Message: selfDial + ": remove its own address from its peers"}
	case h.NodeID == r.cfg.NodeID:
		return &wire.Reject{Code: wire.RejectDuplicateNode, Message: fmt.Sprintf(
			"duplicate node id %d: node %q of region %q and node %q of region %q both have it; every node needs its own id (--node)",
			h.NodeID, h.NodeName, h.Region, r.cfg.NodeName, r.cfg.Region)}
	case h.Incarnation == 0:
		return &wire.Reject{Code: wire.RejectBadFrame, Message: "incarnation 0"}
	}
	return nil
}
