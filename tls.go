package geocache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Mutual TLS on replication links.
//
// With Config.TLS set, the node wraps its replication listener and dialer:
// every connection, in either direction, completes a TLS 1.3 handshake in
// which both sides present a certificate from the cluster's CA before the
// replicator sees a byte of it. Nothing a peer sends before then is acted
// on, and a peer refused at the handshake learns nothing of this node's
// configuration (cluster name, ids): TLS fails before any geocache frame.
//
// The handshake of an accepted connection runs in a goroutine of its own,
// with a deadline (Config.PeerTimeout): a peer that stalls it is closed,
// and the accept loop never waits for one. At most maxHandshakes run at
// once, and at most maxHandshakesPerHost from one host; connections past
// that are closed at once.

// Bounds of the handshakes in progress on a replication listener.
const (
	maxHandshakes        = 128
	maxHandshakesPerHost = 16
)

// refusalInterval is how often a refused handshake is logged at WARN per
// peer host and reason; the refusals in between are counted and reported
// with the next warning.
const refusalInterval = time.Minute

// maxRefusalHosts bounds the (host, reason) pairs whose refusals are
// remembered.
const maxRefusalHosts = 4096

// validateTLS checks Config.TLS: it needs a certificate (Certificates, or
// GetCertificate and GetClientCertificate) and the CA pool (RootCAs), and
// must not skip verification.
func validateTLS(c *tls.Config) error {
	switch {
	case c == nil:
		return nil
	case c.InsecureSkipVerify:
		return fmt.Errorf("%w: TLS.InsecureSkipVerify would accept any peer", ErrInvalidConfig)
	case len(c.Certificates) == 0 && (c.GetCertificate == nil || c.GetClientCertificate == nil):
		return fmt.Errorf("%w: TLS needs the node certificate: Certificates, or both GetCertificate and GetClientCertificate", ErrInvalidConfig)
	case c.RootCAs == nil:
		return fmt.Errorf("%w: TLS needs the cluster's CA pool in RootCAs", ErrInvalidConfig)
	case c.MaxVersion != 0 && c.MaxVersion < tls.VersionTLS13:
		return fmt.Errorf("%w: TLS.MaxVersion is below TLS 1.3", ErrInvalidConfig)
	}
	return nil
}

// serverTLS derives the configuration a node accepts peers with: TLS 1.3,
// a client certificate required and verified against ClientCAs (RootCAs
// when unset). GetConfigForClient is dropped: the configuration it
// returned would replace these settings.
func serverTLS(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.GetConfigForClient = nil
	if c.ClientCAs == nil {
		c.ClientCAs = c.RootCAs
	}
	return c
}

// clientTLS derives the configuration a node dials host with: TLS 1.3,
// the server's certificate verified against RootCAs and host (an IP
// address or DNS name, as in Config.Peers).
func clientTLS(base *tls.Config, host string) *tls.Config {
	c := base.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ServerName = host
	return c
}

// peerTLS holds what a node's TLS listener and dialer share.
type peerTLS struct {
	base     *tls.Config
	timeout  time.Duration
	refusals *refusalLog
}

func newPeerTLS(cfg *Config, phys Clock) *peerTLS {
	return &peerTLS{
		base:    cfg.TLS,
		timeout: cfg.PeerTimeout,
		refusals: &refusalLog{
			log: cfg.Logger, now: func() time.Time { return time.Unix(0, phys.UnixNano()) },
			every: refusalInterval, hosts: map[string]*refusalState{},
		},
	}
}

// dialer wraps dial: the connection it returns has completed a TLS
// handshake in which this node verified the peer's certificate.
func (p *peerTLS) dialer(dial func(ctx context.Context, addr string) (net.Conn, error)) func(ctx context.Context, addr string) (net.Conn, error) {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		host := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
		raw, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		tc := tls.Client(raw, clientTLS(p.base, host))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			var verr *tls.CertificateVerificationError
			if errors.As(err, &verr) {
				p.refusals.refused(addr, "outbound", err)
			}
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		return tc, nil
	}
}

// listen wraps ln: Accept returns only connections whose TLS handshake
// completed with a client certificate from the cluster's CA.
func (p *peerTLS) listen(ln net.Listener) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{
		inner: ln, cfg: serverTLS(p.base), p: p,
		ctx: ctx, cancel: cancel,
		ready:   make(chan net.Conn),
		pending: map[net.Conn]struct{}{}, perHost: map[string]int{},
	}
	l.wg.Go(l.acceptLoop)
	return l
}

