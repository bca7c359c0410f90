package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

// e2eCerts makes, with the real `geocache cert`, a CA and a certificate
// for 127.0.0.1 for each name, in a temporary directory it returns.
func e2eCerts(t *testing.T, bin string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	e2eCert(t, bin, "ca", "--dir", dir)
	for _, name := range names {
		e2eCert(t, bin, "node", "--dir", dir, "--name", name, "--host", "127.0.0.1,localhost")
	}
	return dir
}

func e2eCert(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"cert"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("geocache cert %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// e2eTLSFlags are the flags of node name with the certificates in dir.
func e2eTLSFlags(dir, name string) []string {
	return []string{
		"--tls-cert", filepath.Join(dir, name+".pem"),
		"--tls-key", filepath.Join(dir, name+"-key.pem"),
		"--tls-ca", filepath.Join(dir, "ca.pem"),
	}
}

// e2eTLSDial completes a TLS handshake with a replication address as node
// name of dir would, and returns the serial number of the certificate the
// server presented.
func e2eTLSDial(t *testing.T, dir, name, addr string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: e2eHang}, "tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// Three regions, each a real process, replicate over mutual TLS; a
// plaintext client of a replication port gets nothing but a TLS alert.
func TestE2EClusterOverMTLS(t *testing.T) {
	bin := e2eBinary(t)
	dir := e2eCerts(t, bin, e2eRegions...)
	c := startE2ECluster(t, func(i int, n *e2eNode) {
		n.args = append(n.args, e2eTLSFlags(dir, e2eRegions[i])...)
	})
	for _, n := range c.nodes {
		e2eWaitRecord(t, n, "geocache serving", "INFO", "replication_tls", "true")
	}
	cls := c.clients()
	ctx := context.Background()
	for i, cl := range cls {
		if err := cl.Set(ctx, fmt.Sprint("from-", e2eRegions[i]), e2eRegions[i], 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cl := range cls {
		for _, r := range e2eRegions {
			e2eEventually(t, e2eHang, "every write everywhere", func() error {
				v, err := cl.Get(ctx, "from-"+r).Result()
				if err == nil && v != r {
					err = fmt.Errorf("%q", v)
				}
				return err
			})
		}
	}

	conn, err := net.Dial("tcp", c.nodes[0].peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("\x00\x00\x00\x10hello, geocache?"))
	conn.SetReadDeadline(time.Now().Add(e2eHang))
	var got bytes.Buffer
	buf := make([]byte, 1024)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("a plaintext connection was kept open")
			}
			break
		}
	}
	if bytes.Contains(got.Bytes(), []byte("geocache")) || bytes.Contains(got.Bytes(), []byte("us")) {
		t.Errorf("a plaintext client was told %q", got.Bytes())
	}
	e2eWaitRecord(t, c.nodes[0], "replication TLS handshake refused", "WARN", "reason", "not TLS (a plaintext peer?)")
}

// Rotation with real processes: while writes flow, eu's certificate is
// reissued and eu gets SIGHUP; it reloads, new handshakes get the new
// certificate, no link goes down, and every write arrives.
func TestE2ECertRotationSIGHUP(t *testing.T) {
	bin := e2eBinary(t)
	dir := e2eCerts(t, bin, e2eRegions...)
	c := startE2ECluster(t, func(i int, n *e2eNode) {
		n.args = append(n.args, e2eTLSFlags(dir, e2eRegions[i])...)
	})
	us, eu := c.nodes[0], c.nodes[1]
	old := e2eTLSDial(t, dir, "us", eu.peerAddr)
	marks := make([]int, len(c.nodes)) // where each log stood before the rotation
	for i, n := range c.nodes {
		marks[i] = len(n.logs.String())
	}

	cl := us.client()
	ctx := context.Background()
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
			if err := cl.Set(ctx, fmt.Sprint("k", i), "v", 0).Err(); err != nil {
				t.Error(err)
				return
			}
			written.Store(int64(i + 1))
		}
	})
	e2eAtLeast(t, "writes flowing", &written, 100)
	e2eCert(t, bin, "node", "--dir", dir, "--name", "eu", "--host", "127.0.0.1,localhost", "--force")
	eu.signal(syscall.SIGHUP)
	e2eWaitRecord(t, eu, "TLS certificate reloaded: new handshakes use it", "INFO")
	if e2eTLSDial(t, dir, "us", eu.peerAddr) == old {
		t.Error("a new handshake after SIGHUP got the old certificate")
	}
	mark := written.Load()
	e2eAtLeast(t, "writes flowing after the reload", &written, mark+100)
	close(stop)
	wg.Wait()

	ecl := eu.client()
	n := written.Load()
	e2eEventually(t, e2eHang, "eu holds the last write", func() error {
		return ecl.Get(ctx, fmt.Sprint("k", n-1)).Err()
	})
	for i := range n {
		if err := ecl.Get(ctx, fmt.Sprint("k", i)).Err(); err != nil {
			t.Fatalf("eu misses k%d: %v", i, err)
		}
	}
	for i, node := range c.nodes {
		if recs := e2eRecords(node.logs.String()[marks[i]:], "replication link down", "WARN"); len(recs) > 0 {
			t.Errorf("%s: a link went down during the rotation: %v", node.name, recs)
		}
	}
	if !eu.running() {
		t.Error("SIGHUP stopped eu")
	}
}

