package resp

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/testkit"
)

// forwarding makes each node of a region keep only its own slots, one copy
// each, and forward the others' (Config.Forward).
func forwarding(g *geocache.GossipConfig, cfg *Config) {
	g.Copies, g.SlotsOnly = 1, true
	cfg.Forward = true
}

// A plain client may use any node of a forwarding region: every key it
// writes through one node reads back through every node, pipelined or
// not, in RESP2 and RESP3, while each key is kept by its owner only.
func TestForwardServesEveryKeyFromAnyNode(t *testing.T) {
	addrs, nodes := regionServers(t, 3, forwarding)
	m, _ := nodes[0].SlotMap()
	ctx := context.Background()
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = "fwd:" + strconv.Itoa(i)
	}
	for proto := 2; proto <= 3; proto++ {
		c := newClient(t, addrs[0], func(o *redis.Options) { o.Protocol = proto })
		for i, k := range keys[:100] {
			if err := c.Set(ctx, k, "v"+strconv.Itoa(i)+"."+strconv.Itoa(proto), 0).Err(); err != nil {
				t.Fatalf("RESP%d SET %s: %v", proto, k, err)
			}
		}
		pipe := c.Pipeline()
		for i, k := range keys[100:] {
			pipe.Set(ctx, k, "v"+strconv.Itoa(100+i)+"."+strconv.Itoa(proto), 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("RESP%d pipelined SETs: %v", proto, err)
		}
		for _, addr := range addrs {
			r := newClient(t, addr, func(o *redis.Options) { o.Protocol = proto })
			pipe := r.Pipeline()
			gets := make([]*redis.StringCmd, len(keys))
			for i, k := range keys {
				gets[i] = pipe.Get(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatalf("RESP%d pipelined GETs through %s: %v", proto, addr, err)
			}
			for i, g := range gets {
				if want := "v" + strconv.Itoa(i) + "." + strconv.Itoa(proto); g.Val() != want {
					t.Fatalf("RESP%d GET %s through %s = %q; want %q", proto, keys[i], addr, g.Val(), want)
				}
			}
		}
	}
	// Each key is kept by its owner alone (Get would ask the owner).
	held := map[*geocache.Node]map[string]bool{}
	for _, n := range nodes {
		held[n] = heldHere(n)
	}
	for _, k := range keys {
		owner := m.Primary(cluster.KeySlot(k)).ID
		for _, n := range nodes {
			if held := held[n][k]; held != (n.Config().NodeID == owner) {
				t.Fatalf("node %d holds %s: %v; its owner is node %d", n.Config().NodeID, k, held, owner)
			}
		}
	}
	info := newClient(t, addrs[0]).Info(ctx, "stats").Val()
	if got := statLine(info, "geocache_forwarded_commands:"); got == "" || got == "geocache_forwarded_commands:0" {
		t.Errorf("INFO stats: %q; want commands forwarded", got)
	}
}

// The replies of a pipeline that mixes commands served here and forwarded
// ones come back in the order of the commands, whatever the client's
// protocol and CLIENT REPLY say.
func TestForwardKeepsTheRepliesInOrder(t *testing.T) {
	addrs, nodes := regionServers(t, 3, forwarding)
	m, _ := nodes[0].SlotMap()
	mine := keysOwnedBy(m, 1, 2)
	theirs := append(keysOwnedBy(m, 2, 2), keysOwnedBy(m, 3, 2)...)
	c := dialRaw(t, addrs[0])
	c.send(cmd("SET", mine[0], "a") + cmd("SET", theirs[0], "b") + cmd("GET", theirs[0]) + cmd("GET", mine[0]) +
		cmd("INCR", theirs[2]) + cmd("PING") + cmd("GET", theirs[3]) + cmd("INCR", theirs[2]) + cmd("STRLEN", mine[1]))
	c.expect("+OK\r\n+OK\r\n$1\r\nb\r\n$1\r\na\r\n:1\r\n+PONG\r\n$-1\r\n:2\r\n:0\r\n")
	// Silenced replies stay silent, forwarded or not.
	c.send(cmd("CLIENT", "REPLY", "SKIP") + cmd("GET", theirs[0]) + cmd("GET", theirs[0]) +
		cmd("CLIENT", "REPLY", "OFF") + cmd("SET", theirs[1], "x") + cmd("GET", mine[0]) + cmd("CLIENT", "REPLY", "ON") + cmd("GET", theirs[1]))
	c.expect("$1\r\nb\r\n+OK\r\n$1\r\nx\r\n")
	// RESP3 replies come in RESP3, also when the protocol changes within
	// a pipeline.
	c.send(cmd("GET", theirs[3]) + cmd("HELLO", "3") + cmd("GET", theirs[3]) + cmd("HGETALL", theirs[0]))
	if got := c.reply(); got != "nil" {
		t.Fatalf("RESP2 GET of a missing key: %s", got)
	}
	c.reply()                                              // HELLO's map
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	line, err := c.br.ReadString('\n')
	if err != nil || line != "_\r\n" {
		t.Fatalf("RESP3 GET of a missing key: %q, %v; want a RESP3 null", line, err)
	}
	if got := c.reply(); !strings.HasPrefix(got, "-WRONGTYPE") {
		t.Fatalf("HGETALL of a string through forwarding: %s", got)
	}
}

// MGET, MSET, DEL, UNLINK, EXISTS and TOUCH over keys of several nodes are
// split by owner and their replies merged; other commands over several
// slots are refused unless this node keeps every key; a transaction runs
// on this node only.
func TestForwardSplitsMultiKeyCommands(t *testing.T) {
	addrs, nodes := regionServers(t, 3, forwarding)
	m, _ := nodes[0].SlotMap()
	a, b, d := keysOwnedBy(m, 1, 2), keysOwnedBy(m, 2, 2), keysOwnedBy(m, 3, 1)[0]
	c := dialRaw(t, addrs[0])
	for _, step := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"MSET", b[0], "1", a[0], "2", d, "3", b[1], "4"}, "+OK\r\n"},
		{[]string{"MGET", d, a[0], "nokey", b[1], b[0], a[1]}, "*6\r\n$1\r\n3\r\n$1\r\n2\r\n$-1\r\n$1\r\n4\r\n$1\r\n1\r\n$-1\r\n"},
		{[]string{"EXISTS", a[0], b[0], b[0], d, a[1]}, ":4\r\n"},
		{[]string{"TOUCH", a[0], b[0], d}, ":3\r\n"},
		{[]string{"DEL", b[0], a[0], a[1]}, ":2\r\n"},
		{[]string{"UNLINK", b[1], d}, ":2\r\n"},
		{[]string{"MGET", a[0], b[0], d}, "*3\r\n$-1\r\n$-1\r\n$-1\r\n"},
		{[]string{"MSET", a[0], "x", b[0]}, "-ERR wrong number of arguments for 'mset' command\r\n"},
		{[]string{"SET", b[0], "s"}, "+OK\r\n"},
		{[]string{"RENAME", b[0], a[0]}, "-CROSSSLOT Keys in request don't hash to the same slot\r\n"},
		{[]string{"RENAME", b[0], "{" + b[0] + "}x"}, "+OK\r\n"},                    // one slot: forwarded whole
		{[]string{"MSET", a[0], "1", a[1], "2"}, "+OK\r\n"},                         // several slots, all here
		{[]string{"RENAME", a[0], a[1]}, "+OK\r\n"},                                 // idem
		{[]string{"SET", a[0], "1"}, "+OK\r\n"},                                     // ...
		{[]string{"MGET", a[0], "{" + b[0] + "}x"}, "*2\r\n$1\r\n1\r\n$1\r\ns\r\n"}, // split again
	} {
		c.send(cmd(step.cmd...))
		c.expect(step.want)
	}
	theirSlot := strconv.Itoa(cluster.KeySlot(b[0]))
	notHere := "-ERR a transaction runs on one node, and this node does not keep slot " + theirSlot +
		" (send it to the slot's owner: CLUSTER SLOTS, or a cluster-aware client)\r\n"
	c.send(cmd("MULTI") + cmd("SET", a[0], "t") + cmd("GET", b[0]) + cmd("EXEC"))
	c.expect("+OK\r\n+QUEUED\r\n" + notHere + "-EXECABORT Transaction discarded because of previous errors.\r\n")
	c.send(cmd("WATCH", b[0]))
	c.expect(notHere)
	c.send(cmd("MULTI") + cmd("SET", a[0], "t") + cmd("EXEC"))
	c.expect("+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
}

