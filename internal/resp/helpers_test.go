package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// manualClock is a node clock that tests move by hand.
type manualClock struct{ ns atomic.Int64 }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *manualClock) UnixNano() int64         { return c.ns.Load() }
func (c *manualClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *manualClock) unixMilli() int64        { return c.ns.Load() / int64(time.Millisecond) }

// testNode opens a single, unreplicated node.
func testNode(t testing.TB, cfg geocache.Config) *geocache.Node {
	t.Helper()
	n, err := geocache.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startServer serves cfg on a fresh loopback port and returns the server
// and its address. Cleanup closes it, checks that Serve returned nil and
// that no goroutine of the package is left.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	s, addrs := serveLoopback(t, cfg, nil)
	return s, addrs[0]
}

// serveLoopback serves cfg in plaintext on a fresh loopback port and, if tc
// is not nil, over TLS with tc on a second one, and returns the server and
// the addresses (plaintext first). Cleanup closes it, checks that every
// Serve returned nil and that no goroutine of the package is left.
func serveLoopback(t testing.TB, cfg Config, tc *tls.Config) (*Server, []string) {
	t.Helper()
	if cfg.Node == nil {
		cfg.Node = testNode(t, geocache.Config{})
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	served := make(chan error, 2)
	ln := listen()
	addrs := []string{ln.Addr().String()}
	go func() { served <- s.Serve(ln) }()
	if tc != nil {
		tln := listen()
		addrs = append(addrs, tln.Addr().String())
		go func() { served <- s.ServeTLS(tln, tc) }()
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for range addrs {
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve returned %v after Close; want nil", err)
				}
			case <-time.After(testkit.EventuallyTimeout):
				t.Error("Serve did not return after Close")
			}
		}
		checkNoGoroutines(t)
	})
	return s, addrs
}

// checkNoGoroutines fails if a goroutine running this package's code is
// still alive (retrying while exiting goroutines finish, for as long as a
// loaded machine may need).
func checkNoGoroutines(t testing.TB) {
	t.Helper()
	var stacks string
	for deadline := time.Now().Add(testkit.EventuallyTimeout); time.Now().Before(deadline); {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		leaked := false
		for g := range strings.SplitSeq(stacks, "\n\n") {
			if strings.Contains(g, "internal/resp.(*") && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "_test.go") {
				leaked = true
			}
		}
		if !leaked {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("goroutines left after Close:\n%s", stacks)
}

// newClient returns a go-redis client of the server, closed at cleanup.
func newClient(t testing.TB, addr string, tweak ...func(*redis.Options)) *redis.Client {
	t.Helper()
	// The timeouts only catch a hang; ReadTimeout is above the longest a
	// test lets a command block (ackTimeout).
	opt := &redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 4, DialTimeout: time.Minute, ReadTimeout: 2 * ackTimeout}
	for _, f := range tweak {
		f(opt)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a client speaking bytes, for protocol edge cases.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// ackTimeout is what tests give GEOCACHE ACK and WAIT when they wait for
// replication that will happen: long enough for any loaded machine, so it
// only catches a hang.
const ackTimeout = time.Minute

// memServer serves cfg on the in-memory network n, at "resp", for tests
// that run in a testing/synctest bubble (where a real socket cannot be
// used): deadlines and timeouts then run on the bubble's virtual clock.
// Cleanup closes it and checks that Serve returned nil.
func memServer(t *testing.T, n *testkit.Network, cfg Config) *Server {
	t.Helper()
	if cfg.Node == nil {
		cfg.Node = testNode(t, geocache.Config{})
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := n.Listen("resp")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after Close; want nil", err)
		}
	})
	return s
}

// memRegions opens one node per region on the in-memory network n, each
// replicating to the others, for tests in a synctest bubble. Cleanup
// closes them.
func memRegions(t *testing.T, n *testkit.Network, regions ...string) []*geocache.Node {
	t.Helper()
	nodes := make([]*geocache.Node, len(regions))
	for i, r := range regions {
		var peers []string
		for j, p := range regions {
			if j != i {
				peers = append(peers, p)
			}
		}
		ln, err := n.Listen(r)
		if err != nil {
			t.Fatal(err)
		}
		cfg := geocache.MultiRegion(r, uint32(i+1), r, peers...)
		cfg.Listener, cfg.Dial = ln, n.Dialer(r)
		node, err := geocache.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes[i] = node
	}
	return nodes
}

// dialMem connects client to the memServer on n.
func dialMem(t *testing.T, n *testkit.Network, client string) *rawConn {
	t.Helper()
	nc, err := n.Dialer(client)(context.Background(), "resp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	if _, err := io.WriteString(r.nc, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (r *rawConn) expect(want string) {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	got := make([]byte, len(want))
	n, err := io.ReadFull(r.br, got)
	if err != nil || string(got) != want {
		r.t.Fatalf("read %.300q (%v); want %.300q", got[:n], err, want)
	}
}

// expectClosed reads until the server closes the connection and checks what
// came before the close.
func (r *rawConn) expectClosed(want string) {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	got, err := io.ReadAll(r.br)
	if err != nil && !isReset(err) {
		r.t.Fatalf("read until close: %q, %v; want %q then EOF", got, err, want)
	}
	if string(got) != want {
		r.t.Fatalf("before close: %.300q; want %.300q", got, want)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || errors.Is(err, net.ErrClosed))
}

// reply reads one RESP2/RESP3 reply and renders it compactly: +OK, -ERR x,
// :1, "bulk", nil, [a b], {k: v}.
func (r *rawConn) reply() string {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	s, err := readReply(r.br)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	return s
}

func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("bad reply line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-', ':', ',', '#', '(':
		return line[:len(line)-2], nil
	case '_':
		return "nil", nil
	case '$', '=':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "nil", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return strconv.Quote(string(b[:n])), nil
	case '*', '~', '%', '>':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "nil", nil
		}
		if line[0] == '%' {
			n *= 2
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(br); err != nil {
				return "", err
			}
		}
		if line[0] == '%' {
			var b strings.Builder
			b.WriteString("{")
			for i := 0; i < n; i += 2 {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(parts[i] + ": " + parts[i+1])
			}
			return b.String() + "}", nil
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return "", fmt.Errorf("unknown reply type %q", line)
}

// cmd encodes a command as a RESP multibulk request.
func cmd(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return b.String()
}

// do sends one command and returns its rendered reply.
func (r *rawConn) do(args ...string) string {
	r.t.Helper()
	r.send(cmd(args...))
	return r.reply()
}

var bg = context.Background()

// redisAddr returns REDIS_ADDR, the redis-server a script is matched
// against, and skips the test when it is not set.
func redisAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Skip("REDIS_ADDR is not set")
	}
	return addr
}
