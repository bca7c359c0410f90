package resp

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// ServeTLS is Serve for clients speaking RESP over TLS (Redis's tls-port):
// it accepts connections on ln and serves each after a TLS handshake with
// cfg. A cfg with ClientAuth RequireAndVerifyClientCert refuses clients
// without a certificate signed by its ClientCAs (--tls-client-auth); such a
// verified client counts as local for Config.ProtectedMode. cfg may use
// GetCertificate or GetConfigForClient to reload certificates: each
// handshake asks again.
//
// The handshake runs in the connection's goroutine, bounded by
// RequestTimeout: a client that connects and never finishes it (or speaks
// plaintext to the TLS port) is closed without holding up anyone else.
// Failures count in Stats.TLSHandshakeErrors and are logged at Warn,
// rate-limited.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	return s.Serve(tls.NewListener(ln, cfg))
}

// handshake completes the TLS handshake of a connection accepted by
// ServeTLS (a no-op for others). It reports whether the connection may be
// served.
func (c *conn) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.RequestTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.s.tlsErrors.Add(1)
		c.s.logLimit("resp: TLS handshake failed; closing the connection", "remote", c.nc.RemoteAddr(), "error", err)
		return false
	}
	st := tc.ConnectionState()
	c.certVerified = len(st.VerifiedChains) > 0
	c.nc.SetDeadline(time.Time{})
	return true
}
