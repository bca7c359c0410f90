package repl

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
)

// Acknowledgements count per region: two nodes of one other region that
// both applied a write count once, a peer of this node's own region never
// counts, and a peer address never reached counts as a region of its own
// in Regions but applies nothing.
func TestAcksCountPerRegion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		startNode(t, mem, "b1", Config{NodeID: 2, Region: "b"}, false)
		startNode(t, mem, "b2", Config{NodeID: 3, Region: "b"}, false)
		startNode(t, mem, "a2", Config{NodeID: 4, Region: "a"}, false)
		a := startNode(t, mem, "a1", Config{NodeID: 1, Region: "a", Peers: []string{"b1", "b2", "a2", "c1"}}, false)
		for _, p := range []string{"b1", "b2", "a2"} {
			for !a.link(t, p).Connected {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if got := a.r.Regions(); got != 3 {
			t.Errorf("Regions() = %d, want 3 (a, b, and the unknown c1)", got)
		}
		op := store.Op{Kind: store.KindSet, Key: "k", Value: []byte("v"),
			Version: store.Version{HLC: hlc.Timestamp(uint64(time.Now().UnixMilli()) << 16), Origin: 1}}
		a.st.Apply(op)
		seq := a.r.Append(op)
		if n, err := a.r.Wait(context.Background(), seq, 1); err != nil || n != 1 {
			t.Fatalf("Wait(1 region) = %d, %v", n, err)
		}
		// Every reachable peer has applied it now: b1, b2 and a2.
		for _, p := range []string{"b1", "b2", "a2"} {
			for a.link(t, p).Acked < seq {
				time.Sleep(10 * time.Millisecond)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := a.r.Wait(ctx, seq, 2)
		if err == nil || n != 1 {
			t.Fatalf("Wait(2 regions) with only region b applying = %d, %v; want 1 and a timeout", n, err)
		}
	})
}
