package repl

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Tests of what a peer speaking the wire protocol by hand can and cannot
// make a node do: move its clock, wipe it, make it hold memory. Each runs
// in a synctest bubble on the in-memory network.

// fakePeer is a hand-written peer: it dials a node and speaks frames.
type fakePeer struct {
	t       *testing.T
	c       net.Conn
	r       *bufio.Reader
	vouches bool // recv returns Vouched frames too
}

func dialFake(t *testing.T, mem *testkit.Network, from, to string) *fakePeer {
	t.Helper()
	c, err := mem.Dialer(from)(context.Background(), to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakePeer{t: t, c: c, r: bufio.NewReader(c)}
}

func (p *fakePeer) send(f wire.Frame) {
	p.t.Helper()
	if _, err := p.c.Write(f.Append(nil)); err != nil {
		p.t.Fatalf("send %T: %v", f, err)
	}
}

// recv reads the next frame; a minute of (virtual) time only catches a hang.
// recv reads the node's next frame, past the Vouched frames a receiving
// node sends after its Resume (TestReceiverVouchesBeforeItsAcks reads
// those).
func (p *fakePeer) recv() (wire.Frame, error) {
	for {
		p.c.SetReadDeadline(time.Now().Add(time.Minute))
		f, _, err := wire.ReadFrame(p.r, 0, nil)
		if _, ok := f.(*wire.Vouched); ok && !p.vouches {
			continue
		}
		return f, err
	}
}

func recvAs[T wire.Frame](t *testing.T, p *fakePeer) T {
	t.Helper()
	f, err := p.recv()
	if err != nil {
		t.Fatalf("want %T: %v", *new(T), err)
	}
	v, ok := f.(T)
	if !ok {
		t.Fatalf("want %T, got %T %+v", *new(T), f, f)
	}
	return v
}

// expectReject reads frames until a Reject (skipping acks) and checks its code.
func (p *fakePeer) expectReject(code wire.RejectCode) *wire.Reject {
	p.t.Helper()
	for {
		f, err := p.recv()
		if err != nil {
			p.t.Fatalf("want a Reject %v: %v", code, err)
		}
		switch f := f.(type) {
		case *wire.Ack, *wire.PartAck:
			continue
		case *wire.Reject:
			if f.Code != code {
				p.t.Fatalf("Reject %v (%s), want %v", f.Code, f.Message, code)
			}
			return f
		default:
			p.t.Fatalf("want a Reject %v, got %T", code, f)
		}
	}
}

// expectClosed checks that the node closed the connection.
func (p *fakePeer) expectClosed() {
	p.t.Helper()
	for {
		f, err := p.recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
				p.t.Fatalf("want the connection closed, got %v", err)
			}
			return
		}
		if _, ok := f.(*wire.Reject); !ok {
			p.t.Fatalf("want the connection closed, got %T", f)
		}
	}
}

// handshake introduces the peer as origin id and returns the node's Resume.
func (p *fakePeer) handshake(id uint32) *wire.Resume {
	p.t.Helper()
	p.send(&wire.Hello{Proto: wire.Proto, Cluster: "geocache", Region: "evil", NodeName: "evil",
		NodeID: id, Incarnation: 7, PhysicalNanos: time.Now().UnixNano()})
	recvAs[*wire.Hello](p.t, p)
	return recvAs[*wire.Resume](p.t, p)
}

// emptySync completes the full sync the node asked for, with nothing in it.
func (p *fakePeer) emptySync(id uint32) {
	p.t.Helper()
	p.send(&wire.SnapshotBegin{Origin: id, Seq: 0, HLC: uint64(nowTS())})
	p.send(&wire.SnapshotEnd{Origin: id, Ghosts: make([]uint64, 1)})
	if a := recvAs[*wire.Ack](p.t, p); a.Seq != 0 {
		p.t.Fatalf("ack of the empty sync: %d", a.Seq)
	}
}

func nowTS() hlc.Timestamp {
	return hlc.MakeTimestamp(time.Now().UnixMilli(), 0)
}

// write makes a local write on n, as the node layer does.
func (n *testNode) write(t *testing.T, key, value string) {
	t.Helper()
	ts, err := n.r.cfg.Clock.Now()
	if err != nil {
		t.Fatalf("local write %s: %v", key, err)
	}
	op := store.Op{Kind: store.KindSet, Key: key, Value: []byte(value), Version: store.Version{HLC: ts, Origin: n.r.cfg.NodeID}}
	if res := n.st.Apply(op); res != store.Applied {
		t.Fatalf("local write %s: %v", key, res)
	}
	n.r.Append(op)
}

func (n *testNode) has(key string) bool {
	_, ok := n.st.Get(key)
	return ok
}

