package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCAAndNode(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, ca.Cert)
	if !c.IsCA || !c.MaxPathLenZero || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, MaxPathLenZero %v, usage %v", c.IsCA, c.MaxPathLenZero, c.KeyUsage)
	}
	if life := c.NotAfter.Sub(now); life < CALifetime-time.Minute || life > CALifetime+time.Minute {
		t.Errorf("CA lifetime %v", life)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", c.PublicKey)
	}

	node, err := NewNode(ca, "us-east-1", []string{"10.0.0.5", "us-east-1.internal", "::1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	n := parseCert(t, node.Cert)
	if n.Subject.CommonName != "us-east-1" || n.IsCA {
		t.Errorf("node: CN %q, IsCA %v", n.Subject.CommonName, n.IsCA)
	}
	if len(n.IPAddresses) != 2 || n.IPAddresses[0].String() != "10.0.0.5" || n.IPAddresses[1].String() != "::1" ||
		len(n.DNSNames) != 1 || n.DNSNames[0] != "us-east-1.internal" {
		t.Errorf("SANs %v %v", n.IPAddresses, n.DNSNames)
	}
	if life := n.NotAfter.Sub(now); life < NodeLifetime-time.Minute || life > NodeLifetime+time.Minute {
		t.Errorf("node lifetime %v", life)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := n.Verify(x509.VerifyOptions{Roots: pool, DNSName: "us-east-1.internal", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	if _, err := n.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.6"}); err == nil {
		t.Error("the certificate verifies for a host it does not name")
	}
	if _, err := tls.X509KeyPair(node.Cert, node.Key); err != nil {
		t.Errorf("key does not match: %v", err)
	}
}

func TestNewNodeRefusesBadInput(t *testing.T) {
	ca, err := NewCA("ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("other", time.Now())
	leaf, _ := NewNode(ca, "n", []string{"127.0.0.1"}, time.Now())
	for name, tc := range map[string]struct {
		ca    PEM
		name  string
		hosts []string
	}{
		"no hosts":         {ca, "n", nil},
		"empty host":       {ca, "n", []string{"127.0.0.1", ""}},
		"bad host":         {ca, "n", []string{"not a host!"}},
		"no name":          {ca, "", []string{"127.0.0.1"}},
		"not a CA":         {leaf, "n", []string{"127.0.0.1"}},
		"mismatched key":   {PEM{Cert: ca.Cert, Key: other.Key}, "n", []string{"127.0.0.1"}},
		"garbage CA":       {PEM{Cert: []byte("junk"), Key: ca.Key}, "n", []string{"127.0.0.1"}},
		"host with a port": {ca, "n", []string{"10.0.0.5:7380"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewNode(tc.ca, tc.name, tc.hosts, time.Now()); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestWritePairPermissionsAndOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	ca, err := NewCA("ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePair(dir, CAFile, CAKeyFile, ca, false); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode().Perm())
	}
	other, _ := NewCA("other", time.Now())
	if err := WritePair(dir, CAFile, CAKeyFile, other, false); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite without force: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, CAKeyFile)); !bytes.Equal(got, ca.Key) {
		t.Error("a refused write changed the key")
	}
	if err := WritePair(dir, CAFile, CAKeyFile, other, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, CAKeyFile)); !bytes.Equal(got, other.Key) {
		t.Error("force did not overwrite")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files in the directory, want 2 (no temporary left)", len(entries))
	}
}

// files writes a CA and a node certificate into dir and returns their
// names.
func files(t *testing.T, dir string, ca PEM, node string) Files {
	t.Helper()
	if err := WritePair(dir, CAFile, CAKeyFile, ca, true); err != nil {
		t.Fatal(err)
	}
	p, err := NewNode(ca, node, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, k := NodeFiles(node)
	if err := WritePair(dir, c, k, p, true); err != nil {
		t.Fatal(err)
	}
	return Files{Cert: filepath.Join(dir, c), Key: filepath.Join(dir, k), CA: filepath.Join(dir, CAFile)}
}

func TestLoadChecks(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("ca", time.Now())
	f := files(t, dir, ca, "n1")
	if _, _, err := Load(f, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(f, time.Now().Add(2*NodeLifetime)); err == nil {
		t.Error("an expired certificate loaded")
	}
	other, _ := NewCA("other", time.Now())
	otherDir := t.TempDir()
	g := files(t, otherDir, other, "n2")
	for name, bad := range map[string]Files{
		"other CA":       {Cert: g.Cert, Key: g.Key, CA: f.CA},
		"key of another": {Cert: f.Cert, Key: g.Key, CA: f.CA},
		"CA is a leaf":   {Cert: f.Cert, Key: f.Key, CA: f.Cert},
		"missing file":   {Cert: f.Cert, Key: f.Key, CA: filepath.Join(dir, "nope.pem")},
		"CA is a key":    {Cert: f.Cert, Key: f.Key, CA: f.Key},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Load(bad, time.Now()); err == nil {
				t.Error("loaded")
			}
		})
	}
}

func TestReloaderKeepsCurrentOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("ca", time.Now())
	f := files(t, dir, ca, "n")
	r, err := NewReloader(f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cur := r.Certificate()
	if err := os.WriteFile(f.Cert, []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("a broken certificate reloaded")
	}
	if r.Certificate() != cur {
		t.Error("a failed reload replaced the certificate")
	}
	// A certificate from another CA is refused too.
	other, _ := NewCA("other", time.Now())
	p, _ := NewNode(other, "n", []string{"127.0.0.1"}, time.Now())
	c, k := NodeFiles("n")
	if err := WritePair(dir, c, k, p, true); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Fatalf("reload of a certificate from another CA: %v", err)
	}
	if r.Certificate() != cur {
		t.Error("a failed reload replaced the certificate")
	}
	if ok, failed := r.Reloads(); ok != 0 || failed != 2 {
		t.Errorf("reloads %d ok, %d failed", ok, failed)
	}
}

// Watch notices changed files and reloads; Close stops it.
func TestWatchReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("ca", time.Now())
	f := files(t, dir, ca, "n")
	r, err := NewReloader(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Watch(5 * time.Millisecond)
	defer r.Close()
	cur := r.Certificate()
	if r.Poll() {
		t.Error("Poll reloaded unchanged files")
	}
	files(t, dir, ca, "n")
	later := time.Now().Add(time.Minute) // a modification time the poller tells apart
	if err := os.Chtimes(f.Cert, later, later); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // only catches a hang
	for r.Certificate() == cur {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not reload the changed files")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Close()
	r.Close() // idempotent
}

func TestTLSConfigServesCurrentCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("ca", time.Now())
	r, err := NewReloader(files(t, dir, ca, "n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := r.TLSConfig()
	if c.MinVersion != tls.VersionTLS13 || c.ClientAuth != tls.RequireAndVerifyClientCert || c.RootCAs == nil || c.ClientCAs == nil {
		t.Errorf("config %+v", c)
	}
	got, _ := c.GetCertificate(nil)
	if got != r.Certificate() {
		t.Error("GetCertificate does not return the current certificate")
	}
	got, _ = c.GetClientCertificate(nil)
	if got != r.Certificate() {
		t.Error("GetClientCertificate does not return the current certificate")
	}
}
