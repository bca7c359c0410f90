package resp

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

// goroutinesRunning counts the goroutines whose stack has fn.
func goroutinesRunning(fn string) int {
	buf := make([]byte, 1<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// CLIENT KILL closes the connections it names, whatever they are doing
// (idle, subscribed with a writer goroutine, blocked in WAIT with a
// watcher goroutine), and their goroutines end; the old form answers +OK,
// the filters a count; SKIPME spares the caller unless it says no.
func TestClientKill(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	s, addr := startServer(t, Config{Node: nodes[0]})
	admin, idle, sub, blocked := dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)
	id := func(r *rawConn) string {
		t.Helper()
		got := r.do("CLIENT", "ID")
		if !strings.HasPrefix(got, ":") {
			t.Fatalf("CLIENT ID: %s", got)
		}
		return got[1:]
	}
	adminID, idleID, blockedID := id(admin), id(idle), id(blocked)
	if got := sub.do("SUBSCRIBE", "ch"); got != `["subscribe" "ch" :1]` {
		t.Fatalf("SUBSCRIBE: %s", got)
	}
	blocked.send(cmd("SET", "k", "v") + cmd("WAIT", "5", "0"))
	blocked.expect("+OK\r\n")
	testkit.Eventually(t, "the client to block", func() bool { return s.blocked.Load() == 1 })
	testkit.Eventually(t, "one pub/sub writer, the subscriber's", func() bool { return goroutinesRunning("(*psQueue).run") == 1 })

	if got := admin.do("CLIENT", "KILL", "ID", adminID); got != ":0" {
		t.Errorf("CLIENT KILL ID <self> (SKIPME yes): %s; want :0", got)
	}
	if got := admin.do("CLIENT", "KILL", "TYPE", "pubsub"); got != ":1" {
		t.Errorf("CLIENT KILL TYPE pubsub: %s; want :1", got)
	}
	sub.expectClosed("")
	testkit.Eventually(t, "the subscriber's goroutines to end", func() bool {
		return goroutinesRunning("(*psQueue).run") == 0 && s.Stats().Clients == 4-1 && s.Stats().PubSubChannels == 0
	})
	if got := admin.do("CLIENT", "KILL", "ID", blockedID, "SKIPME", "no"); got != ":1" {
		t.Errorf("CLIENT KILL ID <blocked>: %s; want :1", got)
	}
	blocked.expectClosed("")
	testkit.Eventually(t, "the blocked client's goroutines to end", func() bool {
		return s.blocked.Load() == 0 && s.Stats().Clients == 2 && goroutinesRunning("(*conn).block") == 0
	})
	idleAddr := idle.nc.LocalAddr().String()
	if got := admin.do("CLIENT", "KILL", idleAddr); got != "+OK" {
		t.Errorf("CLIENT KILL %s: %s; want +OK", idleAddr, got)
	}
	idle.expectClosed("")
	if got := admin.do("CLIENT", "KILL", idleAddr); got != "-ERR No such client" {
		t.Errorf("CLIENT KILL of a client gone: %s", got)
	}
	if got := admin.do("CLIENT", "KILL", "ID", idleID); got != ":0" {
		t.Errorf("CLIENT KILL ID of a client gone: %s", got)
	}
	testkit.Eventually(t, "one client left", func() bool { return s.Stats().Clients == 1 && goroutinesRunning("(*conn).serve") == 1 })

	// LADDR and TYPE normal match everyone but the caller; the caller,
	// named with SKIPME no, gets its reply and is closed after it.
	others := []*rawConn{dialRaw(t, addr), dialRaw(t, addr)}
	for _, o := range others {
		o.do("PING")
	}
	if got := admin.do("CLIENT", "KILL", "LADDR", admin.nc.RemoteAddr().String(), "TYPE", "normal"); got != ":2" {
		t.Errorf("CLIENT KILL LADDR <server> TYPE normal: %s; want :2", got)
	}
	for _, o := range others {
		o.expectClosed("")
	}
	admin.send(cmd("CLIENT", "KILL", "USER", "default", "SKIPME", "no") + cmd("PING"))
	admin.expectClosed(":1\r\n")
	self := dialRaw(t, addr)
	self.send(cmd("CLIENT", "KILL", self.nc.LocalAddr().String()) + cmd("PING"))
	self.expectClosed("+OK\r\n")
	testkit.Eventually(t, "every client gone", func() bool { return s.Stats().Clients == 0 && goroutinesRunning("(*conn).serve") == 0 })
}

// clientReplyRun is CLIENT REPLY's behaviour as redis-server 7.0.15 shows
// it, byte for byte: OFF silences everything (errors too) until ON, which
// answers; SKIP silences the next command, whatever it is, and does
// nothing while OFF; an ON after SKIP answers; a SKIP inside a transaction
// skips the command after EXEC (and leaves EXEC's array a reply short,
// as Redis does); RESET turns OFF off but not a SKIP.
func clientReplyRun(t *testing.T, addr string) {
	r := dialRaw(t, addr)
	r.send("CLIENT REPLY OFF\r\nPING\r\nCLIENT REPLY FOO\r\nCLIENT REPLY SKIP\r\nPING\r\nNOSUCH\r\nCLIENT REPLY ON\r\nPING a\r\n" +
		"CLIENT REPLY SKIP\r\nCLIENT REPLY SKIP\r\nPING b\r\nPING c\r\nCLIENT REPLY SKIP\r\nFOO\r\nPING d\r\n" +
		"CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING e\r\nCLIENT REPLY SKIP\r\nGET\r\nPING f\r\n" +
		"MULTI\r\nCLIENT REPLY SKIP\r\nEXEC\r\nPING g\r\n" +
		"CLIENT REPLY OFF\r\nRESET\r\nCLIENT REPLY SKIP\r\nRESET\r\nPING h\r\nQUIT\r\n")
	r.expectClosed("+OK\r\n$1\r\na\r\n$1\r\nc\r\n$1\r\nd\r\n+OK\r\n$1\r\ne\r\n$1\r\nf\r\n" +
		"+OK\r\n+QUEUED\r\n*1\r\n" +
		"+RESET\r\n$1\r\nh\r\n+OK\r\n")

	// Confirmations and messages are not silenced.
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.send(cmd("CLIENT", "REPLY", "OFF") + cmd("SUBSCRIBE", "ch") + cmd("PING"))
	a.expect("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
	if got := b.do("PUBLISH", "ch", "hi"); got != ":1" {
		t.Fatalf("PUBLISH: %s", got)
	}
	a.expect("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n")
	a.send(cmd("UNSUBSCRIBE") + cmd("CLIENT", "REPLY", "ON") + cmd("CLIENT", "REPLY", "SKIP") + cmd("SUBSCRIBE", "ch") + cmd("PING") + cmd("UNSUBSCRIBE"))
	a.expect("*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n+OK\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n" +
		"*2\r\n$4\r\npong\r\n$0\r\n\r\n*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n")
	if got := a.do("PING"); got != "+PONG" {
		t.Errorf("PING after it all: %s", got)
	}
}

func TestClientReply(t *testing.T) {
	_, addr := startServer(t, Config{})
	clientReplyRun(t, addr)
}

func TestClientReplyAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	clientReplyRun(t, addr)
}

// A silenced command's long reply, flushed in pieces as it is made, is
// dropped whole, and the replies before it are not.
func TestClientReplyLongReply(t *testing.T) {
	_, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	big := strings.Repeat("v", 100_000)
	if got := r.do("SET", "k", big); got != "+OK" {
		t.Fatal(got)
	}
	var mget []string
	for range 20 {
		mget = append(mget, "k")
	}
	r.send(cmd("PING", "before") + cmd("CLIENT", "REPLY", "SKIP") + cmd(append([]string{"MGET"}, mget...)...) + cmd("PING", "after"))
	r.expect("$6\r\nbefore\r\n$5\r\nafter\r\n")
}

// value is a RESP reply parsed: string, int64, nil or []any.
func readValue(t *testing.T, br *bufio.Reader) any {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	body := strings.TrimSuffix(line[1:], "\r\n")
	switch line[0] {
	case ':':
		n, _ := strconv.ParseInt(body, 10, 64)
		return n
	case '+', '-':
		return line[:len(line)-2]
	case '$':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		return string(b[:n])
	case '*':
		n, _ := strconv.Atoi(body)
		out := make([]any, n)
		for i := range out {
			out[i] = readValue(t, br)
		}
		return out
	}
	t.Fatalf("unexpected reply %q", line)
	return nil
}

// slowlogRun checks SLOWLOG's entries as redis-server 7.0.15 makes them:
// newest first, ids in order, the time, the client's address and name,
// arguments cut at 32 and 128 bytes in Redis's forms, passwords redacted,
// EXEC not logged but its commands, and the list trimmed to
// slowlog-max-len. It leaves the settings as Redis's defaults.
func slowlogRun(t *testing.T, addr string) {
	r := dialRaw(t, addr)
	long := strings.Repeat("v", 130)
	msetArgs := []string{"MSET"}
	for i := range 17 {
		msetArgs = append(msetArgs, "k"+strconv.Itoa(i), strconv.Itoa(i))
	}
	steps := [][]string{
		{"CONFIG", "SET", "slowlog-log-slower-than", "0"},
		{"SLOWLOG", "RESET"},
		{"CLIENT", "SETNAME", "slowname"},
		{"SET", "k", long},
		msetArgs,
		{"AUTH", "a", "b"},
		{"HELLO", "2", "AUTH", "default", "x", "SETNAME", "n"},
		{"CONFIG", "SET", "requirepass", "pw", "timeout", "0"},
		{"AUTH", "pw"},
		{"CONFIG", "SET", "requirepass", ""},
		{"MULTI"},
		{"SET", "x", "1"},
		{"EXEC"},
	}
	for _, args := range steps {
		r.do(args...)
	}
	start := time.Now().Unix()
	r.send(cmd("SLOWLOG", "GET", "-1"))
	r.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	entries, ok := readValue(t, r.br).([]any)
	if !ok {
		t.Fatalf("SLOWLOG GET: not an array")
	}
	wantArgs := []string{
		`set x 1`, `multi`, `config set requirepass (redacted)`, `AUTH (redacted)`,
		`CONFIG SET requirepass (redacted) timeout 0`, `HELLO 2 AUTH (redacted) (redacted) SETNAME n`, `AUTH (redacted) (redacted)`,
		strings.Join(append(msetArgs[:31:31], "... (4 more arguments)"), " "),
		"SET k " + strings.Repeat("v", 128) + "... (2 more bytes)",
		`CLIENT SETNAME slowname`, `SLOWLOG RESET`,
	}
	// The first steps run before: lower case where the script sent lower
	// case.
	wantArgs[0], wantArgs[1], wantArgs[2] = "SET x 1", "MULTI", "CONFIG SET requirepass (redacted)"
	if len(entries) != len(wantArgs) {
		t.Fatalf("%d entries; want %d: %v", len(entries), len(wantArgs), entries)
	}
	var lastID int64 = -1
	for i, e := range entries {
		f := e.([]any)
		id, unix, us := f[0].(int64), f[1].(int64), f[2].(int64)
		var args []string
		for _, a := range f[3].([]any) {
			args = append(args, a.(string))
		}
		if lastID >= 0 && id != lastID-1 {
			t.Errorf("entry %d: id %d after %d; want ids one apart, newest first", i, id, lastID)
		}
		lastID = id
		if unix < start-60 || unix > start+60 || us < 0 {
			t.Errorf("entry %d: time %d, duration %d µs", i, unix, us)
		}
		if got := strings.Join(args, " "); got != wantArgs[i] {
			t.Errorf("entry %d: args %q; want %q", i, got, wantArgs[i])
		}
		if f[4] != r.nc.LocalAddr().String() {
			t.Errorf("entry %d: client %v; want %s", i, f[4], r.nc.LocalAddr())
		}
		name := "slowname" // a command is logged once it ran
		if i == len(wantArgs)-1 {
			name = "" // before CLIENT SETNAME
		} else if i <= len(wantArgs)-6 {
			name = "n" // from HELLO ... SETNAME n on
		}
		if f[5] != name {
			t.Errorf("entry %d (%s): name %v; want %q", i, wantArgs[i], f[5], name)
		}
	}
	if got := r.do("SLOWLOG", "GET", "2"); strings.Count(got, `"n"]`) != 2 {
		t.Errorf("SLOWLOG GET 2: %s", got)
	}
	for _, step := range [][]string{{"CONFIG", "SET", "slowlog-max-len", "3"}, {"PING"}, {"PING"}} {
		r.do(step...)
	}
	if got := r.do("SLOWLOG", "LEN"); got != ":3" {
		t.Errorf("SLOWLOG LEN with slowlog-max-len 3: %s", got)
	}
	if got := r.do("SLOWLOG", "GET", "0"); got != "[]" {
		t.Errorf("SLOWLOG GET 0: %s", got)
	}
	for _, step := range [][]string{{"CONFIG", "SET", "slowlog-log-slower-than", "-1"}, {"SLOWLOG", "RESET"}, {"PING"}} {
		r.do(step...)
	}
	if got := r.do("SLOWLOG", "LEN"); got != ":0" {
		t.Errorf("SLOWLOG LEN with slowlog-log-slower-than -1: %s", got)
	}
	r.do("CONFIG", "SET", "slowlog-log-slower-than", "10000", "slowlog-max-len", "128")
}

func TestSlowlogEntries(t *testing.T) {
	_, addr := startServer(t, Config{})
	slowlogRun(t, addr)
}

func TestSlowlogEntriesAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	slowlogRun(t, addr)
}

