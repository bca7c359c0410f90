package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// fillRandom writes a random mix to s: live entries, entries with a TTL
// that will have passed after advance, and tombstones (over 256, so that
// Snapshot copies several chunks).
func fillRandom(t *testing.T, s *Store, keys []string) {
	t.Helper()
	r := newRand(t)
	now := s.clock.UnixNano()
	for i, k := range keys {
		vv := ver(int64(r.IntN(100)), 0, uint32(1+r.IntN(3)))
		switch r.IntN(4) {
		case 0:
			s.Apply(set(k, fmt.Sprint("value of ", k), vv))
		case 1:
			s.Apply(setExp(k, "short", vv, now+int64(time.Second)))
		case 2:
			s.Apply(setExp(k, "long", vv, now+int64(time.Hour)+int64(i)))
		case 3:
			s.Apply(del(k, vv))
		}
	}
}

func TestSnapshot(t *testing.T) {
	clock := testkit.NewClock(epoch)
	cfg := testConfig(clock)
	cfg.MaxEntries = 4096
	s := open(t, cfg)
	keys := keysOf(2000)
	fillRandom(t, s, keys)
	clock.Advance(2 * time.Second) // the short TTLs pass, unreclaimed

	// An expired entry not yet reclaimed is reported as the expired Set it
	// is (not live: its ExpireAt has passed), and leaves a tombstone of its
	// version when removed (below, by Peek). Tombstone does not reclaim, so
	// tombBefore is the state the snapshot saw.
	tombBefore := make(map[string]Version)
	for _, k := range keys {
		if tv, ok := s.Tombstone(k); ok {
			tombBefore[k] = tv
		}
	}
	ops := snapshotOps(s)
	seen := make(map[string]Op)
	for i, op := range ops {
		if prev, dup := seen[op.Key]; dup {
			t.Fatalf("key %q reported twice: %s and %s", op.Key, fmtOp(prev), fmtOp(op))
		}
		seen[op.Key] = op
		if i > 0 && op.Kind == KindSet && ops[i-1].Kind == KindDelete {
			t.Fatalf("op %d: a live entry after a tombstone", i)
		}
	}
	now := clock.UnixNano()
	live, tombs, expired := 0, 0, 0
	for _, k := range keys {
		op, reported := seen[k]
		e, isLive := s.Peek(k)
		tv, isTomb := tombBefore[k]
		switch {
		case isLive:
			live++
			if !reported || op.Kind != KindSet || string(op.Value) != string(e.Value) || op.Version != e.Version || op.ExpireAt != e.ExpireAt {
				t.Fatalf("live %q = %+v reported as %v, %s", k, e, reported, fmtOp(op))
			}
		case isTomb:
			tombs++
			if !reported || op.Kind != KindDelete || op.Version != tv {
				t.Fatalf("tombstone %q %v reported as %v, %s", k, tv, reported, fmtOp(op))
			}
		case reported:
			// Expired, removed by the Peek: reported as the expired Set,
			// it left a tombstone of the same version.
			tv, ok := s.Tombstone(k)
			if op.Kind != KindSet || op.ExpireAt == 0 || op.ExpireAt > now || !ok || tv != op.Version {
				t.Fatalf("absent %q reported as %s (tombstone now %v, %v)", k, fmtOp(op), tv, ok)
			}
			expired++
		}
	}
	if live == 0 || tombs <= snapshotChunk || expired == 0 {
		t.Fatalf("weak test: %d live, %d tombstones, %d expired, %d keys", live, tombs, expired, len(keys))
	}

	// Applying the snapshot to an empty store reproduces the state, the
	// expiries' tombstones included.
	replica := open(t, cfg)
	for _, op := range ops {
		want := Applied
		if op.Kind == KindSet && op.ExpireAt != 0 && op.ExpireAt <= now {
			want = AlreadyExpired
		}
		if r := replica.Apply(op); r != want {
			t.Fatalf("Apply(%s) to an empty store = %v, want %v", fmtOp(op), r, want)
		}
	}
	if d := diffStates(keys, stateOf(replica, keys), stateOf(s, keys)); d != "" {
		t.Fatalf("the copy differs:%s", d)
	}
	// And so does applying the copy's own snapshot, whose expiries' tombstones
	// are Deletes carrying the expiry time.
	third := open(t, cfg)
	for _, op := range snapshotOps(replica) {
		third.Apply(op)
	}
	if d := diffStates(keys, stateOf(third, keys), stateOf(s, keys)); d != "" {
		t.Fatalf("the copy of the copy differs:%s", d)
	}
	for _, k := range keys {
		a, okA := s.TombstoneOp(k)
		b, okB := third.TombstoneOp(k)
		if okA != okB || a.Version != b.Version || a.ExpireAt != b.ExpireAt {
			t.Fatalf("tombstone of %q: %s here, %s in the copy of the copy", k, fmtOp(a), fmtOp(b))
		}
	}
}

