package resp

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	node := testNode(t, geocache.Config{MaxValueBytes: 1000})
	s, err := New(Config{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.MaxClients != 10_000 || c.MaxRequestBytes != 64<<20 || c.MaxArgs != 1_048_576 ||
		c.MaxBulkBytes != 64<<10 || c.IdleTimeout != 0 || c.UnauthLimit != 16<<10 || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	s.Close()
	for _, bad := range []Config{
		{},
		{Node: node, MaxClients: -1},
		{Node: node, MaxRequestBytes: -1},
		{Node: node, MaxArgs: -1},
		{Node: node, MaxBulkBytes: -1},
		{Node: node, UnauthLimit: -1},
		{Node: node, IdleTimeout: -time.Second},
		{Node: node, MaxRequestBytes: 3 << 30},
	} {
		if _, err := New(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v; want ErrInvalidConfig", bad, err)
		}
	}
}

// healthy checks that the server still serves a well-behaved client.
func healthy(t *testing.T, addr string) {
	t.Helper()
	r := dialRaw(t, addr)
	if got := r.do("SET", "healthy", "yes"); got != "+OK" {
		t.Fatalf("a new client after bad input: SET = %s", got)
	}
	if got := r.do("GET", "healthy"); got != `"yes"` {
		t.Fatalf("a new client after bad input: GET = %s", got)
	}
	r.nc.Close()
}

func TestMaxClients(t *testing.T) {
	s, addr := startServer(t, Config{MaxClients: 2})
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	if a.do("PING") != "+PONG" || b.do("PING") != "+PONG" {
		t.Fatal("the first two clients are not served")
	}
	c := dialRaw(t, addr)
	c.expectClosed("-ERR max number of clients reached\r\n")
	if st := s.Stats(); st.Rejected != 1 || st.Clients != 2 || st.Connections != 2 {
		t.Errorf("stats %+v; want 1 rejected, 2 clients, 2 connections", st)
	}
	a.nc.Close()
	testkit.Eventually(t, "a slot to free up", func() bool { return s.Stats().Clients == 1 })
	healthy(t, addr)
	if got := b.do("INFO", "stats"); !strings.Contains(got, `rejected_connections:1\r\n`) {
		t.Errorf("INFO stats: %s", got)
	}
}

// TestRequestLimits: each limit answers an error as soon as the header that
// breaks it arrives — before the data it announces — and closes the
// connection; the server goes on serving others.
func TestRequestLimits(t *testing.T) {
	s, addr := startServer(t, Config{MaxRequestBytes: 1024, MaxArgs: 4, MaxBulkBytes: 600})
	tests := []struct {
		name, send, want string
	}{
		{"MaxRequestBytes", cmd("SET", "k", strings.Repeat("x", 500)) +
			"*4\r\n$3\r\nDEL\r\n$500\r\n" + strings.Repeat("a", 500) + "\r\n$500\r\n",
			"+OK\r\n-ERR Protocol error: request over the limit of 1024 bytes\r\n"},
		{"MaxRequestBytes over several arguments", "*4\r\n$3\r\nDEL\r\n$500\r\n" + strings.Repeat("a", 500) + "\r\n$500\r\n",
			"-ERR Protocol error: request over the limit of 1024 bytes\r\n"},
		{"MaxArgs", "*5\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"MaxArgs inline", "DEL a b c d\r\n", "-ERR Protocol error: too many arguments: 5 (limit 4)\r\n"},
		{"MaxBulkBytes", "*2\r\n$4\r\nECHO\r\n$601\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge bulk length", "*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge multibulk length", "*999999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"inline line over the request limit", "ECHO " + strings.Repeat("y", 1100), "-ERR Protocol error: request over the limit of 1024 bytes\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().Rejected
			r := dialRaw(t, addr)
			r.send(tt.send)
			r.expectClosed(tt.want)
			if got := s.Stats().Rejected; got != before+1 {
				t.Errorf("Rejected went from %d to %d; want one more", before, got)
			}
			healthy(t, addr)
		})
	}
}

// TestValueOverNodeLimit: a value within MaxBulkBytes (here MaxKeyBytes,
// the node's MaxValueBytes being smaller) but over the node's
// MaxValueBytes is read and refused with a clear error; the connection
// stays open.
func TestValueOverNodeLimit(t *testing.T) {
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{MaxValueBytes: 1000})})
	r := dialRaw(t, addr)
	got := r.do("SET", "k", strings.Repeat("v", 1500))
	if want := "-ERR key or value too large: key of 1 bytes, value of 1500 (limits 65536, 1000)"; got != want {
		t.Errorf("SET of 1500 bytes: %s; want %s", got, want)
	}
	if got := r.do("SET", "k", strings.Repeat("v", 1000)); got != "+OK" {
		t.Errorf("SET of 1000 bytes: %s", got)
	}
	got = r.do("MSET", "a", "1", "b", strings.Repeat("v", 1500))
	if want := "-ERR key or value too large: key of 1 bytes, value of 1500 (limits 65536, 1000); nothing was written"; got != want {
		t.Errorf("MSET with a value too large: %s; want %s", got, want)
	}
	if got := r.do("EXISTS", "a"); got != ":0" {
		t.Errorf("MSET with a value too large wrote the pair before it: EXISTS a = %s", got)
	}
	// MaxBulkBytes is at least MaxKeyBytes, so every key can be sent:
	// beyond it, Redis's protocol error as the header arrives.
	r.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65537\r\n")
	r.expectClosed("-ERR Protocol error: invalid bulk length\r\n")
}

