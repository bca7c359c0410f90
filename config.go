package geocache

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/geocache/geocache/internal/clock"
	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
)

// Clock supplies physical time to a node: its expiry decisions and the
// physical part of its version clock. Its one method, UnixNano() int64,
// returns nanoseconds since the Unix epoch. Tests inject a manual clock; nil
// in Config means the real clock. It is geocache's one clock interface
// (lru.Clock is the same type).
type Clock = clock.Clock

// Config configures a Node. The zero value of every field is a sensible
// default: Open(Config{}) gives a single, unreplicated node with a 64 MiB
// budget. A multi-region node needs Region, NodeID, PeerAddr and Peers; the
// presets SingleNode and MultiRegion fill them in.
type Config struct {
	// Cluster names the cluster; nodes of different clusters refuse to
	// replicate to each other. Default "geocache".
	Cluster string
	// Region is this node's region, e.g. "eu-west". Default "local".
	Region string
	// NodeID is the node's numeric id, unique in the cluster and stable for
	// the node (it is the origin part of the versions of its writes).
	// Default 1; required when Peers is set.
	NodeID uint32
	// NodeName names the node in logs and stats. Default "<region>-<id>".
	NodeName string

	// PeerAddr is the TCP address this node listens on for replication from
	// its peers, e.g. "10.0.0.5:7380". Empty means it does not listen.
	PeerAddr string
	// Peers are the replication addresses of the other nodes.
	Peers []string

	// MaxBytes bounds the memory held by entries, counting keys, values and
	// the engine's per-entry overhead. Default 64 MiB if MaxEntries is 0.
	MaxBytes int64
	// MaxEntries bounds the number of entries. 0 means no entry limit.
	MaxEntries int
	// MaxValueBytes bounds one value (and a hash's whole state). Default
	// 16 MiB (DefaultMaxValueBytes); at most 512 MiB (MaxValueBytesLimit,
	// Redis's proto-max-bulk-len). The store keeps a value within one
	// shard of MaxBytes, so a large one needs MaxBytes well above it.
	MaxValueBytes int
	// DefaultTTL is the time to live of writes without one. 0 means they
	// never expire.
	DefaultTTL time.Duration
	// KeyspaceEvents are the keyspace notifications the node starts with,
	// in the syntax of Redis's notify-keyspace-events (see
	// Node.SetKeyspaceEvents, which changes them later). "" means none.
	KeyspaceEvents string
	// MaxClockOffset is the largest clock offset tolerated between nodes;
	// a node whose clock is further than this from most of its peers
	// refuses writes (ErrClockSkew), and a node that cannot reach its peers
	// at start waits 2 × this before it takes writes (see Node.Ready).
	// Default 500 ms (DefaultMaxClockOffset), at most 1 min.
	MaxClockOffset time.Duration
	// MaxTombstones bounds the deletes remembered exactly, and separately
	// the expiries remembered exactly (an entry that expired keeps its
	// version, so that regions still holding an older version learn of it).
	// Default 100,000 of each (DefaultMaxTombstones), at most
	// MaxTombstonesLimit.
	MaxTombstones int
	// TombstoneHorizon is how long deletes are remembered exactly, counted
	// from the delete (or from the expiry). A node that could not hear from
	// a peer for longer takes a full sync from it when the link returns,
	// dropping what it can no longer vouch for. Default 1 h
	// (DefaultTombstoneHorizon).
	TombstoneHorizon time.Duration
	// ReplicationLogBytes bounds the log of this node's writes kept for
	// peers that are behind; a peer further behind gets a full sync.
	// Default 64 MiB (DefaultReplicationLogBytes) or 4 × MaxValueBytes,
	// whichever is larger: the log must hold several of the largest
	// writes, or one pushes out the writes queued before it and the peers
	// that had not taken them need a full sync. A node without Peers keeps
	// no log (only a link to a peer reads it), whatever this says.
	ReplicationLogBytes int64
	// LargeValueWindow bounds, on each link, the bytes of a large value (a
	// write over a replication frame's 256 KiB batch, sent in parts) sent
	// and not yet acknowledged by the peer: such a value crosses at most
	// this much per round trip (4 MiB at 80 ms: 50 MB/s), and a write that
	// passes it on the stream may find this much of it queued ahead at the
	// link's narrowest point. Raise it toward the links' bandwidth × round
	// trip for faster large values over long, fast links. Default 4 MiB
	// (DefaultLargeValueWindow); 256 KiB to 256 MiB.
	LargeValueWindow int
	// SyncTimeout bounds how long Node.Synced waits for the first full sync
	// from a peer this node reached at start; past it the node reports
	// synced without it (with a warning). Default 1 min
	// (DefaultSyncTimeout).
	SyncTimeout time.Duration

	// PeerTimeout is how long a replication link may stay silent before it
	// is declared down and redialed; links ping at a quarter of it.
	// Default 4 s (DefaultPeerTimeout), at least 40 ms.
	PeerTimeout time.Duration
	// AntiEntropyInterval is how often each link compares what both sides
	// hold and repairs differences, besides the rounds after reconnects
	// and lost peers. Default the smaller of 10 min and a quarter of
	// TombstoneHorizon; at most half of TombstoneHorizon (a delete whose
	// origin is lost reaches a region that missed it only through
	// anti-entropy, while its tombstone lives); negative disables the
	// periodic rounds.
	AntiEntropyInterval time.Duration

	// Clock supplies physical time. nil means the real clock, which
	// follows the system's wall clock (Node.Config returns it).
	Clock Clock
	// Logger receives the node's structured logs. nil discards them.
	Logger *slog.Logger
	// Codec encodes the values of SetValue and GetValue. nil means JSON.
	Codec Codec

	// Listener, if set, is used instead of listening on PeerAddr, and Dial
	// instead of TCP, so that tests can run a cluster on an in-memory or
	// fault-injecting network.
	Listener net.Listener
	Dial     func(ctx context.Context, addr string) (net.Conn, error)

	// TLS, if set, secures every replication link with mutual TLS 1.3:
	// the node serves and dials with its certificate (Certificates[0], or
	// GetCertificate and GetClientCertificate, which are asked at every
	// handshake: rotate a certificate by returning the new one), and
	// verifies the peer's against the cluster's CA pool in RootCAs (and
	// ClientCAs for inbound links, RootCAs if nil). A dialed peer's
	// certificate must name the host of its address in Peers (IP or DNS
	// subject alternative name). It wraps Listener and Dial when they are
	// set too. The node requires TLS 1.3 and client certificates whatever
	// the configuration says, and ignores GetConfigForClient. nil means
	// plaintext links (see docs/security.md).
	TLS *tls.Config

	// Gossip, if set, makes this node one of several nodes of its region,
	// found by gossip and sharing the keyspace by hash slot (see
	// GossipConfig). nil is a region of one node.
	Gossip *GossipConfig
}

