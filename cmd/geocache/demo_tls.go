package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

// demoTLS makes a throwaway CA and a certificate for 127.0.0.1 per region
// in a temporary directory, with the code of 'geocache cert', loads them
// as 'geocache serve --tls-cert ...' does, removes the directory, and
// returns the TLS configuration of each region: the demo's links run over
// mutual TLS like a production cluster's.
func demoTLS() ([]*tls.Config, error) {
	dir, err := os.MkdirTemp("", "geocache-demo-certs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	now := time.Now()
	ca, err := certs.NewCA("geocache demo CA", now)
	if err != nil {
		return nil, err
	}
	if err := certs.WritePair(dir, certs.CAFile, certs.CAKeyFile, ca, false); err != nil {
		return nil, err
	}
	var out []*tls.Config
	for _, region := range demoRegions {
		p, err := certs.NewNode(ca, region, []string{"127.0.0.1", "localhost"}, now)
		if err != nil {
			return nil, err
		}
		c, k := certs.NodeFiles(region)
		if err := certs.WritePair(dir, c, k, p, false); err != nil {
			return nil, err
		}
		cert, pool, err := certs.Load(certs.Files{
			Cert: filepath.Join(dir, c), Key: filepath.Join(dir, k), CA: filepath.Join(dir, certs.CAFile),
		}, now)
		if err != nil {
			return nil, fmt.Errorf("demo certificates: %w", err)
		}
		out = append(out, &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert}, RootCAs: pool,
		})
	}
	return out, nil
}
