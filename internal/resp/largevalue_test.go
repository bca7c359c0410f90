package resp

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// Values as large as Redis's: up to 512 MiB (geocache.MaxValueBytesLimit,
// Redis's proto-max-bulk-len), with Redis's errors past the limit.

// randomValue returns n seeded random bytes: every byte value, CR and LF
// included, so that a value read back equal is byte-exact.
func randomValue(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(b)
	return b
}

// bulk is a value's RESP bulk string.
func bulk(v []byte) string { return "$" + strconv.Itoa(len(v)) + "\r\n" + string(v) + "\r\n" }

// TestLargeValueRoundTrip: with the largest value limit, a 6 MiB value —
// over the old 3 MiB limit — is written and read back byte for byte with
// go-redis, and CONFIG GET reports the limits a client needs for it.
// (cmd/geocache's TestServeLargeValues does 20 MiB through the flags.)
func TestLargeValueRoundTrip(t *testing.T) {
	// A budget that holds the value in one shard of the store (64
	// shards at most); a bound, not an allocation.
	node := testNode(t, geocache.Config{MaxBytes: 4 << 30, MaxValueBytes: geocache.MaxValueBytesLimit})
	s, addr := startServer(t, Config{Node: node})
	if s.cfg.MaxBulkBytes != 512<<20 || s.cfg.MaxRequestBytes != 513<<20 {
		t.Fatalf("MaxBulkBytes %d, MaxRequestBytes %d; want 512 MiB, and 513 MiB to carry it", s.cfg.MaxBulkBytes, s.cfg.MaxRequestBytes)
	}
	c := newClient(t, addr)
	cfg, err := c.ConfigGet(bg, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"proto-max-bulk-len": "536870912", "client-query-buffer-limit": "537919488", "geocache-max-value-bytes": "536870912"} {
		if cfg[k] != want {
			t.Errorf("CONFIG GET %s = %q; want %q", k, cfg[k], want)
		}
	}
	const size = 6 << 20
	big := randomValue(size, 1)
	if err := c.Set(bg, "big", big, 0).Err(); err != nil {
		t.Fatalf("SET of 6 MiB: %v", err)
	}
	got, err := c.Get(bg, "big").Bytes()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("GET of 6 MiB: %d bytes, equal %v, %v", len(got), bytes.Equal(got, big), err)
	}
	if n, err := c.StrLen(bg, "big").Result(); n != size || err != nil {
		t.Fatalf("STRLEN = %d, %v", n, err)
	}
	if n, err := c.Append(bg, "big", "!").Result(); n != size+1 || err != nil {
		t.Fatalf("APPEND = %d, %v", n, err)
	}
	if v, err := c.GetRange(bg, "big", size-2, -1).Result(); v != string(big[size-2:])+"!" || err != nil {
		t.Fatalf("GETRANGE of the end = %q, %v", v, err)
	}
	if st := s.Stats(); st.Rejected != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v; want nothing refused", st)
	}
}

