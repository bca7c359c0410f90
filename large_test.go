package geocache

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// Values larger than one replication frame (4 MiB) cross regions in parts:
// on the stream (with small writes behind them, and inside a batch), and in
// the full sync of a region that restarts empty.
func TestLargeValuesAcrossRegions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, 20*time.Millisecond, func(i int, c *Config) {
			c.MaxBytes = 256 << 20
		})
		m.startAll()
		m.linked()
		ctx := context.Background()
		want := map[string][]byte{}
		big := func(n int, seed byte) []byte {
			v := make([]byte, n)
			for i := range v {
				v[i] = seed + byte(i*7) + byte(i>>13)
			}
			return v
		}
		want["big:1"] = big(6<<20+123, 1)
		if err := m.nodes[0].Set(ctx, "big:1", want["big:1"]); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			k := fmt.Sprint("small:", i)
			want[k] = []byte(k)
			if err := m.nodes[0].Set(ctx, k, want[k]); err != nil {
				t.Fatal(err)
			}
		}
		// A transaction with a large value: applied whole everywhere.
		s := m.nodes[1].NewSession()
		s.BeginBatch()
		want["big:tx"] = big(5<<20, 9)
		want["tx:small"] = []byte("with it")
		if err := s.Set(ctx, "big:tx", want["big:tx"]); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "tx:small", want["tx:small"]); err != nil {
			t.Fatal(err)
		}
		if err := s.EndBatch(ctx); err != nil {
			t.Fatal(err)
		}
		holds := func(n *Node) bool {
			for k, v := range want {
				got, err := n.Get(k)
				if err != nil || !bytes.Equal(got, v) {
					return false
				}
			}
			return true
		}
		for i, n := range m.nodes {
			testkit.Eventually(t, m.names[i]+" holds every value", func() bool { return holds(n) })
		}

		// A region that restarts empty refills them by full sync.
		m.stop(2)
		m.start(2)
		testkit.Eventually(t, "ap refilled", func() bool { return holds(m.nodes[2]) })
	})
}
