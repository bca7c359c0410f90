package resp

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

func TestPasswordMatches(t *testing.T) {
	want := passwordDigest("s3cret")
	for _, tt := range []struct {
		pass string
		ok   bool
	}{
		{"s3cret", true},
		{"s3cre", false},   // a prefix: shorter
		{"s3cret!", false}, // longer
		{"S3cret", false},
		{"", false},
		{"s3cret\x00", false},
		{strings.Repeat("s3cret", 1000), false},
	} {
		if got := passwordMatches(want, []byte(tt.pass)); got != tt.ok {
			t.Errorf("passwordMatches(%q) = %v; want %v", tt.pass, got, tt.ok)
		}
	}
	if !passwordMatches(passwordDigest(""), nil) {
		t.Error("the empty password does not match itself")
	}
}

func TestAuthDelay(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{
		{0, 0}, {1, 0}, {2, 10 * time.Millisecond}, {3, 20 * time.Millisecond},
		{100, 990 * time.Millisecond}, {101, time.Second}, {1 << 40, time.Second},
	} {
		if got := authDelay(tt.n); got != tt.want {
			t.Errorf("authDelay(%d) = %v; want %v", tt.n, got, tt.want)
		}
	}
}

func TestAddrLog(t *testing.T) {
	l := newAddrLog(time.Minute, 2)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(addr string, at time.Duration, wantOK bool, wantSupp uint64, wantKey string) {
		t.Helper()
		ok, supp, key := l.allow(addr, t0.Add(at))
		if ok != wantOK || supp != wantSupp || key != wantKey {
			t.Errorf("allow(%s, +%v) = %v, %d, %s; want %v, %d, %s", addr, at, ok, supp, key, wantOK, wantSupp, wantKey)
		}
	}
	check("a", 0, true, 0, "a")
	check("a", time.Second, false, 0, "a")
	check("a", 59*time.Second, false, 0, "a")
	check("b", 59*time.Second, true, 0, "b")
	// The table is full of recent addresses: c and d share one entry.
	check("c", 59*time.Second, true, 0, addrLogOthers)
	check("d", 59*time.Second, false, 0, addrLogOthers)
	check("a", time.Minute, true, 2, "a") // two suppressed since the last line
	// a minute later the stale entries make room again.
	check("e", 3*time.Minute, true, 0, "e")
	if len(l.entries) > 2 {
		t.Errorf("the table holds %d entries; bound 2", len(l.entries))
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.8.9.10"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.168.1.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("::"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, false},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, true},
		{testkit.Addr("mem"), false}, // unknown networks fail closed
	} {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%v) = %v; want %v", tt.addr, got, tt.want)
		}
	}
}

// redisDenied is Redis 7.0.15's protected-mode reply, as redis-server sends
// it to a non-loopback client (networking.c), kept here apart from the
// constant so that an edit of either shows.
const redisDenied = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n"

// onlyFrom127001 is a Config.IsLocal for tests: this machine has only
// loopback addresses, so a client dialing from 127.0.0.2 plays a remote
// one. The server listens on 127.0.0.1.
func onlyFrom127001(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.Equal(net.IPv4(127, 0, 0, 1))
}

// dialFrom connects to addr from the local address ip.
func dialFrom(t *testing.T, ip, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Minute}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return newRawConn(t, nc)
}