// TestLargeValueReplies: a large value goes out from the node's own bytes
// (replyValue), in order with the replies around it, in every mode a reply
// can be in: pipelined with others, in MGET and HGETALL, silenced by
// CLIENT REPLY, inside EXEC, and to a subscribed RESP3 client.
func TestLargeValueReplies(t *testing.T) {
	_, addr := startServer(t, Config{})
	v := randomValue(streamAt+1000, 2)
	w := randomValue(3*writeChunk+17, 3) // several pieces
	r := dialRaw(t, addr)
	r.send(cmd("SET", "v", string(v)) + cmd("SET", "w", string(w)) + cmd("HSET", "h", "f", string(v), "g", "small"))
	r.expect("+OK\r\n+OK\r\n:2\r\n")

	r.send(cmd("GET", "v") + cmd("PING") + cmd("MGET", "w", "nosuch", "v", "h") + cmd("GETRANGE", "w", "1", "-2") +
		cmd("HGETALL", "h") + cmd("HGET", "h", "f") + cmd("ECHO", "after"))
	r.expect(bulk(v) + "+PONG\r\n" + "*4\r\n" + bulk(w) + "$-1\r\n" + bulk(v) + "$-1\r\n" + bulk(w[1:len(w)-1]) +
		"*4\r\n$1\r\nf\r\n" + bulk(v) + "$1\r\ng\r\n$5\r\nsmall\r\n" + bulk(v) + "$5\r\nafter\r\n")

	// Silenced replies stay silent, large ones too.
	r.send(cmd("CLIENT", "REPLY", "SKIP") + cmd("GET", "w") + cmd("PING") +
		cmd("CLIENT", "REPLY", "OFF") + cmd("GET", "v") + cmd("MGET", "v", "w") + cmd("CLIENT", "REPLY", "ON") + cmd("ECHO", "on"))
	r.expect("+PONG\r\n+OK\r\n$2\r\non\r\n")

	// EXEC's reply holds the value whole.
	r.send(cmd("MULTI") + cmd("GET", "v") + cmd("PING") + cmd("EXEC") + cmd("ECHO", "done"))
	r.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n" + bulk(v) + "+PONG\r\n$4\r\ndone\r\n")

	// A subscribed RESP3 client's replies go through its writer.
	sub := dialRaw(t, addr)
	if got := sub.do("HELLO", "3"); !strings.HasPrefix(got, "{") {
		t.Fatalf("HELLO 3: %.100s", got)
	}
	sub.send(cmd("SUBSCRIBE", "ch") + cmd("GET", "w") + cmd("PING"))
	sub.expect(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n" + bulk(w) + "+PONG\r\n")
}

// TestValueOverMaxBulk: a value of the limit is stored; one byte more is
// answered Redis's "invalid bulk length" as its header arrives — before
// its bytes — and the connection closes, the figures in the server's log
// and the refusal counted; the server goes on serving every other client.
func TestValueOverMaxBulk(t *testing.T) {
	const limit = 4 << 20
	var logs testkit.SyncBuffer
	node := testNode(t, geocache.Config{MaxBytes: 1 << 30, MaxValueBytes: limit})
	s, addr := startServer(t, Config{Node: node, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := newClient(t, addr)
	if got, err := c.ConfigGet(bg, "proto-max-bulk-len").Result(); err != nil || got["proto-max-bulk-len"] != "4194304" {
		t.Fatalf("CONFIG GET proto-max-bulk-len = %v, %v; want 4194304, the node's value limit", got, err)
	}
	max := randomValue(limit, 4)
	if err := c.Set(bg, "max", max, 0).Err(); err != nil {
		t.Fatalf("SET of the limit: %v", err)
	}

	over := "*3\r\n$3\r\nSET\r\n$4\r\nover\r\n$" + strconv.Itoa(limit+1) + "\r\n"
	r := dialRaw(t, addr)
	r.send(over)
	r.expectClosed("-ERR Protocol error: invalid bulk length\r\n")
	r = dialRaw(t, addr)
	r.send(cmd("PING") + over)
	r.expectClosed("+PONG\r\n-ERR Protocol error: invalid bulk length\r\n")

	if got, err := c.Get(bg, "max").Bytes(); err != nil || !bytes.Equal(got, max) {
		t.Fatalf("another client after the refusals: GET = %d bytes, %v", len(got), err)
	}
	if n, err := c.Exists(bg, "over").Result(); n != 0 || err != nil {
		t.Fatalf("EXISTS over = %d, %v; want nothing stored", n, err)
	}
	healthy(t, addr)
	if st := s.Stats(); st.Rejected != 2 {
		t.Errorf("Rejected = %d; want 2", st.Rejected)
	}
	if l := logs.String(); !strings.Contains(l, "argument of 4194305 bytes, over the limit of 4194304") {
		t.Errorf("the log does not give the figures:\n%s", l)
	}
}

// valueLimitScript is APPEND, SETRANGE, SETBIT and GETBIT at the value
// limit, 1 MiB here and in the real Redis (proto-max-bulk-len 1mb, the
// least it takes): Redis's replies and errors.
var valueLimitScript = []step{
	both("+OK", "FLUSHALL"),
	both(":1048576", "SETRANGE", "k", "1048575", "x"),
	both(":1048576", "STRLEN", "k"),
	both("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "APPEND", "k", "x"),
	both("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "k", "1048576", "x"),
	both("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "k", "1048575", "xy"),
	both(":1048576", "SETRANGE", "k", "1048575", "y"),
	both(":1048576", "SETRANGE", "k", "1048576", ""),
	both(":0", "SETRANGE", "new", "1048576", ""),
	both("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "new", "1048576", "x"),
	both("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "new", "9223372036854775807", "x"),
	both(":0", "EXISTS", "new"),
	both(":1", "SETBIT", "k", "8388607", "0"),
	both("-ERR bit offset is not an integer or out of range", "SETBIT", "k", "8388608", "1"),
	both("-ERR bit offset is not an integer or out of range", "SETBIT", "b", "8388608", "1"),
	both("-ERR bit offset is not an integer or out of range", "GETBIT", "k", "8388608"),
	both(":0", "GETBIT", "k", "8388607"),
	both(":0", "EXISTS", "b"),
	both(":1048576", "STRLEN", "k"),
	both(":1", "APPEND", "a", "x"),
	both(`"x"`, "GETRANGE", "k", "1048575", "1048575"), // "y" with its last bit cleared
	both(`"\x00"`, "GETRANGE", "k", "1048574", "1048574"),
}

// valueLimitProtocol is what a client sees at the limits of the protocol,
// with a proto-max-bulk-len of 1 MiB: Redis's texts, then the close.
var valueLimitProtocol = []struct{ name, send, want string }{
	{"bulk over the limit", "*2\r\n$4\r\nECHO\r\n$1048577\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
	{"value over the limit after a command", "PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\nabc", "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"},
	{"huge bulk length", "*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
	{"multibulk count over Redis's limit", "*2147483648\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
	{"huge multibulk count", "*999999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
}

func runValueLimits(t *testing.T, addr string, redis bool) {
	runSteps(t, addr, valueLimitScript, redis)
	c := dialRaw(t, addr)
	v := strings.Repeat("v", 1<<20)
	c.send(cmd("SET", "k", v) + cmd("STRLEN", "k"))
	c.expect("+OK\r\n:1048576\r\n")
	for _, tt := range valueLimitProtocol {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, addr)
			r.send(tt.send)
			r.expectClosed(tt.want)
		})
	}
	if got := c.do("GET", "k"); got != strconv.Quote(v) {
		t.Fatalf("another client after the refusals: GET = %.40s...", got)
	}
}

func TestValueLimits(t *testing.T) {
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{MaxValueBytes: 1 << 20})})
	runValueLimits(t, addr, false)
}

// TestValueLimitsAgainstRedis checks the script and the protocol texts
// against a real Redis 7.0:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there, and sets proto-max-bulk-len to 1mb while it
// runs.
func TestValueLimitsAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	old, err := c.ConfigGet(bg, "proto-max-bulk-len").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(bg, "proto-max-bulk-len", "1mb").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		if err := c.ConfigSet(bg, "proto-max-bulk-len", old["proto-max-bulk-len"]).Err(); err != nil {
			t.Errorf("putting proto-max-bulk-len back: %v", err)
		}
	})
	runValueLimits(t, addr, true)
}

// TestAnnouncedValueCostsNothing: with the largest value limit, a client
// that announces a 512 MiB value and sends 1 MiB of it makes the server
// hold about what it sent — the read buffer grows by doubling as bytes
// arrive, never to the length announced — and gives it all back when it
// leaves.
func TestAnnouncedValueCostsNothing(t *testing.T) {
	node := testNode(t, geocache.Config{MaxBytes: 4 << 30, MaxValueBytes: geocache.MaxValueBytesLimit})
	s, addr := startServer(t, Config{Node: node})
	const sent = 1 << 20
	r := dialRaw(t, addr)
	header := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n"
	r.send(header + strings.Repeat("x", sent))
	testkit.Eventually(t, "the server to read what was sent", func() bool { return s.Stats().BufferBytes >= sent })
	if got, bound := s.Stats().BufferBytes, int64(2*(len(header)+sent)); got > bound {
		t.Fatalf("BufferBytes = %d for %d bytes received of 512 MiB announced; want at most %d", got, len(header)+sent, bound)
	}
	healthy(t, addr)
	r.nc.Close()
	testkit.Eventually(t, "the buffer to be given back", func() bool { return s.Stats().BufferBytes == 0 })
}

// TestLargeRequestAtSteadyRate runs in a synctest bubble: a large value
// sent at 2 MiB/s takes longer than RequestTimeout and is still served (a
// request has a second more for every MiB received), while a client
// sending at 256 KiB/s is closed once it falls behind that pace.
func TestLargeRequestAtSteadyRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's cleanup: it closes first
		const timeout = 2 * time.Second
		node := testNode(t, geocache.Config{MaxBytes: 1 << 30})
		memServer(t, n, Config{Node: node, RequestTimeout: timeout})
		// send writes SET k with a value of size bytes, a piece every so
		// often, until the server closes the connection.
		send := func(r *rawConn, size, piece int, every time.Duration) {
			if _, err := io.WriteString(r.nc, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$"+strconv.Itoa(size)+"\r\n"); err != nil {
				return
			}
			for sent := 0; sent < size; sent += piece {
				time.Sleep(every)
				if _, err := r.nc.Write(make([]byte, min(piece, size-sent))); err != nil {
					return // closed by the server
				}
			}
			io.WriteString(r.nc, "\r\n")
		}
		steady := dialMem(t, n, "steady")
		send(steady, 8<<20, 256<<10, 125*time.Millisecond) // 2 MiB/s: 4 s
		if got := steady.reply(); got != "+OK" {
			t.Fatalf("8 MiB at 2 MiB/s, with a request timeout of %v: %s", timeout, got)
		}
		slow := dialMem(t, n, "slow")
		done := make(chan struct{})
		go func() {
			defer close(done)
			send(slow, 8<<20, 64<<10, 250*time.Millisecond) // 256 KiB/s: cut near 2.7 s
		}()
		slow.nc.SetReadDeadline(time.Now().Add(time.Hour))
		got, _ := io.ReadAll(slow.br)
		slow.nc.Close()
		<-done
		if !strings.HasPrefix(string(got), "-ERR Protocol error: request not completed within ") {
			t.Fatalf("8 MiB at 256 KiB/s: %q; want the request timeout's error, then the close", got)
		}
		t.Logf("the slow client: %q", got)
	})
}

