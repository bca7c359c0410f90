package geocache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
)

// hashDump is what n holds of keys' hashes: their fields and the digest of
// their states (two states of one version may differ), "-" for absent.
func hashDump(n *Node, keys []string) []string {
	var out []string
	for _, k := range keys {
		fields, err := n.HGetAll(k)
		if err != nil {
			out = append(out, k+": "+err.Error())
			continue
		}
		e, _ := n.store.Peek(k)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %x:", k, store.CounterDigest(e.State))
		for _, f := range fields {
			fmt.Fprintf(&b, " %s=%s", f.Name, f.Value)
		}
		out = append(out, b.String())
	}
	return out
}

// hashesConverged waits until the running nodes of m hold the same hashes.
func (m *memCluster) hashesConverged(keys []string) {
	m.t.Helper()
	testkit.Eventually(m.t, "the hashes' convergence", func() bool {
		var first []string
		for _, n := range m.nodes {
			if n == nil {
				continue
			}
			d := hashDump(n, keys)
			if first == nil {
				first = d
			} else if !slices.Equal(first, d) {
				return false
			}
		}
		return true
	})
}

func hset(t *testing.T, n *Node, key string, pairs ...string) {
	t.Helper()
	var fields []Field
	for _, p := range pairs {
		name, value, _ := strings.Cut(p, "=")
		fields = append(fields, Field{Name: []byte(name), Value: []byte(value)})
	}
	if _, err := n.HSet(context.Background(), key, fields); err != nil {
		t.Fatal(err)
	}
}

func hashOf(n *Node, key string) string {
	fields, err := n.HGetAll(key)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, f := range fields {
		parts = append(parts, string(f.Name)+"="+string(f.Value))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// TestHashFieldsMergeAcrossRegions: three regions write different fields
// of the same hashes at once, and delete some of their own, through
// isolation, a one-way cut and connection resets; once healed, every
// region holds every field written and not deleted (a hash merges field by
// field instead of keeping the last write), and the same state.
func TestHashFieldsMergeAcrossRegions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"us", "eu", "ap"}
		m := newMemCluster(t, names, 5*time.Millisecond, nil)
		m.startAll()
		m.linked()
		keys := []string{"user:1", "user:2"}
		want := map[string]map[string]string{}
		for _, k := range keys {
			want[k] = map[string]string{}
		}
		var mu sync.Mutex
		round := 0
		write := func() {
			round++
			var wg sync.WaitGroup
			for i, n := range m.nodes {
				wg.Go(func() {
					for j := range 10 {
						key := keys[j%len(keys)]
						field := fmt.Sprintf("%s:%d:%d", names[i], round, j)
						value := fmt.Sprint(i*1000 + j)
						if _, err := n.HSet(context.Background(), key, []Field{{[]byte(field), []byte(value)}}); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						want[key][field] = value
						mu.Unlock()
						if j%4 == 3 { // delete one of its own earlier fields
							old := fmt.Sprintf("%s:%d:%d", names[i], round, j-2)
							if _, err := n.HDel(context.Background(), key, [][]byte{[]byte(old)}); err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							delete(want[key], old)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
		}
		for _, fault := range []func(){
			func() { m.net.Isolate("ap") },
			func() { m.net.Cut("us", "eu") },
			func() { m.net.Reset("us", "eu"); m.net.Reset("eu", "ap"); m.net.Reset("ap", "us") },
		} {
			fault()
			write()
			time.Sleep(time.Second) // links declared dead and redialed
			write()
			m.net.HealAll()
			m.hashesConverged(keys)
			for _, key := range keys {
				var parts []string
				for f, v := range want[key] {
					parts = append(parts, f+"="+v)
				}
				slices.Sort(parts)
				exp := "{" + strings.Join(parts, " ") + "}"
				for i, n := range m.nodes {
					if got := hashOf(n, key); got != exp {
						t.Fatalf("%s holds %s = %s\nwant %s", names[i], key, got, exp)
					}
				}
			}
		}
	})
}

// TestHashDeleteAcrossRegions: a DEL of a hash in one region removes, in
// every region, the fields written before it, not those another region,
// cut off, wrote after it; an HDEL of the last field in one region does
// not drop a field written at once in another.
func TestHashDeleteAcrossRegions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 5*time.Millisecond, nil)
		m.startAll()
		m.linked()
		us, eu := m.nodes[0], m.nodes[1]
		ctx := context.Background()
		hset(t, us, "h", "a=1")
		m.hashesConverged([]string{"h"})
		m.net.Isolate("eu")
		hset(t, eu, "h", "before=1")
		time.Sleep(time.Millisecond)
		if err := us.Delete(ctx, "h"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		hset(t, eu, "h", "after=2")
		m.net.HealAll()
		m.hashesConverged([]string{"h"})
		for i, n := range m.nodes {
			if got := hashOf(n, "h"); got != "{after=2}" {
				t.Errorf("node %d holds %s, want {after=2}", i, got)
			}
		}

		// The last field deleted in one region while another adds one.
		m.net.Isolate("eu")
		if _, err := us.HDel(ctx, "h", [][]byte{[]byte("after")}); err != nil {
			t.Fatal(err)
		}
		if _, err := us.HGetAll("h"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("HGetAll of a hash without fields: %v", err)
		}
		if us.Contains("h") {
			t.Error("Contains reports a hash without fields")
		}
		hset(t, eu, "h", "other=3")
		m.net.HealAll()
		m.hashesConverged([]string{"h"})
		if got := hashOf(us, "h"); got != "{other=3}" {
			t.Errorf("us holds %s, want {other=3}", got)
		}
	})
}