func TestSnapshotStops(t *testing.T) {
	s, _ := newStore(t)
	keys := keysOf(600)
	for i, k := range keys {
		if i%2 == 0 {
			s.Apply(set(k, "v", v(1)))
		} else {
			s.Apply(del(k, v(1)))
		}
	}
	for _, stopAt := range []int{1, 3, 299, 300, 301, 557, 600} {
		calls := 0
		s.Snapshot(func(Op) bool { calls++; return calls < stopAt })
		if calls != stopAt {
			t.Errorf("yield returning false at call %d: %d calls", stopAt, calls)
		}
	}
}

// TestSnapshotYieldMayCallStore: yield runs without a lock, so it may write
// to the store it walks (a deadlock otherwise).
func TestSnapshotYieldMayCallStore(t *testing.T) {
	s, _ := newStore(t)
	keys := keysOf(600)
	for i, k := range keys {
		if i%2 == 0 {
			s.Apply(set(k, "v", v(1)))
		} else {
			s.Apply(del(k, v(1)))
		}
	}
	n := 0
	s.Snapshot(func(op Op) bool {
		n++
		s.Apply(set("other"+op.Key, "x", v(2)))
		s.Get(op.Key)
		s.Tombstone(op.Key)
		return true
	})
	if n < len(keys) {
		t.Fatalf("%d ops, want at least %d", n, len(keys))
	}
}

func TestDropUnvouched(t *testing.T) {
	s, _ := newStore(t)
	keys := keysOf(100)
	for i, k := range keys {
		s.Apply(set(k, "v", v(int64(i))))
	}
	s.Apply(del("gone", v(1)))
	// Vouch for the even versions only.
	n := s.DropUnvouched(func(key string, vv Version) bool { return (vv.HLC.WallMillis()-epoch.UnixMilli())%2 == 0 })
	if n != 50 || s.Len() != 50 {
		t.Fatalf("DropUnvouched = %d, Len %d; want 50 and 50", n, s.Len())
	}
	for i, k := range keys {
		_, ok := s.Peek(k)
		if ok != (i%2 == 0) {
			t.Fatalf("Peek(%s) = %v", k, ok)
		}
	}
	if s.Tombstones() != 1 {
		t.Fatal("DropUnvouched touched the tombstones")
	}
	// A replacement made after keep looked is left alone.
	s.Apply(set("late", "v", v(1)))
	n = s.DropUnvouched(func(key string, _ Version) bool {
		if key == "late" {
			s.Apply(set("late", "newer", v(200)))
			return false
		}
		return true
	})
	if e, ok := s.Peek("late"); n != 0 || !ok || string(e.Value) != "newer" {
		t.Fatalf("DropUnvouched = %d and late = %q, %v; want 0 and the newer value", n, e.Value, ok)
	}
}

func TestPurge(t *testing.T) {
	s, _ := newStore(t)
	keys := keysOf(100)
	for i, k := range keys {
		if i%2 == 0 {
			s.Apply(set(k, "v", v(10)))
		} else {
			s.Apply(del(k, v(10)))
		}
	}
	s.Purge()
	if s.Len() != 0 || s.Tombstones() != 0 || s.Bytes() != 0 {
		t.Fatalf("after Purge: Len %d, Tombstones %d, Bytes %d", s.Len(), s.Tombstones(), s.Bytes())
	}
	for _, k := range keys {
		apply(t, s, set(k, "old", v(9)), Refused)
		apply(t, s, set(k, "new", v(11)), Applied)
	}
}

// Forget removes the entries asked for and nothing else, leaves their
// tombstones and no ghost: the same versions come back in (a full sync
// refilling a slot), while a write older than a kept tombstone is still
// refused.
func TestForget(t *testing.T) {
	s, _ := newStore(t)
	keys := keysOf(100)
	for _, k := range keys {
		s.Apply(set(k, "v", v(10)))
	}
	s.Apply(del("gone", v(10)))
	odd := func(key string) bool { return slices.Index(keys, key)%2 == 1 }
	if n := s.Forget(odd); n != 50 || s.Len() != 50 {
		t.Fatalf("Forget = %d, Len %d; want 50 and 50", n, s.Len())
	}
	for i, k := range keys {
		if _, ok := s.Peek(k); ok != (i%2 == 0) {
			t.Fatalf("Peek(%s) = %v after Forget", k, ok)
		}
		if i%2 == 1 {
			apply(t, s, set(k, "v", v(10)), Applied) // no ghost refuses it
		}
	}
	if s.Forget(func(key string) bool { return key == "gone" }) != 0 || s.Tombstones() != 1 {
		t.Fatal("Forget touched a tombstone")
	}
	apply(t, s, set("gone", "old", v(9)), Stale)
}
