package resp

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

// deadlineCounter counts the deadline updates on the connections its
// listener accepts.
type deadlineCounter struct {
	net.Listener
	sets atomic.Int64
}

func (l *deadlineCounter) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: nc, sets: &l.sets}, nil
}

type countedConn struct {
	net.Conn
	sets *atomic.Int64
}

func (c *countedConn) SetDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetDeadline(t)
}

func (c *countedConn) SetReadDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *countedConn) SetWriteDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// serveCounted serves cfg on n at "resp" through a deadlineCounter.
func serveCounted(t *testing.T, n *testkit.Network, cfg Config) (*Server, *deadlineCounter) {
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
	counted := &deadlineCounter{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- s.Serve(counted) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after Close; want nil", err)
		}
	})
	return s, counted
}

// TestDeadlinesNotPerRequest: a busy client costs a handful of deadline
// updates per timeout period, not two per request (one per read, one per
// write), while every bound still holds (TestIdleTimeout, TestAuthTimeout,
// TestSlowRequest and TestWriteBound check those).
func TestDeadlinesNotPerRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		_, counted := serveCounted(t, n, Config{IdleTimeout: 2 * time.Second})
		c := dialMem(t, n, "busy")
		const requests = 300
		for i := range requests {
			if got := c.do("PING"); got != "+PONG" {
				t.Fatalf("PING %d: %s", i, got)
			}
			if i%3 == 0 {
				c.send("*2\r\n$4\r\nECHO\r\n") // a request in two reads: the request deadline applies
				time.Sleep(5 * time.Millisecond)
				c.send("$2\r\nhi\r\n")
				if got := c.reply(); got != `"hi"` {
					t.Fatalf("ECHO: %s", got)
				}
			}
			time.Sleep(10 * time.Millisecond) // 3.5 s in all: past the idle timeout and the first write deadline
		}
		// Per 2 s: at most the idle deadline moved once and the write
		// deadline renewed once; plus the first of each.
		t.Logf("%d deadline updates", counted.sets.Load())
		if got := counted.sets.Load(); got > 8 { // 901 when every read and write set its deadline
			t.Errorf("%d deadline updates for %d requests in %d reads; want a few per timeout period", got, requests+requests/3, requests+2*requests/3)
		}
	})
}

// TestWriteBound: a client that stops reading its replies is closed once a
// write has been blocked for the write bound (RequestTimeout without an
// idle timeout), not before; one that makes a write wait for less than
// the bound is served, even when the deadline armed by an earlier write
// passed long ago.
func TestWriteBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		n.SetBufferSize(64 << 10)
		const bound = 5 * time.Second
		s := memServer(t, n, Config{RequestTimeout: bound})
		big := strings.Repeat("v", 60<<10)

		slow := dialMem(t, n, "slow")
		if got := slow.do("SET", "big", big); got != "+OK" {
			t.Fatalf("SET: %s", got)
		}
		time.Sleep(3 * bound) // the write deadline armed by that reply is long past
		// Replies of 10 × 60 KiB do not fit the network's buffers: the
		// server's write blocks until the client reads, which it starts
		// to do just within the bound.
		slow.send(strings.Repeat(cmd("GET", "big"), 10))
		time.Sleep(bound - time.Second)
		want := len(strings.Repeat("$61440\r\n"+big+"\r\n", 10))
		slow.nc.SetReadDeadline(time.Now().Add(time.Minute)) // only catches a hang
		if got, err := io.ReadFull(slow.nc, make([]byte, want)); err != nil {
			t.Fatalf("a client that read within the bound, after %d of %d bytes: %v", got, want, err)
		}

		stuck := dialMem(t, n, "stuck")
		if got := stuck.do("PING"); got != "+PONG" {
			t.Fatalf("PING: %s", got)
		}
		time.Sleep(3 * bound)
		stuck.send(strings.Repeat(cmd("GET", "big"), 10)) // and never reads
		synctest.Wait()
		time.Sleep(bound - time.Millisecond)
		synctest.Wait()
		if c := s.Stats().Clients; c != 2 {
			t.Fatalf("%d clients just before the write bound; want 2 (closed too early)", c)
		}
		time.Sleep(bound + time.Millisecond) // within twice the bound
		synctest.Wait()
		if c := s.Stats().Clients; c != 1 {
			t.Fatalf("%d clients after the write bound; want 1 (the stuck client closed)", c)
		}
	})
}

// TestReadBufferFollowsPipeline: a client whose pipelines fill the
// resting read buffer gets a larger one (up to pipeBufMax, within half of
// MaxClientBuffer), and gives it back once its reads are small again.
func TestReadBufferFollowsPipeline(t *testing.T) {
	const budget = 2<<20 + readBufSize + 100<<10 // MaxRequestBytes + resting buffer, and some
	s, addr := startServer(t, Config{MaxRequestBytes: 2 << 20, MaxClientBuffer: budget})
	r := dialRaw(t, addr)
	pipeline := strings.Repeat(cmd("PING"), 4000) // 56 KB
	for range 8 {
		r.send(pipeline)
		for range 4000 {
			if got := r.reply(); got != "+PONG" {
				t.Fatalf("pipelined PING: %s", got)
			}
		}
	}
	if b := s.Stats().BufferBytes; b <= 0 || b > budget/2 {
		t.Fatalf("BufferBytes = %d after pipelines of 56 KB; want a buffer grown past %d, within half of MaxClientBuffer %d", b, readBufSize, budget)
	}
	// Three halvings of pipeShrinkAfter small reads each take it back to
	// rest; how many reads the pipelines' tails took (small ones count)
	// depends on the machine's timing, so allow a few rounds more.
	n := 0
	for ; n < 6*pipeShrinkAfter && s.Stats().BufferBytes != 0; n++ {
		if got := r.do("PING"); got != "+PONG" {
			t.Fatalf("PING: %s", got)
		}
	}
	if b := s.Stats().BufferBytes; b != 0 {
		t.Errorf("BufferBytes = %d after %d single requests; want 0 (the buffer back at its resting size)", b, n)
	}
}
