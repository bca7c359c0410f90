package repl

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Full syncs received from a fake peer: the drop rule, the frames' order,
// and the limits on what one sync may make the node track.

// The drop rule: after a full sync it asked for, the node keeps what the
// snapshot holds, drops an entry absent from it that the sender's
// tombstone ghosts cover (a delete may have superseded it), and keeps an
// absent entry they do not cover, or one newer than the snapshot. The
// sender's ghosts then refuse the dropped version if it comes again.
func TestFullSyncDropRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
		// A two-slot ghost table: slot 0 covers, slot 1 does not.
		s0 := keysInSlots(t, "s0-", 0, 2, 5)
		inSnap, covered, newer, elsewhere, later := s0[0], s0[1], s0[2], s0[3], s0[4]
		uncovered := keysInSlots(t, "s1-", 1, 2, 1)[0]
		const other = 5 // the origin of what a holds
		old := nowTS()
		for i, k := range []string{inSnap, covered, uncovered} {
			a.hold(t, k, "old", old+hlc.Timestamp(i), other)
		}
		time.Sleep(time.Second)
		snapTS := nowTS()
		a.hold(t, newer, "new", at(100*time.Millisecond), other) // after the snapshot's time

		p := dialFake(t, mem, "fake", "a")
		if _, r := p.open(fakeHello(fakeID)); r.NextSeq != 0 {
			t.Fatalf("resume at %d, want 0", r.NextSeq)
		}
		p.send(&wire.SnapshotBegin{Origin: fakeID, Seq: 0, HLC: uint64(snapTS)})
		p.send(&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{
			setOp(inSnap, "old", old, other), // the same version a holds
			setOp("fresh", "v", snapTS, fakeID),
		}})
		ghost := at(200 * time.Millisecond) // covers everything a holds in slot 0, in bounds
		p.send(&wire.SnapshotEnd{Origin: fakeID, Ghosts: []uint64{uint64(ghost), 0}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 0 {
			t.Fatalf("ack %d of the sync, want 0", ack.Seq)
		}

		for _, c := range []struct {
			key  string
			want bool
			why  string
		}{
			{inSnap, true, "in the snapshot"},
			{covered, false, "absent from the snapshot and covered by its ghosts"},
			{uncovered, true, "absent and not covered"},
			{newer, true, "absent and covered, but newer than the snapshot"},
			{"fresh", true, "brought by the snapshot"},
		} {
			if got := a.has(c.key); got != c.want {
				t.Errorf("%s (%s): held %v, want %v", c.key, c.why, got, c.want)
			}
		}
		if o := a.origin(t, fakeID); o.FullSyncs != 1 || o.Dropped != 1 {
			t.Errorf("origin stats: %d full syncs, %d dropped; want 1 and 1", o.FullSyncs, o.Dropped)
		}

		// The sender's ghosts are now this node's: the dropped version does
		// not come back, nor does a version they cover of a key this node
		// never held; a newer version is taken.
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{
			setOp(covered, "old", old+1, other),
			setOp(elsewhere, "old", old, other),
			setOp(later, "new", ghost+1, other),
		}})
		if ack := recvAs[*wire.Ack](t, p); ack.Seq != 3 {
			t.Fatalf("ack %d, want 3", ack.Seq)
		}
		if a.has(covered) || a.has(elsewhere) || !a.has(later) {
			t.Errorf("after the sync: %s held %v, %s held %v (want neither: the ghosts cover them); %s held %v (want it: newer)",
				covered, a.has(covered), elsewhere, a.has(elsewhere), later, a.has(later))
		}
		if o := a.origin(t, fakeID); o.Refused != 2 {
			t.Errorf("origin stats: %d refused, want 2", o.Refused)
		}
	})
}