// TestHashAcrossRestart: a region that restarts empty refills its hashes
// from its peer and its new writes merge with the fields it had.
func TestHashAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 5*time.Millisecond, nil)
		m.startAll()
		m.linked()
		hset(t, m.nodes[0], "h", "a=1")
		hset(t, m.nodes[1], "h", "b=2")
		m.hashesConverged([]string{"h"})
		m.stop(1)
		hset(t, m.nodes[0], "h", "c=3")
		m.start(1)
		m.linked()
		hset(t, m.nodes[1], "h", "d=4") // may run before the refill
		m.hashesConverged([]string{"h"})
		for i, n := range m.nodes {
			if got := hashOf(n, "h"); got != "{a=1 b=2 c=3 d=4}" {
				t.Errorf("node %d holds %s", i, got)
			}
		}
	})
}

// TestHashStringRule: a SET and a field written at once in two regions:
// the key's type is the newest write's, in every region.
func TestHashStringRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 5*time.Millisecond, nil)
		m.startAll()
		m.linked()
		us, eu := m.nodes[0], m.nodes[1]
		ctx := context.Background()
		m.net.Isolate("eu")
		hset(t, eu, "k1", "old=1")
		hset(t, eu, "k2", "f=1")
		time.Sleep(time.Millisecond)
		if err := us.Set(ctx, "k1", []byte("s")); err != nil {
			t.Fatal(err)
		}
		if err := us.Set(ctx, "k2", []byte("s")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		hset(t, eu, "k1", "new=2")
		m.net.HealAll()
		m.hashesConverged([]string{"k1"})
		testkit.Eventually(t, "k2 a string everywhere", func() bool {
			for _, n := range m.nodes {
				if v, err := n.Get("k2"); err != nil || string(v) != "s" {
					return false
				}
			}
			return true
		})
		for i, n := range m.nodes {
			if got := hashOf(n, "k1"); got != "{new=2}" {
				t.Errorf("node %d holds k1 = %s, want {new=2}", i, got)
			}
			if _, err := n.Get("k1"); !errors.Is(err, ErrWrongType) {
				t.Errorf("node %d: Get of a hash: %v", i, err)
			}
			if _, err := n.HGetAll("k2"); !errors.Is(err, ErrWrongType) {
				t.Errorf("node %d: HGetAll of a string: %v", i, err)
			}
		}
	})
}

