package resp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

func TestInlineCommands(t *testing.T) {
	_, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	r.send("PING\r\n\r\n   \r\nping\n")
	r.expect("+PONG\r\n+PONG\r\n")
	r.send("SET k \"a b\"\r\nGET k\r\n")
	r.expect("+OK\r\n$3\r\na b\r\n")
	r.send(`ECHO "\x41\n\t\"q\"" 'it\'s' x` + "\r\n")
	r.expect("-ERR wrong number of arguments for 'echo' command\r\n")
	r.send(`ECHO "\x41\n\t\"q\""` + "\r\n")
	r.expect("$6\r\nA\n\t\"q\"\r\n")
	r.send(`ECHO 'it\'s'` + "\r\n" + `ECHO ""` + "\n")
	r.expect("$4\r\nit's\r\n$0\r\n\r\n")
	r.send("ECHO \"a\"b\r\n")
	r.expectClosed("-ERR Protocol error: unbalanced quotes in request\r\n")

	r = dialRaw(t, addr)
	r.send("ECHO 'open\r\n")
	r.expectClosed("-ERR Protocol error: unbalanced quotes in request\r\n")

	r = dialRaw(t, addr)
	r.send(strings.Repeat("x", 70_000))
	r.expectClosed("-ERR Protocol error: too big inline request\r\n")
}

// TestPipelining sends many commands in one write and reads the replies in
// order; then go-redis pipelines.
func TestPipelining(t *testing.T) {
	_, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	var req, want bytes.Buffer
	for i := range 1000 {
		req.WriteString(cmd("SET", "key:"+strconv.Itoa(i), strings.Repeat("v", i)))
		want.WriteString("+OK\r\n")
	}
	for i := range 1000 {
		req.WriteString(cmd("GET", "key:"+strconv.Itoa(i)))
		want.WriteString("$" + strconv.Itoa(i) + "\r\n" + strings.Repeat("v", i) + "\r\n")
	}
	go func() { r.nc.Write(req.Bytes()) }() // replies flow back while the requests are written
	r.expect(want.String())

	c := newClient(t, addr)
	cmds, err := c.Pipelined(bg, func(p redis.Pipeliner) error {
		for i := range 500 {
			p.LPush(bg, "nosuch", "x") // unknown here: an error in the middle of a pipeline
			p.Get(bg, "key:"+strconv.Itoa(i))
		}
		return nil
	})
	if len(cmds) != 1000 {
		t.Fatalf("pipeline: %d replies, %v", len(cmds), err)
	}
	for i := 0; i < len(cmds); i += 2 {
		if e := cmds[i].Err(); e == nil || !strings.HasPrefix(e.Error(), "ERR unknown command 'lpush'") {
			t.Fatalf("reply %d: %v", i, e)
		}
		if v := cmds[i+1].(*redis.StringCmd).Val(); v != strings.Repeat("v", i/2) {
			t.Fatalf("reply %d: %q", i+1, v)
		}
	}
}

// TestSplitWrites sends requests in pieces of every size, down to one byte
// per write.
func TestSplitWrites(t *testing.T) {
	_, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	req := cmd("SET", "k", strings.Repeat("z", 3000)) + cmd("GET", "k") + "ECHO inline\r\n"
	want := "+OK\r\n$3000\r\n" + strings.Repeat("z", 3000) + "\r\n$6\r\ninline\r\n"
	for _, n := range []int{1, 2, 3, 7, 100, 1000} {
		for i := 0; i < len(req); i += n {
			r.send(req[i:min(i+n, len(req))])
		}
		r.expect(want)
	}
}

