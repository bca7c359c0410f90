package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/geocache/geocache"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Server.
type Config struct {
	// Node is the node whose health and figures are served. Required.
	Node NodeStats
	// RESP returns the RESP server's figures at scrape time; nil leaves the
	// geocache_resp_* metrics out.
	RESP func() RESPStats
	// Registry receives the node collector and the Go runtime and process
	// collectors (those already registered are kept). nil means a new
	// private registry. The process-global default registry is never used.
	Registry *prometheus.Registry
	// ShutdownTimeout bounds how long Close waits for requests in flight
	// before it closes their connections. Default 5 s.
	ShutdownTimeout time.Duration
	// Logger receives HTTP server and scrape errors. nil discards them.
	Logger *slog.Logger
	// RequirePeers makes /readyz answer 503 while some region of the
	// configured peers has no reachable peer (a peer never reached counts
	// as a region of its own). Off by default: every region serves on its
	// own, and a partition must not take every region out of its load
	// balancer (see the package documentation).
	RequirePeers bool
}

// Timeouts of the HTTP server: an admin endpoint answers in milliseconds,
// so anything slower is a stuck or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// Server serves /healthz, /readyz and /metrics for one node. Create it with
// New, run it with Serve, stop it with Close.
type Server struct {
	cfg   Config
	reg   *prometheus.Registry
	ready atomic.Bool
	srv   *http.Server
}

// New returns a Server for cfg, not yet serving and not ready. It returns
// an error if cfg.Node is nil or the registry refuses the node collector
// (a collector with the same metrics is already registered).
func New(cfg Config) (*Server, error) {
	if cfg.Node == nil {
		return nil, errors.New("admin: Config.Node is required")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := reg.Register(NewCollector(cfg.Node, cfg.RESP)); err != nil {
		return nil, fmt.Errorf("admin: register node collector: %w", err)
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, fmt.Errorf("admin: register runtime collector: %w", err)
		}
	}
	s := &Server{cfg: cfg, reg: reg}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the handler of the endpoints, for tests or for mounting
// them in another server. GET and HEAD only; other methods get 405.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrintln{s.cfg.Logger},
		// A collector failing must not hide every other metric.
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            s.reg, // counts its own errors there
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return mux
}

// SetReady sets what /readyz reports. geocache serve sets it once its RESP
// listener is up and clears it when a shutdown begins, so load balancers
// stop sending clients before they are disconnected.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve answers HTTP requests on ln until Close, and returns nil then (or
// at once if Close came first). Any other error is the listener's.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops accepting connections, waits up to ShutdownTimeout for the
// requests in flight, then closes whatever is left. It is idempotent.
func (s *Server) Close() error {
	s.SetReady(false)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "geocache admin\n\n/healthz  liveness\n/readyz   readiness and peer links\n/metrics  Prometheus metrics\n")
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ok\n")
}

// readyz reports readiness and, in the body, the peer links. A down peer
// does not fail readiness unless Config.RequirePeers: see the package
// documentation.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	st := s.cfg.Node.Stats()
	var b strings.Builder
	if why := s.notReady(&st); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		b.WriteString("not ready")
		if why != "-" {
			b.WriteString(": " + why)
		}
		b.WriteByte('\n')
	} else {
		b.WriteString("ready\n")
	}
	fmt.Fprintf(&b, "node %s id %d region %s\n", st.Node, st.NodeID, st.Region)
	if st.IDConflicts > 0 {
		fmt.Fprintf(&b, "node id conflicts %d, last: %s\n", st.IDConflicts, st.IDConflict)
	}
	if r := st.RegionNodes; r != nil {
		fmt.Fprintf(&b, "region member %s; members serving %d, joining %d, leaving %d; slot map epoch %d; slots owned %d, primary of %d\n",
			r.State, r.Members["serving"], r.Members["joining"], r.Members["leaving"], r.Epoch, r.Slots, r.PrimarySlots)
	}
	up := 0
	for _, p := range st.Peers {
		if p.Connected {
			up++
		}
	}
	if s.cfg.RequirePeers {
		fmt.Fprintf(&b, "peers %d connected of %d (readiness requires a reachable peer in every region)\n", up, len(st.Peers))
	} else {
		fmt.Fprintf(&b, "peers %d connected of %d (a down peer does not affect readiness)\n", up, len(st.Peers))
	}
	now := time.Now()
	for _, p := range st.Peers {
		region := p.Region
		if region == "" {
			region = "unknown"
		}
		fmt.Fprintf(&b, "peer %s region %s ", p.Addr, region)
		switch {
		case p.Connected:
			fmt.Fprintf(&b, "connected rtt %s lag %d", p.RTT.Round(time.Microsecond), p.Lag)
		case !p.EverConnected:
			fmt.Fprintf(&b, "never connected (trying for %s)", now.Sub(p.Since).Round(time.Second))
		default:
			fmt.Fprintf(&b, "down for %s lag %d", now.Sub(p.Since).Round(time.Second), p.Lag)
		}
		if !p.Connected && p.LastError != "" {
			fmt.Fprintf(&b, " last error %s ago: %s", now.Sub(p.LastErrorAt).Round(time.Second), p.LastError)
		}
		b.WriteByte('\n')
	}
	fmt.Fprint(w, b.String())
}

// notReady returns why the node is not ready ("-" for no reason worth
// naming), or "" if it is.
func (s *Server) notReady(st *geocache.Stats) string {
	if !s.ready.Load() {
		return "-" // starting, or shutting down
	}
	if r, ok := s.cfg.Node.(nodeReadiness); ok && !closed(r.Ready()) {
		return "merging the peers' clocks before taking writes"
	}
	if c, ok := s.cfg.Node.(interface{ ClockInBounds() bool }); ok && !c.ClockInBounds() {
		return "refusing writes: this node's clock is further than the max clock offset from most of its peers"
	}
	if r, ok := s.cfg.Node.(nodeSync); ok && !closed(r.Synced()) {
		return "refilling: the first sync from the peers is not complete"
	}
	if !s.cfg.RequirePeers {
		return ""
	}
	// Regions in the order of the peers; a peer never reached is a region
	// of its own, unknown.
	var regions []string
	reachable := map[string]bool{}
	lastErr := map[string]string{}
	for _, p := range st.Peers {
		region := p.Region
		if region == "" {
			region = "unknown (peer " + p.Addr + ")"
		}
		if _, seen := reachable[region]; !seen {
			regions = append(regions, region)
			reachable[region] = false
		}
		if p.Connected {
			reachable[region] = true
		} else if p.LastError != "" {
			lastErr[region] = p.Addr + ": " + p.LastError
		}
	}
	var why []string
	for _, region := range regions {
		if !reachable[region] {
			w := "no peer of region " + region + " is reachable"
			if e := lastErr[region]; e != "" {
				w += " (" + e + ")"
			}
			why = append(why, w)
		}
	}
	return strings.Join(why, "; ")
}

// nodeSync is the optional part of a NodeStats that readiness waits for
// after nodeReadiness: *geocache.Node's Synced, closed once a (re)started
// node has taken its first sync from the peers it reached.
type nodeSync interface {
	Synced() <-chan struct{}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// slogPrintln adapts a slog.Logger to promhttp's Logger interface.
type slogPrintln struct{ l *slog.Logger }

func (p slogPrintln) Println(v ...any) { p.l.Warn("admin: metrics", "error", fmt.Sprint(v...)) }