// TestHashNode: types, wrong types, expiry, copy and rename on one node.
func TestHashNode(t *testing.T) {
	n, err := Open(SingleNode(0))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	hset(t, n, "h", "b=2", "a=1")
	if got := hashOf(n, "h"); got != "{a=1 b=2}" {
		t.Fatalf("holds %s", got)
	}
	if ty, ok := n.Type("h"); !ok || ty != TypeHash || ty.String() != "hash" {
		t.Errorf("Type = %v, %v", ty, ok)
	}
	if v, err := n.HGet("h", "a"); err != nil || string(v) != "1" {
		t.Errorf("HGet = %q, %v", v, err)
	}
	if _, err := n.HGet("h", "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("HGet of a missing field: %v", err)
	}
	if _, err := n.Get("h"); !errors.Is(err, ErrWrongType) {
		t.Errorf("Get of a hash: %v", err)
	}
	if _, err := n.IncrBy(ctx, "h", 1); !errors.Is(err, ErrWrongType) {
		t.Errorf("IncrBy of a hash: %v", err)
	}
	if err := n.Set(ctx, "s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.HSet(ctx, "s", []Field{{[]byte("f"), []byte("v")}}); !errors.Is(err, ErrWrongType) {
		t.Errorf("HSet of a string: %v", err)
	}
	if err := n.Expire(ctx, "h", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl, err := n.TTL("h"); err != nil || ttl <= 0 {
		t.Errorf("TTL after Expire: %v, %v", ttl, err)
	}
	if got := hashOf(n, "h"); got != "{a=1 b=2}" {
		t.Errorf("after Expire holds %s", got)
	}
	if err := n.Persist(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	if ttl, err := n.TTL("h"); err != nil || ttl != 0 {
		t.Errorf("TTL after Persist: %v, %v", ttl, err)
	}
	if ok, err := n.Copy(ctx, "h", "h2", false); err != nil || !ok {
		t.Fatalf("Copy: %v, %v", ok, err)
	}
	if err := n.Rename(ctx, "h2", "s"); err != nil { // replaces the string
		t.Fatal(err)
	}
	if got := hashOf(n, "s"); got != "{a=1 b=2}" {
		t.Errorf("renamed copy holds %s", got)
	}
	if n.Contains("h2") {
		t.Error("the renamed key is still there")
	}
	// A field count or size over the bounds writes nothing.
	big := make([]byte, n.cfg.MaxValueBytes)
	if _, err := n.HSet(ctx, "h", []Field{{[]byte("big"), big}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("HSet over the value limit: %v", err)
	}
	if got := hashOf(n, "h"); got != "{a=1 b=2}" {
		t.Errorf("after a refused write holds %s", got)
	}
	if mu, err := n.MemoryUsage("h"); err != nil || mu <= int64(len("h")+4) {
		t.Errorf("MemoryUsage = %d, %v", mu, err)
	}
}

// TestHashEvictedWhole: a hash counts against the memory budget with all
// its fields, and is evicted as one entry: never a part of it.
func TestHashEvictedWhole(t *testing.T) {
	cfg := SingleNode(64 << 10)
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	var fields []Field
	for i := range 50 {
		fields = append(fields, Field{fmt.Appendf(nil, "f%02d", i), make([]byte, 100)})
	}
	if _, err := n.HSet(ctx, "big", fields); err != nil {
		t.Fatal(err)
	}
	before := n.Stats().Bytes
	usage, err := n.MemoryUsage("big")
	if err != nil {
		t.Fatal(err)
	}
	if usage < 50*100 || before < usage {
		t.Fatalf("MemoryUsage %d, budget in use %d: the hash is not charged whole", usage, before)
	}
	for i := 0; n.Contains("big"); i++ {
		if err := n.Set(ctx, fmt.Sprint("k", i), make([]byte, 500)); err != nil {
			t.Fatal(err)
		}
		if i > 10000 {
			t.Fatal("the hash is never evicted")
		}
	}
	if _, err := n.HGetAll("big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("HGetAll after eviction: %v", err)
	}
}
