package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	"github.com/geocache/geocache/internal/clock"
	"github.com/geocache/geocache/internal/resp"
)

// shutdownTimeout bounds a graceful shutdown; past it the process exits 1
// rather than hang (a stuck shutdown is a bug, and the supervisor is
// waiting).
const shutdownTimeout = 15 * time.Second

// drainTimeout bounds how long a graceful shutdown waits for connected
// peers to acknowledge this node's last writes.
const drainTimeout = 5 * time.Second

// leaveTimeout bounds how long a graceful shutdown waits for the region to
// hear that this node is leaving.
const leaveTimeout = 2 * time.Second

// handoverGrace is how long a node of a region with --cluster-redirect
// keeps serving after it announced its leave, redirecting every key.
const handoverGrace = time.Second

// forceExit ends the process at once: on a second signal, or when a
// shutdown takes longer than shutdownTimeout.
var forceExit = os.Exit

// serveCmd runs geocache serve until ctx ends or the process receives
// SIGINT or SIGTERM, and returns the exit status.
func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return serve(ctx, args, os.Environ(), sigs, stdout, stderr)
}

// serve is serveCmd with its environment and signals passed in. The first
// signal on sigs, or the end of ctx, starts a graceful shutdown; a second
// signal exits at once.
func serve(ctx context.Context, args, environ []string, sigs <-chan os.Signal, stdout, stderr io.Writer) int {
	cfg, fs, err := parseServeConfig(args, environ)
	if err == nil {
		cfg.hooks, err = readTestHooks(environ)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		serveUsage(stdout, fs)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "geocache serve: %v\nRun 'geocache serve -h' for the flags.\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	}
	log := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	for _, k := range cfg.unknownEnv {
		log.Warn("ignoring an environment variable that names no flag", "var", k)
	}
	if len(cfg.peers) > 0 && !isSet(fs, "node") {
		log.Warn("--node is not set: this node uses id 1, and every node of a cluster needs its own id")
	}
	if cfg.requirePass == "" && (!isLoopback(cfg.addr) || cfg.tlsAddr != "" && !isLoopback(cfg.tlsAddr)) {
		if cfg.protectedMode != "no" {
			log.Warn("RESP listens beyond loopback without a password: protected mode serves loopback clients only; set --requirepass or GEOCACHE_REQUIREPASS", "addr", cfg.addr, "tls_addr", cfg.tlsAddr)
		} else {
			log.Warn("RESP listens beyond loopback without a password, and --protected-mode is no: anyone who reaches it can read and write every key", "addr", cfg.addr, "tls_addr", cfg.tlsAddr)
		}
	}
	if cfg.hooks.clockOffset != 0 {
		log.Warn(testClockOffsetVar+" is a test hook: this node's clock is skewed; never set it in production", "offset", cfg.hooks.clockOffset)
	}
	if l := cfg.pubsubLimit; l.set && l.hard == 0 && l.soft == 0 {
		log.Warn("--client-output-buffer-limit-pubsub turns both limits off: a subscriber that stops reading keeps every message published to it in memory")
	}
	if !cfg.pubsubLimit.set && cfg.largestMessage() > resp.DefaultPubSubHardLimit {
		// An explicit limit below the largest message is refused
		// (validatePubSub); Redis's default, which Redis applies the same
		// way, is kept but said.
		log.Warn("a message as large as --max-value-size is over the pub/sub hard limit: it disconnects every subscriber it is published to; set --client-output-buffer-limit-pubsub to publish such messages",
			"max_value_size", formatSize(cfg.largestValue()), "pubsub_hard_limit", formatSize(resp.DefaultPubSubHardLimit))
	}
	if cfg.peerAddr != "" && len(cfg.peers) == 0 && cfg.gossipAddr == "" {
		log.Warn("--peer-addr without --peers: this node receives the writes of the nodes that list it, and sends its own nowhere", "peer_addr", cfg.peerAddr)
	}

	s, err := start(cfg, log)
	if err != nil {
		log.Error("geocache serve: cannot start", "error", err)
		if errors.Is(err, geocache.ErrInvalidConfig) {
			return 2
		}
		return 1
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigDone := make(chan struct{})
	var sigWG sync.WaitGroup
	sigWG.Add(1)
	go func() {
		defer sigWG.Done()
		watchSignals(sigs, cancel, log, sigDone, forceExit)
	}()
	defer func() { close(sigDone); sigWG.Wait() }()

	code := 0
	// Until the node has synced with its peers it is starting: a peer that
	// refuses it for holding its node id (or has this node's id) means
	// this node was started with a --node already taken, and stops.
	conflict, synced := s.node.IDConflict(), s.node.Synced()
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "cause", context.Cause(ctx).Error())
			break wait
		case err := <-s.respDone:
			s.respDone = nil
			log.Error("RESP server stopped: shutting down", "error", err)
			code = 1
			break wait
		case err := <-s.adminDone:
			s.adminDone = nil
			log.Error("admin server stopped: shutting down", "error", err)
			code = 1
			break wait
		case <-conflict:
			log.Error("another node has this node's id: stopping; give every node its own --node",
				"node_id", cfg.node, "conflict", s.node.Stats().IDConflict)
			code = 2
			break wait
		case <-synced:
			synced = nil
			select {
			case <-conflict: // seen on the next turn
			default:
				conflict = nil // from now on, the node that joins is the one to stop
			}
		}
	}
	watchdog := time.AfterFunc(shutdownTimeout, func() {
		log.Error("shutdown took too long: exiting now", "timeout", shutdownTimeout)
		forceExit(1)
	})
	defer watchdog.Stop()
	if err := s.stop(); err != nil {
		log.Error("shutdown", "error", err)
		code = 1
	}
	log.Info("geocache stopped")
	return code
}

