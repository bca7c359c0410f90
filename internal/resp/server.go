package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/pubsub"
)

// Defaults of Config's zero values.
const (
	DefaultMaxClients      = 10_000
	DefaultMaxRequestBytes = 64 << 20
	DefaultMaxArgs         = 1 << 20
	DefaultUnauthLimit     = 16 << 10
	// DefaultAuthTimeout bounds the time a client has to authenticate when
	// a password is set.
	DefaultAuthTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds the time one request may take to arrive
	// once its first byte has.
	DefaultRequestTimeout = 30 * time.Second
	// RequestMargin is what a request may hold beside its largest value
	// (the command, the key, the headers): geocache serve bounds a request
	// to MaxValueBytes + RequestMargin.
	RequestMargin = 1 << 20
	// DefaultPubSubHardLimit, DefaultPubSubSoftLimit and
	// DefaultPubSubSoftTime are Redis's "client-output-buffer-limit pubsub
	// 32mb 8mb 60".
	DefaultPubSubHardLimit = 32 << 20
	DefaultPubSubSoftLimit = 8 << 20
	DefaultPubSubSoftTime  = 60 * time.Second
	// DefaultAckTimeout bounds how long a write waits for the acknowledgement
	// level set by GEOCACHE ACK before it answers -TIMEOUT; a connection can
	// choose another bound with GEOCACHE ACK <level> <timeout-ms>.
	DefaultAckTimeout = 5 * time.Second
)

// ErrInvalidConfig is returned (wrapped) by New for a Config it refuses.
var ErrInvalidConfig = errors.New("resp: invalid config")

