package chaos

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

// Mutual TLS of a run's replication links.
//
// Unless Config.Plaintext, newCluster makes a throwaway CA and one
// certificate per node in Dir/certs with the code of `geocache cert`, and
// starts every node with --tls-cert, --tls-key and --tls-ca. The proxies
// are plain TCP proxies: each TLS session runs end to end between the two
// nodes, through the proxy. A node dials its peers by the proxies'
// addresses, 127.0.0.1:PORT, and checks that the peer's certificate names
// the host it dialed, so every certificate carries 127.0.0.1 (one IP
// subject alternative name serves every node: the port is not part of the
// check).
//
// A node started with those flags could still serve plaintext (a flag
// dropped on its way, a listener that accepts both): the harness probes
// every node's replication port once the links are up (probeTLS) and the
// checker fails the run unless each one completed a TLS 1.3 handshake with
// a certificate of the run's CA, for the node's own name and 127.0.0.1, and
// refused a plaintext peer, a peer without a certificate and a peer with a
// certificate from another CA.

// certDir is where a run's certificates go, under Config.Dir.
const certDir = "certs"

// tlsHost is the host every node is dialed by: the proxies listen on it.
const tlsHost = "127.0.0.1"

// refusedLogMsg is what a node logs (at WARN, once a minute per remote host
// and reason) when it refuses a replication TLS handshake (the root
// package's tls.go); notTLSReason is the reason of a plaintext peer.
const (
	refusedLogMsg = "replication TLS handshake refused"
	notTLSReason  = "not TLS"
)

// runCerts is the TLS material of a run: the CA certificate (its key is
// not kept: nothing more is ever issued from it) and each node's
// certificate and key, as files the nodes read.
type runCerts struct {
	dir   string
	names []string // node index -> certificate name (and file base name)
}

// nodeCertName is the name of node nd's certificate: region and id.
func nodeCertName(region int, id uint32) string { return fmt.Sprintf("%s-%d", regionName(region), id) }

// makeCerts writes a new CA certificate and one certificate per node name
// into dir (created 0700; existing files are replaced).
func makeCerts(dir string, names []string, now time.Time) (*runCerts, error) {
	ca, err := certs.NewCA("geocache chaos CA", now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, certs.CAFile), ca.Cert, 0o644); err != nil {
		return nil, err
	}
	for _, name := range names {
		p, err := certs.NewNode(ca, name, []string{tlsHost}, now)
		if err != nil {
			return nil, fmt.Errorf("certificate of %s: %w", name, err)
		}
		c, k := certs.NodeFiles(name)
		if err := certs.WritePair(dir, c, k, p, true); err != nil {
			return nil, err
		}
	}
	return &runCerts{dir: dir, names: names}, nil
}

// files are node i's certificate files, as geocache serve takes them.
func (rc *runCerts) files(i int) certs.Files {
	c, k := certs.NodeFiles(rc.names[i])
	return certs.Files{Cert: filepath.Join(rc.dir, c), Key: filepath.Join(rc.dir, k), CA: filepath.Join(rc.dir, certs.CAFile)}
}

// args are node i's TLS flags.
func (rc *runCerts) args(i int) []string {
	f := rc.files(i)
	return []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
}

// TLSProbe is what probing one node's replication port found: whether it
// accepted the run's certificate and refused the three peers it must
// refuse. Err says what went wrong first; empty when all four held.
type TLSProbe struct {
	Node uint32 `json:"node"` // id
	// Accepted: a TLS 1.3 handshake completed with another node's
	// certificate, and the node presented its own certificate, from the
	// run's CA, for 127.0.0.1.
	Accepted bool `json:"accepted"`
	// PlaintextRefused: the node logged the refusal of a plaintext
	// connection (by its exact remote address) as not TLS, and sent it
	// nothing.
	PlaintextRefused bool `json:"plaintext_refused"`
	// NoCertRefused: a TLS client without a certificate was refused
	// (certificate required alert).
	NoCertRefused bool `json:"no_cert_refused"`
	// StrangerRefused: a TLS client with a certificate of another CA
	// was refused (unknown certificate authority alert).
	StrangerRefused bool   `json:"stranger_refused"`
	Err             string `json:"err,omitempty"`
}

// ok reports whether the node speaks mutual TLS only.
func (p TLSProbe) ok() bool {
	return p.Accepted && p.PlaintextRefused && p.NoCertRefused && p.StrangerRefused
}

// probeWait bounds each step of a probe; it is reached only when a node
// does not answer as it must (a hang-catching deadline, not a timing).
const probeWait = 10 * time.Second

// probeTLS probes every node's replication port, directly (not through a
// proxy), all at once (a node that does not answer as it must costs
// probeWait, not probeWait per node and step). Node i is dialed with the
// certificate of node i+1 (its own with one node).
func (c *cluster) probeTLS(ctx context.Context) ([]TLSProbe, error) {
	rc := c.certs
	if rc == nil {
		return nil, errors.New("the run has no certificates")
	}
	now := time.Now()
	caFile := rc.files(0).CA
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	stranger, err := strangerCert(now)
	if err != nil {
		return nil, err
	}
	out := make([]TLSProbe, len(c.nodes))
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		peer, _, err := certs.Load(rc.files((i+1)%len(c.nodes)), now)
		if err != nil {
			return nil, err
		}
		wg.Go(func() { out[i] = probeNode(ctx, nd, rc.names[i], pool, *peer, stranger) })
	}
	wg.Wait()
	return out, nil
}