// A node whose replication reaches beyond loopback does not start without
// certificates, and says how to make them; --insecure lets it start.
func TestE2EInsecureRule(t *testing.T) {
	bin := e2eBinary(t)
	addrs := e2eFreeAddrs(t, 2)
	_, port, _ := net.SplitHostPort(addrs[1])
	out, err := exec.Command(bin, "serve", "--addr", addrs[0], "--peer-addr", "0.0.0.0:"+port).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "geocache cert ca --dir") {
		t.Fatalf("exit %v, output:\n%s\nwant exit 2 and how to create certificates", err, out)
	}
	n := newE2ENode(t, bin, "insecure", addrs[0], "0.0.0.0:"+port, "--insecure")
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
}

// geocache cert writes the files with the right modes and refuses to
// overwrite them without --force.
func TestCertCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var out, errb bytes.Buffer
	run := func(args ...string) int {
		out.Reset()
		errb.Reset()
		return run(context.Background(), append([]string{"cert"}, args...), &out, &errb)
	}
	if code := run("node", "--dir", dir, "--name", "n1", "--host", "127.0.0.1"); code != 1 || !strings.Contains(errb.String(), "geocache cert ca --dir") {
		t.Errorf("node without a CA: exit %d, %s", code, errb.String())
	}
	if code := run("ca", "--dir", dir); code != 0 {
		t.Fatalf("ca: exit %d, %s", code, errb.String())
	}
	if code := run("node", "--dir", dir, "--name", "us-east-1", "--host", "10.0.0.5,us-east-1.internal"); code != 0 {
		t.Fatalf("node: exit %d, %s", code, errb.String())
	}
	for name, mode := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca-key.pem": 0o600, "us-east-1.pem": 0o644, "us-east-1-key.pem": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	f := certs.Files{Cert: filepath.Join(dir, "us-east-1.pem"), Key: filepath.Join(dir, "us-east-1-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	cert, _, err := certs.Load(f, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if l := cert.Leaf; l == nil || l.Subject.CommonName != "us-east-1" || len(l.IPAddresses) != 1 || l.IPAddresses[0].String() != "10.0.0.5" || len(l.DNSNames) != 1 || l.DNSNames[0] != "us-east-1.internal" {
		t.Errorf("certificate %+v", cert.Leaf)
	}

	before, _ := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if code := run("ca", "--dir", dir); code != 1 || !strings.Contains(errb.String(), "--force") {
		t.Errorf("overwrite: exit %d, %s", code, errb.String())
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca-key.pem")); !bytes.Equal(before, after) {
		t.Error("a refused command changed the CA key")
	}
	if code := run("node", "--dir", dir, "--name", "us-east-1", "--host", "10.0.0.5"); code != 1 {
		t.Errorf("node overwrite: exit %d", code)
	}
	if code := run("node", "--dir", dir, "--name", "us-east-1", "--host", "10.0.0.6", "--force"); code != 0 {
		t.Errorf("node --force: exit %d, %s", code, errb.String())
	}

	for _, bad := range [][]string{
		{}, {"wat"}, {"ca"}, {"node", "--dir", dir, "--host", "127.0.0.1"}, {"node", "--dir", dir, "--name", "x"},
		{"node", "--dir", dir, "--name", "ca", "--host", "127.0.0.1"}, {"node", "--dir", dir, "--name", "../x", "--host", "127.0.0.1"},
		{"ca", "--dir", dir, "extra"},
	} {
		if code := run(bad...); code != 2 {
			t.Errorf("geocache cert %q: exit %d, want 2 (%s)", bad, code, errb.String())
		}
	}
	if code := run("-h"); code != 0 || !strings.Contains(out.String(), "geocache cert node") {
		t.Errorf("-h: exit %d, %s", code, out.String())
	}
}

