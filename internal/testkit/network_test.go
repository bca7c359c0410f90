package testkit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// connect dials from -> to on n (to must be listening on l) and returns
// both ends, closed at the end of the test.
func connect(t *testing.T, n *Network, l net.Listener, from string) (client, server net.Conn) {
	t.Helper()
	client, err := n.Dialer(from)(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatalf("dial %s -> %s: %v", from, l.Addr(), err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatalf("accept on %s: %v", l.Addr(), err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// setup returns a network with a listener on "b" and a connection a -> b.
func setup(t *testing.T) (n *Network, l net.Listener, a, b net.Conn) {
	t.Helper()
	n = NewNetwork()
	t.Cleanup(func() { n.Close() })
	l, err := n.Listen("b")
	if err != nil {
		t.Fatal(err)
	}
	a, b = connect(t, n, l, "a")
	return n, l, a, b
}

// readN reads exactly k bytes from c within timeout.
func readN(t *testing.T, c net.Conn, k int, timeout time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, k)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes from %s: %v", k, c.LocalAddr(), err)
	}
	return b
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write from %s: %v", c.LocalAddr(), err)
	}
}

// expectStall checks that nothing can be read from c for d.
func expectStall(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	if k, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on %s = %d, %v; want a stall until the deadline", c.LocalAddr(), k, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v; want %v", what, err, target)
	}
}

func TestNetworkEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, l, a, b := setup(t)
		n.SetLatency("a", "b", time.Millisecond)
		go io.Copy(b, b) // echo; ends when the conns close

		for _, msg := range []string{"x", "hello", string(bytes.Repeat([]byte("0123456789"), 10000))} {
			write(t, a, msg)
			if got := readN(t, a, len(msg), 2*time.Second); string(got) != msg {
				t.Fatalf("echo of %d bytes returned %d different bytes", len(msg), len(got))
			}
		}
		for _, tc := range []struct {
			name string
			addr net.Addr
			want string
		}{
			{"dialer local", a.LocalAddr(), "a"},
			{"dialer remote", a.RemoteAddr(), "b"},
			{"accepted local", b.LocalAddr(), "b"},
			{"accepted remote", b.RemoteAddr(), "a"},
			{"listener", l.Addr(), "b"},
		} {
			if tc.addr.Network() != "mem" || tc.addr.String() != tc.want {
				t.Errorf("%s addr = %s %s; want mem %s", tc.name, tc.addr.Network(), tc.addr, tc.want)
			}
		}
	})
}

func TestNetworkListenDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork()
		defer n.Close()
		l, err := n.Listen("b")
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Listen("b")
		wantErr(t, "second Listen", err, syscall.EADDRINUSE)
		_, err = n.Dialer("a")(context.Background(), "nobody")
		wantErr(t, "dial to no listener", err, syscall.ECONNREFUSED)

		// A dialed connection not yet accepted is reset when the listener closes.
		c, err := n.Dialer("a")(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "second listener Close", l.Close(), net.ErrClosed)
		_, err = l.Accept()
		wantErr(t, "Accept after Close", err, net.ErrClosed)
		_, err = c.Read(make([]byte, 1))
		wantErr(t, "read on a conn never accepted", err, syscall.ECONNRESET)
		c.Close()

		// The name is free again: a restarted node listens on it.
		l, err = n.Listen("b")
		if err != nil {
			t.Fatalf("Listen after the listener closed: %v", err)
		}
		a, b := connect(t, n, l, "a")
		write(t, a, "hi")
		readN(t, b, 2, time.Second)
	})
}