// Commands faster than slowlog-log-slower-than are not logged: with a
// threshold no command reaches, the log stays empty; the list never holds
// more than slowlog-max-len entries.
func TestSlowlogThreshold(t *testing.T) {
	s, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	r.do("CONFIG", "SET", "slowlog-log-slower-than", strconv.FormatInt(int64(time.Hour/time.Microsecond), 10))
	r.do("SLOWLOG", "RESET")
	for range 100 {
		r.do("SET", "k", "v")
	}
	if got := r.do("SLOWLOG", "LEN"); got != ":0" {
		t.Errorf("SLOWLOG LEN with a threshold of an hour: %s", got)
	}
	r.do("CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "7")
	for range 100 {
		r.do("GET", "k")
	}
	s.slowlog.mu.Lock()
	n := len(s.slowlog.entries)
	s.slowlog.mu.Unlock()
	if n != 7 {
		t.Errorf("%d entries held with slowlog-max-len 7", n)
	}
}

// CONFIG SET requirepass applies to the AUTHs that follow: connections
// authenticated stay so, new ones must AUTH, and clearing it lets even
// unauthenticated connections in (Redis's default user becomes nopass).
// RESET deauthenticates while a password is set.
func TestConfigSetRequirepass(t *testing.T) {
	_, addr := startServer(t, Config{})
	admin := dialRaw(t, addr)
	if got := admin.do("CONFIG", "SET", "requirepass", "s3cret"); got != "+OK" {
		t.Fatal(got)
	}
	if got := admin.do("PING"); got != "+PONG" {
		t.Errorf("the connection that set the password: PING = %s", got)
	}
	r := dialRaw(t, addr)
	if got := r.do("GET", "k"); got != "-NOAUTH Authentication required." {
		t.Errorf("a new connection before AUTH: %s", got)
	}
	if got := r.do("AUTH", "wrong"); got != "-"+errWrongPass {
		t.Errorf("AUTH wrong: %s", got)
	}
	if got := r.do("AUTH", "s3cret"); got != "+OK" {
		t.Errorf("AUTH with the new password: %s", got)
	}
	if got := r.do("INFO", "commandstats"); !strings.Contains(got, `cmdstat_get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n`) {
		t.Errorf("INFO commandstats after a GET refused for NOAUTH: %s", got)
	}
	if got := r.do("RESET"); got != "+RESET" {
		t.Errorf("RESET: %s", got)
	}
	if got := r.do("GET", "k"); got != "-NOAUTH Authentication required." {
		t.Errorf("after RESET: %s", got)
	}
	if got := admin.do("CONFIG", "SET", "requirepass", ""); got != "+OK" {
		t.Fatal(got)
	}
	if got := r.do("GET", "k"); got != "nil" {
		t.Errorf("the unauthenticated connection once the password is cleared: %s", got)
	}
	if got := dialRaw(t, addr).do("AUTH", "x"); !strings.HasPrefix(got, "-ERR AUTH <password> called without any password configured") {
		t.Errorf("AUTH without a password: %s", got)
	}
}

// CONFIG SET maxmemory resizes the node's budget at once: a smaller one
// evicts down to it, and INFO and CONFIG GET show it.
func TestConfigSetMaxmemory(t *testing.T) {
	node := testNode(t, geocache.Config{MaxBytes: 8 << 20})
	_, addr := startServer(t, Config{Node: node})
	r := dialRaw(t, addr)
	value := strings.Repeat("v", 1000)
	for i := range 2000 {
		if got := r.do("SET", "key"+strconv.Itoa(i), value); got != "+OK" {
			t.Fatalf("SET: %s", got)
		}
	}
	if got := r.do("CONFIG", "SET", "maxmemory", "1mb"); got != "+OK" {
		t.Fatalf("CONFIG SET maxmemory 1mb: %s", got)
	}
	st := node.Stats()
	if st.Bytes > 1<<20 || st.Evictions == 0 || st.Entries+int(st.Evictions) != 2000 {
		t.Errorf("after CONFIG SET maxmemory 1mb: %d bytes, %d entries, %d evicted", st.Bytes, st.Entries, st.Evictions)
	}
	info := r.do("INFO", "memory")
	if !strings.Contains(info, `\r\nmaxmemory:1048576\r\nmaxmemory_human:1.00M\r\n`) {
		t.Errorf("INFO memory: %s", info)
	}
	if got := r.do("CONFIG", "GET", "maxmemory"); got != `["maxmemory" "1048576"]` {
		t.Errorf("CONFIG GET maxmemory: %s", got)
	}
	if got := r.do("INFO", "stats"); !strings.Contains(got, `\r\nevicted_keys:`+strconv.FormatUint(st.Evictions, 10)+`\r\n`) {
		t.Errorf("INFO stats: %s", got)
	}
	// A key's MEMORY USAGE is what the node charges it.
	n, _ := node.MemoryUsage("key1999")
	if got := r.do("MEMORY", "USAGE", "key1999", "SAMPLES", "0"); got != ":"+strconv.FormatInt(n, 10) || n < 1007 {
		t.Errorf("MEMORY USAGE key1999: %s; want :%d, over its key and value", got, n)
	}
}

// CONFIG SET timeout applies to connections already waiting for a
// request, without a deadline until then: as in Redis, idleness counts
// from their last request, so one idle for longer than the new timeout is
// closed at once, and the others once they have been idle that long.
func TestConfigSetTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() }) // after the server's and nodes' cleanups: they close first
		memServer(t, n, Config{})
		idle, fresh, admin := dialMem(t, n, "idle"), dialMem(t, n, "fresh"), dialMem(t, n, "admin")
		if got := idle.do("PING"); got != "+PONG" {
			t.Fatal(got)
		}
		time.Sleep(time.Hour)
		if got := fresh.do("PING"); got != "+PONG" {
			t.Fatal(got)
		}
		synctest.Wait() // both wait for their next request, without a deadline
		if got := admin.do("CONFIG", "SET", "timeout", "2"); got != "+OK" {
			t.Fatal(got)
		}
		synctest.Wait()
		idle.expectClosed("")
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := fresh.do("PING"); got != "+PONG" {
			t.Fatalf("a client idle for just under the new timeout: %s", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		fresh.expectClosed("")
		admin.expectClosed("") // idle too since its CONFIG SET
		later := dialMem(t, n, "later")
		if got := later.do("CONFIG", "SET", "timeout", "0"); got != "+OK" {
			t.Fatal(got)
		}
		time.Sleep(time.Hour)
		if got := later.do("PING"); got != "+PONG" {
			t.Errorf("with the timeout off again, after an hour: %s", got)
		}
	})
}