// Config configures a Server. The zero value of every field but Node is a
// sensible default.
type Config struct {
	// Node is the geocache node the server fronts. Required.
	Node *geocache.Node
	// RequirePass, if not empty, is the password of the "default" user:
	// clients must AUTH (or HELLO ... AUTH) before any other command.
	// CONFIG SET requirepass changes it later (settings.go).
	RequirePass string
	// MaxClients bounds the clients connected at once. Beyond it a new
	// connection is answered "-ERR max number of clients reached" and
	// closed. Default 10,000; CONFIG SET maxclients changes it later.
	MaxClients int
	// MaxRequestBytes bounds one request (a whole command, headers
	// included), in bytes (CONFIG GET client-query-buffer-limit). Default
	// 64 MiB, or the node's MaxValueBytes + RequestMargin if that is
	// larger: a request must be able to carry the largest value. At most
	// 2 GiB.
	MaxRequestBytes int
	// MaxArgs bounds the arguments of one command (its name included).
	// Default 1,048,576.
	MaxArgs int
	// MaxBulkBytes bounds a single argument, in bytes: Redis's
	// proto-max-bulk-len, which CONFIG GET reports and which bounds
	// GETBIT's and SETBIT's offsets as in Redis. An argument announced
	// longer is answered Redis's "-ERR Protocol error: invalid bulk
	// length" as its header arrives, before its bytes, and the connection
	// closes. Default the node's MaxValueBytes, or MaxKeyBytes (64 KiB) if
	// that is larger, so that every key can be sent; a value between the
	// node's limit and this one is read and refused by the node ("-ERR key
	// or value too large: ...", the connection stays open).
	MaxBulkBytes int
	// Redirect makes the server answer as a Redis Cluster node: -MOVED
	// for a key of a slot this node does not own, -CROSSSLOT for keys in
	// several slots (redirect.go). It needs a node of a region of several
	// nodes (geocache.Config.Gossip); without a slot map it changes
	// nothing. Off by default: every node serves every key. A node that
	// keeps only its own slots (geocache.GossipConfig.SlotsOnly) needs it.
	Redirect bool
	// Forward makes a node that keeps only its own slots serve every
	// client (forward.go): a command on keys of a slot this node does not
	// keep is forwarded to an owner in the region and its reply relayed;
	// MGET, MSET, DEL, UNLINK, EXISTS and TOUCH over several slots are
	// split by owner. Cluster-aware clients still route by CLUSTER SLOTS
	// and go straight to the owners. It needs a node of a region
	// (geocache.Config.Gossip) and excludes Redirect.
	Forward bool
	// coldSlot stands in for Node.ColdSlot in tests (nil: the node's).
	coldSlot func(slot int) (ask string, cold bool)
	// IdleTimeout closes a client that has sent nothing (or has not read
	// its replies) for this long. 0 means never, like Redis's "timeout 0".
	// A client blocked in WAIT is not idle, and, as in Redis, a subscribed
	// client is never closed for being quiet. CONFIG SET timeout changes
	// it later, in whole seconds.
	IdleTimeout time.Duration
	// UnauthLimit bounds the bytes a client may send before it
	// authenticates, when RequirePass is set; past it the connection is
	// answered with an error and closed. Default 16 KiB.
	UnauthLimit int

	// RESP protection (guard.go).

	// ProtectedMode, when RequirePass is empty, serves local clients only
	// (Config.IsLocal): any other client is answered Redis's "-DENIED Redis
	// is running in protected mode ..." and closed, as Redis's
	// protected-mode. A client that presented a certificate verified
	// against the TLS configuration's ClientCAs counts as local. Off in the
	// zero value; geocache serve turns it on unless --protected-mode no.
	ProtectedMode bool
	// IsLocal decides which clients protected mode serves. Default
	// IsLoopback (loopback addresses and Unix sockets). Tests inject
	// another: the machines that run them only have loopback addresses.
	IsLocal func(remote net.Addr) bool
	// AuthTimeout, when RequirePass is set, closes a client that has not
	// authenticated this long after it connected, with "-ERR Protocol
	// error: not authenticated within <d>". Default 10 s. Without it,
	// clients that never authenticate could hold every MaxClients slot.
	AuthTimeout time.Duration
	// RequestTimeout closes a client whose request has not arrived whole
	// this long after its first byte did ("-ERR Protocol error: request
	// not completed within <d>"), and bounds a TLS handshake. A large
	// request has one second more for every MiB of it received, so that
	// a value arriving at 1 MiB/s or faster is never cut, however large.
	// Default 30 s. Unlike IdleTimeout (Redis's "timeout", reset by every
	// byte), a client sending one byte a second cannot stretch it.
	RequestTimeout time.Duration
	// MaxClientBuffer bounds the bytes held in request buffers across all
	// clients beyond each connection's resting 8 KiB buffer (which
	// MaxClients bounds): buffers grown for a large request, and for a
	// long pipeline (up to 64 KiB, only while half of this budget is
	// free). A connection whose request needs more than is left is
	// answered "-ERR max-client-buffer reached" and closed; no
	// connection ever waits for another to free bytes, so this cannot
	// deadlock. Default the larger of a quarter of the node's MaxBytes
	// and 16 × MaxRequestBytes; it must hold at least one request of
	// MaxRequestBytes.
	MaxClientBuffer int64

	// Pub/sub output limits (pubsub_cmds.go), Redis's
	// "client-output-buffer-limit pubsub <hard> <soft> <seconds>": a
	// subscribed client whose output not yet written (messages, and its
	// replies) reaches PubSubHardLimit bytes, or stays at or above
	// PubSubSoftLimit bytes for longer than PubSubSoftTime, is
	// disconnected at once (Stats.OutputBufferDisconnections) and the
	// output dropped. Nothing else bounds a subscriber's output: messages
	// are never dropped one by one, nor is a slow subscriber waited for.
	// Defaults 32 MiB, 8 MiB and 60 s, as Redis's; math.MaxInt64 is no
	// limit (Redis's 0). CONFIG SET client-output-buffer-limit changes them
	// later.
	PubSubHardLimit int64
	PubSubSoftLimit int64
	PubSubSoftTime  time.Duration

	// Logger receives the server's logs: limit hits at Warn (at most one
	// line per 10 s; Stats counts them all), protocol errors and client
	// connections ending at Debug. nil discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.Node == nil:
		return fmt.Errorf("%w: Node is required", ErrInvalidConfig)
	case c.MaxClients < 0 || c.MaxRequestBytes < 0 || c.MaxArgs < 0 || c.MaxBulkBytes < 0 || c.UnauthLimit < 0:
		return fmt.Errorf("%w: limits must not be negative", ErrInvalidConfig)
	case c.IdleTimeout < 0 || c.AuthTimeout < 0 || c.RequestTimeout < 0:
		return fmt.Errorf("%w: timeouts must not be negative", ErrInvalidConfig)
	case c.MaxClientBuffer < 0:
		return fmt.Errorf("%w: MaxClientBuffer must not be negative", ErrInvalidConfig)
	case c.PubSubHardLimit < 0 || c.PubSubSoftLimit < 0 || c.PubSubSoftTime < 0:
		return fmt.Errorf("%w: pub/sub output limits must not be negative", ErrInvalidConfig)
	case c.Redirect && c.Forward:
		return fmt.Errorf("%w: Redirect and Forward exclude each other", ErrInvalidConfig)
	case c.MaxRequestBytes > 1<<31:
		return fmt.Errorf("%w: MaxRequestBytes %d is over 2 GiB", ErrInvalidConfig, c.MaxRequestBytes)
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = max(DefaultMaxRequestBytes, c.Node.Config().MaxValueBytes+RequestMargin)
	}
	if c.MaxArgs == 0 {
		c.MaxArgs = DefaultMaxArgs
	}
	if c.MaxBulkBytes == 0 {
		c.MaxBulkBytes = max(c.Node.Config().MaxValueBytes, geocache.MaxKeyBytes)
	}
	if c.UnauthLimit == 0 {
		c.UnauthLimit = DefaultUnauthLimit
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.IsLocal == nil {
		c.IsLocal = IsLoopback
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxClientBuffer == 0 {
		c.MaxClientBuffer = max(c.Node.Config().MaxBytes/4, 16*int64(c.MaxRequestBytes))
	}
	if c.PubSubHardLimit == 0 {
		c.PubSubHardLimit = DefaultPubSubHardLimit
	}
	if c.PubSubSoftLimit == 0 {
		c.PubSubSoftLimit = DefaultPubSubSoftLimit
	}
	if c.PubSubSoftTime == 0 {
		c.PubSubSoftTime = DefaultPubSubSoftTime
	}
	if c.MaxClientBuffer < int64(c.MaxRequestBytes)+readBufSize {
		return fmt.Errorf("%w: MaxClientBuffer %d cannot hold one request of MaxRequestBytes %d", ErrInvalidConfig, c.MaxClientBuffer, c.MaxRequestBytes)
	}
	return nil
}

// Stats are a server's counters.
type Stats struct {
	Clients     int    // clients connected now
	Connections uint64 // connections accepted since New
	Commands    uint64 // commands executed (those refused before running — unknown, wrong arity, NOAUTH — are not)
	Errors      uint64 // error replies sent
	Rejected    uint64 // limit hits: connections refused at MaxClients or by protected mode, and connections closed for a request over a limit, an unauthenticated client over UnauthLimit or AuthTimeout, a request over RequestTimeout, or MaxClientBuffer reached
	// AuthFailures counts failed AUTH and HELLO ... AUTH attempts (INFO
	// stats acl_access_denied_auth, as Redis).
	AuthFailures uint64
	// BufferBytes are the request-buffer bytes held now against
	// MaxClientBuffer.
	BufferBytes int64
	// TLSHandshakeErrors counts TLS clients that failed their handshake
	// (a plaintext client on the TLS port, a certificate refused, a
	// timeout).
	TLSHandshakeErrors uint64
	// PubSubChannels and PubSubPatterns are the channels with a
	// subscriber here and the distinct patterns subscribed to (INFO stats
	// pubsub_channels and pubsub_patterns, as Redis).
	PubSubChannels, PubSubPatterns int
	// PubSubOutputBytes are the bytes queued for subscribed clients and
	// not yet written, now.
	PubSubOutputBytes int64
	// OutputBufferDisconnections counts subscribers disconnected over
	// the pub/sub output limits (INFO stats
	// client_output_buffer_limit_disconnections, as Redis 7.2).
	OutputBufferDisconnections uint64
	// Forwarded counts the commands (and parts of split commands) sent to
	// another member of the region (Config.Forward); ForwardErrors those
	// answered -TRYAGAIN because the exchange with the owner failed.
	Forwarded, ForwardErrors uint64
}

// Server serves the Redis protocol for one geocache node. Create it with
// New, run it with Serve, stop it with Close. Its methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	node    *geocache.Node
	nodeCfg geocache.Config
	now     func() int64 // the node's clock, Unix ns
	started time.Time

	// ctx ends when the server closes; every blocking node call runs under
	// it, so Close unblocks WAIT and acknowledged writes.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	// The raw reads' verifier (rawread.go): its timer, and whether it is
	// pending.
	verifyTimer *time.Timer
	verifyArmed bool
	wg          sync.WaitGroup // Serve loops and connection goroutines

	nextID        atomic.Int64
	clients       atomic.Int64
	blocked       atomic.Int64 // clients blocked in WAIT or an acknowledged write
	connections   atomic.Uint64
	commands      atomic.Uint64
	errors        atomic.Uint64
	rejectedConns atomic.Uint64 // connections refused at MaxClients
	rejectedReqs  atomic.Uint64 // connections closed for a request over a limit
	lastLimitLog  atomic.Int64  // Unix ns of the last limit-hit log line

	authFailures atomic.Uint64 // failed AUTH attempts
	authLog      *addrLog      // rate limit of the failed-AUTH log lines, per client address
	bufBytes     atomic.Int64  // request-buffer bytes held against MaxClientBuffer
	tlsErrors    atomic.Uint64 // failed TLS handshakes

	latency commandLatency // per-command execution times (latency.go)
	// rejectedCalls and failedCalls count, per command, the calls refused
	// before they ran (arity, NOAUTH, subscribed mode) and those that ran
	// and answered an error (INFO commandstats, as Redis 7).
	rejectedCalls, failedCalls [maxCommands]atomic.Uint64
	errStats                   errorStats // error replies by code (INFO errorstats)
	slowlog                    slowLog    // SLOWLOG (slowlog.go)
	// statBase is where the counters stood at the last CONFIG RESETSTAT
	// (resetstat.go), nil before the first: INFO reports what they
	// counted since.
	statBase atomic.Pointer[statBase]

	// Live settings (settings.go): Config's values at New, changed by
	// CONFIG SET, which configMu serializes.
	configMu    sync.Mutex
	maxClients  atomic.Int64
	idleTimeout atomic.Int64             // ns; 0: none
	psHard      atomic.Int64             // bytes; noLimit: none
	psSoft      atomic.Int64             // bytes; noLimit: none
	psSoftTime  atomic.Int64             // ns
	maxMemory   atomic.Int64             // the node's budget, as last set
	pass        atomic.Pointer[password] // digest of requirepass; nil: none
	readGen     atomic.Uint64            // moves when the idle timeout changed (pokeReaders)

	// Pub/sub (pubsub_cmds.go): the subscriptions of this server's
	// clients, fed by the node (unlisten undoes the registration).
	hub       *pubsub.Hub
	locks     *keyLocks // transactions' isolation (keylocks.go)
	unlisten  func()
	psBytes   atomic.Int64  // bytes queued for subscribers, not yet written
	obufKills atomic.Uint64 // subscribers disconnected over the output limits
	// Forwarding (forward.go): the pools of connections to the other
	// members, the password they authenticate with, the counters.
	fwdr                 *forwarder
	fwdPass              atomic.Pointer[string]
	forwarded, fwdErrors atomic.Uint64

	// testHookSubscribed, if set by a test, runs after a (P)SUBSCRIBE
	// registered its subscriptions, before the command returns.
	testHookSubscribed func()
}

