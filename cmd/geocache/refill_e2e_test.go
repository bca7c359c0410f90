package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Black-box tests of what a restarted region refills from the others: every
// live entry some peer holds, unless a delete or an expiry supersedes it.
// A peer's local evictions and FLUSHALL say nothing about the key
// elsewhere, so they must not make the refilling node drop it.

// TestRestartedRegionRefillsWhatOthersHold pins the bug where a region
// restarted after another had flushed (or evicted) a key lost the key,
// although a third region still held it: the flushed region's full sync
// carried its eviction ghosts, and the restarted node dropped and then
// refused the key.
func TestRestartedRegionRefillsWhatOthersHold(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	for _, tc := range []struct {
		name string
		ap   []string // extra flags of ap-south, the region that loses the keys locally
		lose func(ctx context.Context, ap *redis.Client) error
	}{
		{"flushall", nil, func(ctx context.Context, ap *redis.Client) error { return ap.FlushAll(ctx).Err() }},
		{"eviction", []string{"--max-entries", "3"}, nil}, // ap keeps 3 of the keys: the others are evicted there
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startE2ECluster(t, func(i int, n *e2eNode) {
				if i == 2 {
					n.args = append(n.args, tc.ap...)
				}
			})
			ctx := context.Background()
			us, eu, ap := c.nodes[0].client(), c.nodes[1].client(), c.nodes[2].client()
			keys := make([]string, 12)
			for i := range keys {
				keys[i] = fmt.Sprintf("b%02d", i)
				if err := us.Set(ctx, keys[i], "v-"+keys[i], 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// Every key reaches eu; ap holds them or evicted them.
			e2eEventually(t, 30*time.Second, "every key in eu", func() error {
				return holdsAll(ctx, eu, keys)
			})
			e2eEventually(t, 30*time.Second, "every key applied in ap", func() error {
				return appliedFrom(ctx, ap, "us", len(keys))
			})
			if tc.lose != nil {
				if err := tc.lose(ctx, ap); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := ap.DBSize(ctx).Result(); err != nil || n > 3 {
				t.Fatalf("ap holds %d keys (%v); the test needs it to have lost most of them locally", n, err)
			}

			c.nodes[1].kill()
			if err := c.nodes[1].start(); err != nil {
				t.Fatal(err)
			}
			c.waitConnected(t)
			// Both full syncs must be in before the check: the one from ap
			// is the one that used to drop the keys.
			e2eEventually(t, 30*time.Second, "eu refilled from us and from ap", func() error {
				for _, origin := range []string{"us", "ap"} {
					if err := fullSynced(ctx, eu, origin); err != nil {
						return err
					}
				}
				return nil
			})
			if err := holdsAll(ctx, eu, keys); err != nil {
				t.Fatalf("after refilling: %v (us still holds every key)", err)
			}
			if err := holdsAll(ctx, us, keys); err != nil {
				t.Fatalf("us: %v", err)
			}
			// The keys stay: an anti-entropy round later, still there.
			if n, err := ap.DBSize(ctx).Result(); err != nil || n > 3 {
				t.Fatalf("ap holds %d keys (%v): a refill must not undo its local flush or eviction", n, err)
			}
		})
	}
}

// TestRegionAwayPastHorizonCannotHandBackADelete keeps the property the
// travelling ghosts exist for, with delete knowledge only: us is cut off
// (stopped) while ap deletes a key, the delete's tombstones pass the
// horizon everywhere, eu restarts empty and refills from ap, then us comes
// back still holding the old value. Neither eu's refill from us nor us's
// own return may bring the deleted value back.
func TestRegionAwayPastHorizonCannotHandBackADelete(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := startE2ECluster(t, func(_ int, n *e2eNode) {
		n.args = append(n.args, "--tombstone-horizon", "2s", "--anti-entropy-interval", "500ms")
	})
	ctx := context.Background()
	us, eu, ap := c.nodes[0].client(), c.nodes[1].client(), c.nodes[2].client()
	if err := ap.Set(ctx, "k", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for i, cl := range []*redis.Client{us, eu} {
		e2eEventually(t, 30*time.Second, e2eRegions[i]+" holds k", func() error {
			return cl.Get(ctx, "k").Err()
		})
	}
	c.nodes[0].pause() // us: cut off, still holding k
	if err := ap.Del(ctx, "k").Err(); err != nil {
		t.Fatal(err)
	}
	// Wait until the delete's tombstones are gone from ap and eu (past the
	// horizon; fresh writes prune them), leaving only their ghosts.
	for i, cl := range []*redis.Client{eu, ap} {
		name := e2eRegions[i+1]
		filler := 0
		e2eEventually(t, 60*time.Second, name+" forgot k's tombstone", func() error {
			filler++
			if err := cl.Set(ctx, fmt.Sprintf("filler-%s-%d", name, filler), "x", 0).Err(); err != nil {
				return err
			}
			v, err := cl.Do(ctx, "GEOCACHE", "VERSION", "k").Result()
			if err != nil && err != redis.Nil {
				return err
			}
			if v != nil {
				return fmt.Errorf("k still has a version there: %v", v)
			}
			return nil
		})
	}
	c.nodes[1].kill()
	if err := c.nodes[1].start(); err != nil {
		t.Fatal(err)
	}
	e2eEventually(t, 30*time.Second, "eu refilled from ap", func() error { return fullSynced(ctx, eu, "ap") })
	c.nodes[0].signal(syscall.SIGCONT)
	c.waitConnected(t)
	e2eEventually(t, 30*time.Second, "eu refilled from us", func() error { return fullSynced(ctx, eu, "us") })
	// us may still hand k to eu in its snapshot, or hold k for a moment
	// until ap's stream or a full sync reaches it: the deleted value must
	// be gone everywhere then, and stay gone.
	e2eEventually(t, 30*time.Second, "k deleted in every region", func() error {
		for i, cl := range []*redis.Client{us, eu, ap} {
			if v, err := cl.Get(ctx, "k").Result(); err != redis.Nil {
				return fmt.Errorf("%s serves k = %q, %v: the deleted value is back", e2eRegions[i], v, err)
			}
		}
		return nil
	})
}

// holdsAll returns an error naming the keys c does not serve with their
// value "v-<key>".
func holdsAll(ctx context.Context, c *redis.Client, keys []string) error {
	var missing []string
	for _, k := range keys {
		if v, err := c.Get(ctx, k).Result(); err != nil || v != "v-"+k {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d of %d keys missing: %v", len(missing), len(keys), missing)
	}
	return nil
}

// infoOrigin returns the INFO replication line of c's origin in region.
func infoOrigin(ctx context.Context, c *redis.Client, region string) (string, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if strings.HasPrefix(line, "origin") && strings.Contains(line, ",region="+region+",") {
			return line, nil
		}
	}
	return "", fmt.Errorf("no origin of region %s in:\n%s", region, info)
}

// fullSynced returns nil once c has completed a full sync from region.
func fullSynced(ctx context.Context, c *redis.Client, region string) error {
	line, err := infoOrigin(ctx, c, region)
	if err != nil {
		return err
	}
	if strings.Contains(line, ",full_syncs=0") || !strings.Contains(line, ",full_syncs=") {
		return fmt.Errorf("no full sync from %s yet: %s", region, line)
	}
	return nil
}

// appliedFrom returns nil once c has applied at least n ops from region.
func appliedFrom(ctx context.Context, c *redis.Client, region string, n int) error {
	line, err := infoOrigin(ctx, c, region)
	if err != nil {
		return err
	}
	var applied int
	for f := range strings.SplitSeq(line, ",") {
		if v, ok := strings.CutPrefix(f, "applied="); ok {
			fmt.Sscan(v, &applied)
		}
	}
	if applied < n {
		return fmt.Errorf("%d of %d ops applied from %s: %s", applied, n, region, line)
	}
	return nil
}