// Defaults applied by Open (Config.validate) to the zero values of
// Config's fields; Node.Config returns them filled in.
const (
	DefaultMaxBytes            = 64 << 20
	DefaultMaxValueBytes       = 16 << 20
	DefaultMaxClockOffset      = hlc.DefaultMaxOffset
	DefaultMaxTombstones       = store.DefaultMaxTombstones
	DefaultTombstoneHorizon    = store.DefaultTombstoneHorizon
	DefaultReplicationLogBytes = 64 << 20
	DefaultLargeValueWindow    = 4 << 20
	DefaultSyncTimeout         = time.Minute
	DefaultPeerTimeout         = 4 * time.Second
)

// Limits on Config's fields and on writes.
const (
	// MaxValueBytesLimit is the largest Config.MaxValueBytes: 512 MiB,
	// the largest string Redis takes (its proto-max-bulk-len default).
	MaxValueBytesLimit = 512 << 20
	// MinLargeValueWindow and MaxLargeValueWindow bound
	// Config.LargeValueWindow: at least one part, at most what a link may
	// reasonably hold in flight.
	MinLargeValueWindow = 256 << 10
	MaxLargeValueWindow = 256 << 20
	// MaxTombstonesLimit is the largest Config.MaxTombstones.
	MaxTombstonesLimit = store.MaxTombstonesLimit
	// MaxClockOffsetLimit is the largest Config.MaxClockOffset: clocks
	// further apart are broken, not skewed.
	MaxClockOffsetLimit = hlc.MaxMaxOffset
	// MinPeerTimeout is the smallest Config.PeerTimeout.
	MinPeerTimeout = 40 * time.Millisecond
	// MaxKeyBytes is the longest key: 64 KiB.
	MaxKeyBytes = 64 << 10
)