// limitLogEvery spaces the log lines about limit hits, so that a flood of
// bad clients cannot flood the log.
const limitLogEvery = 10 * time.Second

// logLimit logs a limit hit at Warn level, at most once per limitLogEvery;
// Stats and INFO count every hit.
func (s *Server) logLimit(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastLimitLog.Load()
	if now-last < int64(limitLogEvery) || !s.lastLimitLog.CompareAndSwap(last, now) {
		return
	}
	s.cfg.Logger.Warn(msg, append(args, "rejected_total", s.rejectedConns.Load()+s.rejectedReqs.Load())...)
}

// New validates cfg and returns a server for cfg.Node. It returns an error
// wrapping ErrInvalidConfig for a bad Config.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	nc := cfg.Node.Config()
	now := func() int64 { return time.Now().UnixNano() }
	if nc.Clock != nil {
		now = nc.Clock.UnixNano
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, node: cfg.Node, nodeCfg: nc, now: now, started: time.Now(),
		ctx: ctx, cancel: cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		authLog:   newAddrLog(authLogEvery, authLogAddrs),
		hub:       pubsub.New(),
		locks:     newKeyLocks(),
	}
	if s.cfg.coldSlot == nil {
		s.cfg.coldSlot = cfg.Node.ColdSlot
	}
	s.fwdr = newForwarder(s)
	s.initSettings()
	// Every message the node delivers — published here or arriving from
	// another node — goes to this server's subscribers.
	unlisten := cfg.Node.OnMessage(s.hub.Publish)
	ungate := cfg.Node.SetBatchGate(s.applyBatch)
	s.unlisten = func() { unlisten(); ungate() }
	return s, nil
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Close; it then returns nil. It closes ln when it returns. It
// returns the listener's error if ln fails for another reason. Serve may
// run on several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than spin or give up.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("resp: accept failed; retrying", "err", err, "in", delay)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		s.accept(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

