package repl

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// A busy link holds writes for Config.Coalesce so that they leave in one
// frame; an idle link sends a write at once; a frame's worth of writes is
// not held.
func TestCoalesceBatchesABusyLink(t *testing.T) {
	for _, coalesce := range []time.Duration{DefaultCoalesce, -1} {
		t.Run(fmt.Sprint("coalesce ", coalesce), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				ln := listenFake(t, mem, "fake")
				a := startTestNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"fake"}, Coalesce: coalesce,
					BatchBytes: 4 << 10}, false)
				p := ln.accept()
				p.answer(fakeHello(fakeID))
				p.send(&wire.Resume{Origin: 1, NextSeq: 1, HLC: uint64(nowTS())})
				synctest.Wait()

				// Idle: the first write leaves at once, alone.
				start := time.Now()
				a.put(t, "k1", "v")
				if ops := dataAs[*wire.Ops](t, p); !slices.Equal(opKeys(ops.Ops), kN(1, 1)) {
					t.Fatalf("first frame %v; want [k1]", opKeys(ops.Ops))
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("an idle link waited %v (virtual) to send a write", d)
				}

				// Busy: writes made right after a frame go out together,
				// even when the sender had time to run between them.
				a.put(t, "k2", "v")
				synctest.Wait()
				for i := 3; i <= 10; i++ {
					a.put(t, fmt.Sprint("k", i), "v")
				}
				got := opKeys(dataAs[*wire.Ops](t, p).Ops)
				if coalesce < 0 {
					if !slices.Equal(got, kN(2, 2)) {
						t.Errorf("without coalescing the second frame holds %v; want [k2]", got)
					}
					return
				}
				if !slices.Equal(got, kN(2, 10)) {
					t.Errorf("second frame %v; want k2..k10 in one frame", got)
				}
				if d := time.Since(start); d > coalesce {
					t.Errorf("writes held %v (virtual), longer than Coalesce %v", d, coalesce)
				}

				// A frame's worth of writes ready is sent without holding:
				// a backlog drains at link speed.
				big := strings.Repeat("x", 1<<10)
				start = time.Now()
				for i := 11; i <= 30; i++ {
					a.put(t, fmt.Sprint("k", i), big)
				}
				var keys []string
				for len(keys) < 20 {
					keys = append(keys, opKeys(dataAs[*wire.Ops](t, p).Ops)...)
				}
				if !slices.Equal(keys, kN(11, 30)) {
					t.Errorf("backlog frames hold %v; want k11..k30", keys)
				}
				// Several frames (BatchBytes 4 KiB), held at most twice: the
				// sender may wake after the first puts and hold them (the
				// rest arrive in the same virtual instant), and the last
				// frame, not full, holds; full frames in between do not.
				if d := time.Since(start); d > 2*coalesce {
					t.Errorf("a backlog of 20 KiB took %v (virtual); want no more than two holds of %v", d, coalesce)
				}
			})
		})
	}
}