// watchSignals cancels the serving context on the first signal and calls
// exit(1) on the second, until stop is closed.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc, log *slog.Logger, stop <-chan struct{}, exit func(int)) {
	for n := 1; ; n++ {
		select {
		case sig := <-sigs:
			if n > 1 {
				log.Error("second signal: exiting now", "signal", sig.String())
				exit(1)
				return
			}
			cancel(fmt.Errorf("received %v (send another to exit at once)", sig))
		case <-stop:
			return
		}
	}
}

// server is a running geocache serve: node, RESP server and admin server.
type server struct {
	node      *geocache.Node
	resp      respServer
	admin     *admin.Server // nil if --admin-addr is empty
	respDone  chan error    // Serve's result; nil once received
	adminDone chan error    // nil if no admin, or once received
	stopTLS   func()        // ends the certificate reloads; nil without TLS
	handover  time.Duration // serving after the leave (--cluster-redirect)
	log       *slog.Logger
}

// respServer is the RESP server with its figures in the admin package's
// terms (admin does not import resp).
type respServer struct{ *resp.Server }

func (s respServer) Stats() admin.RESPStats {
	st := s.Server.Stats()
	return admin.RESPStats{
		Clients: st.Clients, Connections: st.Connections, Commands: st.Commands,
		Errors: st.Errors, Rejected: st.Rejected, CommandLatency: s.Server.CommandLatency(),
		AuthFailures: st.AuthFailures, BufferBytes: st.BufferBytes, TLSHandshakeErrors: st.TLSHandshakeErrors,
		PubSubChannels: st.PubSubChannels, PubSubPatterns: st.PubSubPatterns,
		PubSubOutputBytes: st.PubSubOutputBytes, OutputBufferDisconnections: st.OutputBufferDisconnections,
		Forwarded: st.Forwarded, ForwardErrors: st.ForwardErrors,
	}
}

