package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache"
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
	if cfg.Node == nil {
		cfg.Node = testNode(t, geocache.Config{})
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after Close; want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
		checkNoGoroutines(t)
	})
	return s, ln.Addr().String()
}

// checkNoGoroutines fails if a goroutine running this package's code is
// still alive (briefly retrying while exiting goroutines finish).
func checkNoGoroutines(t testing.TB) {
	t.Helper()
	var stacks string
	for range 200 {
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
	opt := &redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1, PoolSize: 4, DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second}
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
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
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