var errMaxClients = []byte("-ERR max number of clients reached\r\n")

func (s *Server) accept(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if maxClients := s.maxClients.Load(); int64(len(s.conns)) >= maxClients {
		s.mu.Unlock()
		s.rejectedConns.Add(1)
		s.logLimit("resp: max number of clients reached; connection refused", "remote", nc.RemoteAddr(), "maxclients", maxClients)
		// A fresh socket's send buffer takes these bytes at once; the
		// deadline only guards the accept loop against a pathological one.
		// A TLS client is closed without a word: the reply would need a
		// handshake, which the accept loop must not wait for.
		if _, isTLS := nc.(*tls.Conn); !isTLS {
			nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			nc.Write(errMaxClients)
		}
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.armVerifierLocked()
	s.wg.Add(1)
	s.mu.Unlock()
	s.clients.Add(1)
	s.connections.Add(1)
	go c.serve()
}

// dropConn is the last thing a connection's goroutine does.
func (s *Server) dropConn(c *conn) {
	c.endPubSub()
	c.nc.Close()
	c.releaseHeld()
	c.releaseFwdHeld()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.clients.Add(-1)
	s.wg.Done()
}

// Close stops accepting connections, closes every client connection
// (unblocking those in WAIT or waiting for an acknowledgement), and waits
// for every goroutine the server started. It does not close the node. It is
// idempotent and returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.verifyTimer != nil {
			s.verifyTimer.Stop()
		}
		s.unlisten()
		s.cancel()
		s.fwdr.close()
		for ln := range s.listeners {
			ln.Close()
		}
		for c := range s.conns {
			if c.raw != nil {
				c.closeSocket() // Close would wait for a raw read in progress (rawread.go)
			} else {
				c.nc.Close()
			}
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.fwdr.wait()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Clients:     int(s.clients.Load()),
		Connections: s.connections.Load(),
		Commands:    s.commands.Load(),
		Errors:      s.errors.Load(),
		Rejected:    s.rejectedConns.Load() + s.rejectedReqs.Load(),

		AuthFailures:       s.authFailures.Load(),
		BufferBytes:        s.bufBytes.Load(),
		TLSHandshakeErrors: s.tlsErrors.Load(),

		PubSubChannels:             s.hub.NumChannels(),
		PubSubPatterns:             s.hub.NumPat(),
		PubSubOutputBytes:          s.psBytes.Load(),
		OutputBufferDisconnections: s.obufKills.Load(),
		Forwarded:                  s.forwarded.Load(),
		ForwardErrors:              s.fwdErrors.Load(),
	}
}
