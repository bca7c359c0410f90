package repl

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Pub/sub messages travel in an origin's stream as KindPublish ops: the
// receiver hands each to OnPublish once, in the origin's order, never
// stores it, and delivers none again when the stream replays it.

// messages collects what OnPublish receives.
type messages struct {
	mu  sync.Mutex
	got []string
}

func (m *messages) add(channel string, payload []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, channel+"="+string(payload))
}

func (m *messages) list() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.got)
}

func pubOp(channel, payload string) wire.Op {
	return wire.Op{Kind: wire.KindPublish, Key: channel, Value: []byte(payload), HLC: uint64(nowTS()), VOrigin: fakeID}
}

func TestMessagesDeliveredOnceInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		var got messages
		a := startTestNode(t, mem, "a", Config{NodeID: 1, TombstoneHorizon: time.Second, OnPublish: got.add}, true)

		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp("k", "v", nowTS(), fakeID), pubOp("ch", "m1"), pubOp("ch", "m2"),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 3 {
			t.Fatalf("Ack %d, want 3", ack.Seq)
		}
		if want := []string{"ch=m1", "ch=m2"}; !slices.Equal(got.list(), want) {
			t.Fatalf("delivered %v, want %v", got.list(), want)
		}
		if _, ok := a.st.Peek("ch"); ok {
			t.Error("a message was stored as an entry")
		}
		p.c.Close()

		// Away past the horizon: a asks for a full sync, and the origin
		// replays its log from a's last ack after the snapshot, here from
		// seq 2: m1 and m2 come again and are not delivered again.
		time.Sleep(2 * time.Second)
		p2 := dialFake(t, mem, "fake", "a")
		if _, r := p2.open(fakeHello(fakeID)); r.NextSeq != 0 {
			t.Fatalf("Resume at %d after the horizon, want 0 (full sync)", r.NextSeq)
		}
		p2.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 1, HLC: uint64(nowTS())})
		p2.send(&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{setOp("k", "v", nowTS(), fakeID)}})
		p2.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)})
		recvAs[*wire.Ack](t, p2)
		p2.send(&wire.Ops{Origin: fakeID, FirstSeq: 2, Ops: []wire.Op{pubOp("ch", "m1"), pubOp("ch", "m2"), pubOp("ch", "m3")}})
		if ack := recvAs[*wire.Ack](t, p2); ack.Seq != 4 {
			t.Fatalf("Ack %d, want 4", ack.Seq)
		}
		if want := []string{"ch=m1", "ch=m2", "ch=m3"}; !slices.Equal(got.list(), want) {
			t.Fatalf("delivered %v, want %v", got.list(), want)
		}
		p2.c.Close()

		// A new process of the origin starts its sequence over: its
		// messages are new ones.
		h := fakeHello(fakeID)
		h.Incarnation++
		p3 := dialFake(t, mem, "fake", "a")
		if _, r := p3.open(h); r.NextSeq != 1 {
			t.Fatalf("new incarnation: Resume at %d, want 1", r.NextSeq)
		}
		p3.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{pubOp("ch", "n1")}})
		recvAs[*wire.Ack](t, p3)
		if want := []string{"ch=m1", "ch=m2", "ch=m3", "ch=n1"}; !slices.Equal(got.list(), want) {
			t.Fatalf("delivered %v, want %v", got.list(), want)
		}
		if o := a.origin(t, fakeID); o.Messages != 4 || o.Ops != 2 {
			t.Errorf("origin stats: %d messages, %d ops; want 4 and 2", o.Messages, o.Ops)
		}
	})
}

// A message inside a full sync is a protocol error: the connection ends
// and nothing of the chunk is delivered.
func TestMessageInSnapshotRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		var got messages
		startTestNode(t, mem, "a", Config{NodeID: 1, OnPublish: got.add}, true)
		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 0, HLC: uint64(nowTS())})
		p.send(&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{pubOp("ch", "m")}})
		for {
			if _, err := p.recv(); err != nil {
				break // the node closed the connection
			}
		}
		if len(got.list()) != 0 {
			t.Errorf("delivered %v from a snapshot", got.list())
		}
	})
}

// The sending side: a message appended to the log streams like a write,
// in order with the writes around it.
func TestMessagesStreamInOrderWithWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
		a.put(t, "k1", "v")
		ts, _ := a.clock.Now()
		a.r.Append(store.Op{Kind: store.KindPublish, Key: "ch", Value: []byte("m"), Version: store.Version{HLC: ts, Origin: 1}})
		a.put(t, "k2", "v")
		p := ln.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		var got []string
		for len(got) < 3 {
			for _, op := range dataAs[*wire.Ops](t, p).Ops {
				got = append(got, fmt.Sprintf("%v %s", op.Kind, op.Key))
			}
		}
		if want := []string{"set k1", "publish ch", "set k2"}; !slices.Equal(got, want) {
			t.Errorf("streamed %v, want %v", got, want)
		}
	})
}