// CONFIG SET maxclients applies to the next connections.
func TestConfigSetMaxclients(t *testing.T) {
	_, addr := startServer(t, Config{})
	admin := dialRaw(t, addr)
	other := dialRaw(t, addr)
	other.do("PING")
	if got := admin.do("CONFIG", "SET", "maxclients", "2"); got != "+OK" {
		t.Fatal(got)
	}
	dialRaw(t, addr).expectClosed("-ERR max number of clients reached\r\n")
	if got := admin.do("INFO", "clients"); !strings.Contains(got, `maxclients:2\r\n`) {
		t.Errorf("INFO clients: %s", got)
	}
	admin.do("CONFIG", "SET", "maxclients", "3")
	if got := dialRaw(t, addr).do("PING"); got != "+PONG" {
		t.Errorf("a third client once maxclients is 3: %s", got)
	}
}

// CONFIG SET client-output-buffer-limit applies to subscribers at once.
func TestConfigSetPubSubLimit(t *testing.T) {
	s, addr := startServer(t, Config{})
	admin, sub := dialRaw(t, addr), dialRaw(t, addr)
	if got := sub.do("SUBSCRIBE", "ch"); got != `["subscribe" "ch" :1]` {
		t.Fatal(got)
	}
	if got := admin.do("PUBLISH", "ch", strings.Repeat("m", 2000)); got != ":1" {
		t.Fatalf("PUBLISH under the default limits: %s", got)
	}
	sub.expect(fmt.Sprintf("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2000\r\n%s\r\n", strings.Repeat("m", 2000)))
	if got := admin.do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1kb 0 0"); got != "+OK" {
		t.Fatal(got)
	}
	admin.do("PUBLISH", "ch", strings.Repeat("m", 2000))
	sub.expectClosed("")
	if st := s.Stats(); st.OutputBufferDisconnections != 1 {
		t.Errorf("OutputBufferDisconnections = %d; want 1", st.OutputBufferDisconnections)
	}
	if got := admin.do("CONFIG", "GET", "client-output-buffer-limit"); got != `["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 1024 0 0"]` {
		t.Errorf("CONFIG GET: %s", got)
	}
}

