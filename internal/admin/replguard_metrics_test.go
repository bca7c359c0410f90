package admin_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/geocache/geocache/internal/admin"
	"github.com/geocache/geocache/internal/testkit"
)

// A flood of replication connections that never say who they are is
// refused past the cap, and the metrics say so: the connections open, the
// ones refused, and the per-origin guard counters (present, still zero)
// next to the healthy origin's.
func TestReplicationGuardMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, eu, us := twoRegions(t)
		if err := us.Set(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		euAdmin := newServer(t, admin.Config{Node: eu})
		testkit.Eventually(t, "eu applied us's write", func() bool {
			v, _ := value(scrape(t, euAdmin.Handler()), "geocache_origin_applied_seq", "origin", "us-2", "region", "us")
			return v == 1
		})
		// eu has one peer: its cap is 4 × 1 + 8 = 12 accepted connections,
		// one of them us's stream.
		dial := mem.Dialer("attacker")
		for range 20 {
			c, err := dial(context.Background(), "eu")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		testkit.Eventually(t, "the flood refused past the cap", func() bool {
			v, _ := value(scrape(t, euAdmin.Handler()), "geocache_replication_inbound_refused_total")
			return v == 9
		})
		mfs := scrape(t, euAdmin.Handler())
		if v, _ := value(mfs, "geocache_replication_inbound_connections"); v != 12 {
			t.Errorf("geocache_replication_inbound_connections = %v, want 12", v)
		}
		for _, name := range []string{"geocache_origin_refused_total", "geocache_origin_held_ahead_total", "geocache_origin_full_syncs_refused_total"} {
			if v, ok := value(mfs, name, "origin", "us-2", "region", "us"); !ok || v != 0 {
				t.Errorf("%s{origin=us-2} = %v, %v; want 0", name, v, ok)
			}
		}
		for _, name := range []string{"geocache_replication_repairs_held_total", "geocache_replication_probed_deletes_total"} {
			if _, ok := value(mfs, name); !ok {
				t.Errorf("%s missing", name)
			}
		}
		// The node still serves its peer: a write of us's reaches it.
		if err := us.Set(context.Background(), "k2", []byte("v")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "eu applied us's next write", func() bool {
			_, err := eu.Get("k2")
			return err == nil
		})
	})
}
