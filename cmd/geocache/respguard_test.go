package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/certs"
	"github.com/redis/go-redis/v9"
)

func TestRESPGuardFlags(t *testing.T) {
	c, _, err := parseServeConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.protectedMode != "" || c.authTimeout != 0 || c.requestTimeout != 0 ||
		c.maxClientBuffer != 0 || c.tlsAddr != "" || c.tlsClientAuth {
		t.Errorf("defaults: protected-mode %q, auth-timeout %v, request-timeout %v, max-client-buffer %d, tls-addr %q, tls-client-auth %v",
			c.protectedMode, c.authTimeout, c.requestTimeout, c.maxClientBuffer, c.tlsAddr, c.tlsClientAuth)
	}
	if got := c.maxRequestBytes(); got != 17<<20 {
		t.Errorf("largest request by default: %d; want 17MiB (16MiB values + 1MiB)", got)
	}
	c, _, err = parseServeConfig([]string{"--auth-timeout", "3s", "--request-timeout", "1m", "--max-client-buffer", "256MB", "--max-value-size", "3MB"},
		[]string{"GEOCACHE_PROTECTED_MODE=no"})
	if err != nil {
		t.Fatal(err)
	}
	if c.protectedMode != "no" || c.authTimeout != 3*time.Second || c.requestTimeout != time.Minute || c.maxClientBuffer != 256<<20 || c.maxRequestBytes() != 4<<20 {
		t.Errorf("set: %+v", c)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--protected-mode", "maybe"}, "must be yes or no"},
		{[]string{"--auth-timeout", "-1s"}, "--auth-timeout must not be negative"},
		{[]string{"--request-timeout", "-1s"}, "--request-timeout must not be negative"},
		{[]string{"--tls-client-auth"}, "--tls-client-auth needs --tls-addr"},
		{[]string{"--tls-addr", "127.0.0.1:6390"}, "--tls-addr needs the node's certificate"},
		{[]string{"--max-client-buffer", "1MB"}, "--max-client-buffer 1MiB cannot hold one request of the largest size"},
		{[]string{"--tls-addr", "127.0.0.1:6380", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "a"}, "--addr and --tls-addr are both 127.0.0.1:6380"},
	} {
		if _, _, err := parseServeConfig(tt.args, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v; want an error with %q", tt.args, err, tt.want)
		}
	}
}

// TestServeRESPOverTLS: geocache serve with --tls-addr serves RESP over
// TLS with the node's certificate, beside the plaintext port; with
// --tls-client-auth a client needs a certificate of the CA. The protection
// settings reach the RESP server.
func TestServeRESPOverTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := certs.NewCA("test", now)
	if err != nil {
		t.Fatal(err)
	}
	node, err := certs.NewNode(ca, "node1", []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	app, err := certs.NewNode(ca, "app", []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePair(dir, certs.CAFile, certs.CAKeyFile, ca, false); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := certs.NodeFiles("node1")
	if err := certs.WritePair(dir, certFile, keyFile, node, false); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Cert)
	appCert, err := tls.X509KeyPair(app.Cert, app.Key)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx, "--tls-addr", "127.0.0.1:0", "--tls-client-auth",
		"--tls-cert", filepath.Join(dir, certFile), "--tls-key", filepath.Join(dir, keyFile), "--tls-ca", filepath.Join(dir, certs.CAFile),
		"--auth-timeout", "7s", "--protected-mode", "no")
	rec := logRecord(t, logs, "geocache serving")
	tlsAddr, _ := rec["tls_addr"].(string)
	plainAddr, _ := rec["addr"].(string)
	if tlsAddr == "" {
		t.Fatalf("no tls_addr in the startup record %v", rec)
	}
	client := func(addr string, tc *tls.Config) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: tc, MaxRetries: -1, DialTimeout: time.Minute, ReadTimeout: time.Minute})
		t.Cleanup(func() { c.Close() })
		return c
	}
	good := client(tlsAddr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{appCert}})
	if err := good.Set(context.Background(), "k", "tls", 0).Err(); err != nil {
		t.Fatalf("SET over TLS with a client certificate: %v", err)
	}
	if err := client(tlsAddr, &tls.Config{RootCAs: pool}).Ping(context.Background()).Err(); err == nil {
		t.Error("a TLS client without a certificate was served with --tls-client-auth")
	}
	plain := client(plainAddr, nil)
	if v, err := plain.Get(context.Background(), "k").Result(); err != nil || v != "tls" {
		t.Fatalf("GET on the plaintext port = %q, %v", v, err)
	}
	cfg, err := plain.ConfigGet(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"protected-mode": "no", "geocache-auth-timeout": "7000", "geocache-request-timeout": "30000",
		"client-query-buffer-limit": "17825792", "geocache-max-client-buffer": "285212672", // 17 MiB; 16 of them
		"proto-max-bulk-len": "16777216", "geocache-max-value-bytes": "16777216",
	} {
		if cfg[k] != want {
			t.Errorf("CONFIG GET %s = %q; want %q", k, cfg[k], want)
		}
	}
	cancel()
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}

// TestServeRESPMemoryFlood: the attack of the issue — 30 connections each
// holding an unfinished large request — against geocache serve. A request
// over the largest value is refused as its header arrives; requests within
// it share --max-client-buffer, and the connections past it are refused.
// The node serves throughout.
func TestServeRESPMemoryFlood(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx, "--max-client-buffer", "4MB", "--max-value-size", "1MB")
	addr, _ := logRecord(t, logs, "geocache serving")["addr"].(string)

	const attackers = 30
	results := make(chan string, 2*attackers)
	flood := func(header string, body int) {
		for range attackers {
			go func() {
				nc, err := net.DialTimeout("tcp", addr, time.Minute)
				if err != nil {
					results <- err.Error()
					return
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(e2eHang))
				io.WriteString(nc, header+strings.Repeat("x", body)) // may fail once refused
				got, _ := io.ReadAll(nc)
				results <- string(got)
			}()
		}
	}
	// 60 MiB announced: over the largest value (1 MiB), Redis's
	// proto-max-bulk-len.
	flood("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$62914560\r\n", 0)
	for range attackers {
		if got := <-results; got != "-ERR Protocol error: invalid bulk length\r\n" {
			t.Fatalf("a 60 MiB request: %q", got)
		}
	}
	// 1 MB values, 600 KB sent of each: 4 MiB holds four such buffers.
	flood("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n", 600_000)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: time.Minute})
	defer c.Close()
	refused := 0
	for refused < attackers-4 {
		if got := <-results; got != "-ERR max-client-buffer reached\r\n" {
			t.Fatalf("a flooding client: %q", got)
		}
		refused++
		info, err := c.Info(context.Background(), "stats").Result()
		if err != nil {
			t.Fatalf("INFO during the flood: %v", err)
		}
		if !strings.Contains(info, "geocache_client_buffer_bytes:") {
			t.Fatalf("INFO stats lacks geocache_client_buffer_bytes: %s", info)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "geocache_client_buffer_bytes:"); ok {
				if n, _ := strconv.Atoi(v); n > 4<<20 {
					t.Fatalf("%d request-buffer bytes held; bound 4MiB", n)
				}
			}
		}
	}
	if err := c.Set(context.Background(), "after", "flood", 0).Err(); err != nil {
		t.Fatalf("SET during the flood: %v", err)
	}
	cancel()
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}
