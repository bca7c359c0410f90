package repl

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Batches: a KindBatch marker and the ops it announces are applied as one
// unit, through Config.ApplyBatch, even when their frames arrive apart;
// acks never cover part of a batch; a connection lost in the middle
// applies none of it, and the origin resends it from the marker.

func batchOp(n int) wire.Op {
	return wire.Op{Kind: wire.KindBatch, ExpireAt: int64(n), HLC: uint64(nowTS()), VOrigin: fakeID}
}

// gateLog records the batches ApplyBatch receives.
type gateLog struct {
	mu   sync.Mutex
	keys [][]string
}

func (g *gateLog) apply(keys []string, apply func()) {
	g.mu.Lock()
	g.keys = append(g.keys, slices.Clone(keys))
	g.mu.Unlock()
	apply()
}

func (g *gateLog) batches() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.keys)
}

func TestBatchAppliedAsOneUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		var gate gateLog
		a := startTestNode(t, mem, "a", Config{NodeID: 1, ApplyBatch: gate.apply}, true)
		p := dialFake(t, mem, "fake", "a")
		p.open(fakeHello(fakeID))
		p.emptySync(fakeID)

		ts := nowTS()
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp("a", "1", ts, fakeID), batchOp(3), setOp("b", "1", ts, fakeID), setOp("c", "1", ts, fakeID),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 1 {
			t.Fatalf("Ack %d after half a batch, want 1 (the op before it)", ack.Seq)
		}
		if a.value("a") != "1" || a.value("b") != "" || a.value("c") != "" {
			t.Fatalf("half a batch applied: a=%q b=%q c=%q", a.value("a"), a.value("b"), a.value("c"))
		}
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 5, Ops: []wire.Op{
			setOp("d", "1", ts, fakeID), setOp("e", "1", ts, fakeID),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 6 {
			t.Fatalf("Ack %d, want 6", ack.Seq)
		}
		for _, k := range []string{"b", "c", "d", "e"} {
			if a.value(k) != "1" {
				t.Errorf("%s = %q after the batch", k, a.value(k))
			}
		}
		if got := gate.batches(); len(got) != 1 || !slices.Equal(got[0], []string{"b", "c", "d"}) {
			t.Fatalf("ApplyBatch got %v, want one batch of b, c, d", got)
		}

		// Lost in the middle: nothing of the batch; resent from the marker.
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 7, Ops: []wire.Op{batchOp(2), setOp("x", "1", ts, fakeID)}})
		p.c.Close()
		p2 := dialFake(t, mem, "fake", "a")
		if _, r := p2.open(fakeHello(fakeID)); r.NextSeq != 7 {
			t.Fatalf("resume at %d, want 7 (the marker)", r.NextSeq)
		}
		if a.value("x") != "" {
			t.Fatal("an op of a batch cut off was applied")
		}
		p2.send(&wire.Ops{Origin: fakeID, FirstSeq: 7, Ops: []wire.Op{batchOp(2), setOp("x", "1", ts, fakeID), setOp("y", "1", ts, fakeID)}})
		if ack := recvAs[*wire.Ack](t, p2); ack.Seq != 9 {
			t.Fatalf("Ack %d, want 9", ack.Seq)
		}
		if a.value("x") != "1" || a.value("y") != "1" {
			t.Fatal("the resent batch was not applied")
		}
	})
}

// A malformed batch ends the connection and applies nothing of it.
func TestBatchMalformed(t *testing.T) {
	ts := nowTS
	for name, ops := range map[string][]wire.Op{
		"one op":        {batchOp(1), setOp("k", "v", ts(), fakeID)},
		"too many ops":  {batchOp(wire.MaxBatchOps + 1), setOp("k", "v", ts(), fakeID)},
		"a message":     {batchOp(2), setOp("k", "v", ts(), fakeID), pubOp("ch", "m")},
		"a batch in it": {batchOp(2), setOp("k", "v", ts(), fakeID), batchOp(2)},
		"with a key":    {{Kind: wire.KindBatch, Key: "k", ExpireAt: 2}, setOp("k", "v", ts(), fakeID), setOp("l", "v", ts(), fakeID)},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
				p := dialFake(t, mem, "fake", "a")
				p.open(fakeHello(fakeID))
				p.emptySync(fakeID)
				p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: ops})
				for {
					if _, err := p.recv(); err != nil {
						break // closed
					}
				}
				if a.value("k") != "" {
					t.Error("an op of a malformed batch was applied")
				}
			})
		})
	}
}

// The sending side: AppendBatch puts the marker and the ops together in
// the log, and they stream in order.
func TestAppendBatchStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		ln := listenFake(t, mem, "fake")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}}, false)
		ts, _ := a.clock.Now()
		op := func(k string) store.Op {
			return store.Op{Kind: store.KindSet, Key: k, Value: []byte("v"), Version: store.Version{HLC: ts, Origin: 1}}
		}
		a.put(t, "before", "v")
		if last := a.r.AppendBatch([]store.Op{op("b1"), op("b2")}); last != 4 {
			t.Fatalf("AppendBatch returned %d, want 4", last)
		}
		if last := a.r.AppendBatch([]store.Op{op("alone")}); last != 5 {
			t.Fatalf("a batch of one: %d, want 5 (no marker)", last)
		}
		p := ln.accept()
		p.answer(fakeHello(fakeID))
		p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
		var got []string
		for len(got) < 5 {
			for _, o := range dataAs[*wire.Ops](t, p).Ops {
				got = append(got, o.Kind.String()+":"+o.Key)
			}
		}
		if want := []string{"set:before", "batch:", "set:b1", "set:b2", "set:alone"}; !slices.Equal(got, want) {
			t.Errorf("streamed %v, want %v", got, want)
		}
	})
}