// The TLS flags: the three files go together; plaintext beyond loopback
// needs --insecure; loopback is fine.
func TestServeTLSFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		msg  string // "" for valid
	}{
		{[]string{"--peers", "127.0.0.1:7381"}, ""},
		{[]string{"--peers", "localhost:7381", "--peer-addr", "[::1]:7380"}, ""},
		{[]string{"--peers", "10.0.0.6:7380", "--peer-addr", "127.0.0.1:7380"}, "geocache cert ca --dir"},
		{[]string{"--peers", "127.0.0.1:7381", "--peer-addr", "10.0.0.5:7380"}, "10.0.0.5:7380 is beyond loopback"},
		{[]string{"--peer-addr", ":7380"}, "beyond loopback"},
		{[]string{"--peers", "10.0.0.6:7380", "--peer-addr", "10.0.0.5:7380", "--insecure"}, ""},
		{[]string{"--peers", "10.0.0.6:7380", "--peer-addr", "10.0.0.5:7380", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca"}, ""},
		{[]string{"--tls-cert", "c", "--tls-key", "k"}, "go together"},
		{[]string{"--tls-ca", "ca"}, "go together"},
	} {
		_, _, err := parseServeConfig(tt.args, nil)
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.msg != "" && (!errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.msg)):
			t.Errorf("%q: %v, want a usage error containing %q", tt.args, err, tt.msg)
		}
	}
	// From the environment too.
	c, _, err := parseServeConfig(nil, []string{"GEOCACHE_TLS_CERT=c", "GEOCACHE_TLS_KEY=k", "GEOCACHE_TLS_CA=ca", "GEOCACHE_INSECURE=true"})
	if err != nil || c.tlsCert != "c" || c.tlsKey != "k" || c.tlsCA != "ca" || !c.insecure {
		t.Errorf("from the environment: %+v, %v", c, err)
	}
}

// A node whose certificate files are missing or do not match its CA does
// not start (exit 2), naming the problem.
func TestServeBadCertificatesRefused(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"ca", "--dir", dir}, {"node", "--dir", dir, "--name", "a", "--host", "127.0.0.1"}} {
		if code := run(context.Background(), append([]string{"cert"}, args...), &out, &errb); code != 0 {
			t.Fatal(errb.String())
		}
	}
	other := t.TempDir()
	if code := run(context.Background(), []string{"cert", "ca", "--dir", other}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	for name, files := range map[string][]string{
		"missing key": {filepath.Join(dir, "a.pem"), filepath.Join(dir, "nope.pem"), filepath.Join(dir, "ca.pem")},
		"other CA":    {filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem"), filepath.Join(other, "ca.pem")},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := serve(context.Background(), []string{"--addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0",
				"--tls-cert", files[0], "--tls-key", files[1], "--tls-ca", files[2]}, nil, nil, &bytes.Buffer{}, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), "cannot start") {
				t.Errorf("exit %d:\n%s", code, stderr.String())
			}
		})
	}
}