func TestNetworkOrdering(t *testing.T) {
	const (
		writers = 2
		records = 3000
		recSize = 16 // writer id, sequence number, padding
	)
	tests := []struct {
		name    string
		bufSize int
		latency time.Duration
		change  bool // drop the latency to zero halfway through
	}{
		{name: "no latency, tiny buffer", bufSize: 100},
		{name: "latency", latency: time.Millisecond},
		{name: "latency lowered midway", latency: 20 * time.Millisecond, change: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := NewNetwork()
				defer n.Close()
				n.SetBufferSize(tc.bufSize)
				n.SetLatency("a", "b", tc.latency)
				l, err := n.Listen("b")
				if err != nil {
					t.Fatal(err)
				}
				a, b := connect(t, n, l, "a")

				var wg sync.WaitGroup
				errs := make(chan error, writers)
				for w := range writers {
					wg.Go(func() {
						var rec [recSize]byte
						for seq := range records {
							if tc.change && w == 0 && seq == records/2 {
								n.SetLatency("a", "b", 0)
							}
							binary.BigEndian.PutUint32(rec[0:], uint32(w))
							binary.BigEndian.PutUint32(rec[4:], uint32(seq))
							if _, err := a.Write(rec[:]); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				next := make([]uint32, writers)
				b.SetReadDeadline(time.Now().Add(10 * time.Second))
				for range writers * records {
					var rec [recSize]byte
					if _, err := io.ReadFull(b, rec[:]); err != nil {
						t.Fatalf("read: %v (next records %v)", err, next)
					}
					w, seq := binary.BigEndian.Uint32(rec[0:]), binary.BigEndian.Uint32(rec[4:])
					if w >= writers || seq != next[w] {
						t.Fatalf("got record %d of writer %d; want record %d", seq, w, next[min(w, writers-1)])
					}
					next[w]++
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatalf("write: %v", err)
				}
			})
		})
	}
}

// TestNetworkLatency runs in a synctest bubble, where the latencies are
// exact: a dial takes one round trip, bytes and the FIN arrive exactly one
// one-way latency after they were written, and not a moment sooner.
func TestNetworkLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ab, ba = 40 * time.Millisecond, 10 * time.Millisecond
		n := NewNetwork()
		defer n.Close()
		n.SetLatency("a", "b", ab)
		n.SetLatency("b", "a", ba)
		l, err := n.Listen("b")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		a, b := connect(t, n, l, "a")
		if d := time.Since(start); d != ab+ba {
			t.Errorf("dial took %v; want one round trip, %v", d, ab+ba)
		}

		for _, tc := range []struct {
			name     string
			from, to net.Conn
			want     time.Duration
		}{
			{"a->b", a, b, ab},
			{"b->a", b, a, ba},
		} {
			start := time.Now()
			write(t, tc.from, "ping")
			expectStall(t, tc.to, tc.want-time.Nanosecond)
			readN(t, tc.to, 4, time.Hour)
			if d := time.Since(start); d != tc.want {
				t.Errorf("%s: delivery took %v; want %v", tc.name, d, tc.want)
			}
		}

		// Close is delivered after the latency too, behind the data.
		start = time.Now()
		write(t, a, "bye")
		a.Close()
		readN(t, b, 3, time.Hour)
		if d := time.Since(start); d != ab {
			t.Errorf("bytes written before Close arrived after %v; want %v", d, ab)
		}
		if _, err := b.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after the peer closed: %v; want io.EOF", err)
		}
		if d := time.Since(start); d != ab {
			t.Errorf("EOF arrived after %v; want %v, with the data", d, ab)
		}
	})
}

func TestNetworkCutHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _, a, b := setup(t)

		// Bytes that arrived before the cut stay readable.
		write(t, a, "early") // no latency: it arrives at once
		n.Cut("a", "b")
		if got := readN(t, b, 5, time.Second); string(got) != "early" {
			t.Fatalf("read %q; want early", got)
		}

		for _, s := range []string{"1", "2", "3"} {
			write(t, a, s)
		}
		expectStall(t, b, 30*time.Millisecond)
		if st := n.Stats(); st.Held != 3 || st.InFlight != 3 {
			t.Errorf("stats during the cut: %+v; want 3 bytes held", st)
		}
		// The other direction keeps flowing.
		write(t, b, "pong")
		if got := readN(t, a, 4, time.Second); string(got) != "pong" {
			t.Fatalf("b->a during a one-way cut a->b: read %q", got)
		}

		// A blocked Read wakes on Heal.
		done := make(chan string)
		go func() {
			buf := make([]byte, 3)
			b.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := io.ReadFull(b, buf)
			done <- fmt.Sprint(string(buf[:k]), err)
		}()
		synctest.Wait() // the Read is blocked on the cut
		n.Heal("a", "b")
		if got := <-done; got != "123<nil>" {
			t.Fatalf("after Heal read %q; want 123<nil>", got)
		}
		if st := n.Stats(); st.Held != 0 || st.Written != st.Delivered {
			t.Errorf("stats after Heal: %+v", st)
		}
	})
}

