package geocache

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/certs"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// logRecorder keeps the records logged through it.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// find returns the attributes of the records with msg at level.
func (l *logRecorder) find(msg string, level slog.Level) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r.Message != msg || r.Level != level {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

func newTestCA(t *testing.T) certs.PEM {
	t.Helper()
	ca, err := certs.NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// tlsFor returns the TLS configuration of a node with a certificate from ca
// for 127.0.0.1.
func tlsFor(t *testing.T, ca certs.PEM) *tls.Config {
	t.Helper()
	n, err := certs.NewNode(ca, "node", []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(n.Cert, n.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Cert)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}
}

// openTLSPair opens two nodes on loopback that list each other, with TLS
// configurations tlsA and tlsB (nil: plaintext).
func openTLSPair(t *testing.T, tlsA, tlsB *tls.Config, tweak func(i int, c *Config)) ([]*Node, []string) {
	t.Helper()
	addrs, ls := freeAddrs(t, 2)
	var nodes []*Node
	for i, tc := range []*tls.Config{tlsA, tlsB} {
		cfg := MultiRegion(fmt.Sprint("r", i), uint32(i+1), addrs[i], addrs[1-i])
		cfg.Listener, cfg.TLS = ls[i], tc
		if tweak != nil {
			tweak(i, &cfg)
		}
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	return nodes, addrs
}

func TestTLSClusterReplicates(t *testing.T) {
	ca := newTestCA(t)
	addrs, ls := freeAddrs(t, 3)
	var nodes []*Node
	for i := range 3 {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		cfg := MultiRegion(fmt.Sprint("r", i), uint32(i+1), addrs[i], peers...)
		cfg.Listener, cfg.TLS = ls[i], tlsFor(t, ca)
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	if err := nodes[0].Set(context.Background(), "k", []byte("v"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if v, err := n.Get("k"); err != nil || string(v) != "v" {
			t.Errorf("node %d: %q, %v", i, v, err)
		}
	}
}

// A peer whose certificate comes from another CA is refused in both
// directions; the refusal is logged at WARN once per peer host per
// minute however often the link is retried, and the next warning counts
// the refusals in between. Nothing the peer writes reaches the node.
func TestTLSOtherCARefused(t *testing.T) {
	logs := &logRecorder{}
	clock := testkit.NewClock(time.Now())
	nodes, _ := openTLSPair(t, tlsFor(t, newTestCA(t)), tlsFor(t, newTestCA(t)), func(i int, c *Config) {
		c.PeerTimeout = 200 * time.Millisecond // retries every 200 ms at most
		if i == 0 {
			c.Logger, c.Clock = slog.New(logs), clock
		}
	})
	a, rogue := nodes[0], nodes[1]
	const msg = "replication TLS handshake refused"
	const reason = "certificate not signed by the cluster's CA"
	warnings := func() (n int, last map[string]string) {
		for _, w := range logs.find(msg, slog.LevelWarn) {
			if w["reason"] == reason {
				n, last = n+1, w
			}
		}
		return n, last
	}
	testkit.Eventually(t, "a refused the rogue peer's certificate five times", func() bool {
		n := 0
		for _, w := range logs.find(msg, slog.LevelDebug) {
			if w["reason"] == reason {
				n++
			}
		}
		return n >= 5
	})
	if n, w := warnings(); n != 1 || !strings.HasPrefix(w["remote"], "127.0.0.1:") {
		t.Fatalf("%d warnings within a minute, want 1: %v", n, logs.find(msg, slog.LevelWarn))
	}
	perReason := map[string]int{}
	for _, w := range logs.find(msg, slog.LevelWarn) {
		if perReason[w["reason"]]++; perReason[w["reason"]] > 1 {
			t.Errorf("reason %q warned twice within a minute: %v", w["reason"], logs.find(msg, slog.LevelWarn))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rogue.Set(ctx, "injected", []byte("x")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(61 * time.Second)
	testkit.Eventually(t, "a second warning a minute later", func() bool {
		n, _ := warnings()
		return n == 2
	})
	if _, w := warnings(); w["suppressed"] == "0" {
		t.Errorf("second warning %v does not count the refusals in between", w)
	}
	if _, err := a.Get("injected"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a holds the rogue peer's write: %v", err)
	}
	for _, o := range a.Stats().Origins {
		t.Errorf("a receives writes from %+v", o)
	}
}

// A plaintext peer, a geocache node without TLS, is refused at the
// handshake: its Hello is never read as a frame, and what it gets back
// names neither the cluster nor the node.
func TestTLSPlaintextPeerRefused(t *testing.T) {
	logs := &logRecorder{}
	nodes, addrs := openTLSPair(t, tlsFor(t, newTestCA(t)), nil, func(i int, c *Config) {
		c.Cluster, c.NodeName = "secret-cluster", fmt.Sprint("secret-node-", i)
		if i == 0 {
			c.Logger = slog.New(logs)
		}
	})
	testkit.Eventually(t, "a refused the plaintext node", func() bool {
		w := logs.find("replication TLS handshake refused", slog.LevelWarn)
		return len(w) == 1 && w[0]["reason"] == "not TLS (a plaintext peer?)"
	})

	// By hand: a well-formed Hello of the right cluster, in plaintext.
	conn, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hello := (&wire.Hello{Proto: wire.Proto, Cluster: "guess", Region: "x", NodeName: "x", NodeID: 9, Incarnation: 1}).Append(nil)
	if _, err := conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the node kept a plaintext connection open")
			}
			break
		}
	}
	for _, secret := range []string{"secret-cluster", "secret-node", "geocache"} {
		if bytes.Contains(got.Bytes(), []byte(secret)) {
			t.Errorf("a plaintext peer was told %q: %q", secret, got.Bytes())
		}
	}
	for _, o := range nodes[0].Stats().Origins {
		t.Errorf("the TLS node receives writes from %+v", o)
	}
}

// A TLS client that presents no certificate is refused.
func TestTLSNoClientCertRefused(t *testing.T) {
	ca := newTestCA(t)
	logs := &logRecorder{}
	cfg := SingleNode(1 << 20)
	cfg.PeerAddr, cfg.TLS, cfg.Logger = "127.0.0.1:0", tlsFor(t, ca), slog.New(logs)
	addrs, ls := freeAddrs(t, 1)
	cfg.Listener, cfg.PeerAddr = ls[0], addrs[0]
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Cert)
	conn, err := tls.Dial("tcp", addrs[0], &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("the server's certificate should verify: %v", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	// TLS 1.3: the server checks the client's certificate after the
	// client's handshake ends; its refusal arrives as an alert.
	if k, err := conn.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("read %d bytes, %v; want the refusal", k, err)
	}
	testkit.Eventually(t, "the refusal logged", func() bool {
		w := logs.find("replication TLS handshake refused", slog.LevelWarn)
		return len(w) == 1 && w[0]["reason"] == "no client certificate"
	})
}

// A peer that opens a connection and stalls the handshake is closed after
// the handshake deadline (PeerTimeout); the node closes cleanly with
// handshakes pending, leaving no goroutine behind.
func TestTLSStalledHandshakeClosed(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		addrs, ls := freeAddrs(t, 1)
		cfg := SingleNode(1 << 20)
		cfg.Listener, cfg.PeerAddr, cfg.TLS = ls[0], addrs[0], tlsFor(t, newTestCA(t))
		cfg.PeerTimeout = 100 * time.Millisecond
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		conn, err := net.Dial("tcp", addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
		_, err = conn.Read(make([]byte, 1))
		if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("a stalled handshake was not closed")
		}
		// Another, left pending at Close.
		stalled, err := net.Dial("tcp", addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
	}()
	deadline := time.Now().Add(testkit.EventuallyTimeout) // only catches a leak
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// Rotation under load: while writes flow from a to b, b's certificate
// files are replaced and reloaded (by Reload, as on SIGHUP, and by Poll,
// as when the files change). The link stays up, every write arrives, and
// new handshakes get the new certificate.
func TestTLSRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	if err := certs.WritePair(dir, certs.CAFile, certs.CAKeyFile, ca, false); err != nil {
		t.Fatal(err)
	}
	issue := func(name string) certs.Files {
		t.Helper()
		p, err := certs.NewNode(ca, name, []string{"127.0.0.1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, k := certs.NodeFiles(name)
		if err := certs.WritePair(dir, c, k, p, true); err != nil {
			t.Fatal(err)
		}
		return certs.Files{Cert: filepath.Join(dir, c), Key: filepath.Join(dir, k), CA: filepath.Join(dir, certs.CAFile)}
	}
	var reloaders []*certs.Reloader
	for _, name := range []string{"a", "b"} {
		r, err := certs.NewReloader(issue(name), nil)
		if err != nil {
			t.Fatal(err)
		}
		reloaders = append(reloaders, r)
	}
	nodes, addrs := openTLSPair(t, reloaders[0].TLSConfig(), reloaders[1].TLSConfig(), nil)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	if err := a.Set(ctx, "first", []byte("1"), WithAck(All)); err != nil {
		t.Fatal(err)
	}
	upSince := a.Stats().Peers[0].Since

	serial := func() string { // of the certificate b serves a new handshake
		t.Helper()
		conn, err := tls.Dial("tcp", addrs[1], clientTLS(reloaders[0].TLSConfig(), "127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old := serial()

	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := a.Set(ctx, fmt.Sprint("k", i), []byte("v")); err != nil {
				t.Error(err)
				return
			}
			written.Store(int64(i + 1))
		}
	})
	waitWrites := func(n int64) {
		testkit.Eventually(t, "writes flowing", func() bool { return written.Load() >= n })
	}

	waitWrites(100)
	issue("b")
	if err := reloaders[1].Reload(); err != nil { // as on SIGHUP
		t.Fatal(err)
	}
	mid := serial()
	if mid == old {
		t.Error("a new handshake after Reload still gets the old certificate")
	}
	waitWrites(written.Load() + 100)
	f := issue("b")
	later := time.Now().Add(time.Minute) // a modification time the poller tells apart
	if err := os.Chtimes(f.Cert, later, later); err != nil {
		t.Fatal(err)
	}
	if !reloaders[1].Poll() { // as the watcher does when the files change
		t.Error("Poll did not notice the new files")
	}
	if s := serial(); s == mid || s == old {
		t.Error("a new handshake after Poll does not get the new certificate")
	}
	waitWrites(written.Load() + 100)
	close(stop)
	wg.Wait()

	last := fmt.Sprint("k", written.Load()-1)
	testkit.Eventually(t, "b to hold every write", func() bool {
		_, err := b.Get(last)
		return err == nil
	})
	for i := range written.Load() {
		if _, err := b.Get(fmt.Sprint("k", i)); err != nil {
			t.Fatalf("b misses k%d: %v", i, err)
		}
	}
	if p := a.Stats().Peers[0]; !p.Connected || !p.Since.Equal(upSince) || len(p.Failures) != 0 {
		t.Errorf("the link did not stay up through the rotation: %+v", p)
	}
	if ok, failed := reloaders[1].Reloads(); ok != 2 || failed != 0 {
		t.Errorf("reloads %d ok, %d failed", ok, failed)
	}
}

// The node's own settings win over the embedder's: a TLS.ClientAuth of
// NoClientCert or a GetConfigForClient that returns a lax configuration
// still requires a client certificate from the CA.
func TestTLSServerSettingsCannotBeLoosened(t *testing.T) {
	ca := newTestCA(t)
	lax := tlsFor(t, ca)
	lax.ClientAuth = tls.NoClientCert
	lax.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: lax.Certificates}, nil
	}
	srv := serverTLS(lax)
	if srv.ClientAuth != tls.RequireAndVerifyClientCert || srv.GetConfigForClient != nil || srv.ClientCAs == nil || srv.MinVersion != tls.VersionTLS13 {
		t.Errorf("server config: ClientAuth %v, GetConfigForClient set %v, ClientCAs %v, MinVersion %x",
			srv.ClientAuth, srv.GetConfigForClient != nil, srv.ClientCAs != nil, srv.MinVersion)
	}
	if lax.ClientAuth != tls.NoClientCert {
		t.Error("serverTLS changed the embedder's configuration")
	}
}

func TestTLSConfigValidation(t *testing.T) {
	good := tlsFor(t, newTestCA(t))
	for name, mod := range map[string]func(c *tls.Config){
		"no certificate":       func(c *tls.Config) { c.Certificates = nil },
		"no CA pool":           func(c *tls.Config) { c.RootCAs = nil },
		"verification skipped": func(c *tls.Config) { c.InsecureSkipVerify = true },
		"TLS 1.2 at most":      func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
	} {
		t.Run(name, func(t *testing.T) {
			c := good.Clone()
			mod(c)
			cfg := SingleNode(1 << 20)
			cfg.TLS = c
			if _, err := Open(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Open: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// The refusal log warns once per host per interval, counts what it
// suppressed, and stays bounded.
func TestRefusalLogRateLimit(t *testing.T) {
	logs := &logRecorder{}
	now := time.Unix(1000, 0)
	r := &refusalLog{log: slog.New(logs), now: func() time.Time { return now }, every: time.Minute, hosts: map[string]*refusalState{}}
	bad := errors.New("tls: bad certificate")
	for i := range 10 {
		r.refused(fmt.Sprintf("10.0.0.1:%d", 4000+i), "inbound", bad)
	}
	r.refused("10.0.0.2:1", "inbound", bad)
	if w := logs.find("replication TLS handshake refused", slog.LevelWarn); len(w) != 2 {
		t.Fatalf("%d warnings, want one per host: %v", len(w), w)
	}
	now = now.Add(time.Minute)
	r.refused("10.0.0.1:5000", "inbound", bad)
	w := logs.find("replication TLS handshake refused", slog.LevelWarn)
	if len(w) != 3 || w[2]["suppressed"] != "9" {
		t.Fatalf("warnings %v; want a third with suppressed=9", w)
	}
	for i := range 2 * maxRefusalHosts {
		r.refused(fmt.Sprintf("h%d:1", i), "inbound", bad)
	}
	if len(r.hosts) > maxRefusalHosts {
		t.Errorf("%d hosts remembered, bound %d", len(r.hosts), maxRefusalHosts)
	}
}
