package repl

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Helpers for the tests in which a hand-written peer speaks wire frames to
// a replicator (handshake_test.go, stream_test.go, sync_test.go,
// repair_test.go, peers_live_test.go). They build on fakePeer (guard_test.go)
// and use only the replicator's exported API, the store and the wire
// frames, so that they outlive refactorings of the package's internals.

// fakeID is the node id of the fake peer in these tests.
const fakeID = 99

// node is a replicator under test, with the store and clock it runs on.
type node struct {
	*testNode
	id    uint32
	clock *hlc.Clock
}

// startTestNode starts a replicator named name on mem, listening there if
// listen. cfg's Store, Clock, Logger (and Listener, and Dial if nil) are
// filled in;
// Close runs at the end of the test, inside the bubble.
func startTestNode(t *testing.T, mem *testkit.Network, name string, cfg Config, listen bool) *node {
	t.Helper()
	st, err := store.Open(store.Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	clock, err := hlc.New(hlc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg.Store, cfg.Clock = st, clock
	if cfg.Dial == nil {
		cfg.Dial = mem.Dialer(name)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.NodeName == "" {
		cfg.NodeName = name
	}
	if listen {
		ln, err := mem.Listen(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listener = ln
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(func() {
		r.Close()
		st.Close()
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, logs.String())
		}
	})
	return &node{testNode: &testNode{r: r, st: st, logs: logs}, id: cfg.NodeID, clock: clock}
}

// put makes a local write on n, as the node layer does, and returns its
// sequence number.
func (n *node) put(t *testing.T, key, value string) uint64 {
	t.Helper()
	ts, err := n.clock.Now()
	if err != nil {
		t.Fatalf("local write %s: %v", key, err)
	}
	op := store.Op{Kind: store.KindSet, Key: key, Value: []byte(value), Version: store.Version{HLC: ts, Origin: n.id}}
	if res := n.st.Apply(op); res != store.Applied {
		t.Fatalf("local write %s: %v", key, res)
	}
	return n.r.Append(op)
}

// hold applies a write of another origin straight to n's store, with the
// version given: what n holds, however it came to hold it.
func (n *node) hold(t *testing.T, key, value string, ts hlc.Timestamp, origin uint32) {
	t.Helper()
	op := store.Op{Kind: store.KindSet, Key: key, Value: []byte(value), Version: store.Version{HLC: ts, Origin: origin}}
	if res := n.st.Apply(op); res != store.Applied {
		t.Fatalf("hold %s: %v", key, res)
	}
}

// value returns n's value of key, "" if it holds none.
func (n *node) value(key string) string {
	e, ok := n.st.Get(key)
	if !ok {
		return ""
	}
	return string(e.Value)
}

// fakeHello is a well-formed Hello of the fake peer, of cluster "geocache"
// like the nodes' default.
func fakeHello(id uint32) *wire.Hello {
	return &wire.Hello{Proto: wire.Proto, Cluster: "geocache", Region: "fake", NodeName: "fake",
		NodeID: id, Incarnation: 7, PhysicalNanos: time.Now().UnixNano()}
}

// open sends h and returns the node's Hello and Resume.
func (p *fakePeer) open(h *wire.Hello) (*wire.Hello, *wire.Resume) {
	p.t.Helper()
	p.send(h)
	return recvAs[*wire.Hello](p.t, p), recvAs[*wire.Resume](p.t, p)
}

// recvData reads the next frame that is not a Ping or a Probe: what a
// sending node writes besides its liveness checks and anti-entropy rounds.
func (p *fakePeer) recvData() wire.Frame {
	p.t.Helper()
	for {
		f, err := p.recv()
		if err != nil {
			p.t.Fatalf("read: %v", err)
		}
		switch f.(type) {
		case *wire.Ping, *wire.Probe:
			continue
		}
		return f
	}
}

// dataAs is recvData for a frame of type T.
func dataAs[T wire.Frame](t *testing.T, p *fakePeer) T {
	t.Helper()
	f := p.recvData()
	v, ok := f.(T)
	if !ok {
		t.Fatalf("want %T, got %T", *new(T), f)
	}
	return v
}

// fakeListener is an address a node dials, answered by the test.
type fakeListener struct {
	t  *testing.T
	ln net.Listener
}

func listenFake(t *testing.T, mem *testkit.Network, addr string) *fakeListener {
	t.Helper()
	ln, err := mem.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeListener{t: t, ln: ln}
}

// accept waits for the node's next connection; a minute of (virtual) time
// only catches a hang.
func (l *fakeListener) accept() *fakePeer {
	l.t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.ln.Accept()
		ch <- result{c, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			l.t.Fatalf("accept: %v", res.err)
		}
		l.t.Cleanup(func() { res.c.Close() })
		return &fakePeer{t: l.t, c: res.c, r: bufio.NewReader(res.c)}
	case <-time.After(time.Minute):
		l.ln.Close() // ends the Accept above
		l.t.Fatal("the node did not dial")
		return nil
	}
}

// answer reads the Hello of the node that dialed p and answers with h; it
// returns the node's Hello.
func (p *fakePeer) answer(h *wire.Hello) *wire.Hello {
	p.t.Helper()
	nh := recvAs[*wire.Hello](p.t, p)
	p.send(h)
	return nh
}

// setOp is a replicated Set of key stamped ts by origin.
func setOp(key, value string, ts hlc.Timestamp, origin uint32) wire.Op {
	return wire.Op{Kind: wire.KindSet, Key: key, Value: []byte(value), HLC: uint64(ts), VOrigin: origin}
}

// keysInSlots returns n keys whose slot in a tombstone-ghost table of
// slots slots is slot, found through store.GhostCovers.
func keysInSlots(t *testing.T, prefix string, slot, slots, n int) []string {
	t.Helper()
	table := make([]uint64, slots)
	table[slot] = 1
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if i > 1_000_000 {
			t.Fatalf("no %d keys in slot %d of %d", n, slot, slots)
		}
		k := fmt.Sprint(prefix, i)
		if store.GhostCovers(table, k, 1) {
			keys = append(keys, k)
		}
	}
	return keys
}

// at returns the timestamp d after now, on the bubble's clock.
func at(d time.Duration) hlc.Timestamp {
	return hlc.MakeTimestamp(time.Now().Add(d).UnixMilli(), 0)
}