// tlsListener is a replication listener whose connections have completed
// a TLS handshake. Close stops its goroutines and closes the connections
// still handshaking.
type tlsListener struct {
	inner  net.Listener
	cfg    *tls.Config
	p      *peerTLS
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	ready  chan net.Conn // handshaken connections, for Accept
	once   sync.Once
	wg     sync.WaitGroup

	// mu guards the connections handshaking and their count per host.
	mu      sync.Mutex
	pending map[net.Conn]struct{}
	perHost map[string]int
	closed  bool
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// Accept returns the next connection that completed its handshake.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close closes the listener and every connection still handshaking, and
// waits for the listener's goroutines. It is idempotent.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.inner.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	l.wg.Wait()
	return err
}

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			select { // e.g. out of file descriptors: do not spin
			case <-time.After(50 * time.Millisecond):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		host := hostOf(c.RemoteAddr())
		if !l.admit(c, host) {
			c.Close()
			continue
		}
		l.wg.Go(func() { l.handshake(c, host) })
	}
}

// admit registers c as handshaking unless the bounds are reached or the
// listener is closed.
func (l *tlsListener) admit(c net.Conn, host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.pending) >= maxHandshakes || l.perHost[host] >= maxHandshakesPerHost {
		return false
	}
	l.pending[c] = struct{}{}
	l.perHost[host]++
	return true
}

func (l *tlsListener) release(c net.Conn, host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
	if l.perHost[host]--; l.perHost[host] <= 0 {
		delete(l.perHost, host)
	}
}

// handshake completes the TLS handshake of c within the timeout and hands
// the connection to Accept, or closes it.
func (l *tlsListener) handshake(c net.Conn, host string) {
	ctx, cancel := context.WithTimeout(l.ctx, l.p.timeout)
	defer cancel()
	c.SetDeadline(time.Now().Add(l.p.timeout))
	// The connection counts against the bounds until Accept has it.
	defer l.release(c, host)
	tc := tls.Server(c, l.cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		if l.ctx.Err() == nil {
			l.p.refusals.refused(c.RemoteAddr().String(), "inbound", err)
		}
		return
	}
	c.SetDeadline(time.Time{})
	select {
	case l.ready <- tc:
	case <-l.ctx.Done():
		c.Close()
	}
}

func hostOf(a net.Addr) string {
	s := a.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// refusalLog logs failed handshakes at WARN once per peer host and reason
// per interval, counting the ones in between.
type refusalLog struct {
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	mu    sync.Mutex
	hosts map[string]*refusalState // by "host reason"
}

type refusalState struct {
	last       time.Time
	suppressed uint64
}

// refused records a failed handshake with remote (host:port) on a
// connection this node accepted (direction "inbound") or dialed
// ("outbound").
// A peer that closed before sending a whole TLS record (a port scan, a
// TCP health check) is logged at DEBUG only.
func (r *refusalLog) refused(remote, direction string, err error) {
	if errors.Is(err, io.EOF) {
		r.log.Debug("replication connection closed before the TLS handshake", "remote", remote)
		return
	}
	host := remote
	if h, _, e := net.SplitHostPort(remote); e == nil {
		host = h // the port of an inbound connection changes every time
	}
	reason := refusalReason(err)
	key := host + " " + reason
	now := r.now()
	r.mu.Lock()
	s := r.hosts[key]
	if s == nil {
		if len(r.hosts) >= maxRefusalHosts {
			for h, s := range r.hosts {
				if now.Sub(s.last) >= r.every {
					delete(r.hosts, h)
				}
			}
			if len(r.hosts) >= maxRefusalHosts {
				clear(r.hosts)
			}
		}
		s = &refusalState{}
		r.hosts[key] = s
	}
	emit := s.last.IsZero() || now.Sub(s.last) >= r.every
	suppressed := s.suppressed
	if emit {
		s.last, s.suppressed = now, 0
	} else {
		s.suppressed++
	}
	r.mu.Unlock()
	level := slog.LevelDebug
	if emit {
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, "replication TLS handshake refused",
		"remote", remote, "direction", direction, "reason", reason, "err", err.Error(), "suppressed", suppressed)
}

// refusalReason names why a handshake failed, in a few words.
func refusalReason(err error) string {
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	var rerr tls.RecordHeaderError
	var nerr net.Error
	var oerr *net.OpError
	switch {
	case errors.As(err, &oerr) && oerr.Op == "remote error":
		return "the peer refused this node's certificate"
	case errors.As(err, &uerr):
		return "certificate not signed by the cluster's CA"
	case errors.As(err, &herr):
		return "certificate does not name the dialed host"
	case errors.As(err, &cerr):
		return "certificate invalid (expired, or not for this use)"
	case errors.As(err, &verr):
		return "certificate not verified"
	case errors.As(err, &rerr):
		return "not TLS (a plaintext peer?)"
	case errors.As(err, &nerr) && nerr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "handshake timed out"
	}
	if s := err.Error(); strings.Contains(s, "didn't provide a certificate") || strings.Contains(s, "certificate required") {
		return "no client certificate"
	}
	return "handshake failed"
}