// A ConfigError is what Open and Config.Validate return for a bad Config:
// the field at fault and what is wrong with it. It wraps ErrInvalidConfig.
type ConfigError struct {
	// Field is the name of the Config field at fault, e.g. "MaxValueBytes".
	Field string
	// Value is the field's value as given, or nil when Reason says all
	// (e.g. "must not be negative").
	Value any
	// Reason says what is wrong with the value, e.g. "exceeds 512MiB,
	// the largest value Redis takes". It names other fields by their names
	// in Config.
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%v: %s %s", ErrInvalidConfig, e.Field, e.Reason)
	}
	return fmt.Sprintf("%v: %s %v %s", ErrInvalidConfig, e.Field, e.Value, e.Reason)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// SingleNode returns the Config of one node that replicates nowhere, with a
// memory budget in bytes.
func SingleNode(maxBytes int64) Config {
	return Config{MaxBytes: maxBytes}
}

// OneRegion returns the Config of node id in a single-region cluster: its
// peers are the other nodes of the same region, which all hold the data.
func OneRegion(id uint32, peerAddr string, peers ...string) Config {
	return Config{NodeID: id, PeerAddr: peerAddr, Peers: peers}
}

// MultiRegion returns the Config of node id in region, listening for
// replication on peerAddr and streaming its writes to peers (the
// replication addresses of every other node, in every region).
func MultiRegion(region string, id uint32, peerAddr string, peers ...string) Config {
	return Config{Region: region, NodeID: id, PeerAddr: peerAddr, Peers: peers}
}

// Validate reports the first problem Open would find in c's own fields, as
// a *ConfigError (or, for TLS, an error wrapping ErrInvalidConfig), without
// opening anything. Tools that build a Config from their own settings
// (geocache serve's flags) call it to report errors in their own terms.
func (c Config) Validate() error { return c.validate() }