func TestNetworkCutDial(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
	}{
		{"forward cut", "a", "b"},
		{"backward cut", "b", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := NewNetwork()
				defer n.Close()
				l, err := n.Listen("b")
				if err != nil {
					t.Fatal(err)
				}
				dial := n.Dialer("a")
				n.Cut(tc.from, tc.to)

				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				_, err = dial(ctx, "b")
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, context.DeadlineExceeded) ||
					!errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("dial across a cut: %v; want a timeout", err)
				}
				if d := time.Since(start); d != 20*time.Millisecond {
					t.Errorf("dial failed after %v; want it to wait for the context's 20ms", d)
				}

				ctx, cancel = context.WithCancel(context.Background())
				cancel()
				_, err = dial(ctx, "b")
				wantErr(t, "dial with a canceled context", err, context.Canceled)

				// A dial waiting on a cut connects when it heals, and not
				// before.
				res := make(chan error, 1)
				go func() {
					c, err := dial(context.Background(), "b")
					if err == nil {
						c.Close()
					}
					res <- err
				}()
				time.Sleep(time.Hour)
				synctest.Wait() // the dial is blocked on the cut
				select {
				case err := <-res:
					t.Fatalf("dial across a cut returned %v before the heal", err)
				default:
				}
				n.Heal(tc.from, tc.to)
				if err := <-res; err != nil {
					t.Fatalf("dial after Heal: %v", err)
				}
				c, err := l.Accept()
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			})
		})
	}
}

// TestNetworkCutAtTheSameInstant: bytes and a FIN written after a Cut, at
// the very instant it began (zero latency in a synctest bubble, where no
// time passes between the calls), are held like any others. Telling them
// from bytes that arrived before the cut by delivery time alone let them
// through.
func TestNetworkCutAtTheSameInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _, a, b := setup(t)
		n.Cut("a", "b")
		write(t, a, "held")
		a.Close()
		expectStall(t, b, time.Hour)
		if st := n.Stats(); st.Held != 4 {
			t.Errorf("stats during the cut: %+v; want 4 bytes held", st)
		}
		n.Heal("a", "b")
		if got := readN(t, b, 4, time.Hour); string(got) != "held" {
			t.Fatalf("read %q after Heal; want held", got)
		}
		if _, err := b.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after the held FIN: %v; want io.EOF", err)
		}
	})
}

func TestNetworkIsolate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork()
		defer n.Close()
		ls := map[string]net.Listener{}
		for _, name := range []string{"x", "y", "z"} {
			l, err := n.Listen(name)
			if err != nil {
				t.Fatal(err)
			}
			ls[name] = l
		}
		xy, yx := connect(t, n, ls["y"], "x")
		zy, yz := connect(t, n, ls["y"], "z")
		xz, zx := connect(t, n, ls["z"], "x")

		n.Isolate("y")
		for _, c := range []net.Conn{xy, yx, zy, yz} {
			write(t, c, "?")
		}
		write(t, xz, "ok")
		readN(t, zx, 2, time.Second) // x and z still talk
		for _, c := range []net.Conn{xy, yx, zy, yz} {
			expectStall(t, c, 10*time.Millisecond)
		}
		n.Rejoin("y")
		for _, c := range []net.Conn{xy, yx, zy, yz} {
			readN(t, c, 1, time.Second)
		}

		n.Isolate("y")
		n.HealAll()
		write(t, xy, "!")
		readN(t, yx, 1, time.Second)
	})
}

func TestNetworkReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, l, a, b := setup(t)
		n.SetLatency("a", "b", time.Hour) // these bytes are in flight when the reset comes
		write(t, a, "lost")
		c, err := n.Listen("c")
		if err != nil {
			t.Fatal(err)
		}
		other, otherPeer := connect(t, n, c, "a") // a <-> c is not reset

		readErr := make(chan error, 1)
		go func() {
			_, err := b.Read(make([]byte, 1))
			readErr <- err
		}()
		n.Reset("b", "a") // either order
		wantErr(t, "blocked Read", <-readErr, syscall.ECONNRESET)
		_, err = a.Write([]byte("x"))
		wantErr(t, "Write after Reset", err, syscall.ECONNRESET)
		_, err = a.Read(make([]byte, 1))
		wantErr(t, "Read after Reset", err, syscall.ECONNRESET)
		if err := a.Close(); err != nil {
			t.Errorf("Close after Reset: %v", err)
		}
		if st := n.Stats(); st.Lost != 4 || st.Conns != 1 || st.Written != st.Delivered+st.InFlight+st.Lost {
			t.Errorf("stats after Reset: %+v; want 4 bytes lost and 1 conn left", st)
		}

		write(t, other, "still")
		readN(t, otherPeer, 5, time.Second)

		n.SetLatency("a", "b", 0)
		a2, b2 := connect(t, n, l, "a")
		write(t, a2, "again")
		readN(t, b2, 5, time.Second)
	})
}

func TestNetworkClosePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _, a, b := setup(t)
		n.SetLatency("a", "b", 20*time.Millisecond)
		write(t, a, "last words")
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "second Close", a.Close(), net.ErrClosed)
		_, err := a.Write([]byte("x"))
		wantErr(t, "Write after Close", err, net.ErrClosed)
		_, err = a.Read(make([]byte, 1))
		wantErr(t, "Read after Close", err, net.ErrClosed)
		wantErr(t, "SetDeadline after Close", a.SetDeadline(time.Now()), net.ErrClosed)

		// Until the close arrives, b's writes are accepted and dropped.
		if _, err := b.Write([]byte("into the void")); err != nil {
			t.Fatalf("write before the close arrived: %v", err)
		}
		if got := readN(t, b, 10, time.Second); string(got) != "last words" {
			t.Fatalf("read %q", got)
		}
		for range 2 {
			if k, err := b.Read(make([]byte, 10)); k != 0 || err != io.EOF {
				t.Fatalf("read after the peer closed = %d, %v; want io.EOF", k, err)
			}
		}
		_, err = b.Write([]byte("x"))
		wantErr(t, "write after the peer's close arrived", err, syscall.EPIPE)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if st := n.Stats(); st.Conns != 0 || st.InFlight != 0 {
			t.Errorf("stats after both ends closed: %+v", st)
		}
	})
}

func TestNetworkDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, a, b := setup(t)

		// A read deadline fires, and is not sticky once extended.
		const d = 20 * time.Millisecond
		start := time.Now()
		b.SetReadDeadline(start.Add(d))
		_, err := b.Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past the deadline: %v; want a timeout", err)
		}
		if e := time.Since(start); e != d {
			t.Errorf("deadline fired after %v; want %v", e, d)
		}
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		write(t, a, "x")
		if _, err := b.Read(make([]byte, 1)); err != nil {
			t.Fatalf("read after extending the deadline: %v", err)
		}

		// A deadline set while a Read waits applies to it: extended, then moved
		// to the past.
		b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		res := make(chan error, 1)
		go func() {
			_, err := b.Read(make([]byte, 1))
			res <- err
		}()
		b.SetReadDeadline(time.Now().Add(time.Hour))
		time.Sleep(150 * time.Millisecond)
		select {
		case err := <-res:
			t.Fatalf("read returned %v after its deadline was extended", err)
		default:
		}
		b.SetReadDeadline(time.Unix(1, 0))
		wantErr(t, "read whose deadline moved to the past", <-res, os.ErrDeadlineExceeded)

		// A write deadline fires while the buffer is full, after a partial write.
		n := NewNetwork()
		defer n.Close()
		n.SetBufferSize(100)
		l, err := n.Listen("b")
		if err != nil {
			t.Fatal(err)
		}
		a2, _ := connect(t, n, l, "a")
		msg := make([]byte, 150)
		start = time.Now()
		a2.SetWriteDeadline(start.Add(d))
		k, err := a2.Write(msg)
		if k != 100 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write into a full buffer = %d, %v; want 100 and a timeout", k, err)
		}
		if e := time.Since(start); e != d {
			t.Errorf("write deadline fired after %v; want %v", e, d)
		}
	})
}