func newRawConn(t testing.TB, nc net.Conn) *rawConn {
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// TestProtectedMode: without a password, a non-local client is answered
// Redis's -DENIED text and closed; local clients are served, and so is
// everyone once a password is set or protected mode is off.
func TestProtectedMode(t *testing.T) {
	s, addr := startServer(t, Config{ProtectedMode: true, IsLocal: onlyFrom127001})
	remote := dialFrom(t, "127.0.0.2", addr)
	remote.expectClosed(redisDenied)
	if st := s.Stats(); st.Rejected != 1 {
		t.Errorf("Rejected = %d; want 1", st.Rejected)
	}
	local := dialFrom(t, "127.0.0.1", addr)
	if got := local.do("SET", "k", "v"); got != "+OK" {
		t.Fatalf("a local client in protected mode: SET = %s", got)
	}
	if got := local.do("CONFIG", "GET", "protected-mode"); got != `["protected-mode" "yes"]` {
		t.Errorf("CONFIG GET protected-mode: %s", got)
	}
	if got := local.do("INFO", "stats"); !strings.Contains(got, `rejected_connections:1\r\n`) {
		t.Errorf("INFO stats: %s", got)
	}

}

// TestProtectedModeOff: with a password, or with protected mode off,
// remote clients are served.
func TestProtectedModeOff(t *testing.T) {
	t.Run("password", func(t *testing.T) {
		_, addr := startServer(t, Config{ProtectedMode: true, IsLocal: onlyFrom127001, RequirePass: "pw"})
		remote := dialFrom(t, "127.0.0.2", addr)
		if got := remote.do("GET", "k"); got != "-NOAUTH Authentication required." {
			t.Fatalf("a remote client with a password set: %s", got)
		}
		if got := remote.do("AUTH", "pw"); got != "+OK" {
			t.Fatalf("AUTH: %s", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		_, addr := startServer(t, Config{IsLocal: onlyFrom127001})
		remote := dialFrom(t, "127.0.0.2", addr)
		if got := remote.do("PING"); got != "+PONG" {
			t.Fatalf("protected mode off: PING = %s", got)
		}
	})
}

// logRecorder is a slog handler that keeps the records, for tests that
// count log lines.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// lines returns the records at level whose message is msg, each rendered
// as its attributes "k=v ...".
func (h *logRecorder) lines(level slog.Level, msg string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if r.Level != level || r.Message != msg {
			continue
		}
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(a.Key + "=" + a.Value.String() + " ")
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// TestAuthBruteForce: wrong passwords over one connection are answered
// later and later (0, 10 ms, 20 ms ... on the bubble's virtual clock: no
// reply comes before its delay), every one is counted, and the log gets one
// WARN per client address per minute with the count of those it
// suppressed. The right password still works, and other clients are
// served meanwhile.
func TestAuthBruteForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's Close (cleanups run last first)
		logs := &logRecorder{}
		s := memServer(t, n, Config{RequirePass: "right", AuthTimeout: time.Hour, Logger: slog.New(logs)})
		r := dialMem(t, n, "attacker")
		const tries = 30
		var pipeline strings.Builder
		for i := range tries {
			pipeline.WriteString(cmd("AUTH", "guess"+string(rune('a'+i%26))))
		}
		start := time.Now()
		r.send(pipeline.String())
		var wait time.Duration
		for i := 1; i <= tries; i++ {
			wait += authDelay(i)
			if got := r.reply(); got != "-WRONGPASS invalid username-password pair or user is disabled." {
				t.Fatalf("failed AUTH %d: %s", i, got)
			}
			if got := time.Since(start); got < wait {
				t.Fatalf("failed AUTH %d answered after %v; before the delays of the failures so far, %v", i, got, wait)
			}
		}
		// Meanwhile another client was not held up by the delays.
		other := dialMem(t, n, "other")
		if got := other.do("AUTH", "right"); got != "+OK" {
			t.Fatalf("AUTH on another connection: %s", got)
		}
		if st := s.Stats(); st.AuthFailures != tries {
			t.Errorf("AuthFailures = %d; want %d", st.AuthFailures, tries)
		}
		if got := other.do("INFO", "stats"); !strings.Contains(got, `acl_access_denied_auth:30\r\n`) {
			t.Errorf("INFO stats: %s", got)
		}
		const msg = "resp: failed AUTH"
		if got := logs.lines(slog.LevelWarn, msg); len(got) != 1 || !strings.Contains(got[0], "suppressed=0 ") {
			t.Fatalf("WARN lines after %d failures within a minute: %q; want 1", tries, got)
		}
		// A minute later the next failure logs again, with the count of the
		// lines suppressed meanwhile.
		time.Sleep(time.Minute)
		if got := r.do("HELLO", "3", "AUTH", "default", "nope"); !strings.HasPrefix(got, "-WRONGPASS") {
			t.Fatalf("HELLO with a wrong password: %s", got)
		}
		got := logs.lines(slog.LevelWarn, msg)
		if len(got) != 2 || !strings.Contains(got[1], "suppressed=29 ") || !strings.Contains(got[1], "remote=attacker ") {
			t.Fatalf("WARN lines: %q; want a second one with suppressed=29", got)
		}
		// The right password works on the same connection, after the delay.
		if got := r.do("AUTH", "right"); got != "+OK" {
			t.Fatalf("the right password after failures: %s", got)
		}
		if got := r.do("SET", "k", "v"); got != "+OK" {
			t.Fatalf("SET after AUTH: %s", got)
		}
	})
}

// TestAuthDelayDoesNotBlockClose: Close returns at once while a connection
// sleeps in the delay of its failed AUTH.
func TestAuthDelayDoesNotBlockClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's Close (cleanups run last first)
		s := memServer(t, n, Config{RequirePass: "right", AuthTimeout: time.Hour})
		r := dialMem(t, n, "attacker")
		var pipeline strings.Builder
		for range 500 {
			pipeline.WriteString(cmd("AUTH", "wrong"))
		}
		r.send(pipeline.String())
		for range 150 { // from the 101st on, each waits a whole second
			r.reply()
		}
		synctest.Wait() // the connection sleeps in a delay
		start := time.Now()
		s.Close()
		if d := time.Since(start); d != 0 {
			t.Errorf("Close waited %v (virtual) for the AUTH delay", d)
		}
		if got := s.Stats().AuthFailures; got >= 500 {
			t.Errorf("AuthFailures = %d: Close waited for every delay", got)
		}
	})
}