// Snapshot frames out of place are protocol errors: nothing is dropped,
// and the node asks for the full sync again on the next connection.
func TestSnapshotFramesOutOfOrder(t *testing.T) {
	ts := func() uint64 { return uint64(nowTS()) }
	cases := []struct {
		name   string
		frames func() []wire.Frame // after the handshake, on a connection that asked for a sync
		msg    string
	}{
		{"chunk before begin", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotChunk{Origin: fakeID, Ops: []wire.Op{setOp("x", "v", nowTS(), fakeID)}}}
		}, "outside a snapshot"},
		{"end before begin", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)}}
		}, "outside a snapshot"},
		{"begin twice", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotBegin{Origin: fakeID, HLC: ts()}, &wire.SnapshotBegin{Origin: fakeID, HLC: ts()}}
		}, "snapshot begin"},
		{"begin of another origin", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotBegin{Origin: fakeID + 1, HLC: ts()}}
		}, "snapshot begin"},
		{"chunk of another origin", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotBegin{Origin: fakeID, HLC: ts()},
				&wire.SnapshotChunk{Origin: fakeID + 1, Ops: []wire.Op{setOp("x", "v", nowTS(), fakeID)}}}
		}, "outside a snapshot"},
		{"ops inside a snapshot", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotBegin{Origin: fakeID, HLC: ts()},
				&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("x", "v", nowTS(), fakeID)}}}
		}, "inside a snapshot"},
		{"ghost table of no slots", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotBegin{Origin: fakeID, HLC: ts()}, &wire.SnapshotEnd{Origin: fakeID}}
		}, "power of two"},
		{"ghost table of 3 slots", func() []wire.Frame {
			return []wire.Frame{&wire.SnapshotBegin{Origin: fakeID, HLC: ts()}, &wire.SnapshotEnd{Origin: fakeID, Ghosts: allSlots(nowTS())[:3]}}
		}, "power of two"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				a := startTestNode(t, mem, "a", Config{NodeID: 1}, true)
				seed(t, a.testNode, 20)
				time.Sleep(time.Second) // the seeds are older than the sync

				p := dialFake(t, mem, "fake", "a")
				p.open(fakeHello(fakeID))
				var b []byte
				for _, f := range tc.frames() {
					b = f.Append(b)
				}
				p.c.Write(b) // the node may close the connection before the last frame
				if rej := p.expectReject(wire.RejectBadFrame); !strings.Contains(rej.Message, tc.msg) {
					t.Errorf("Reject %q, want it to say %q", rej.Message, tc.msg)
				}
				p.expectClosed()
				synctest.Wait()
				checkSeeded(t, a.testNode, 20)
				if o := a.origin(t, fakeID); o.FullSyncs != 0 || o.Dropped != 0 {
					t.Errorf("origin stats %+v", o)
				}
				p2 := dialFake(t, mem, "fake", "a")
				if _, r := p2.open(fakeHello(fakeID)); r.NextSeq != 0 {
					t.Errorf("resume at %d after a broken sync, want 0", r.NextSeq)
				}
			})
		})
	}
}

// syncFrames encodes a full sync of origin fakeID: one chunk per element
// of chunks, then an empty ghost table.
func syncFrames(chunks ...[]wire.Op) []byte {
	b := (&wire.SnapshotBegin{Origin: fakeID, Seq: 0, HLC: uint64(nowTS())}).Append(nil)
	for _, ops := range chunks {
		b = (&wire.SnapshotChunk{Origin: fakeID, Ops: ops}).Append(b)
	}
	return (&wire.SnapshotEnd{Origin: fakeID, Ghosts: make([]uint64, 1)}).Append(b)
}

func sets(prefix string, n int) []wire.Op {
	ops := make([]wire.Op, n)
	for i := range ops {
		ops[i] = setOp(fmt.Sprint(prefix, i), "v", nowTS(), fakeID)
	}
	return ops
}

func deletes(prefix string, n int) []wire.Op {
	ops := make([]wire.Op, n)
	for i := range ops {
		ops[i] = wire.Op{Kind: wire.KindDelete, Key: fmt.Sprint(prefix, i), HLC: uint64(nowTS()), VOrigin: fakeID}
	}
	return ops
}

