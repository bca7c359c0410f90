package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files of a node: its certificate, its key and the
// cluster's CA certificate (one or more CERTIFICATE blocks).
type Files struct {
	Cert, Key, CA string
}

// material is one loaded generation of a node's TLS files.
type material struct {
	cert     *tls.Certificate
	notAfter time.Time
}

// Load reads the node's files and checks them: the key matches the
// certificate, the CA file holds at least one CA certificate, and the node
// certificate chains to it for both serverAuth and clientAuth at now. It
// returns the certificate and the CA pool.
func Load(f Files, now time.Time) (*tls.Certificate, *x509.CertPool, error) {
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, nil, err
	}
	m, err := loadCert(f, pool, now)
	if err != nil {
		return nil, nil, err
	}
	return m.cert, pool, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read the CA: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", caFile, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certs: %s: certificate %q is not a CA", caFile, c.Subject.CommonName)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func loadCert(f Files, pool *x509.CertPool, now time.Time) (*material, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: load %s and %s: %w", f.Cert, f.Key, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: %s: %w", f.Cert, err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage},
		}); err != nil {
			return nil, fmt.Errorf("certs: %s is not valid for %s under the CA %s: %w", f.Cert, usageName(usage), f.CA, err)
		}
	}
	return &material{cert: &pair, notAfter: leaf.NotAfter}, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "serving (serverAuth)"
	}
	return "dialing (clientAuth)"
}

// fileStamp is what the poller compares to notice a changed file.
type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// Reloader holds a node's certificate and key, reloads them on demand
// (Reload, e.g. on SIGHUP) and, with Watch, when their files change. New
// material is used by new handshakes only: established connections keep
// the session they negotiated. The CA pool is read once, by New: a CA
// change takes a restart (docs/security.md tells how to roll one).
type Reloader struct {
	files Files
	pool  *x509.CertPool
	log   *slog.Logger
	now   func() time.Time

	cur atomic.Pointer[material]

	// mu serializes Reload and guards stamps.
	mu     sync.Mutex
	stamps []fileStamp

	reloads, failures atomic.Uint64

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// NewReloader loads files (see Load) and returns a Reloader serving them.
// log receives the reloads (nil discards them).
func NewReloader(f Files, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{files: f, log: log, now: time.Now, stop: make(chan struct{})}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	r.pool = pool
	r.stamps = r.stampFiles()
	m, err := loadCert(f, pool, r.now())
	if err != nil {
		return nil, err
	}
	r.cur.Store(m)
	r.warnExpiry(m)
	return r, nil
}

func (r *Reloader) stampFiles() []fileStamp {
	return []fileStamp{stampOf(r.files.Cert), stampOf(r.files.Key), stampOf(r.files.CA)}
}

// Reload reads the certificate and key again. If they do not load or do
// not chain to the CA, the current ones stay in use and the error is
// returned (and logged).
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

func (r *Reloader) reloadLocked() error {
	stamps := r.stampFiles()
	caChanged := stamps[2] != r.stamps[2]
	r.stamps = stamps
	m, err := loadCert(r.files, r.pool, r.now())
	if err != nil {
		r.failures.Add(1)
		r.log.Error("TLS certificate reload failed: keeping the current certificate", "cert", r.files.Cert, "err", err)
		return err
	}
	r.cur.Store(m)
	r.reloads.Add(1)
	r.log.Info("TLS certificate reloaded: new handshakes use it", "cert", r.files.Cert,
		"not_after", m.notAfter.UTC().Format(time.RFC3339))
	if caChanged {
		r.log.Warn("the CA file changed: the CA is read at start only, restart the node to use it", "ca", r.files.CA)
	}
	r.warnExpiry(m)
	return nil
}

func (r *Reloader) warnExpiry(m *material) {
	if left := m.notAfter.Sub(r.now()); left < 30*24*time.Hour {
		r.log.Warn("TLS certificate expires soon: issue a new one and reload", "cert", r.files.Cert,
			"not_after", m.notAfter.UTC().Format(time.RFC3339))
	}
}

// Reloads returns how many reloads succeeded and failed.
func (r *Reloader) Reloads() (ok, failed uint64) { return r.reloads.Load(), r.failures.Load() }

// Certificate returns the certificate in use.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// Watch polls the files' modification times and sizes every interval and
// reloads when one changed, until Close. Call it once.
func (r *Reloader) Watch(interval time.Duration) {
	r.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.Poll()
			}
		}
	})
}

// Poll reloads if a file changed since the last load or poll, and reports
// whether it tried.
func (r *Reloader) Poll() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Equal(r.stampFiles(), r.stamps) {
		return false
	}
	r.reloadLocked()
	return true
}

// Close stops Watch and waits for it. It is idempotent.
func (r *Reloader) Close() {
	r.stopOnce.Do(func() { close(r.stop) })
	r.wg.Wait()
}

// TLSConfig returns the node's TLS configuration: TLS 1.3, the current
// certificate to serve and to dial (looked up at every handshake), and the
// CA pool to verify peers with, both ways.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cur.Load().cert, nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.cur.Load().cert, nil
		},
		RootCAs:    r.pool,
		ClientCAs:  r.pool,
		ClientAuth: tls.RequireAndVerifyClientCert,
	}
}