// A limit that is off (math.MaxInt64 in Config, as geocache serve passes
// Redis's 0) reads 0, as Redis shows it.
func TestConfigGetOutputLimitOff(t *testing.T) {
	_, addr := startServer(t, Config{PubSubHardLimit: noLimit, PubSubSoftLimit: noLimit, PubSubSoftTime: time.Nanosecond})
	if got := dialRaw(t, addr).do("CONFIG", "GET", "client-output-buffer-limit"); got != `["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 0 0 0"]` {
		t.Errorf("CONFIG GET: %s", got)
	}
}

// INFO errorstats counts error replies by code, as Redis; commandstats
// shows rejected and failed calls; the default INFO has both errorstats
// and persistence.
func TestInfoErrorstats(t *testing.T) {
	_, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	r.do("NOSUCH")
	r.do("GET")
	r.do("HELLO", "4")
	r.do("SET", "s", "x")
	r.do("INCR", "s")
	r.do("MULTI")
	r.do("GET")
	r.do("EXEC")
	if got, want := r.do("INFO", "errorstats"), strconv.Quote("# Errorstats\r\nerrorstat_ERR:count=4\r\nerrorstat_EXECABORT:count=1\r\nerrorstat_NOPROTO:count=1\r\n"); got != want {
		t.Errorf("INFO errorstats: %s\n\twant %s", got, want)
	}
	stats := r.do("INFO", "commandstats")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`cmdstat_get:calls=0,usec=0,usec_per_call=0\.00,rejected_calls=2,failed_calls=0\\r\\n`),
		regexp.MustCompile(`cmdstat_incr:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=1\\r\\n`),
		regexp.MustCompile(`cmdstat_exec:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=1\\r\\n`),
		regexp.MustCompile(`cmdstat_set:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0\\r\\n`),
	} {
		if !want.MatchString(stats) {
			t.Errorf("INFO commandstats lacks %s:\n%s", want, stats)
		}
	}
	info := r.do("INFO")
	for _, section := range []string{"# Persistence\\r\\nloading:0\\r\\n", "# Errorstats\\r\\nerrorstat_ERR:count=4\\r\\n"} {
		if !strings.Contains(info, section) {
			t.Errorf("INFO lacks %q: %s", section, info)
		}
	}
	if got := r.do("INFO", "stats"); !strings.Contains(got, `total_error_replies:6\r\n`) {
		t.Errorf("INFO stats: %s", got)
	}
}