func (n *testNode) origin(t *testing.T, id uint32) OriginStats {
	t.Helper()
	for _, o := range n.r.Stats().Origins {
		if o.NodeID == id {
			return o
		}
	}
	t.Fatalf("no origin %d", id)
	return OriginStats{}
}

// One replicated write stamped with the largest HLC: refused and not
// merged, so the node keeps versioning writes and the stamp never reaches
// another region; the stream resumes after the last op applied.
func TestMaxStampRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b"}}, false)
		b := startNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"}}, false)
		time.Sleep(time.Second)
		synctest.Wait()

		const evil = 99
		p := dialFake(t, mem, "evil", "a")
		if r := p.handshake(evil); r.NextSeq != 0 {
			t.Fatalf("a new origin resumes at %d, want 0 (full sync)", r.NextSeq)
		}
		p.emptySync(evil)
		p.send(&wire.Ops{Origin: evil, FirstSeq: 1, Ops: []wire.Op{
			{Kind: wire.KindSet, Key: "fine", Value: []byte("v"), HLC: uint64(nowTS()), VOrigin: evil},
			{Kind: wire.KindSet, Key: "forged", Value: []byte("v"), HLC: uint64(hlc.MaxTimestamp), VOrigin: evil},
		}})
		if rej := p.expectReject(wire.RejectClockAhead); !strings.Contains(rej.Message, "ahead") {
			t.Errorf("reject message %q", rej.Message)
		}
		p.expectClosed()

		if !a.has("fine") || a.has("forged") {
			t.Errorf("a has fine: %v, forged: %v; want only the op in bounds", a.has("fine"), a.has("forged"))
		}
		if last := a.r.cfg.Clock.Last(); last.WallMillis() > time.Now().Add(time.Minute).UnixMilli() {
			t.Fatalf("a's clock moved to %v", last)
		}
		if got := a.origin(t, evil).HeldAhead; got != 1 {
			t.Errorf("HeldAhead %d, want 1", got)
		}
		if s := a.r.cfg.Clock.Stats(); s.RemoteRefused == 0 {
			t.Errorf("clock stats %+v: no refusal counted", s)
		}
		if len(a.logs.records("replication from origin held: a version is ahead of this node's clock by more than twice the max clock offset; its clock or this node's is wrong", "WARN")) != 1 {
			t.Errorf("want one warning naming the origin:\n%s", a.logs)
		}

		// The node keeps taking writes, and they replicate.
		for i := range 50 {
			a.write(t, fmt.Sprint("k", i), "v")
		}
		a.r.requestRepair()
		b.r.requestRepair()
		time.Sleep(30 * time.Second) // anti-entropy rounds included
		synctest.Wait()
		for i := range 50 {
			if !b.has(fmt.Sprint("k", i)) {
				t.Fatalf("b lacks k%d", i)
			}
		}
		if b.has("forged") {
			t.Error("the forged stamp spread to b")
		}
		if last := b.r.cfg.Clock.Last(); last.WallMillis() > time.Now().Add(time.Minute).UnixMilli() {
			t.Fatalf("b's clock moved to %v", last)
		}

		// The origin resumes after the last op applied, and the op is
		// refused again, as long as it is ahead.
		p2 := dialFake(t, mem, "evil", "a")
		if r := p2.handshake(evil); r.NextSeq != 2 {
			t.Fatalf("resume at %d, want 2", r.NextSeq)
		}
		p2.send(&wire.Ops{Origin: evil, FirstSeq: 2, Ops: []wire.Op{
			{Kind: wire.KindSet, Key: "forged", Value: []byte("v"), HLC: uint64(hlc.MaxTimestamp), VOrigin: evil},
		}})
		p2.expectReject(wire.RejectClockAhead)
		if a.has("forged") {
			t.Error("forged applied on the second try")
		}
	})
}

// seed writes n local entries on node.
func seed(t *testing.T, node *testNode, n int) {
	t.Helper()
	for i := range n {
		node.write(t, fmt.Sprint("seed", i), "v")
	}
}

func checkSeeded(t *testing.T, node *testNode, n int) {
	t.Helper()
	for i := range n {
		if !node.has(fmt.Sprint("seed", i)) {
			t.Fatalf("seed%d dropped", i)
		}
	}
}

// allSlots is a tombstone-ghost table claiming, in every slot, a delete
// at ts: it covers every entry not newer than ts.
func allSlots(ts hlc.Timestamp) []uint64 {
	g := make([]uint64, 1024)
	for i := range g {
		g[i] = uint64(ts)
	}
	return g
}

