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
	"github.com/geocache/geocache/internal/resp"
)

// shutdownTimeout bounds a graceful shutdown; past it the process exits 1
// rather than hang (a stuck shutdown is a bug, and the supervisor is
// waiting).
const shutdownTimeout = 15 * time.Second

// drainTimeout bounds how long a graceful shutdown waits for connected
// peers to acknowledge this node's last writes.
const drainTimeout = 5 * time.Second

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
	if cfg.requirePass == "" && !isLoopback(cfg.addr) {
		log.Warn("RESP listens beyond loopback without a password: set --requirepass or GEOCACHE_REQUIREPASS", "addr", cfg.addr)
	}
	if cfg.clockOffset != 0 {
		log.Warn("--clock-offset is for testing only: this node's clock is skewed", "offset", cfg.clockOffset)
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
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx).Error())
	case err := <-s.respDone:
		s.respDone = nil
		log.Error("RESP server stopped: shutting down", "error", err)
		code = 1
	case err := <-s.adminDone:
		s.adminDone = nil
		log.Error("admin server stopped: shutting down", "error", err)
		code = 1
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
	log       *slog.Logger
}

// respServer is the RESP server with its figures in the admin package's
// terms (admin does not import resp).
type respServer struct{ *resp.Server }

func (s respServer) Stats() admin.RESPStats {
	st := s.Server.Stats()
	return admin.RESPStats{
		Clients: st.Clients, Connections: st.Connections, Commands: st.Commands,
		Errors: st.Errors, Rejected: st.Rejected,
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

	ncfg := geocache.Config{
		Cluster: cfg.cluster, Region: cfg.region, NodeID: cfg.node, NodeName: cfg.name,
		Peers:    cfg.peers,
		MaxBytes: cfg.maxMemory, MaxEntries: cfg.maxEntries, DefaultTTL: cfg.defaultTTL,
		TombstoneHorizon: cfg.tombstoneHorizon, AntiEntropyInterval: cfg.antiEntropyInterval,
		MaxTombstones: cfg.maxTombstones,
		Logger:        log.With("component", "node"),
	}
	if cfg.clockOffset != 0 {
		ncfg.Clock = offsetClock(cfg.clockOffset)
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

	srv, err := resp.New(resp.Config{
		Node: node, RequirePass: cfg.requirePass,
		MaxClients: cfg.maxClients, IdleTimeout: cfg.idleTimeout,
		Logger: log.With("component", "resp"),
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

	s := &server{node: node, resp: rs, respDone: make(chan error, 1), log: log}
	var adminLn net.Listener
	if cfg.adminAddr != "" {
		s.admin, err = admin.New(admin.Config{Node: node, RESP: rs.Stats, Logger: log.With("component", "admin")})
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
	if s.admin != nil {
		s.admin.SetReady(true)
	}

	attrs := []any{
		"addr", respLn.Addr().String(), "peer_addr", ncfg.PeerAddr,
		"cluster", node.Config().Cluster, "region", cfg.region, "node", node.Config().NodeName, "node_id", cfg.node,
		"peers", strings.Join(cfg.peers, ","), "max_memory", formatSize(cfg.maxMemory),
		"version", version(),
	}
	if adminLn != nil {
		attrs = append(attrs, "admin_addr", adminLn.Addr().String())
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

// offsetClock is the real clock shifted by an offset (--clock-offset, for
// clock-skew tests).
type offsetClock time.Duration

func (c offsetClock) UnixNano() int64 { return time.Now().UnixNano() + int64(c) }

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