// TestIdleTimeout runs in a synctest bubble, on the in-memory network: on
// real time, a loaded machine could hold the busy client back longer than
// the timeout and get it closed.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 150 * time.Millisecond
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's and nodes' cleanups: they close first
		memServer(t, n, Config{IdleTimeout: timeout})
		idle, busy := dialMem(t, n, "idle"), dialMem(t, n, "busy")
		start := time.Now()
		for time.Since(start) < 400*time.Millisecond {
			if got := busy.do("PING"); got != "+PONG" {
				t.Fatalf("an active client: PING = %s", got)
			}
			time.Sleep(30 * time.Millisecond)
		}
		idle.expectClosed("") // Redis closes idle clients silently
		if got := busy.do("PING"); got != "+PONG" {
			t.Fatalf("an active client after 400ms: PING = %s", got)
		}
		if got := busy.do("CONFIG", "GET", "timeout"); got != `["timeout" "0"]` { // whole seconds, as Redis
			t.Errorf("CONFIG GET timeout: %s", got)
		}
		// The idle client was closed once the timeout passed, not before.
		quiet := dialMem(t, n, "quiet")
		time.Sleep(timeout - time.Nanosecond)
		if got := quiet.do("PING"); got != "+PONG" {
			t.Fatalf("a client idle for just under the timeout: PING = %s", got)
		}
		time.Sleep(timeout)
		synctest.Wait()
		quiet.expectClosed("")
	})
}

func TestUnauthLimit(t *testing.T) {
	s, addr := startServer(t, Config{RequirePass: "secret", UnauthLimit: 100})
	ping := cmd("PING") // 14 bytes
	r := dialRaw(t, addr)
	for range 7 { // 98 bytes
		if got := r.do("PING"); got != "-NOAUTH Authentication required." {
			t.Fatalf("PING before AUTH: %s", got)
		}
	}
	r.send(ping)
	r.expectClosed("-ERR Protocol error: unauthenticated client sent more than 100 bytes; AUTH first\r\n")
	if st := s.Stats(); st.Rejected != 1 {
		t.Errorf("Rejected = %d; want 1", st.Rejected)
	}

	// One large unauthenticated request is refused before its data arrives.
	r = dialRaw(t, addr)
	r.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n")
	r.expectClosed("-ERR Protocol error: unauthenticated client sent more than 100 bytes; AUTH first\r\n")

	// After AUTH the budget no longer applies.
	r = dialRaw(t, addr)
	if got := r.do("AUTH", "secret"); got != "+OK" {
		t.Fatalf("AUTH: %s", got)
	}
	big := strings.Repeat("b", 10_000)
	if got := r.do("SET", "k", big); got != "+OK" {
		t.Fatalf("SET after AUTH: %s", got)
	}
	if got := r.do("GET", "k"); got != `"`+big+`"` {
		t.Fatalf("GET after AUTH: %.40s", got)
	}
}