// TestAuthTimeout: clients that connect and never authenticate (one sends
// nothing, others dribble bytes, well within the idle timeout) fill
// MaxClients; once the auth deadline passes they are closed with an error,
// and a real client is served again.
func TestAuthTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's Close (cleanups run last first)
		const timeout = 10 * time.Second
		s := memServer(t, n, Config{RequirePass: "pw", MaxClients: 4, IdleTimeout: 2 * time.Second})
		var slow []*rawConn
		for i := range 4 {
			c := dialMem(t, n, "slow"+string(rune('0'+i)))
			slow = append(slow, c)
		}
		// Dribblers: a byte a second of a request that never ends.
		var wg sync.WaitGroup
		for _, c := range slow {
			wg.Go(func() {
				for _, b := range []byte("*2\r\n$4\r\nECHO\r\n$200\r\n" + strings.Repeat("x", 100)) {
					if _, err := c.nc.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			})
		}
		synctest.Wait()
		full := dialMem(t, n, "real")
		full.expectClosed("-ERR max number of clients reached\r\n")

		time.Sleep(timeout)
		want := "-ERR Protocol error: not authenticated within 10s\r\n"
		for _, c := range slow {
			c.expectClosed(want)
		}
		wg.Wait()
		synctest.Wait() // the server has dropped them
		real := dialMem(t, n, "real2")
		if got := real.do("AUTH", "pw"); got != "+OK" {
			t.Fatalf("a real client after the slow ones were closed: AUTH = %s", got)
		}
		// An authenticated client is not held to the deadline (it stays
		// within the idle timeout).
		for range 11 {
			time.Sleep(time.Second)
			if got := real.do("PING"); got != "+PONG" {
				t.Fatalf("an authenticated client past the auth deadline: %s", got)
			}
		}
		if st := s.Stats(); st.Rejected != 1+4 {
			t.Errorf("Rejected = %d; want 5 (one at MaxClients, four slow)", st.Rejected)
		}
	})
}

// TestSlowRequest: without a password, clients sending a request one byte a
// second (never idle for the idle timeout) fill MaxClients; the request
// deadline closes them, and a real client is served again. A client whose
// requests each arrive in time is never closed, however long it stays.
func TestSlowRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's Close (cleanups run last first)
		const timeout = 5 * time.Second
		s := memServer(t, n, Config{MaxClients: 6, IdleTimeout: 2 * time.Second, RequestTimeout: timeout})
		steady := dialMem(t, n, "steady")
		var slow []*rawConn
		var wg sync.WaitGroup
		for i := range 5 {
			c := dialMem(t, n, "slow"+string(rune('0'+i)))
			slow = append(slow, c)
			wg.Go(func() {
				// A large announced value costs the server nothing until
				// its bytes arrive.
				c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n")
				for range 30 {
					time.Sleep(time.Second)
					if _, err := c.nc.Write([]byte{'x'}); err != nil {
						return
					}
				}
			})
		}
		synctest.Wait()
		if got := s.Stats().BufferBytes; got != 0 {
			t.Errorf("BufferBytes = %d for requests that only announced their size; want 0", got)
		}
		dialMem(t, n, "real").expectClosed("-ERR max number of clients reached\r\n")

		// The steady client sends each request in two halves a second
		// apart, for longer than the deadline.
		for range 8 {
			steady.send("*2\r\n$4\r\nECHO\r\n")
			time.Sleep(time.Second)
			steady.send("$2\r\nhi\r\n")
			if got := steady.reply(); got != `"hi"` {
				t.Fatalf("a steady client: ECHO = %s", got)
			}
		}
		for _, c := range slow {
			c.expectClosed("-ERR Protocol error: request not completed within 5s\r\n")
		}
		wg.Wait()
		synctest.Wait() // the server has dropped them
		real := dialMem(t, n, "real2")
		if got := real.do("SET", "k", "v"); got != "+OK" {
			t.Fatalf("a real client after the slow ones were closed: SET = %s", got)
		}
		if got := steady.do("GET", "k"); got != `"v"` {
			t.Fatalf("the steady client: GET = %s", got)
		}
	})
}
