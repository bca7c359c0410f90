package geocache

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/geocache/geocache/internal/store"
)

// Clock supplies physical time to a node: its expiry decisions and the
// physical part of its version clock. Tests inject a manual clock; nil in
// Config means the real clock.
type Clock interface {
	// UnixNano returns the current time in nanoseconds since the Unix epoch.
	UnixNano() int64
}

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
	// MaxValueBytes bounds one value. Default 1 MiB; at most 3 MiB (a value
	// travels in one replication frame).
	MaxValueBytes int
	// DefaultTTL is the time to live of writes without one. 0 means they
	// never expire.
	DefaultTTL time.Duration
	// MaxClockOffset is the largest clock offset tolerated between nodes;
	// a node whose clock is further than this from most of its peers
	// refuses writes (ErrClockSkew), and a node that cannot reach its peers
	// at start waits 2 × this before it takes writes (see Node.Ready).
	// Default 500 ms, at most 1 min.
	MaxClockOffset time.Duration
	// MaxTombstones bounds the deletes remembered exactly, and separately
	// the expiries remembered exactly (an entry that expired keeps its
	// version, so that regions still holding an older version learn of it).
	// Default 100,000 of each.
	MaxTombstones int
	// TombstoneHorizon is how long deletes are remembered exactly, counted
	// from the delete (or from the expiry). A node that could not hear from
	// a peer for longer takes a full sync from it when the link returns,
	// dropping what it can no longer vouch for. Default 1 h.
	TombstoneHorizon time.Duration
	// ReplicationLogBytes bounds the log of this node's writes kept for
	// peers that are behind; a peer further behind gets a full sync.
	// Default 64 MiB. A node without Peers keeps no log (only a link to a
	// peer reads it), whatever this says.
	ReplicationLogBytes int64
	// SyncTimeout bounds how long Node.Synced waits for the first full sync
	// from a peer this node reached at start; past it the node reports
	// synced without it (with a warning). Default 1 min.
	SyncTimeout time.Duration

	// PeerTimeout is how long a replication link may stay silent before it
	// is declared down and redialed; links ping at a quarter of it.
	// Default 4 s.
	PeerTimeout time.Duration
	// AntiEntropyInterval is how often each link compares what both sides
	// hold and repairs differences, besides the rounds after reconnects
	// and lost peers. Default the smaller of 10 min and a quarter of
	// TombstoneHorizon; at most half of TombstoneHorizon (a delete whose
	// origin is lost reaches a region that missed it only through
	// anti-entropy, while its tombstone lives); negative disables the
	// periodic rounds.
	AntiEntropyInterval time.Duration

	// Clock supplies physical time. nil means the real clock.
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
}

// Defaults applied by Open.
const (
	DefaultMaxBytes      = 64 << 20
	DefaultMaxValueBytes = 1 << 20
	// MaxValueBytesLimit is the largest Config.MaxValueBytes: a value
	// travels in one replication frame.
	MaxValueBytesLimit = 3 << 20
	// MaxKeyBytes is the longest key: 64 KiB.
	MaxKeyBytes = 64 << 10
)

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

func (c *Config) validate() error {
	switch {
	case c.MaxBytes < 0 || c.MaxEntries < 0 || c.MaxValueBytes < 0 || c.MaxTombstones < 0 || c.ReplicationLogBytes < 0:
		return fmt.Errorf("%w: limits must not be negative", ErrInvalidConfig)
	case c.DefaultTTL < 0 || c.MaxClockOffset < 0 || c.TombstoneHorizon < 0 || c.PeerTimeout < 0 || c.SyncTimeout < 0:
		return fmt.Errorf("%w: durations must not be negative", ErrInvalidConfig)
	case c.MaxValueBytes > MaxValueBytesLimit:
		return fmt.Errorf("%w: MaxValueBytes %d exceeds %d", ErrInvalidConfig, c.MaxValueBytes, MaxValueBytesLimit)
	case len(c.Peers) > 0 && c.NodeID == 0:
		return fmt.Errorf("%w: NodeID is required with Peers", ErrInvalidConfig)
	}
	if err := validateTLS(c.TLS); err != nil {
		return err
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
	if c.PeerTimeout == 0 {
		c.PeerTimeout = 4 * time.Second
	}
	if c.TombstoneHorizon == 0 {
		c.TombstoneHorizon = store.DefaultTombstoneHorizon
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = min(10*time.Minute, c.TombstoneHorizon/4)
	}
	if c.AntiEntropyInterval > c.TombstoneHorizon/2 {
		return fmt.Errorf("%w: AntiEntropyInterval %v exceeds half the TombstoneHorizon %v: a delete whose origin is lost would reach a region that missed it only after its tombstones are gone",
			ErrInvalidConfig, c.AntiEntropyInterval, c.TombstoneHorizon)
	}
	if c.PeerTimeout < 40*time.Millisecond {
		return fmt.Errorf("%w: PeerTimeout %v is below 40ms", ErrInvalidConfig, c.PeerTimeout)
	}
	if c.Codec == nil {
		c.Codec = JSON{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, p := range c.Peers {
		switch {
		case p == "":
			return fmt.Errorf("%w: empty peer address", ErrInvalidConfig)
		case p == c.PeerAddr:
			return fmt.Errorf("%w: peer %q is this node's own PeerAddr", ErrInvalidConfig, p)
		case seen[p]:
			return fmt.Errorf("%w: peer %q listed twice", ErrInvalidConfig, p)
		}
		seen[p] = true
	}
	return nil
}
