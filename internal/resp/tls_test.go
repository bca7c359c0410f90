package resp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for 127.0.0.1 and localhost, good for
// serving and as a client.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startTLSServer serves cfg over TLS with tc, and in plaintext, on two
// fresh loopback ports. Cleanup closes it and checks for leaks.
func startTLSServer(t *testing.T, cfg Config, tc *tls.Config) (s *Server, tlsAddr, plainAddr string) {
	t.Helper()
	s, addrs := serveLoopback(t, cfg, tc)
	return s, addrs[1], addrs[0]
}

// TestTLS: go-redis over TLS works; a plaintext client on the TLS port fails
// its handshake and is closed, and the server goes on serving both ports.
func TestTLS(t *testing.T) {
	ca := newTestCA(t, "test CA")
	serverCert := ca.issue(t, "node")
	s, tlsAddr, plainAddr := startTLSServer(t, Config{}, &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})

	c := newClient(t, tlsAddr, func(o *redis.Options) { o.TLSConfig = &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"} })
	if err := c.Set(bg, "k", "over tls", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	if v, err := c.Get(bg, "k").Result(); err != nil || v != "over tls" {
		t.Fatalf("GET over TLS = %q, %v", v, err)
	}

	plain := dialRaw(t, tlsAddr)
	plain.send(cmd("PING"))
	plain.nc.SetReadDeadline(time.Now().Add(testkit.EventuallyTimeout))
	got, _ := io.ReadAll(plain.br) // a TLS alert, or nothing; then the close
	if strings.Contains(string(got), "PONG") {
		t.Fatalf("a plaintext client on the TLS port was answered: %q", got)
	}
	testkit.Eventually(t, "the failed handshake to be counted", func() bool { return s.Stats().TLSHandshakeErrors == 1 })

	if v, err := c.Get(bg, "k").Result(); err != nil || v != "over tls" {
		t.Fatalf("GET over TLS after a plaintext client = %q, %v", v, err)
	}
	if got := dialRaw(t, plainAddr).do("GET", "k"); got != `"over tls"` {
		t.Fatalf("GET on the plaintext port: %s", got)
	}

	// A client that does not trust the server's CA fails its handshake.
	other := newTestCA(t, "other CA")
	bad := newClient(t, tlsAddr, func(o *redis.Options) { o.TLSConfig = &tls.Config{RootCAs: other.pool, ServerName: "127.0.0.1"} })
	if err := bad.Ping(bg).Err(); err == nil {
		t.Fatal("a client trusting another CA was served")
	}
}

// TestTLSClientAuth: with client certificates required, a client without
// one or with one from another CA is refused at the handshake; a client
// with a certificate from the CA is served — even in protected mode when
// it is not local, since its certificate authenticates it.
func TestTLSClientAuth(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	tc := &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "node")},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.pool,
	}
	notLocal := func(net.Addr) bool { return false }
	s, tlsAddr, plainAddr := startTLSServer(t, Config{ProtectedMode: true, IsLocal: notLocal}, tc)

	clientTLS := func(certs ...tls.Certificate) func(*redis.Options) {
		return func(o *redis.Options) {
			o.TLSConfig = &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", Certificates: certs}
		}
	}
	good := newClient(t, tlsAddr, clientTLS(ca.issue(t, "app")))
	if err := good.Set(bg, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET with a client certificate from the CA: %v", err)
	}
	for name, opt := range map[string]func(*redis.Options){
		"no certificate":            clientTLS(),
		"certificate of another CA": clientTLS(other.issue(t, "intruder")),
	} {
		c := newClient(t, tlsAddr, opt)
		if err := c.Ping(bg).Err(); err == nil {
			t.Errorf("a client with %s was served", name)
		}
	}
	testkit.Eventually(t, "the refused handshakes to be counted", func() bool { return s.Stats().TLSHandshakeErrors >= 2 })
	// The plaintext port has no certificate to vouch for its clients:
	// protected mode refuses them.
	dialRaw(t, plainAddr).expectClosed(redisDenied)
	if err := good.Ping(bg).Err(); err != nil {
		t.Fatalf("the good client after the refusals: %v", err)
	}
}

// TestRedisCLITLS: redis-cli --tls --cacert ca.pem talks to the TLS port.
func TestRedisCLITLS(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed")
	}
	ca := newTestCA(t, "test CA")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	_, tlsAddr, _ := startTLSServer(t, Config{}, &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "node")}})
	host, port, _ := net.SplitHostPort(tlsAddr)
	out, err := exec.Command(cli, "--tls", "--cacert", caFile, "-h", host, "-p", port, "PING").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli --tls PING: %q, %v", out, err)
	}
	out, err = exec.Command(cli, "--tls", "--cacert", caFile, "-h", host, "-p", port, "SET", "k", "from redis-cli").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("redis-cli --tls SET: %q, %v", out, err)
	}
}

// TestTLSMaxClients: at MaxClients, a TLS connection is closed without a
// handshake, so a client that connects and never sends its hello cannot
// stall the accept loop: the next one is refused too, and once a slot
// frees a TLS client is served.
func TestTLSMaxClients(t *testing.T) {
	ca := newTestCA(t, "test CA")
	s, tlsAddr, _ := startTLSServer(t, Config{MaxClients: 1}, &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "node")}})
	clientTLS := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"}
	dialTLS := func() *rawConn {
		nc, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", tlsAddr, clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return newRawConn(t, nc)
	}
	first := dialTLS()
	if got := first.do("PING"); got != "+PONG" {
		t.Fatalf("PING over TLS: %s", got)
	}
	silent := dialRaw(t, tlsAddr) // never sends a ClientHello
	testkit.Eventually(t, "the silent connection to be refused", func() bool { return s.Stats().Rejected == 1 })
	silent.expectClosed("")
	second := dialRaw(t, tlsAddr)
	testkit.Eventually(t, "the next connection to be refused", func() bool { return s.Stats().Rejected == 2 })
	second.expectClosed("")
	first.nc.Close()
	testkit.Eventually(t, "the slot to free up", func() bool { return s.Stats().Clients == 0 })
	if got := dialTLS().do("PING"); got != "+PONG" {
		t.Fatalf("PING over TLS after a slot freed: %s", got)
	}
}
