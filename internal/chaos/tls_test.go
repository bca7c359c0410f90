package chaos

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

// The run's certificates are what a node dialed at 127.0.0.1 presents and
// what it dials with: from the run's CA, for 127.0.0.1, for both uses; the
// CA key is not kept.
func TestMakeCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), certDir)
	names := []string{"us-1", "eu-2", "ap-3"}
	rc, err := makeCerts(dir, names, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, certs.CAKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the CA key was written (or: %v)", err)
	}
	for i, name := range names {
		f := rc.files(i)
		cert, pool, err := certs.Load(f, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Subject.CommonName != name {
			t.Errorf("certificate %d names %q, want %q", i, leaf.Subject.CommonName, name)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tlsHost, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s for %s, usage %v: %v", name, tlsHost, usage, err)
			}
		}
		if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file %v, %v", name, st, err)
		}
		args := rc.args(i)
		want := []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
		if !slices.Equal(args, want) {
			t.Errorf("node %d: args %q, want %q", i, args, want)
		}
	}
	// Another run in the same directory replaces them.
	old, _ := os.ReadFile(filepath.Join(dir, certs.CAFile))
	if _, err := makeCerts(dir, names, time.Now()); err != nil {
		t.Fatalf("again: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, certs.CAFile)); string(now) == string(old) {
		t.Error("the second run kept the first run's CA")
	}
}

// A node is started with the TLS flags exactly when the run has
// certificates.
func TestArgsTLS(t *testing.T) {
	cfg, err := Config{}.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	nd := &node{idx: 1, region: 1, id: 2, addr: "127.0.0.1:1", peerAddr: "127.0.0.1:2"}
	c := &cluster{cfg: cfg}
	if a := strings.Join(c.args(nd, nil), " "); strings.Contains(a, "--tls") {
		t.Errorf("plaintext: %s", a)
	}
	c.certs = &runCerts{dir: "/d", names: []string{"us-1", "eu-2"}}
	a := strings.Join(c.args(nd, nil), " ")
	if want := "--tls-cert /d/eu-2.pem --tls-key /d/eu-2-key.pem --tls-ca /d/ca.pem"; !strings.Contains(a, want) {
		t.Errorf("TLS: %s lacks %s", a, want)
	}
}

func TestCheckTLS(t *testing.T) {
	good := func(id uint32) TLSProbe {
		return TLSProbe{Node: id, Accepted: true, PlaintextRefused: true, NoCertRefused: true, StrangerRefused: true}
	}
	for _, tt := range []struct {
		name    string
		tls     bool
		probes  []TLSProbe
		checked int
		bad     []int // nodes with a tls violation
	}{
		{"plaintext run", false, nil, 0, nil},
		{"all good", true, []TLSProbe{good(1), good(2), good(3)}, 3, nil},
		{"a plaintext node", true, []TLSProbe{good(1), {Node: 2, Err: "plaintext: no refusal logged"}, good(3)}, 3, []int{2}},
		{"one refusal missing", true, []TLSProbe{good(1), good(2), func() TLSProbe { p := good(3); p.StrangerRefused = false; return p }()}, 3, []int{3}},
		{"a node not probed", true, []TLSProbe{good(1), good(3)}, 2, []int{2}},
		{"no probe at all", true, nil, 0, []int{1, 2, 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHist()
			h.in.TLS, h.in.TLSProbes = tt.tls, tt.probes
			res := Check(h.in)
			if res.Checked[CheckTLS] != tt.checked {
				t.Errorf("checked %d, want %d", res.Checked[CheckTLS], tt.checked)
			}
			var bad []int
			for _, v := range res.Violations {
				if v.Check == CheckTLS {
					bad = append(bad, v.Node)
				}
			}
			if !slices.Equal(bad, tt.bad) {
				t.Errorf("tls violations on nodes %v, want %v: %+v", bad, tt.bad, res.Violations)
			}
		})
	}
}

// startCluster starts the nodes of cfg (no clients, no faults) and closes
// them at the end of the test.
func startCluster(t *testing.T, cfg Config) *cluster {
	t.Helper()
	cfg.Bin, cfg.Dir = geocacheBinary(t), t.TempDir()
	cfg, err := cfg.withDefaults(true)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := newCluster(cfg, newRunClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.close)
	return cl
}

// The probe passes nodes that speak mutual TLS only, and fails nodes that
// speak plaintext even when the harness holds certificates for them (as
// when the TLS flags do not reach the nodes).
func TestProbeTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Run("tls", func(t *testing.T) {
		cl := startCluster(t, Config{})
		if cl.certs == nil {
			t.Fatal("a default run has no certificates")
		}
		probes, err := cl.probeTLS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(probes) != len(cl.nodes) {
			t.Fatalf("%d probes for %d nodes", len(probes), len(cl.nodes))
		}
		for _, p := range probes {
			if !p.ok() {
				t.Errorf("node %d: %+v", p.Node, p)
			}
		}
		for _, nd := range cl.nodes {
			ok, err := logHas(nd.log.Name(), 0, func(line string) bool {
				return strings.Contains(line, "geocache serving") && servesTLS(line)
			})
			if !ok || err != nil {
				t.Errorf("node %d's log does not say it serves replication over TLS (%v)", nd.id, err)
			}
		}
	})
	t.Run("plaintext", func(t *testing.T) {
		cl := startCluster(t, Config{Plaintext: true})
		if cl.certs != nil {
			t.Fatal("a plaintext run has certificates")
		}
		rc, err := makeCerts(filepath.Join(t.TempDir(), certDir), []string{"us-1", "eu-2", "ap-3"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cl.certs = rc
		probes, err := cl.probeTLS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probes {
			if p.ok() || p.Accepted || p.PlaintextRefused || p.Err == "" {
				t.Errorf("plaintext node %d passed (part of) the TLS probe: %+v", p.Node, p)
			}
			t.Logf("plaintext node %d: %s", p.Node, p.Err)
		}
	})
}

// With Gossip, a node joins through the running nodes of its region only,
// and starts alone when none runs.
func TestArgsGossip(t *testing.T) {
	cfg, err := Config{Regions: 2, NodesPerRegion: 3, Gossip: true}.withDefaults(false)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{cfg: cfg}
	for i := range cfg.nodes() {
		c.nodes = append(c.nodes, &node{idx: i, region: cfg.regionOf(i), id: uint32(i + 1), gossipAddr: fmt.Sprint("127.0.0.1:", 100+i)})
	}
	running := &exec.Cmd{}
	c.nodes[1].cmd, c.nodes[2].cmd, c.nodes[3].cmd = running, running, running
	if got := c.regionGossip(c.nodes[0]); !slices.Equal(got, []string{"127.0.0.1:101", "127.0.0.1:102"}) {
		t.Errorf("node 1 joins through %v", got)
	}
	if got := c.regionGossip(c.nodes[4]); !slices.Equal(got, []string{"127.0.0.1:103"}) {
		t.Errorf("node 5 joins through %v", got)
	}
	c.nodes[3].cmd = nil
	if got := c.regionGossip(c.nodes[4]); got != nil {
		t.Errorf("node 5 joins through %v, its region's others being down", got)
	}
	a := strings.Join(c.args(c.nodes[0], []string{"127.0.0.1:101"}), " ")
	if !strings.Contains(a, "--gossip-addr 127.0.0.1:100 --join 127.0.0.1:101") {
		t.Errorf("args: %s", a)
	}
	if a := strings.Join(c.args(c.nodes[0], nil), " "); strings.Contains(a, "--join") {
		t.Errorf("args without a running member: %s", a)
	}
}