// A command on a slot this node owns but is still filling goes, after
// ASKING, to the co-owner that held it; a client may ask to be redirected
// instead (GEOCACHE REDIRECT). (An owner's -MOVED: TestForwardFollowsAMove.)
func TestForwardFollowsColdSlotsAndRedirects(t *testing.T) {
	var seam coldSeam
	key := "user:1"
	slot := cluster.KeySlot(key)
	addrs, nodes := seam.region(t, key, func(cfg *Config) { cfg.Forward = true })
	ctx := context.Background()
	if err := nodes[0].Delete(ctx, key); err != nil { // node 1's copy alone lags behind...
		t.Fatal(err)
	}
	testkit.Eventually(t, "the delete on node 2", func() bool { _, err := nodes[1].Get(key); return err != nil })
	if err := nodes[1].Set(ctx, key, []byte("w")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the write on node 1", func() bool { v, err := nodes[0].Get(key); return err == nil && string(v) == "w" })
	seam.cold(slot, addrs[1])

	c := dialRaw(t, addrs[0])
	c.send(cmd("GET", key) + cmd("SET", key, "x") + cmd("GET", key))
	c.expect("$1\r\nw\r\n+OK\r\n$1\r\nx\r\n")
	if v, err := nodes[1].Get(key); err != nil || string(v) != "x" {
		t.Fatalf("the co-owner holds %q, %v; want the forwarded write", v, err)
	}
	// GEOCACHE REDIRECT: this connection gets -ASK, as a cluster client.
	c.send(cmd("GEOCACHE", "REDIRECT") + cmd("GET", key))
	c.expect("+OK\r\n-ASK " + strconv.Itoa(slot) + " " + addrs[1] + "\r\n")
	c.send(cmd("RESET") + cmd("GET", key))
	c.expect("+RESET\r\n$1\r\nx\r\n")
}

// An owner that cannot be reached answers -TRYAGAIN for the commands sent
// to it, and only those: the node goes on serving what it keeps and what
// the other owners keep.
func TestForwardToAnUnreachableOwner(t *testing.T) {
	addrs, nodes, servers := regionServersWith(t, 3, forwarding, func(_ *geocache.GossipConfig, cfg *Config) {
		cfg.RequirePass = "s3cret" // forwarding authenticates with it
	})
	m, _ := nodes[0].SlotMap()
	a, b, d := keysOwnedBy(m, 1, 1)[0], keysOwnedBy(m, 2, 1)[0], keysOwnedBy(m, 3, 1)[0]
	c := dialRaw(t, addrs[0])
	c.send(cmd("AUTH", "s3cret") + cmd("SET", b, "2") + cmd("SET", d, "3"))
	c.expect("+OK\r\n+OK\r\n+OK\r\n")
	servers[2].Close() // node 3's RESP server; the node stays in the map
	// Node 1 sees its connection to node 3 end (a request written before
	// would be answered "-ERR ... may have run").
	testkit.Eventually(t, "node 1's connection to node 3 closed", func() bool {
		f := servers[0].fwdr
		f.mu.Lock()
		defer f.mu.Unlock()
		for fc := range f.open {
			if fc.addr == addrs[2] {
				return false
			}
		}
		return true
	})
	c.send(cmd("SET", a, "1") + cmd("GET", d) + cmd("GET", b) + cmd("MGET", a, d))
	if got := c.reply(); got != "+OK" {
		t.Fatalf("SET kept here: %s", got)
	}
	for _, what := range []string{"GET of the unreachable owner's key", "", "MGET over it"} {
		got := c.reply()
		if what == "" {
			if got != `"2"` {
				t.Fatalf("GET of a reachable owner's key: %s", got)
			}
			continue
		}
		if !strings.HasPrefix(got, "-TRYAGAIN forwarding to "+addrs[2]+" failed: ") {
			t.Fatalf("%s: %s", what, got)
		}
	}
	st := servers[0].Stats()
	if st.ForwardErrors != 2 || st.Forwarded < 5 {
		t.Errorf("stats: %d forwarded, %d errors; want at least 5 and 2", st.Forwarded, st.ForwardErrors)
	}
	c.send(cmd("GET", a))
	c.expect("$1\r\n1\r\n")
}

// The forwarder reads whole replies of every RESP type, as they came, and
// refuses what is malformed or over its bound.
func TestReadRawReply(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
		limit         int
		over          bool
	}{
		{in: "+OK\r\nrest", want: "+OK\r\n"},
		{in: "$3\r\nabc\r\n", want: "$3\r\nabc\r\n"},
		{in: "$-1\r\n", want: "$-1\r\n"},
		{in: "*2\r\n$1\r\na\r\n:5\r\n", want: "*2\r\n$1\r\na\r\n:5\r\n"},
		{in: "%1\r\n+k\r\n*1\r\n_\r\n", want: "%1\r\n+k\r\n*1\r\n_\r\n"},
		{in: "|1\r\n+a\r\n:1\r\n,1.5\r\n", want: "|1\r\n+a\r\n:1\r\n,1.5\r\n"},
		{in: "=7\r\ntxt:abc\r\n", want: "=7\r\ntxt:abc\r\n"},
		{in: "$3\r\nabc\r\n:1\r\n", limit: 8, over: true, want: ""}, // dropped, the stream in step
		{in: "*100\r\n", limit: 50, err: "over the forwarding limit"},
		{in: "$9223372036854775807\r\nabc", err: "over the forwarding limit"},
		{in: "%4611686018427387904\r\n", err: "over the forwarding limit"},
		{in: "$x\r\n", err: "bad bulk length"},
		{in: "*-2\r\n", err: "bad aggregate length"},
		{in: "?1\r\n", err: "unknown reply type"},
		{in: "+OK\n", err: "not ended by CRLF"},
		{in: "\r\n", err: "empty reply line"},
		{in: strings.Repeat("*1\r\n", 40) + ":1\r\n", err: "nested too deep"},
		{in: "$5\r\nab", err: "EOF"},
	} {
		limit := tc.limit
		if limit == 0 {
			limit = 1 << 20
		}
		rd := bufio.NewReader(strings.NewReader(tc.in))
		l := &fwdLimit{left: limit}
		got, err := readRawReply(rd, nil, l, 0)
		if l.over != tc.over {
			t.Errorf("%q: over the limit %v, want %v", tc.in, l.over, tc.over)
		}
		if tc.over { // the next reply is read in step, and dropped too
			if next, err := readRawReply(rd, nil, l, 0); err != nil || len(next) != 0 {
				t.Errorf("%q: the reply after: %q, %v", tc.in, next, err)
			}
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v; want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// Attacks and edge cases found in review: each shows the forwarder's
// answer and the node still serving.

// A split MGET in RESP3 carries the owners' RESP3 nulls.
func TestForwardSplitMgetInRESP3(t *testing.T) {
	addrs, nodes := regionServers(t, 3, forwarding)
	m, _ := nodes[0].SlotMap()
	a, b := keysOwnedBy(m, 1, 1)[0], keysOwnedBy(m, 2, 1)[0]
	c := dialRaw(t, addrs[0])
	c.send(cmd("HELLO", "3"))
	c.reply()
	c.send(cmd("SET", a, "1") + cmd("MGET", a, b, "{"+a+"}none"))
	c.expect("+OK\r\n*3\r\n$1\r\n1\r\n_\r\n_\r\n")
}

// A subscribed RESP3 client gets a forwarded command's reply before the
// message its next command publishes to itself, as Redis orders them.
func TestForwardReplyBeforeAPublishedMessage(t *testing.T) {
	addrs, nodes := regionServers(t, 3, forwarding)
	m, _ := nodes[0].SlotMap()
	b := keysOwnedBy(m, 2, 1)[0]
	c := dialRaw(t, addrs[0])
	c.send(cmd("HELLO", "3"))
	c.reply()
	c.send(cmd("SET", b, "v") + cmd("SUBSCRIBE", "ch"))
	c.expect("+OK\r\n>3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
	c.send(cmd("GET", b) + cmd("PUBLISH", "ch", "m"))
	c.expect("$1\r\nv\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n:1\r\n")
}

// The commands of one read to one owner run in their order, also when the
// client's protocol or acknowledgement level changes between them (they
// go on one connection, with the changes between them).
func TestForwardKeepsTheOrderAcrossModeChanges(t *testing.T) {
	addrs, nodes := regionServers(t, 2, forwarding)
	m, _ := nodes[0].SlotMap()
	b := keysOwnedBy(m, 2, 1)[0]
	c := dialRaw(t, addrs[0])
	for round := range 10 {
		var req strings.Builder
		for i := range 300 {
			req.WriteString(cmd("SET", b, strconv.Itoa(round*1000+i)))
		}
		req.WriteString(cmd("HELLO", "3") + cmd("GEOCACHE", "ACK", "LOCAL", strconv.Itoa(1000+round)) + cmd("GET", b) + cmd("HELLO", "2"))
		c.send(req.String())
		for range 300 {
			c.reply()
		}
		c.reply() // HELLO 3
		c.reply() // GEOCACHE ACK
		want := strconv.Itoa(round*1000 + 299)
		if got := c.reply(); got != strconv.Quote(want) {
			t.Fatalf("round %d: GET after 300 SETs = %s; want %q", round, got, want)
		}
		c.reply() // HELLO 2
	}
}

// A client that changes its acknowledgement timeout between every command
// still uses one pooled connection per owner: it cannot exhaust the pool.
func TestForwardOneConnectionPerOwnerAndRead(t *testing.T) {
	addrs, nodes, servers := regionServersWith(t, 2, forwarding)
	m, _ := nodes[0].SlotMap()
	b := keysOwnedBy(m, 2, 1)[0]
	c := dialRaw(t, addrs[0])
	var req strings.Builder
	const n = 2 * fwdMaxConns
	for i := range n {
		req.WriteString(cmd("GEOCACHE", "ACK", "LOCAL", strconv.Itoa(1000+i)) + cmd("GET", b))
	}
	c.send(req.String())
	for i := range n {
		if got := c.reply(); got != "+OK" {
			t.Fatalf("GEOCACHE ACK %d: %s", i, got)
		}
		if got := c.reply(); got != "nil" {
			t.Fatalf("GET %d: %s", i, got)
		}
	}
	if e := servers[0].Stats().ForwardErrors; e != 0 {
		t.Errorf("%d forward errors", e)
	}
	f := servers[0].fwdr
	f.mu.Lock()
	got := len(f.open)
	f.mu.Unlock()
	if got != 1 {
		t.Errorf("%d connections to the owner open; want 1", got)
	}
}

// An owner whose map moved answers -MOVED (or -ASK); the forwarder sends
// the command on to the node named, once.
func TestForwardFollowsAMove(t *testing.T) {
	addrs, nodes, servers := regionServersWith(t, 2, forwarding)
	m, _ := nodes[0].SlotMap()
	key := keysOwnedBy(m, 2, 1)[0]
	slot := strconv.Itoa(cluster.KeySlot(key))
	if err := nodes[1].Set(context.Background(), key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"MOVED", "ASK"} {
		b := &fwdBatch{addr: addrs[0], first: fwdMode{proto: 2}, last: fwdMode{proto: 2}}
		b.starts = []int{0}
		b.reqs = appendRequest(nil, "GET", key)
		b.ends, b.skips, b.modes = []int{len(b.reqs)}, []int{0}, []fwdMode{{proto: 2, ackTimeout: DefaultAckTimeout}}
		b.raw = []byte("-" + kind + " " + slot + " " + addrs[1] + "\r\n")
		b.at = []int{0, len(b.raw)}
		servers[0].fwdr.follow(b)
		if b.err != nil || string(b.reply(0)) != "$1\r\nv\r\n" {
			t.Fatalf("%s followed: %q, %v", kind, b.reply(0), b.err)
		}
	}
}

// fakeOwner accepts one connection, answers the forwarder's handshake
// (CLIENT SETNAME, GEOCACHE REDIRECT; no password) and hands each later
// request's name to reqs. The test writes replies on the returned conn.
func fakeOwner(t *testing.T) (addr string, conns chan net.Conn, reqs chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns, reqs = make(chan net.Conn, 4), make(chan string, 64)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- nc
			go func() {
				rd := bufio.NewReader(nc)
				for i := 0; ; i++ {
					args, err := readReq(rd)
					if err != nil {
						return
					}
					if i < 2 {
						nc.Write([]byte("+OK\r\n"))
						continue
					}
					reqs <- strings.Join(args, " ")
				}
			}()
		}
	}()
	return ln.Addr().String(), conns, reqs
}

func readReq(rd *bufio.Reader) ([]string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	args := make([]string, n)
	for i := range args {
		l, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		m, _ := strconv.Atoi(strings.TrimSpace(l[1:]))
		b := make([]byte, m+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:m])
	}
	return args, nil
}

func localBatch(addr string, args ...string) *fwdBatch {
	mode := fwdMode{proto: 2, ack: geocache.Local, ackTimeout: DefaultAckTimeout}
	b := &fwdBatch{addr: addr, first: mode, last: mode}
	b.starts = []int{0}
	b.reqs = appendRequest(nil, args...)
	b.ends, b.skips, b.modes = []int{len(b.reqs)}, []int{0}, []fwdMode{mode}
	return b
}

// One client's reply over the limits fails that client's batch alone:
// the shared connection stays in step, and another client's batch behind
// it on the same connection gets its reply.
func TestForwardReplyOverTheLimitFailsItsBatchAlone(t *testing.T) {
	addr, conns, reqs := fakeOwner(t)
	// A client buffer budget of about 1 MiB: a forwarded value of 1.5 MiB
	// cannot be reserved.
	s, err := New(Config{Node: testNode(t, geocache.Config{}), MaxRequestBytes: 1 << 20, MaxClientBuffer: 1<<20 + readBufSize})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := localBatch(addr, "GET", "big"), localBatch(addr, "SET", "k", "v")
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { s.fwdr.exchange([]*fwdBatch{a}, false); close(doneA) }()
	nc := <-conns
	if r := <-reqs; r != "GET big" {
		t.Fatal(r)
	}
	go func() { s.fwdr.exchange([]*fwdBatch{b}, false); close(doneB) }()
	if r := <-reqs; r != "SET k v" {
		t.Fatal(r)
	}
	big := 3 << 19
	go nc.Write([]byte("$" + strconv.Itoa(big) + "\r\n" + strings.Repeat("x", big) + "\r\n+OK\r\n"))
	<-doneA
	<-doneB
	if a.err != errBatchOver || !a.sent {
		t.Errorf("the batch over the limits: sent %v, %v; want %v", a.sent, a.err, errBatchOver)
	}
	if b.err != nil || string(b.reply(0)) != "+OK\r\n" {
		t.Fatalf("the other client's SET: %q, %v", b.reply(0), b.err)
	}
	if st := s.Stats(); st.BufferBytes != 0 {
		t.Errorf("%d bytes of the client buffer budget still held", st.BufferBytes)
	}
}

// Server.Close ends a pooled connection still in its handshake with an
// owner that never answers.
func TestForwardCloseDuringAHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // never answered
		}
	}()
	s, err := New(Config{Node: testNode(t, geocache.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.fwdr.dial(ln.Addr().String(), time.Now().Add(time.Hour))
		done <- err
	}()
	nc := <-accepted
	defer nc.Close()
	// The dial has registered the connection before it writes its
	// handshake: once the request arrives, Close must end it.
	if _, err := nc.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the handshake succeeded against a silent owner")
		}
	case <-time.After(30 * time.Second): // only catches a hang
		t.Fatal("a handshake in progress outlives Server.Close")
	}
}

// heldHere returns the keys n holds itself: its own store's, by Scan.
func heldHere(n *geocache.Node) map[string]bool {
	held := map[string]bool{}
	var keys []string
	for cursor := uint64(0); ; {
		keys, cursor = n.Scan(cursor, 100, keys[:0])
		for _, k := range keys {
			held[k] = true
		}
		if cursor == 0 {
			return held
		}
	}
}
