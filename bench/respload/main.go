// Command respload is a RESP load generator in Go, for measuring a server's
// cost of TLS with a client whose TLS is crypto/tls rather than
// redis-benchmark's OpenSSL: the same workload as `redis-benchmark -c C -d D
// -r R -t set|get -P P -n N`, over plaintext or TLS 1.3.
//
//	go run ./respload -addr 127.0.0.1:16380 -t set -P 1 -n 100000
//	go run ./respload -addr 127.0.0.1:16390 -cacert pki/ca.pem -t get -P 16 -n 500000
//
// It prints one CSV line: "test","requests per second". Every reply is
// checked (+OK for SET; a bulk string or nil for GET); a wrong reply ends
// the run with an error. bench/resp-tls-vs-redis.sh runs it with CLIENT=go.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	addr, cacert, test string
	clients, pipeline  int
	n, size, keyspace  int
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:6379", "server address")
	flag.StringVar(&o.cacert, "cacert", "", "CA certificate (PEM): connect over TLS 1.3 and verify the server against it")
	flag.StringVar(&o.test, "t", "set", "set or get")
	flag.IntVar(&o.clients, "c", 50, "parallel connections")
	flag.IntVar(&o.pipeline, "P", 1, "requests in flight per connection")
	flag.IntVar(&o.n, "n", 100000, "requests in all")
	flag.IntVar(&o.size, "d", 64, "value size of SET in bytes")
	flag.IntVar(&o.keyspace, "r", 100000, "random keys key:000000000000 .. key:<r-1>")
	flag.Parse()
	rps, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "respload:", err)
		os.Exit(1)
	}
	fmt.Printf("%q,\"%.2f\"\n", strings.ToUpper(o.test), rps)
}

func run(o options) (float64, error) {
	if o.test != "set" && o.test != "get" {
		return 0, fmt.Errorf("-t %q: want set or get", o.test)
	}
	if o.clients < 1 || o.pipeline < 1 || o.n < 1 || o.keyspace < 1 {
		return 0, errors.New("-c, -P, -n and -r must be positive")
	}
	dial := func() (net.Conn, error) { return net.DialTimeout("tcp", o.addr, 5*time.Second) }
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return 0, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return 0, fmt.Errorf("%s: no certificate", o.cacert)
		}
		host, _, err := net.SplitHostPort(o.addr)
		if err != nil {
			return 0, err
		}
		cfg := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS13}
		dial = func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", o.addr, cfg)
		}
	}
	conns := make([]net.Conn, o.clients)
	for i := range conns {
		c, err := dial()
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns[i] = c
	}
	var left atomic.Int64 // batches of requests not yet claimed
	left.Store(int64(o.n))
	var wg sync.WaitGroup
	errs := make(chan error, o.clients)
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			if err := load(c, o, &left); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(o.n) / elapsed.Seconds(), nil
}

// load runs batches of up to o.pipeline requests on c until left is used
// up, checking every reply.
func load(c net.Conn, o options, left *atomic.Int64) error {
	r := bufio.NewReaderSize(c, 64<<10)
	value := strings.Repeat("x", o.size)
	var buf []byte
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for {
		n := int(min(int64(o.pipeline), left.Add(-int64(o.pipeline))+int64(o.pipeline)))
		if n <= 0 {
			return nil
		}
		buf = buf[:0]
		for range n {
			key := fmt.Sprintf("key:%012d", rng.IntN(o.keyspace))
			if o.test == "set" {
				buf = fmt.Appendf(buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value)
			} else {
				buf = fmt.Appendf(buf, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
			}
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
		for range n {
			if err := readReply(r, o.test); err != nil {
				return err
			}
		}
	}
}

// readReply reads one reply: +OK for SET; a bulk string or nil for GET.
func readReply(r *bufio.Reader, test string) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	switch {
	case test == "set" && string(line) == "+OK\r\n":
		return nil
	case test == "get" && string(line) == "$-1\r\n":
		return nil
	case test == "get" && len(line) > 3 && line[0] == '$':
		n, err := strconv.Atoi(string(line[1 : len(line)-2]))
		if err != nil || n < 0 {
			return fmt.Errorf("bad bulk length %q", line)
		}
		_, err = r.Discard(n + 2)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return fmt.Errorf("unexpected reply to %s: %q", test, line)
}