// A full sync this node did not ask for, whose ghost table would make it
// drop everything, is refused as a bad frame; the node asks for one on the
// origin's next connection.
func TestUnrequestedFullSyncRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1}, false)
		seed(t, a, 100)
		time.Sleep(time.Second) // the seeds are older than the forged sync

		const evil = 99
		p := dialFake(t, mem, "evil", "a")
		p.handshake(evil)
		p.emptySync(evil)
		p.c.Close()

		p2 := dialFake(t, mem, "evil", "a")
		if r := p2.handshake(evil); r.NextSeq != 1 {
			t.Fatalf("resume at %d, want 1", r.NextSeq)
		}
		p2.send(&wire.SnapshotBegin{Origin: evil, Seq: 0, HLC: uint64(nowTS())})
		p2.c.Write((&wire.SnapshotEnd{Origin: evil, Ghosts: allSlots(nowTS())}).Append(nil)) // may find the connection closed
		if rej := p2.expectReject(wire.RejectBadFrame); !strings.Contains(rej.Message, "not requested") {
			t.Errorf("reject message %q", rej.Message)
		}
		p2.expectClosed()
		synctest.Wait()
		checkSeeded(t, a, 100)
		if got := a.origin(t, evil).SyncsRefused; got != 1 {
			t.Errorf("SyncsRefused %d, want 1", got)
		}
		a.write(t, "after", "v") // still serving

		// Its next connection asks for the full sync.
		p3 := dialFake(t, mem, "evil", "a")
		if r := p3.handshake(evil); r.NextSeq != 0 {
			t.Fatalf("resume at %d after a refused sync, want 0", r.NextSeq)
		}
	})
}

// A ghost table with slots ahead of the receiver's clock proves nothing:
// the sync is refused, nothing is dropped, and later writes are not
// refused by it.
func TestFutureGhostTableRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1}, false)
		seed(t, a, 100)
		time.Sleep(time.Second)

		const evil = 99
		p := dialFake(t, mem, "evil", "a")
		p.handshake(evil)
		p.send(&wire.SnapshotBegin{Origin: evil, Seq: 0, HLC: uint64(nowTS())})
		p.send(&wire.SnapshotEnd{Origin: evil, Ghosts: allSlots(hlc.MakeTimestamp(time.Now().Add(time.Hour).UnixMilli(), 0))})
		p.expectReject(wire.RejectClockAhead)
		p.expectClosed()
		synctest.Wait()
		checkSeeded(t, a, 100)
		a.write(t, "after", "v") // fails if the future ghosts were merged
		if a.origin(t, evil).FullSyncs != 0 {
			t.Error("the sync counted as received")
		}

		// A snapshot time from the future is refused too.
		p2 := dialFake(t, mem, "evil", "a")
		p2.handshake(evil)
		p2.send(&wire.SnapshotBegin{Origin: evil, Seq: 0, HLC: uint64(hlc.MaxTimestamp)})
		p2.expectReject(wire.RejectClockAhead)
	})
}

// A full sync whose key tracking would outgrow the budget is refused with
// an error naming it; what the node held stays.
func TestFullSyncBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		const budget = 64 << 10
		a := startNode(t, mem, "a", Config{NodeID: 1, MaxSnapshotBytes: budget}, false)
		seed(t, a, 100)
		time.Sleep(time.Second)

		const evil = 99
		p := dialFake(t, mem, "evil", "a")
		p.handshake(evil)
		p.send(&wire.SnapshotBegin{Origin: evil, Seq: 0, HLC: uint64(nowTS())})
		key := strings.Repeat("k", 200)
		sent := 0
		for range 100 {
			ops := make([]wire.Op, 100)
			for i := range ops {
				ops[i] = wire.Op{Kind: wire.KindSet, Key: fmt.Sprint(key, sent), Value: []byte("v"), HLC: uint64(nowTS()), VOrigin: evil}
				sent++
			}
			if _, err := p.c.Write((&wire.SnapshotChunk{Origin: evil, Ops: ops}).Append(nil)); err != nil {
				break // refused: the node closed the connection
			}
			synctest.Wait()
		}
		rej := p.expectReject(wire.RejectInternal)
		if rej == nil || !strings.Contains(rej.Message, "over budget") {
			t.Fatalf("reject %+v after %d keys (%d bytes of keys), want over budget", rej, sent, sent*len(key))
		}
		if sent*(len(key)+snapshotKeyOverhead) > 2*budget {
			t.Errorf("refused only after %d keys", sent)
		}
		synctest.Wait()
		checkSeeded(t, a, 100)
		a.write(t, "after", "v")
		if got := a.origin(t, evil).SyncsRefused; got != 1 {
			t.Errorf("SyncsRefused %d, want 1", got)
		}
	})
}