// start opens the node, listens on every address and starts serving. On
// error it has released everything it took.
func start(cfg serveConfig, log *slog.Logger) (_ *server, err error) {
	var cleanup []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(cleanup) {
				f()
			}
		}
	}()

	ncfg := cfg.nodeConfig()
	ncfg.PeerAddr = "" // set below from the listener, which start opens itself
	ncfg.Logger = log.With("component", "node")
	if cfg.hooks.clockOffset != 0 {
		ncfg.Clock = skewedClock{real: clock.NewReal(), offset: int64(cfg.hooks.clockOffset)}
	}
	var stopTLS func()
	if cfg.tlsCert != "" {
		if ncfg.TLS, stopTLS, err = startTLS(cfg, log.With("component", "tls")); err != nil {
			return nil, fmt.Errorf("%w: %w", geocache.ErrInvalidConfig, err)
		}
		cleanup = append(cleanup, stopTLS)
	} else {
		// SIGHUP reloads certificates; without any it must not end the
		// process (its default action), as an operator's reload of every
		// node would otherwise kill the plaintext ones.
		cleanup = append(cleanup, ignoreHangup(log))
	}
	if cfg.peerAddr != "" {
		ln, err := net.Listen("tcp", cfg.peerAddr)
		if err != nil {
			return nil, fmt.Errorf("listen for replication on %s: %w", cfg.peerAddr, err)
		}
		cleanup = append(cleanup, func() { ln.Close() })
		ncfg.Listener, ncfg.PeerAddr = ln, ln.Addr().String()
	}
	node, err := geocache.Open(ncfg)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { node.Close() })

	psHard, psSoft, psSoftTime := cfg.pubsubLimit.respLimits()
	srv, err := resp.New(resp.Config{
		Node: node, RequirePass: cfg.requirePass,
		MaxClients: cfg.maxClients, IdleTimeout: cfg.idleTimeout,
		Redirect: cfg.clusterRedirect, Forward: cfg.clusterForward,
		Logger: log.With("component", "resp"),
		// RESP protection
		MaxRequestBytes: int(cfg.maxRequestBytes()), MaxClientBuffer: cfg.maxClientBuffer,
		ProtectedMode: cfg.protectedMode != "no", AuthTimeout: cfg.authTimeout, RequestTimeout: cfg.requestTimeout,
		// Pub/sub
		PubSubHardLimit: psHard, PubSubSoftLimit: psSoft, PubSubSoftTime: psSoftTime,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", geocache.ErrInvalidConfig, err)
	}
	rs := respServer{srv}
	cleanup = append(cleanup, func() { rs.Close() })
	respLn, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("listen for RESP on %s: %w", cfg.addr, err)
	}
	cleanup = append(cleanup, func() { respLn.Close() })
	var respTLSLn net.Listener
	if cfg.tlsAddr != "" {
		if respTLSLn, err = net.Listen("tcp", cfg.tlsAddr); err != nil {
			return nil, fmt.Errorf("listen for RESP over TLS on %s: %w", cfg.tlsAddr, err)
		}
		cleanup = append(cleanup, func() { respTLSLn.Close() })
	}

	// respDone gets the result of each Serve loop (plaintext, TLS); the
	// first ends serve, and Close ends both.
	s := &server{node: node, resp: rs, respDone: make(chan error, 2), log: log, stopTLS: stopTLS}
	if cfg.clusterRedirect {
		s.handover = handoverGrace
	}
	var adminLn net.Listener
	if cfg.adminAddr != "" {
		s.admin, err = admin.New(admin.Config{
			Node: node, RESP: rs.Stats, Logger: log.With("component", "admin"),
			RequirePeers: cfg.readyRequiresPeers,
		})
		if err != nil {
			return nil, err
		}
		if adminLn, err = net.Listen("tcp", cfg.adminAddr); err != nil {
			return nil, fmt.Errorf("listen for admin HTTP on %s: %w", cfg.adminAddr, err)
		}
		s.adminDone = make(chan error, 1)
		go func() { s.adminDone <- s.admin.Serve(adminLn) }()
	}
	go func() { s.respDone <- rs.Serve(respLn) }()
	if respTLSLn != nil {
		tc := respTLSConfig(ncfg.TLS, cfg.tlsClientAuth)
		go func() { s.respDone <- rs.ServeTLS(respTLSLn, tc) }()
	}
	if s.admin != nil {
		s.admin.SetReady(true)
	}

	attrs := []any{
		"addr", respLn.Addr().String(), "peer_addr", ncfg.PeerAddr,
		"cluster", node.Config().Cluster, "region", cfg.region, "node", node.Config().NodeName, "node_id", cfg.node,
		"peers", strings.Join(cfg.peers, ","), "max_memory", formatSize(cfg.maxMemory),
		"replication_tls", cfg.tlsCert != "",
		"version", version(),
	}
	if adminLn != nil {
		attrs = append(attrs, "admin_addr", adminLn.Addr().String())
	}
	if respTLSLn != nil {
		attrs = append(attrs, "tls_addr", respTLSLn.Addr().String())
	}
	log.Info("geocache serving", attrs...)
	return s, nil
}

// stop shuts down in order: readiness off (load balancers stop sending
// clients), RESP server closed (no new clients, open ones disconnected),
// replication drained (connected peers acknowledge the last writes, within
// drainTimeout), node closed (replication stops once its goroutines end),
// admin server closed last so that health stays observable until the end.
func (s *server) stop() error {
	var errs []error
	if s.admin != nil {
		s.admin.SetReady(false)
	}
	// The region first: its other nodes take this node's slots while it
	// still serves, then the clients go, then what they wrote is drained.
	leave, cancelLeave := context.WithTimeout(context.Background(), leaveTimeout)
	if err := s.node.LeaveRegion(leave); err != nil && s.log != nil {
		s.log.Warn("region: leave not announced in time; the others will see this node go", "err", err)
	}
	cancelLeave()
	if s.handover > 0 {
		// Redirecting, this node now answers -MOVED for every key: the
		// cluster-aware clients that use it reload their maps and move to
		// the others, instead of finding a closed connection.
		time.Sleep(s.handover)
	}
	if err := s.resp.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close RESP server: %w", err))
	}
	if s.respDone != nil {
		if err := <-s.respDone; err != nil {
			errs = append(errs, fmt.Errorf("RESP server: %w", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	if err := s.node.Drain(ctx); err != nil && s.log != nil {
		s.log.Warn("replication not drained: connected peers had not acknowledged every write", "timeout", drainTimeout)
	}
	cancel()
	if err := s.node.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close node: %w", err))
	}
	if s.stopTLS != nil {
		s.stopTLS()
	}
	if s.admin != nil {
		if err := s.admin.Close(); err != nil {
			errs = append(errs, err)
		}
		if s.adminDone != nil {
			if err := <-s.adminDone; err != nil {
				errs = append(errs, fmt.Errorf("admin server: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// isSet reports whether flag name was given on the command line or in the
// environment (parseServeConfig sets the flag from its variable).
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// isLoopback reports whether a listen address accepts only local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