// RESET returns to RESP2, leaves subscriptions without confirmations and
// the acknowledgement level to LOCAL.
func TestReset(t *testing.T) {
	s, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	r.do("HELLO", "3")
	r.send(cmd("SUBSCRIBE", "a", "b") + cmd("PSUBSCRIBE", "p*"))
	for range 3 {
		r.reply()
	}
	r.do("GEOCACHE", "ACK", "ALL")
	r.send(cmd("RESET") + cmd("CLIENT", "GETNAME") + cmd("GEOCACHE", "ACK"))
	r.expect("+RESET\r\n$-1\r\n+LOCAL\r\n")
	if st := s.Stats(); st.PubSubChannels != 0 || st.PubSubPatterns != 0 {
		t.Errorf("after RESET: %+v", st)
	}
	if got := r.do("SUBSCRIBE", "c"); got != `["subscribe" "c" :1]` {
		t.Errorf("SUBSCRIBE after RESET: %s", got)
	}
	if got := r.do("RESET"); got != "+RESET" {
		t.Errorf("RESET while subscribed in RESP2: %s", got)
	}
	if got := r.do("GET", "k"); got != "nil" {
		t.Errorf("GET after RESET: %s", got)
	}
	if got := r.do("COMMAND", "INFO", "reset"); got != `[["reset" :1 [+noscript +loading +stale +fast +no_auth +allow_busy] :0 :0 :0 [] [] [] []]]` {
		t.Errorf("COMMAND INFO reset: %s", got)
	}
}