// Connections that never complete a handshake hold little: a first frame
// larger than a Hello is refused from its length prefix, a silent one is
// closed after the handshake timeout, and a real peer still connects.
func TestPreHandshakeFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, MaxInbound: 1000}, false)
		const n = 200
		var big, silent []*fakePeer
		for i := range n {
			p := dialFake(t, mem, fmt.Sprint("flood", i), "a")
			if i%2 == 0 {
				// An unfinished 4 MiB frame.
				var hdr [4]byte
				binary.BigEndian.PutUint32(hdr[:], 4<<20)
				p.c.Write(append(hdr[:], make([]byte, 1024)...))
				big = append(big, p)
			} else {
				p.c.Write([]byte{0, 0}) // half a length prefix, then nothing
				silent = append(silent, p)
			}
		}
		for _, p := range big {
			p.expectReject(wire.RejectFrameTooLarge)
			p.expectClosed()
		}
		synctest.Wait()
		if got := a.r.Stats().InboundConns; got != len(silent) {
			t.Errorf("%d connections open, want the %d silent ones", got, len(silent))
		}
		for _, p := range silent {
			p.expectClosed() // within the handshake timeout
		}
		synctest.Wait()
		if got := a.r.Stats().InboundConns; got != 0 {
			t.Errorf("%d connections open after the handshake timeout", got)
		}
		b := startNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"}}, true)
		b.write(t, "k", "v")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !a.has("k") {
			t.Error("a real peer's write did not arrive after the flood")
		}
	})
}

// Accepted connections are capped: one more is closed at once and counted.
func TestInboundConnectionCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b"}}, false)
		limit := 4*1 + 8
		const extra = 5
		var conns []*fakePeer
		for i := range limit + extra {
			conns = append(conns, dialFake(t, mem, fmt.Sprint("idle", i), "a"))
		}
		synctest.Wait()
		st := a.r.Stats()
		if st.InboundConns != limit || st.InboundRefused != extra {
			t.Fatalf("%d open and %d refused, want %d and %d", st.InboundConns, st.InboundRefused, limit, extra)
		}
		if w := a.logs.records("replication connection refused: too many inbound connections", "WARN"); len(w) != 1 {
			t.Errorf("%d warnings, want 1 (rate-limited)", len(w))
		}
		for _, p := range conns {
			p.expectClosed() // at once beyond the cap, after the handshake timeout below it
		}
		synctest.Wait()
		b := startNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"}}, false)
		b.write(t, "k", "v")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if !a.has("k") {
			t.Error("b's write did not arrive")
		}
		if !a.link(t, "b").Connected {
			t.Error("a's link to b is down")
		}
	})
}

// A sender whose log no longer reaches back to where the receiver resumed
// has only a full sync to offer: the receiver, which did not ask for it,
// refuses it and asks for one on the next connection, so the two still
// converge.
func TestTruncatedLogFullSyncAskedNextTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b"}, Log: LogConfig{MaxRecords: 16}}, false)
		b := startNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"}}, false)
		a.write(t, "first", "v")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !b.has("first") {
			t.Fatal("b lacks the first write")
		}
		mem.Isolate("b")
		time.Sleep(10 * time.Second) // both notice the link is dead
		for i := range 100 {
			a.write(t, fmt.Sprint("k", i), "v")
		}
		mem.Rejoin("b")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		for i := range 100 {
			if !b.has(fmt.Sprint("k", i)) {
				t.Fatalf("b lacks k%d", i)
			}
		}
		o := b.origin(t, 1)
		if o.SyncsRefused != 1 || o.FullSyncs != 2 {
			t.Errorf("b refused %d syncs and took %d, want 1 (unasked) and 2 (at start, then asked)", o.SyncsRefused, o.FullSyncs)
		}
	})
}

// A peer answering this node's dial with a Resume whose HLC is the largest
// does not move this node's clock; the handshake still counts as heard.
func TestResumeClockFromFutureNotMerged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln, err := mem.Listen("evil")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"evil"}}, false)
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p := &fakePeer{t: t, c: c, r: bufio.NewReader(c)}
		recvAs[*wire.Hello](t, p)
		p.send(&wire.Hello{Proto: wire.Proto, Cluster: "geocache", Region: "evil", NodeName: "evil",
			NodeID: 99, Incarnation: 7, PhysicalNanos: time.Now().UnixNano()})
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(hlc.MaxTimestamp)})
		<-a.r.ClockMerged()
		if last := a.r.cfg.Clock.Last(); last.WallMillis() > time.Now().Add(time.Minute).UnixMilli() {
			t.Fatalf("a's clock moved to %v", last)
		}
		a.write(t, "k", "v") // the clock still issues timestamps
		if w := a.logs.records("replication peer's clock not merged: ahead of this node's clock by more than twice the max clock offset", "WARN"); len(w) != 1 {
			t.Errorf("%d warnings, want 1", len(w))
		}
	})
}