// strangerCert is a certificate for 127.0.0.1 from a CA of its own.
func strangerCert(now time.Time) (tls.Certificate, error) {
	ca, err := certs.NewCA("stranger CA", now)
	if err != nil {
		return tls.Certificate{}, err
	}
	p, err := certs.NewNode(ca, "stranger", []string{tlsHost}, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(p.Cert, p.Key)
}

// probeNode probes nd, whose certificate is named name, with its four
// connections at once; peer is a certificate of the run's CA, stranger one
// of another CA.
func probeNode(ctx context.Context, nd *node, name string, pool *x509.CertPool, peer, stranger tls.Certificate) TLSProbe {
	base := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: tlsHost}
	withPeer := base.Clone()
	withPeer.Certificates = []tls.Certificate{peer}
	withStranger := base.Clone()
	// Offered whatever the node asks for: with Certificates, the client
	// sends only a certificate of a CA the node names as acceptable, and
	// none here.
	withStranger.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }

	steps := []struct {
		what string
		run  func() error
	}{
		{"TLS with the run's certificate", func() error {
			st, err := handshake(ctx, nd.peerAddr, withPeer)
			switch {
			case err != nil:
				return err
			case st.Version != tls.VersionTLS13:
				return fmt.Errorf("version %s, not TLS 1.3", tls.VersionName(st.Version))
			case st.PeerCertificates[0].Subject.CommonName != name:
				return fmt.Errorf("the node presented %q, not %q", st.PeerCertificates[0].Subject.CommonName, name)
			}
			return nil
		}},
		{"plaintext", func() error { return plaintextRefused(ctx, nd) }},
		// TLS 1.3: the client's handshake completes before the server
		// has checked the client's certificate; its refusal is an alert,
		// read after.
		{"without a client certificate", func() error {
			return refusedAfterHandshake(ctx, nd.peerAddr, base, "certificate required")
		}},
		{"with a certificate of another CA", func() error {
			return refusedAfterHandshake(ctx, nd.peerAddr, withStranger, "unknown certificate authority")
		}},
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Go(func() { errs[i] = s.run() })
	}
	wg.Wait()
	p := TLSProbe{Node: nd.id, Accepted: errs[0] == nil, PlaintextRefused: errs[1] == nil, NoCertRefused: errs[2] == nil, StrangerRefused: errs[3] == nil}
	var msgs []string
	for i, err := range errs {
		if err != nil {
			msgs = append(msgs, steps[i].what+": "+err.Error())
		}
	}
	p.Err = strings.Join(msgs, "; ")
	return p
}

// handshake dials addr and completes a TLS handshake with cfg.
func handshake(ctx context.Context, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// refusedAfterHandshake dials addr with cfg and checks that the server
// ends the connection with an alert that contains alert.
func refusedAfterHandshake(ctx context.Context, addr string, cfg *tls.Config, alert string) error {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if strings.Contains(err.Error(), alert) {
			return nil // refused within the handshake
		}
		return fmt.Errorf("handshake: %w", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(probeWait))
	n, err := conn.Read(make([]byte, 1))
	switch {
	case err == nil:
		return fmt.Errorf("accepted: the node sent %d byte(s)", n)
	case strings.Contains(err.Error(), alert):
		return nil
	}
	return fmt.Errorf("not refused with %q: %w", alert, err)
}

// plaintextRefused sends a plaintext Redis PING to nd's replication port
// and checks that the node answers nothing and logs that it refused the
// connection as not TLS.
func plaintextRefused(ctx context.Context, nd *node) error {
	// Only what the node logs from now on counts (Dir may hold the logs
	// of earlier runs).
	st, err := nd.log.Stat()
	if err != nil {
		return err
	}
	from := st.Size()
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", nd.peerAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	conn.SetDeadline(time.Now().Add(probeWait))
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := io.ReadAll(conn)
	if len(got) > 0 {
		return fmt.Errorf("the node answered %q", got)
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return fmt.Errorf("the node kept the connection open for %v", probeWait)
	}
	// The node logs the refusal after closing the connection, at WARN
	// for the first plaintext peer from this host in a minute: nothing
	// else sends the replication port plaintext in a run.
	deadline := time.Now().Add(probeWait)
	for {
		found, err := logHas(nd.log.Name(), from, func(line string) bool {
			return strings.Contains(line, refusedLogMsg) && strings.Contains(line, notTLSReason) &&
				// text or JSON (GEOCACHE_LOG_FORMAT reaches the nodes)
				(strings.Contains(line, "remote="+local+" ") || strings.Contains(line, `"remote":"`+local+`"`))
		})
		if err != nil {
			return err
		}
		if found {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q line for remote %s (reason %q) in %s within %v", refusedLogMsg, local, notTLSReason, nd.log.Name(), probeWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logHas reports whether a line of the file, from byte offset from on,
// satisfies match.
func logHas(path string, from int64, match func(line string) bool) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if match(sc.Text()) {
			return true, nil
		}
	}
	return false, sc.Err()
}
