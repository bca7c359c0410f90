package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

var flagTLS = flag.String("tls", "off", "replication links of the throughput and visibility scenarios over mutual TLS 1.3: off, on, or both (every run plaintext, then over TLS, side by side); the memory scenario ignores it")

// tlsModes returns the TLS settings the throughput runs are made with.
func tlsModes() ([]bool, error) {
	switch *flagTLS {
	case "off":
		return []bool{false}, nil
	case "on":
		return []bool{true}, nil
	case "both":
		return []bool{false, true}, nil
	}
	return nil, errors.New("-tls must be off, on or both")
}

// tlsSpec is a node's certificate, key and CA, PEM-encoded (it travels to
// the remote process in a nodeSpec).
type tlsSpec struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
	CA   []byte `json:"ca"`
}

// newBenchTLS makes a throwaway CA and one certificate for 127.0.0.1 per
// node, as 'geocache cert' does.
func newBenchTLS(nodes int) ([]*tlsSpec, error) {
	ca, err := certs.NewCA("replbench CA", time.Now())
	if err != nil {
		return nil, err
	}
	var out []*tlsSpec
	for range nodes {
		p, err := certs.NewNode(ca, "node", []string{"127.0.0.1"}, time.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, &tlsSpec{Cert: p.Cert, Key: p.Key, CA: ca.Cert})
	}
	return out, nil
}

// config is the node's geocache.Config.TLS.
func (s *tlsSpec) config() (*tls.Config, error) {
	pair, err := tls.X509KeyPair(s.Cert, s.Key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CA) {
		return nil, errors.New("no CA certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}, nil
}