// validate checks c and fills in the defaults. It is the one place where
// Config's rules and defaults live.
func (c *Config) validate() error {
	negative := func(field string) error { return &ConfigError{Field: field, Reason: "must not be negative"} }
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxBytes", c.MaxBytes}, {"MaxEntries", int64(c.MaxEntries)}, {"MaxValueBytes", int64(c.MaxValueBytes)},
		{"MaxTombstones", int64(c.MaxTombstones)}, {"ReplicationLogBytes", c.ReplicationLogBytes},
		{"LargeValueWindow", int64(c.LargeValueWindow)},
		{"DefaultTTL", int64(c.DefaultTTL)}, {"MaxClockOffset", int64(c.MaxClockOffset)},
		{"TombstoneHorizon", int64(c.TombstoneHorizon)}, {"PeerTimeout", int64(c.PeerTimeout)},
		{"SyncTimeout", int64(c.SyncTimeout)},
	} {
		if f.v < 0 {
			return negative(f.name)
		}
	}
	switch {
	case c.MaxValueBytes > MaxValueBytesLimit:
		return &ConfigError{"MaxValueBytes", c.MaxValueBytes, fmt.Sprintf("exceeds %dMiB, the largest value Redis takes (proto-max-bulk-len)", MaxValueBytesLimit>>20)}
	case c.LargeValueWindow != 0 && (c.LargeValueWindow < MinLargeValueWindow || c.LargeValueWindow > MaxLargeValueWindow):
		return &ConfigError{"LargeValueWindow", c.LargeValueWindow, fmt.Sprintf("is outside %dKiB to %dMiB", MinLargeValueWindow>>10, MaxLargeValueWindow>>20)}
	case c.MaxTombstones > MaxTombstonesLimit:
		return &ConfigError{"MaxTombstones", c.MaxTombstones, fmt.Sprintf("exceeds %d", MaxTombstonesLimit)}
	case c.MaxClockOffset > MaxClockOffsetLimit:
		return &ConfigError{"MaxClockOffset", c.MaxClockOffset, fmt.Sprintf("exceeds %v: clocks further apart are broken, not skewed", MaxClockOffsetLimit)}
	case c.PeerTimeout != 0 && c.PeerTimeout < MinPeerTimeout:
		return &ConfigError{"PeerTimeout", c.PeerTimeout, fmt.Sprintf("is below %v", MinPeerTimeout)}
	case len(c.Peers) > 0 && c.NodeID == 0:
		return &ConfigError{Field: "NodeID", Reason: "is required with Peers"}
	}
	if err := validateTLS(c.TLS); err != nil {
		return err
	}
	if _, err := parseKeyspaceEvents(c.KeyspaceEvents); err != nil {
		return &ConfigError{"KeyspaceEvents", fmt.Sprintf("%q", c.KeyspaceEvents), fmt.Sprintf("has a character not in %q", KeyspaceEventClasses)}
	}
	if g := c.Gossip; g != nil {
		switch {
		case g.Addr == "":
			return &ConfigError{Field: "Gossip.Addr", Reason: "is required"}
		case c.NodeID == 0:
			return &ConfigError{Field: "NodeID", Reason: "is required with Gossip: every node of a region needs its own id"}
		case g.Copies < 0:
			return negative("Gossip.Copies")
		case g.ProbeInterval < 0 || g.ProbeTimeout < 0:
			return negative("Gossip.ProbeInterval and ProbeTimeout")
		case c.PeerAddr == "" && c.Listener == nil && g.ReplAddr == "":
			return &ConfigError{Field: "PeerAddr", Reason: "is required with Gossip: the region's members replicate to each other"}
		case len(g.Key) != 0 && len(g.Key) != 16 && len(g.Key) != 24 && len(g.Key) != 32:
			return &ConfigError{"Gossip.Key", fmt.Sprintf("%d bytes", len(g.Key)), "must be 16, 24 or 32 bytes"}
		}
		if g.Copies == 0 {
			g.Copies = cluster.DefaultCopies
		}
	}
	if c.Cluster == "" {
		c.Cluster = "geocache"
	}
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.Region == "" {
		c.Region = "local"
	}
	if c.NodeName == "" {
		c.NodeName = fmt.Sprintf("%s-%d", c.Region, c.NodeID)
	}
	if c.MaxBytes == 0 && c.MaxEntries == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = DefaultMaxClockOffset
	}
	if c.MaxTombstones == 0 {
		c.MaxTombstones = DefaultMaxTombstones
	}
	if c.LargeValueWindow == 0 {
		c.LargeValueWindow = DefaultLargeValueWindow
	}
	if c.ReplicationLogBytes == 0 {
		c.ReplicationLogBytes = max(DefaultReplicationLogBytes, 4*int64(c.MaxValueBytes))
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = DefaultPeerTimeout
	}
	if c.TombstoneHorizon == 0 {
		c.TombstoneHorizon = DefaultTombstoneHorizon
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = min(10*time.Minute, c.TombstoneHorizon/4)
	}
	if c.AntiEntropyInterval > c.TombstoneHorizon/2 {
		return &ConfigError{"AntiEntropyInterval", c.AntiEntropyInterval, fmt.Sprintf(
			"is more than half the TombstoneHorizon %v: a delete whose origin is lost would reach a region that missed it only after its tombstones are gone", c.TombstoneHorizon)}
	}
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	if c.Codec == nil {
		c.Codec = JSON{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	for i, p := range c.Peers {
		switch {
		case p == "":
			return &ConfigError{Field: "Peers", Reason: "has an empty address"}
		case p == c.PeerAddr:
			return &ConfigError{"Peers", p, "is this node's own PeerAddr"}
		case slices.Contains(c.Peers[:i], p):
			return &ConfigError{"Peers", p, "is listed twice"}
		}
	}
	return nil
}