// The limits on one full sync in flight (MaxSnapshotKeys, MaxSnapshotBytes)
// count the distinct keys of live entries: a sync within them is taken, one
// past them refused with an error naming the budget, and the node asks for
// a full sync again on the next connection. TestFullSyncBudget
// (guard_test.go) checks that a sync far over the byte budget is refused
// early.
func TestSnapshotLimits(t *testing.T) {
	const keyLen = 100 // at most: the keys below are 98 or 99 bytes long
	key := strings.Repeat("k", keyLen-3)
	cases := []struct {
		name   string
		cfg    Config
		chunks func() [][]wire.Op // built inside the bubble, on its clock
		ok     bool
	}{
		{"keys: at the limit", Config{MaxSnapshotKeys: 10}, func() [][]wire.Op { return [][]wire.Op{sets("k", 10)} }, true},
		{"keys: one over", Config{MaxSnapshotKeys: 10}, func() [][]wire.Op { return [][]wire.Op{sets("k", 11)} }, false},
		{"keys: over across chunks", Config{MaxSnapshotKeys: 10}, func() [][]wire.Op { return [][]wire.Op{sets("k", 6), sets("j", 5)} }, false},
		{"keys: repeats and tombstones not counted", Config{MaxSnapshotKeys: 10},
			func() [][]wire.Op { return [][]wire.Op{sets("k", 10), sets("k", 10), deletes("d", 50)} }, true},
		// Each key costs its length plus a fixed overhead under 256 bytes.
		{"bytes: well within", Config{MaxSnapshotBytes: 10 * (keyLen + 256)}, func() [][]wire.Op { return [][]wire.Op{sets(key, 10)} }, true},
		// 11 keys of at least 98 bytes: over 1,000 bytes without any overhead.
		{"bytes: the keys alone over", Config{MaxSnapshotBytes: 10 * keyLen}, func() [][]wire.Op { return [][]wire.Op{sets(key, 11)} }, false},
		{"bytes: tombstones not counted", Config{MaxSnapshotBytes: 10 * (keyLen + 256)},
			func() [][]wire.Op { return [][]wire.Op{sets(key, 10), deletes(key+"d", 100)} }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				cfg := tc.cfg
				cfg.NodeID = 1
				a := startTestNode(t, mem, "a", cfg, true)
				seed(t, a.testNode, 20)
				time.Sleep(time.Second)

				p := dialFake(t, mem, "fake", "a")
				p.open(fakeHello(fakeID))
				p.c.Write(syncFrames(tc.chunks()...)) // a refusal may close the connection first
				if tc.ok {
					if ack := recvAs[*wire.Ack](t, p); ack.Seq != 0 {
						t.Fatalf("ack %d of the sync", ack.Seq)
					}
					if o := a.origin(t, fakeID); o.FullSyncs != 1 || o.SyncsRefused != 0 {
						t.Errorf("origin stats %+v; want the sync taken", o)
					}
					return
				}
				if rej := p.expectReject(wire.RejectInternal); !strings.Contains(rej.Message, "over budget") {
					t.Errorf("Reject %q, want over budget", rej.Message)
				}
				p.expectClosed()
				synctest.Wait()
				checkSeeded(t, a.testNode, 20)
				if o := a.origin(t, fakeID); o.FullSyncs != 0 || o.SyncsRefused != 1 || o.Dropped != 0 {
					t.Errorf("origin stats %+v; want the sync refused, nothing dropped", o)
				}
				if w := a.logs.records("replication: full sync refused", "WARN"); len(w) != 1 {
					t.Errorf("%d warnings, want 1", len(w))
				}
				// Asked again, and a sync within the limits is then taken.
				p2 := dialFake(t, mem, "fake", "a")
				if _, r := p2.open(fakeHello(fakeID)); r.NextSeq != 0 {
					t.Fatalf("resume at %d after a refused sync, want 0", r.NextSeq)
				}
				p2.c.Write(syncFrames(sets("small", 2)))
				if ack := recvAs[*wire.Ack](t, p2); ack.Seq != 0 {
					t.Fatalf("ack %d of the small sync", ack.Seq)
				}
				if !a.has("small1") {
					t.Error("the small sync was not applied")
				}
			})
		})
	}
}