func TestNetworkBackpressure(t *testing.T) {
	const size = 1000
	msg := make([]byte, 3*size+7)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range msg {
		msg[i] = byte(rng.Uint32())
	}
	newNet := func(t *testing.T) (*Network, net.Listener) {
		n := NewNetwork()
		t.Cleanup(func() { n.Close() })
		n.SetBufferSize(size)
		l, err := n.Listen("b")
		if err != nil {
			t.Fatal(err)
		}
		return n, l
	}
	synctest.Test(t, func(t *testing.T) {
		n, l := newNet(t)
		a, b := connect(t, n, l, "a")
		done := make(chan error, 1)
		go func() {
			_, err := a.Write(msg)
			done <- err
		}()
		synctest.Wait() // the writer is blocked: the buffer is full
		if st := n.Stats(); st.InFlight != size {
			t.Fatalf("%d bytes in flight while a writer waits; want the buffer size %d", st.InFlight, size)
		}
		select {
		case err := <-done:
			t.Fatalf("Write of %d bytes into a %d-byte buffer returned early: %v", len(msg), size, err)
		default:
		}
		if got := readN(t, b, len(msg), time.Hour); !bytes.Equal(got, msg) {
			t.Fatal("read different bytes")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	// Blocked writers wake on Close of either end.
	tests := []struct {
		name  string
		close func(local, remote net.Conn)
		want  error
	}{
		{"local close", func(local, _ net.Conn) { local.Close() }, net.ErrClosed},
		{"remote close", func(_, remote net.Conn) { remote.Close() }, syscall.EPIPE}, // no latency: the close arrives at once
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, l := newNet(t)
				a, b := connect(t, n, l, "a")
				done := make(chan error, 1)
				go func() {
					_, err := a.Write(msg)
					done <- err
				}()
				synctest.Wait() // the writer is blocked on the full buffer
				tc.close(a, b)
				wantErr(t, "blocked Write", <-done, tc.want)
			})
		})
	}
}

func TestNetworkCloseUnblocksAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork()
		n.SetBufferSize(10)
		l, err := n.Listen("b")
		if err != nil {
			t.Fatal(err)
		}
		idle, err := n.Listen("idle")
		if err != nil {
			t.Fatal(err)
		}
		dial := n.Dialer("a")
		a, err := dial(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		n.Cut("a", "c")
		if _, err := n.Listen("c"); err != nil {
			t.Fatal(err)
		}

		calls := map[string]func() error{
			"Accept": func() error { _, err := idle.Accept(); return err },
			"Read":   func() error { _, err := b.Read(make([]byte, 1)); return err },
			"Write":  func() error { _, err := b.Write(make([]byte, 100)); return err },
			"Dial":   func() error { _, err := dial(context.Background(), "c"); return err },
		}
		errs := make(chan error, len(calls))
		for name, call := range calls {
			go func() { errs <- fmt.Errorf("%s: %w", name, call()) }()
		}
		synctest.Wait() // every call is blocked
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		for range calls {
			if err := <-errs; !errors.Is(err, net.ErrClosed) {
				t.Errorf("%v; want net.ErrClosed", err)
			}
		}
		_, err = a.Write([]byte("x"))
		wantErr(t, "Write after Network.Close", err, net.ErrClosed)
		_, err = n.Listen("d")
		wantErr(t, "Listen after Network.Close", err, net.ErrClosed)
		_, err = dial(context.Background(), "b")
		wantErr(t, "Dial after Network.Close", err, net.ErrClosed)
		// No goroutine is left behind: synctest.Test fails if one that
		// started in the bubble is still blocked when the bubble ends.
	})
}