// TestBinarySafe stores keys and values holding every byte value, CR, LF
// and NUL included.
func TestBinarySafe(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := newClient(t, addr)
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	key, val := "k\x00\r\n"+string(all[:40]), string(all)+"\r\n$3\r\n"
	if err := c.Set(bg, key, val, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(bg, key).Result(); v != val || err != nil {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if vs := c.MGet(bg, key, "other").Val(); len(vs) != 2 || vs[0] != val {
		t.Fatalf("MGET = %q", vs)
	}
	if n := c.Exists(bg, key).Val(); n != 1 {
		t.Fatalf("EXISTS = %d", n)
	}
	if v := c.GetDel(bg, key).Val(); v != val {
		t.Fatalf("GETDEL = %q", v)
	}
	if n := c.Exists(bg, key).Val(); n != 0 {
		t.Fatalf("EXISTS after GETDEL = %d", n)
	}
}

// TestBadInput: each malformed request gets an error (and a close) or a
// close; the server keeps serving the other clients, whose data is intact.
func TestBadInput(t *testing.T) {
	s, addr := startServer(t, Config{})
	keeper := dialRaw(t, addr)
	if got := keeper.do("SET", "kept", "safe"); got != "+OK" {
		t.Fatal(got)
	}
	tests := []struct {
		name, send, want string
	}{
		{"negative bulk length", "*1\r\n$-2\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk length not a number", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk length with a plus", "*1\r\n$+4\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk length with a leading zero", "*1\r\n$04\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk length line too long", "*1\r\n$" + strings.Repeat("1", 40), "-ERR Protocol error: invalid bulk length\r\n"},
		{"multibulk length not a number", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"multibulk length without CR", "*1\n$4\r\nPING\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"multibulk length line too long", "*" + strings.Repeat("9", 40), "-ERR Protocol error: invalid multibulk length\r\n"},
		{"no $ before an argument", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
		{"binary byte instead of $", "*1\r\n\x00", `-ERR Protocol error: expected '$', got '\x00'` + "\r\n"},
		{"no CRLF after bulk data", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected CRLF after bulk data\r\n"},
		{"huge bulk length", "*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge multibulk length", "*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"good commands, then garbage", "*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$-7\r\n", "+PONG\r\n+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"},
		{"half-sent request", "*3\r\n$3\r\nSET\r\n$4\r\nkept\r\n$5\r\nev", ""},
		{"half-sent header", "*3\r\n$3\r\nSET\r\n$", ""},
		{"half-sent inline", "SET kept ev", ""},
		{"empty and null multibulk", "*0\r\n*-1\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, addr)
			r.send(tt.send)
			r.nc.(*net.TCPConn).CloseWrite() // the client is done: the server must answer, then close
			r.expectClosed(tt.want)
			if got := keeper.do("GET", "kept"); got != `"safe"` {
				t.Fatalf("another client's data after bad input: %s", got)
			}
			healthy(t, addr)
		})
	}
	// Garbage that forms inline commands gets Redis's unknown-command error
	// and does not close the connection.
	r := dialRaw(t, addr)
	r.send("\x00\xffgarbage\r\n")
	r.expect("-ERR unknown command '\x00\xffgarbage', with args beginning with: \r\n")
	if got := r.do("PING"); got != "+PONG" {
		t.Errorf("PING after an unknown inline command: %s", got)
	}
	testkit.Eventually(t, "the bad clients to be gone", func() bool { return s.Stats().Clients == 2 })
}

// TestRandomBytes feeds seeded random bytes — noise, and noise spliced into
// valid requests — through real connections; the server must answer or
// close each, and go on serving with its data intact.
func TestRandomBytes(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	s, addr := startServer(t, Config{MaxRequestBytes: 1 << 20, MaxBulkBytes: 64 << 10})
	keeper := dialRaw(t, addr)
	keeper.do("SET", "kept", "safe")
	pieces := []string{
		cmd("SET", "rk", "v"), cmd("GET", "rk"), cmd("PING"), "*2\r\n$4\r\nECHO\r\n$", "$5\r\n", "*3\r\n",
		"\r\n", "\n", "\"", "'", "\\x4", "*-1\r\n", "$-1\r\n", "*1\r\n$999\r\n", "*99999999\r\n", "GET rk\r\n",
	}
	for i := range 300 {
		var b []byte
		for range rng.IntN(8) + 1 {
			if rng.IntN(2) == 0 {
				b = append(b, pieces[rng.IntN(len(pieces))]...)
			} else {
				for range rng.IntN(64) {
					b = append(b, byte(rng.UintN(256)))
				}
			}
		}
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
		nc.Write(b)
		nc.(*net.TCPConn).CloseWrite()
		if _, err := readUntilClosed(nc); err != nil && !isReset(err) {
			t.Fatalf("input %d %q (seed %d): the server neither answered nor closed: %v", i, b, seed, err)
		}
		nc.Close()
	}
	if got := keeper.do("GET", "kept"); got != `"safe"` {
		t.Fatalf("data after random input: %s (seed %d)", got, seed)
	}
	healthy(t, addr)
	testkit.Eventually(t, "the random clients to be gone", func() bool { return s.Stats().Clients == 1 })
}

func readUntilClosed(nc net.Conn) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(nc)
	return out.Bytes(), err
}

// TestWaitClientGone: a client that disconnects while blocked in WAIT is
// dropped at once, as in Redis, not left blocked forever.
func TestWaitClientGone(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	s, addr := startServer(t, Config{Node: nodes[0]})
	r := dialRaw(t, addr)
	r.send(cmd("SET", "k", "v") + cmd("WAIT", "5", "0") + cmd("PING"))
	r.expect("+OK\r\n")
	testkit.Eventually(t, "the client to block", func() bool { return s.blocked.Load() == 1 })
	r.nc.Close()
	testkit.Eventually(t, "the blocked client to be dropped", func() bool { return s.Stats().Clients == 0 && s.blocked.Load() == 0 })
}

// TestWaitKeepsPipelinedCommands: commands sent behind a blocking WAIT run
// after it. It runs in a synctest bubble, so that the commands are sent
// while the WAIT is certainly blocked, however loaded the machine.
func TestWaitKeepsPipelinedCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's and nodes' cleanups: they close first
		nodes := memRegions(t, n, "us", "eu")
		linksUp(t, nodes)
		s := memServer(t, n, Config{Node: nodes[0]})
		r := dialMem(t, n, "client")
		r.send(cmd("SET", "k", "v") + cmd("WAIT", "5", "300"))
		r.expect("+OK\r\n")
		synctest.Wait()
		if s.blocked.Load() != 1 {
			t.Fatal("WAIT 5 300 with two regions is not blocked")
		}
		r.send(cmd("GET", "k") + cmd("ECHO", strings.Repeat("e", 10_000)))
		r.expect(":1\r\n$1\r\nv\r\n$10000\r\n" + strings.Repeat("e", 10_000) + "\r\n")
	})
}

// TestCloseUnblocksClients: Close ends blocked WAITs, idle clients and
// clients in the middle of a request, and returns once they are gone.
func TestCloseUnblocksClients(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	s, addr := startServer(t, Config{Node: nodes[0]})
	blocked, idle, half := dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)
	blocked.send(cmd("SET", "k", "v") + cmd("WAIT", "5", "0"))
	blocked.expect("+OK\r\n")
	half.send("*2\r\n$3\r\nGET\r\n$10\r\nabc")
	if idle.do("PING") != "+PONG" {
		t.Fatal("PING")
	}
	testkit.Eventually(t, "the client to block", func() bool { return s.blocked.Load() == 1 })
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(testkit.EventuallyTimeout):
		t.Fatal("Close did not return")
	}
	for _, r := range []*rawConn{idle, half} {
		r.expectClosed("")
	}
	if st := s.Stats(); st.Clients != 0 {
		t.Errorf("clients after Close: %d", st.Clients)
	}
	if err := s.Serve(mustListen(t)); err != nil {
		t.Errorf("Serve after Close = %v; want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeSeveralListeners serves one Server on two listeners.
func TestServeSeveralListeners(t *testing.T) {
	s, addr := startServer(t, Config{})
	ln := mustListen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	a, b := dialRaw(t, addr), dialRaw(t, ln.Addr().String())
	a.do("SET", "k", "shared")
	if got := b.do("GET", "k"); got != `"shared"` {
		t.Fatalf("the second listener: %s", got)
	}
	s.Close()
	if err := <-served; err != nil {
		t.Errorf("Serve on the second listener returned %v", err)
	}
}

// TestConditionalWritesAreAtomic: of many clients racing SETNX and SET NX
// GET on one key, exactly one wins.
func TestConditionalWritesAreAtomic(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := newClient(t, addr, func(o *redis.Options) { o.PoolSize = 16 })
	for round := range 20 {
		key := fmt.Sprintf("race:%d", round)
		var mu sync.Mutex
		wins := 0
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				var won bool
				if i%2 == 0 {
					won = c.SetNX(bg, key, i, 0).Val()
				} else {
					_, err := c.Do(bg, "SET", key, i, "NX", "GET").Result()
					won = err == redis.Nil
				}
				if won {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("round %d: %d winners of SETNX; want exactly 1", round, wins)
		}
	}
}

// TestStats checks the server's counters.
func TestStats(t *testing.T) {
	s, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	r.do("SET", "a", "1")
	r.do("GET", "a")
	r.do("GET")    // arity: an error, not executed
	r.do("nosuch") // unknown: an error, not executed
	r.do("SET", "a", "1", "EX", "0")
	st := s.Stats()
	if st.Clients != 1 || st.Connections != 1 || st.Commands != 3 || st.Errors != 3 || st.Rejected != 0 {
		t.Errorf("stats %+v; want 1 client, 1 connection, 3 commands, 3 errors", st)
	}
}

func TestClientInfoAndList(t *testing.T) {
	_, addr := startServer(t, Config{})
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.do("CLIENT", "SETNAME", "alpha")
	a.do("CLIENT", "SETINFO", "lib-name", "mylib")
	b.do("HELLO", "3")
	b.do("GEOCACHE", "ACK", "QUORUM")
	info := a.do("CLIENT", "INFO")
	for _, want := range []string{"id=1 ", "name=alpha ", "flags=N db=0", "cmd=client ", "ack=local ", "resp=2 ", "lib-name=mylib "} {
		if !strings.Contains(info, want) {
			t.Errorf("CLIENT INFO lacks %q: %s", want, info)
		}
	}
	list := a.do("CLIENT", "LIST")
	lines := strings.Split(strings.Trim(list, `"`), `\n`)
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "id=1 ") || !strings.HasPrefix(lines[1], "id=2 ") ||
		!strings.Contains(lines[1], "ack=quorum resp=3") {
		t.Errorf("CLIENT LIST: %s", list)
	}
}

// TestManyArgumentsAnsweredInOrder pins the bug where a command of 1,707 or
// more arguments was dropped unanswered (the reader let go of its argument
// slice before returning it), so that every later reply of a pipeline
// answered the wrong command. Each size is sent in a pipeline between two
// commands whose replies must follow the big command's own, in order.
func TestManyArgumentsAnsweredInOrder(t *testing.T) {
	const limit = 200_000
	_, addr := startServer(t, Config{MaxArgs: limit})
	r := dialRaw(t, addr)
	for _, n := range []int{1706, 1707, 2049, 100_000, limit - 1} {
		pairs := n / 2 // MSET k v ... takes 1 + 2 × pairs arguments
		args := make([]string, 0, 1+2*pairs)
		args = append(args, "MSET")
		for i := range pairs {
			args = append(args, "k"+strconv.Itoa(i), "v"+strconv.Itoa(n))
		}
		exists := make([]string, 0, n)
		exists = append(exists, "EXISTS")
		for i := range n - 1 {
			exists = append(exists, "k"+strconv.Itoa(i%(pairs+1)))
		}
		req := cmd(args...) + cmd("GET", "k1") + cmd("PING") + cmd(exists...) + cmd("ECHO", "last")
		go func() { r.nc.Write([]byte(req)) }()
		want := "+OK\r\n" + // MSET
			"$" + strconv.Itoa(len("v"+strconv.Itoa(n))) + "\r\nv" + strconv.Itoa(n) + "\r\n" + // GET k1
			"+PONG\r\n" +
			":" + strconv.Itoa(n-1-(n-1)/(pairs+1)) + "\r\n" + // EXISTS counts every present key it names; k<pairs> is absent
			"$4\r\nlast\r\n"
		r.expect(want)
	}
}

// TestArgumentLimitIsExact: a command of exactly MaxArgs arguments is
// served; one more is refused with the protocol error.
func TestArgumentLimitIsExact(t *testing.T) {
	const limit = 3000
	_, addr := startServer(t, Config{MaxArgs: limit})
	r := dialRaw(t, addr)
	args := []string{"DEL"}
	for i := range limit - 1 {
		args = append(args, "x"+strconv.Itoa(i))
	}
	r.send(cmd(args...) + cmd("PING"))
	r.expect(":0\r\n+PONG\r\n")
	r.send(cmd(append(args, "one-more")...))
	r.expectClosed("-ERR Protocol error: invalid multibulk length\r\n") // Redis's text for a count over its limit
}