// TestLargeReplyToSteadyReader runs in a synctest bubble: a client that
// reads a large value slowly but steadily gets it whole, however much
// longer than the write bound (RequestTimeout here) the whole reply takes —
// each piece of it has its own bound —, and a client that stops reading is
// closed.
func TestLargeReplyToSteadyReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		n.SetBufferSize(256 << 10)
		const timeout = 2 * time.Second
		node := testNode(t, geocache.Config{MaxBytes: 1 << 30})
		s := memServer(t, n, Config{Node: node, RequestTimeout: timeout})
		v := randomValue(8<<20, 5)
		if err := node.Set(bg, "v", v); err != nil {
			t.Fatal(err)
		}
		r := dialMem(t, n, "reader")
		r.send(cmd("GET", "v") + cmd("PING"))
		want := bulk(v) + "+PONG\r\n"
		var got []byte
		buf := make([]byte, 256<<10)
		for len(got) < len(want) { // 1 MiB/s: 8 s
			time.Sleep(250 * time.Millisecond)
			r.nc.SetReadDeadline(time.Now().Add(time.Hour))
			k, err := io.ReadAtLeast(r.br, buf, min(len(buf), len(want)-len(got)))
			got = append(got, buf[:k]...)
			if err != nil {
				t.Fatalf("after %d bytes of %d: %v", len(got), len(want), err)
			}
		}
		if string(got) != want {
			t.Fatal("the reply read slowly is not the value")
		}

		stuck := dialMem(t, n, "stuck")
		stuck.send(cmd("GET", "v"))
		time.Sleep(time.Minute) // reading nothing
		synctest.Wait()
		if c := s.Stats().Clients; c != 1 {
			t.Fatalf("%d clients a minute after one stopped reading a large reply; want it closed, the other kept", c)
		}
	})
}