// INFO commandstats counts a container command by subcommand, as Redis 7
// (cmdstat_config|get, never cmdstat_config), in any case the client
// writes it, with the errors of a subcommand counted on it.
func TestCommandstatsBySubcommand(t *testing.T) {
	_, addr := startServer(t, Config{})
	checkCommandstatsBySubcommand(t, addr)
}

func TestCommandstatsBySubcommandAgainstRedis(t *testing.T) {
	checkCommandstatsBySubcommand(t, redisAddr(t))
}

func checkCommandstatsBySubcommand(t *testing.T, addr string) {
	r := dialRaw(t, addr)
	r.do("CONFIG", "RESETSTAT") // both count from here (redis-server has served the whole run)
	r.do("CLIENT", "ID")
	r.do("config", "GET", "maxmemory")
	r.do("CONFIG", "get", "maxmemory-policy")
	r.do("CLIENT", "KILL", "1.2.3.4:5") // an error: no such client
	r.do("OBJECT", "ENCODING", "nosuchkey")
	stats := r.do("INFO", "commandstats")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`cmdstat_client\|id:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0\\r\\n`),
		regexp.MustCompile(`cmdstat_config\|get:calls=2,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0\\r\\n`),
		regexp.MustCompile(`cmdstat_client\|kill:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=1\\r\\n`),
		regexp.MustCompile(`cmdstat_object\|encoding:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0\\r\\n`),
	} {
		if !want.MatchString(stats) {
			t.Errorf("INFO commandstats lacks %s:\n%s", want, stats)
		}
	}
	if m := regexp.MustCompile(`cmdstat_(client|config|object):`).FindString(stats); m != "" {
		t.Errorf("INFO commandstats counts a container as a whole (%s):\n%s", m, stats)
	}
}