// TestNetworkStress runs several connections between four nodes, each
// sending seeded random data both ways, while latencies change and links
// are cut and healed. Run it with -race.
func TestNetworkStress(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	n := NewNetwork()
	defer n.Close()
	n.SetBufferSize(4 << 10)
	nodes := []string{"n0", "n1", "n2", "n3"}
	ls := map[string]net.Listener{}
	for _, name := range nodes {
		l, err := n.Listen(name)
		if err != nil {
			t.Fatal(err)
		}
		ls[name] = l
	}
	const conns, perDir = 8, 64 << 10
	var ends []net.Conn
	for i := range conns {
		from, to := nodes[i%len(nodes)], nodes[(i+1+i/len(nodes))%len(nodes)]
		c, s := connect(t, n, ls[to], from)
		ends = append(ends, c, s)
	}

	stop := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			from, to := nodes[rng.IntN(len(nodes))], nodes[rng.IntN(len(nodes))]
			switch rng.IntN(3) {
			case 0:
				n.SetLatency(from, to, time.Duration(rng.IntN(2000))*time.Microsecond)
			case 1:
				n.Cut(from, to)
			case 2:
				n.HealAll()
			}
			n.Stats()
		}
	})

	var wg sync.WaitGroup
	errs := make(chan error, 2*len(ends))
	for i, c := range ends {
		data := make([]byte, perDir)
		for j := range data {
			data[j] = byte(seed) + byte(i*31+j*7)
		}
		peer := ends[i^1]
		wg.Go(func() {
			for off := 0; off < len(data); {
				k := min(1+int(uint(off*13+i)%3000), len(data)-off)
				if _, err := c.Write(data[off : off+k]); err != nil {
					errs <- fmt.Errorf("write %s->%s: %w", c.LocalAddr(), c.RemoteAddr(), err)
					return
				}
				off += k
			}
		})
		wg.Go(func() {
			got := make([]byte, perDir)
			peer.SetReadDeadline(time.Now().Add(time.Minute)) // only catches a hang
			if _, err := io.ReadFull(peer, got); err != nil {
				errs <- fmt.Errorf("read %s->%s: %w", c.LocalAddr(), c.RemoteAddr(), err)
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("%s->%s: corrupted data", c.LocalAddr(), c.RemoteAddr())
			}
		})
	}
	// Let the chaos run a little, then heal so that everything drains.
	time.Sleep(100 * time.Millisecond)
	close(stop)
	chaos.Wait()
	n.HealAll()
	for _, a := range nodes {
		for _, b := range nodes {
			n.SetLatency(a, b, 0)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := n.Stats()
	if want := int64(2 * conns * perDir); st.Written != want || st.Delivered != want || st.InFlight != 0 || st.Lost != 0 {
		t.Errorf("stats %+v; want %d bytes written and delivered", st, want)
	}
}

// TestNetworkSynctest shows that the network runs in a synctest bubble,
// where long latencies cost no real time and are exact.
func TestNetworkSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork()
		defer n.Close()
		n.SetLatency("eu", "us", 40*time.Second)
		n.SetLatency("us", "eu", 60*time.Second)
		l, err := n.Listen("us")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		a, b := connect(t, n, l, "eu")
		if d := time.Since(start); d != 100*time.Second {
			t.Errorf("dial took %v; want 100s", d)
		}
		go io.Copy(b, b)
		start = time.Now()
		write(t, a, "ping")
		readN(t, a, 4, time.Hour)
		if d := time.Since(start); d != 100*time.Second {
			t.Errorf("echo took %v; want 100s", d)
		}
		a.Close()
		b.Close()
	})
}
