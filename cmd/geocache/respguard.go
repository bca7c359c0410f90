package main

import (
	"crypto/tls"
	"fmt"

	"github.com/geocache/geocache/internal/resp"
)

// RESP protection: the checks of its flags and the TLS configuration of
// --tls-addr.

// validateRESPGuard checks the RESP protection flags.
func (c *serveConfig) validateRESPGuard() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
	}
	switch {
	case c.authTimeout < 0:
		return bad("--auth-timeout must not be negative")
	case c.requestTimeout < 0:
		return bad("--request-timeout must not be negative")
	case c.tlsClientAuth && c.tlsAddr == "":
		return bad("--tls-client-auth needs --tls-addr")
	case c.tlsAddr != "" && c.tlsCert == "":
		return bad("--tls-addr needs the node's certificate: --tls-cert, --tls-key and --tls-ca ('geocache cert' makes them)")
	}
	if c.tlsAddr != "" {
		if err := checkAddr(c.tlsAddr, false); err != nil {
			return bad("--tls-addr: %v", err)
		}
	}
	if c.maxClientBuffer != 0 {
		if least := c.maxRequestBytes() + 8<<10; c.maxClientBuffer < least {
			return bad("--max-client-buffer %s cannot hold one request of the largest size, %s (--max-value-size + 1MiB)", formatSize(c.maxClientBuffer), formatSize(least))
		}
	}
	return nil
}

// maxRequestBytes is the largest RESP request: the largest value and a
// margin for the command, the key and the headers.
func (c *serveConfig) maxRequestBytes() int64 {
	return c.largestValue() + resp.RequestMargin
}

// respTLSConfig is the TLS configuration of --tls-addr: the node's own
// (the certificate it serves replication with, reloaded with it), with
// client certificates required only with --tls-client-auth, and TLS 1.2
// allowed for Redis clients that lack 1.3.
func respTLSConfig(node *tls.Config, clientAuth bool) *tls.Config {
	tc := node.Clone()
	tc.MinVersion = tls.VersionTLS12
	tc.GetClientCertificate = nil
	tc.ClientAuth = tls.NoClientCert
	if clientAuth {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc
}
