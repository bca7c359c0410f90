package store

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/lru"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		isLRU bool // the lru engine found it, so its sentinel is wrapped too
	}{
		{name: "negative bytes", cfg: Config{MaxBytes: -1}},
		{name: "negative entries", cfg: Config{MaxEntries: -1}},
		{name: "negative tombstones", cfg: Config{MaxTombstones: -1}},
		{name: "negative horizon", cfg: Config{TombstoneHorizon: -time.Second}},
		{name: "negative ghost slots", cfg: Config{GhostSlots: -1}},
		{name: "ghost slots not a power of two", cfg: Config{GhostSlots: 1000}},
		{name: "too many ghost slots", cfg: Config{GhostSlots: 1 << 31}},
		{name: "shards beyond entries", cfg: Config{MaxEntries: 2, Shards: 4}, isLRU: true},
		{name: "bytes too small for an entry", cfg: Config{MaxBytes: 10}, isLRU: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open(%+v) error = %v, want ErrInvalidConfig", tt.cfg, err)
			}
			if got := errors.Is(err, lru.ErrInvalidConfig); got != tt.isLRU {
				t.Errorf("errors.Is(%v, lru.ErrInvalidConfig) = %v, want %v", err, got, tt.isLRU)
			}
			if !strings.HasPrefix(err.Error(), "store: invalid config") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := open(t, Config{ReclaimInterval: -1})
	if got := len(s.ghosts.slots); got != DefaultGhostSlots {
		t.Errorf("ghost slots = %d, want %d", got, DefaultGhostSlots)
	}
	for _, tt := range s.tombs.tables {
		if tt.max != DefaultMaxTombstones || tt.horizon != int64(DefaultTombstoneHorizon) {
			t.Errorf("tombstones max %d horizon %v, want %d %v", tt.max, time.Duration(tt.horizon), DefaultMaxTombstones, DefaultTombstoneHorizon)
		}
	}
	// The real clock: a write expiring in an hour is live, one an hour ago is not.
	now := time.Now()
	apply(t, s, setExp("a", "1", Version{HLC: 1 << 20, Origin: 1}, now.Add(time.Hour).UnixNano()), Applied)
	apply(t, s, setExp("b", "1", Version{HLC: 1 << 20, Origin: 1}, now.Add(-time.Hour).UnixNano()), AlreadyExpired)
}

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		a, b Version
		want int
	}{
		{ver(1, 0, 1), ver(1, 0, 1), 0},
		{ver(1, 0, 1), ver(2, 0, 1), -1},
		{ver(1, 1, 1), ver(1, 0, 9), 1},  // HLC first, origin only breaks ties
		{ver(1, 0, 2), ver(1, 0, 1), 1},  // tie on HLC: origin decides
		{ver(1, 0, 1), ver(1, 0, 2), -1}, //
		{Version{}, ver(0, 0, 0), -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
	if !(Version{}).IsZero() || ver(0, 0, 0).IsZero() || (Version{Origin: 1}).IsZero() {
		t.Error("IsZero is wrong")
	}
	if got, want := ver(123, 5, 3).String(), "1700000000123.5@3"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{KindSet.String(), "set"},
		{KindDelete.String(), "delete"},
		{KindHash.String(), "hash"},
		{Kind(8).String(), "Kind(8)"},
		{Applied.String(), "applied"},
		{Stale.String(), "stale"},
		{Refused.String(), "refused"},
		{AlreadyExpired.String(), "already-expired"},
		{TooLarge.String(), "too-large"},
		{Invalid.String(), "invalid"},
		{Declined.String(), "declined"},
		{Result(0).String(), "Result(0)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestApplyLWW pins the merge rule on short scripts: an op takes effect only
// if strictly newer than the key's entry or tombstone.
func TestApplyLWW(t *testing.T) {
	type step struct {
		op   Op
		want Result
	}
	tests := []struct {
		name  string
		steps []step
		want  keyState
	}{
		{"newer set replaces", []step{{set("k", "a", v(1)), Applied}, {set("k", "b", v(2)), Applied}},
			keyState{Live: true, Value: "b", Ver: v(2)}},
		{"older set is stale", []step{{set("k", "b", v(2)), Applied}, {set("k", "a", v(1)), Stale}},
			keyState{Live: true, Value: "b", Ver: v(2)}},
		{"same version is stale", []step{{set("k", "a", v(1)), Applied}, {set("k", "a", v(1)), Stale}},
			keyState{Live: true, Value: "a", Ver: v(1)}},
		{"origin breaks a tie", []step{{set("k", "a", ver(1, 0, 2)), Applied}, {set("k", "b", ver(1, 0, 1)), Stale}, {set("k", "c", ver(1, 0, 3)), Applied}},
			keyState{Live: true, Value: "c", Ver: ver(1, 0, 3)}},
		{"delete of absent key leaves a tombstone", []step{{del("k", v(1)), Applied}},
			keyState{Tomb: true, TombVer: v(1)}},
		{"newer delete removes", []step{{set("k", "a", v(1)), Applied}, {del("k", v(2)), Applied}},
			keyState{Tomb: true, TombVer: v(2)}},
		{"older delete is stale", []step{{set("k", "a", v(2)), Applied}, {del("k", v(1)), Stale}},
			keyState{Live: true, Value: "a", Ver: v(2)}},
		{"newer set replaces a tombstone", []step{{del("k", v(1)), Applied}, {set("k", "a", v(2)), Applied}},
			keyState{Live: true, Value: "a", Ver: v(2)}},
		{"newer delete moves a tombstone", []step{{del("k", v(1)), Applied}, {del("k", v(3)), Applied}, {del("k", v(2)), Stale}},
			keyState{Tomb: true, TombVer: v(3)}},
		{"unknown kind", []step{{Op{Kind: 9, Key: "k", Version: v(1)}, Invalid}},
			keyState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			for _, st := range tt.steps {
				apply(t, s, st.op, st.want)
			}
			if got := stateOf(s, []string{"k"})[0]; got != tt.want {
				t.Errorf("state %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNoResurrection: after a newer version of k is gone, by any route, an
// older Set never brings its value back, and a newer Set still works.
func TestNoResurrection(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		// gone makes the version v(5) of k leave the store (or arrive and
		// be remembered without a value).
		gone func(t *testing.T, s *Store, clock *testkit.Clock)
		want Result // for the older Set v(3) afterwards
	}{
		{"delete then older set", nil, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, del("k", v(5)), Applied)
		}, Stale},
		{"older set then delete", nil, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, set("k", "old", v(3)), Applied)
			apply(t, s, del("k", v(5)), Applied)
		}, Stale},
		{"tombstone past the horizon, by Reclaim", nil, func(t *testing.T, s *Store, clock *testkit.Clock) {
			apply(t, s, del("k", v(5)), Applied)
			clock.Advance(time.Hour + time.Second)
			if n := s.Reclaim(); n != 1 {
				t.Fatalf("Reclaim = %d, want 1", n)
			}
		}, Refused},
		{"tombstone past the horizon, by a later Apply", nil, func(t *testing.T, s *Store, clock *testkit.Clock) {
			apply(t, s, del("k", v(5)), Applied)
			clock.Advance(time.Hour + time.Second)
			apply(t, s, del("other", v(6)), Applied)
		}, Refused},
		{"tombstone overflow", func(c *Config) { c.MaxTombstones = 2 }, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, del("k", v(5)), Applied)
			apply(t, s, del("a", v(6)), Applied)
			apply(t, s, del("b", v(7)), Applied)
		}, Refused},
		{"eviction", func(c *Config) { c.MaxEntries = 2 }, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, set("k", "new", v(5)), Applied)
			apply(t, s, set("a", "x", v(1)), Applied)
			apply(t, s, set("b", "x", v(1)), Applied)
		}, Refused},
		{"eviction after the tombstone was replaced", func(c *Config) { c.MaxEntries = 2 }, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, del("k", v(2)), Applied)
			apply(t, s, set("k", "new", v(5)), Applied)
			apply(t, s, set("a", "x", v(1)), Applied)
			apply(t, s, set("b", "x", v(1)), Applied)
		}, Refused},
		{"Purge of an entry", nil, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, set("k", "new", v(5)), Applied)
			s.Purge()
		}, Refused},
		{"Purge of a tombstone", nil, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, del("k", v(5)), Applied)
			s.Purge()
		}, Refused},
		{"DropUnvouched", nil, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, set("k", "new", v(5)), Applied)
			if n := s.DropUnvouched(func(string, Version) bool { return false }); n != 1 {
				t.Fatalf("DropUnvouched = %d, want 1", n)
			}
		}, Refused},
		{"too large", func(c *Config) { c.MaxEntries, c.MaxBytes = 0, 4096 }, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, set("k", strings.Repeat("x", 8192), v(5)), TooLarge)
		}, Refused},
		{"too large over a tombstone", func(c *Config) { c.MaxEntries, c.MaxBytes = 0, 4096 }, func(t *testing.T, s *Store, _ *testkit.Clock) {
			apply(t, s, del("k", v(2)), Applied)
			apply(t, s, set("k", strings.Repeat("x", 8192), v(5)), TooLarge)
		}, Refused},
		{"already expired", nil, func(t *testing.T, s *Store, clock *testkit.Clock) {
			apply(t, s, setExp("k", "new", v(5), clock.UnixNano()), AlreadyExpired)
		}, Stale},
		{"expired and reclaimed", nil, func(t *testing.T, s *Store, clock *testkit.Clock) {
			apply(t, s, setExp("k", "new", v(5), clock.UnixNano()+int64(time.Second)), Applied)
			clock.Advance(3 * time.Second)
			s.Reclaim()
		}, Stale},
		{"expired, its tombstone past the horizon", nil, func(t *testing.T, s *Store, clock *testkit.Clock) {
			apply(t, s, setExp("k", "new", v(5), clock.UnixNano()+int64(time.Second)), Applied)
			clock.Advance(3 * time.Second)
			s.Reclaim()
			clock.Advance(time.Hour)
			s.Reclaim()
			if s.Tombstones() != 0 {
				t.Fatalf("%d tombstones past the horizon", s.Tombstones())
			}
		}, Refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testkit.NewClock(epoch)
			cfg := testConfig(clock)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			s := open(t, cfg)
			tt.gone(t, s, clock)
			apply(t, s, set("k", "old", v(3)), tt.want)
			if e, ok := s.Get("k"); ok {
				t.Fatalf("Get(k) = %q@%v after the newer version v(5) left", e.Value, e.Version)
			}
			// An older delete must not plant a tombstone below what left
			// either: it would let a version between the two pass.
			s.Apply(del("k", v(4)))
			apply(t, s, set("k", "old", ver(4, 1, 1)), tt.want)
			if _, ok := s.Get("k"); ok {
				t.Fatal("Get(k) found a value older than v(5)")
			}
			// Not refusing forever: a newer write is taken.
			apply(t, s, set("k", "newest", v(9)), Applied)
			if e, ok := s.Get("k"); !ok || string(e.Value) != "newest" {
				t.Fatalf("Get(k) = %q, %v after a newer Set", e.Value, ok)
			}
		})
	}
}

// TestClassicGhost is the classic case of docs/design.md's merge rules: a newer write with a short TTL
// expires and is reclaimed, then an older write without TTL arrives late.
// However the entry left, the older write is kept out: by the tombstone an
// expired entry leaves, or by the ghost of an evicted one.
func TestClassicGhost(t *testing.T) {
	tests := []struct {
		name    string
		reclaim func(s *Store)
		want    Result
	}{
		{"reclaimed by Reclaim", func(s *Store) { s.Reclaim() }, Stale},
		{"removed by a Get", func(s *Store) { s.Get("k") }, Stale},
		{"removed by a Peek", func(s *Store) { s.Peek("k") }, Stale},
		{"found expired by the Apply itself", func(*Store) {}, Stale},
		{"evicted by later writes", func(s *Store) {
			// The reclaim steps of the writes remove k as expired first.
			for i, k := range keysOf(2000) {
				s.Apply(set("fill"+k, "x", v(int64(10+i))))
			}
		}, Stale},
		{"tombstone pushed out by later expiries", func(s *Store) {
			// The bound drops the tombstone whose horizon started first:
			// k's started at its expiry, 1 s after epoch.
			s.Reclaim()
			for i, k := range keysOf(20) {
				s.Apply(setExp("exp"+k, "x", v(int64(1500+i)), epoch.UnixNano()+int64(1500+i)*int64(time.Millisecond)))
			}
		}, Refused},
		{"earlier expiries pushed out first", func(s *Store) {
			s.Reclaim()
			for i, k := range keysOf(20) {
				s.Apply(setExp("exp"+k, "x", v(int64(10+i)), epoch.UnixNano()+int64(10+i)*int64(time.Millisecond)))
			}
		}, Stale},
		{"deletes do not push out expiries", func(s *Store) {
			s.Reclaim()
			for i, k := range keysOf(20) {
				s.Apply(del("del"+k, v(int64(1500+i))))
			}
		}, Stale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testkit.NewClock(epoch)
			cfg := testConfig(clock)
			cfg.MaxTombstones = 10
			s := open(t, cfg)
			apply(t, s, setExp("k", "new", v(5), clock.UnixNano()+int64(time.Second)), Applied)
			clock.Advance(2 * time.Second)
			tt.reclaim(s)
			before := s.Stats().GhostRefusals
			apply(t, s, set("k", "old", v(3)), tt.want)
			if e, ok := s.Get("k"); ok {
				t.Fatalf("Get(k) = %q: the older write came back", e.Value)
			}
			if n, want := s.Stats().GhostRefusals-before, map[bool]uint64{true: 1}[tt.want == Refused]; n != want {
				t.Errorf("GhostRefusals grew by %d, want %d", n, want)
			}
		})
	}
}

// TestGhostConservative: with one ghost slot every key shares it, so a key
// that never existed is refused below the slot (a miss, allowed), and taken
// above it.
func TestGhostConservative(t *testing.T) {
	clock := testkit.NewClock(epoch)
	cfg := testConfig(clock)
	cfg.GhostSlots, cfg.MaxEntries = 1, 1
	s := open(t, cfg)
	apply(t, s, set("a", "1", v(5)), Applied)
	apply(t, s, set("b", "1", v(6)), Applied) // evicts a: ghost 5
	apply(t, s, set("c", "1", v(4)), Refused) // c never existed: a miss
	apply(t, s, set("c", "1", ver(5, 0, 9)), Refused)
	apply(t, s, set("c", "1", ver(5, 1, 0)), Applied)
}

func TestExpiryIsExact(t *testing.T) {
	s, clock := newStore(t)
	exp := clock.UnixNano() + int64(time.Second)
	apply(t, s, setExp("k", "v", v(1), exp), Applied)
	clock.Set(time.Unix(0, exp-1))
	for name, read := range map[string]func(string) (Entry, bool){"Get": s.Get, "Peek": s.Peek} {
		if e, ok := read("k"); !ok || e.ExpireAt != exp || string(e.Value) != "v" || e.Version != v(1) {
			t.Fatalf("%s 1ns before expiry = %+v, %v", name, e, ok)
		}
	}
	if n := len(snapshotOps(s)); n != 1 {
		t.Fatalf("Snapshot 1ns before expiry has %d ops, want 1", n)
	}
	clock.Set(time.Unix(0, exp))
	// At expiry the snapshot still carries the entry, not reclaimed yet, as
	// an expired Set: a receiver keeps the expiry's tombstone, never a value.
	if ops := snapshotOps(s); len(ops) != 1 || ops[0].ExpireAt != exp {
		t.Fatalf("Snapshot at expiry = %v, want the expired Set", ops)
	}
	if r := open(t, testConfig(clock)).Apply(snapshotOps(s)[0]); r != AlreadyExpired {
		t.Fatalf("the expired Set applied elsewhere: %v, want AlreadyExpired", r)
	}
	for name, read := range map[string]func(string) (Entry, bool){"Peek": s.Peek, "Get": s.Get} {
		if e, ok := read("k"); ok {
			t.Fatalf("%s at expiry = %+v, want none", name, e)
		}
	}
}

// TestExpireIsAWrite: EXPIRE and PERSIST are Sets of the same value with a
// new expiry and a new version.
func TestExpireIsAWrite(t *testing.T) {
	s, clock := newStore(t)
	now := clock.UnixNano()
	apply(t, s, set("k", "v", v(1)), Applied)
	apply(t, s, setExp("k", "v", v(2), now+int64(time.Second)), Applied) // EXPIRE k 1
	apply(t, s, set("k", "v", v(3)), Applied)                            // PERSIST k
	apply(t, s, setExp("k", "v", v(2), now+int64(time.Second)), Stale)   // the EXPIRE again, late
	clock.Advance(time.Hour)
	if e, ok := s.Get("k"); !ok || e.ExpireAt != 0 {
		t.Fatalf("Get = %+v, %v; want the persisted entry", e, ok)
	}
}

func TestAlreadyExpired(t *testing.T) {
	tests := []struct {
		name   string
		before []Op // applied first
		exp    int64
		want   Result
		state  keyState
	}{
		{"expiry now", nil, 0, AlreadyExpired, keyState{Tomb: true, TombVer: v(5)}},
		{"expiry in the past", nil, -1, AlreadyExpired, keyState{Tomb: true, TombVer: v(5)}},
		{"expiry 1ns ahead", nil, 1, Applied, keyState{Live: true, Value: "new", Ver: v(5), ExpireAt: 1}},
		{"removes an older live entry", []Op{set("k", "old", v(3))}, 0, AlreadyExpired, keyState{Tomb: true, TombVer: v(5)}},
		{"moves an older tombstone", []Op{del("k", v(3))}, 0, AlreadyExpired, keyState{Tomb: true, TombVer: v(5)}},
		{"stale against a newer entry", []Op{set("k", "newer", v(7))}, 0, Stale, keyState{Live: true, Value: "newer", Ver: v(7)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newStore(t)
			now := clock.UnixNano()
			for _, op := range tt.before {
				apply(t, s, op, Applied)
			}
			apply(t, s, setExp("k", "new", v(5), now+tt.exp), tt.want)
			want := tt.state
			if want.ExpireAt != 0 {
				want.ExpireAt += now
			}
			if got := stateOf(s, []string{"k"})[0]; got != want {
				t.Fatalf("state %v, want %v", got, want)
			}
			if tt.want == AlreadyExpired {
				apply(t, s, set("k", "old", v(4)), Stale) // the version is remembered
				apply(t, s, set("k", "newest", v(6)), Applied)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	clock := testkit.NewClock(epoch)
	cfg := testConfig(clock)
	cfg.MaxEntries, cfg.MaxBytes = 0, 4096
	s := open(t, cfg)
	limit := s.cache.MaxEntrySize()
	fits := strings.Repeat("x", int(limit)-1) // with the 1-byte key
	apply(t, s, set("k", fits, v(1)), Applied)
	apply(t, s, set("k", fits+"x", v(2)), TooLarge)
	if _, ok := s.Get("k"); ok {
		t.Fatal("the older value survived a newer too-large Set: a stale hit")
	}
	apply(t, s, set("k", fits+"x", v(3)), TooLarge)
	apply(t, s, set("k", "small", v(3)), Refused) // the too-large version ghosts
	apply(t, s, set("k", "small", v(4)), Applied)
	apply(t, s, set("k", fits+"x", v(1)), Stale) // stale before too large
	st := s.Stats()
	if st.Sets.TooLarge != 2 || st.Sets.Applied != 2 || st.Sets.Stale != 1 || st.Sets.Refused != 1 {
		t.Errorf("Stats.Sets = %+v", st.Sets)
	}
	if s.Bytes() > 4096 {
		t.Errorf("Bytes = %d over MaxBytes", s.Bytes())
	}
}

func TestStats(t *testing.T) {
	s, clock := newStore(t)
	now := clock.UnixNano()
	apply(t, s, set("a", "1", v(2)), Applied)
	apply(t, s, set("a", "1", v(1)), Stale)
	apply(t, s, setExp("b", "1", v(1), now), AlreadyExpired)
	apply(t, s, del("a", v(3)), Applied)
	apply(t, s, del("a", v(3)), Stale)
	apply(t, s, del("c", v(1)), Applied)
	apply(t, s, Op{Key: "x"}, Invalid)
	clock.Advance(time.Hour + 2*time.Millisecond) // b and c past the horizon, not a
	s.Reclaim()
	apply(t, s, del("c", v(1)), Refused)
	apply(t, s, set("d", "12", v(1)), Applied)
	s.Get("d")
	s.Get("a")
	want := Stats{
		Sets:              KindStats{Applied: 2, Stale: 1, AlreadyExpired: 1},
		Deletes:           KindStats{Applied: 2, Stale: 1, Refused: 1},
		Invalid:           1,
		GhostRefusals:     1,
		Entries:           1,
		Bytes:             3 + s.cache.EntryOverhead(),
		Tombstones:        1,
		TombstonesDropped: 2,
		Hits:              1,
		Misses:            1,
	}
	if got := s.Stats(); got != want {
		t.Errorf("Stats() =\n%+v\nwant\n%+v", got, want)
	}
	if s.Len() != 1 || s.Tombstones() != 1 {
		t.Errorf("Len %d Tombstones %d, want 1 1", s.Len(), s.Tombstones())
	}
}

func TestBounds(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		clock := testkit.NewClock(epoch)
		cfg := testConfig(clock)
		cfg.MaxEntries, cfg.Shards = 100, 0
		s := open(t, cfg)
		for i, k := range keysOf(1000) {
			s.Apply(set(k, "v", v(int64(i))))
			if n := s.Len(); n > 100 {
				t.Fatalf("Len = %d after %d keys, over MaxEntries 100", n, i+1)
			}
		}
		if st := s.Stats(); st.Evictions != 900 {
			t.Errorf("Evictions = %d, want 900", st.Evictions)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		clock := testkit.NewClock(epoch)
		cfg := testConfig(clock)
		cfg.MaxEntries, cfg.MaxBytes = 0, 64<<10
		s := open(t, cfg)
		for i, k := range keysOf(2000) {
			s.Apply(set(k, strings.Repeat("v", 100), v(int64(i))))
			if n := s.Bytes(); n > 64<<10 {
				t.Fatalf("Bytes = %d after %d keys, over MaxBytes", n, i+1)
			}
		}
	})
	t.Run("tombstones", func(t *testing.T) {
		clock := testkit.NewClock(epoch)
		cfg := testConfig(clock)
		cfg.MaxTombstones = 100
		s := open(t, cfg)
		for i, k := range keysOf(1000) {
			s.Apply(del(k, v(int64(i))))
			if n := s.Tombstones(); n > 100 {
				t.Fatalf("%d tombstones after %d deletes, over MaxTombstones 100", n, i+1)
			}
		}
		// The newest 100 stay; the oldest went to the ghost table.
		keys := keysOf(1000)
		for i, k := range keys {
			if _, ok := s.Tombstone(k); ok != (i >= 900) {
				t.Fatalf("Tombstone(%s) present = %v", k, ok)
			}
		}
		if st := s.Stats(); st.TombstonesDropped != 900 {
			t.Errorf("TombstonesDropped = %d, want 900", st.TombstonesDropped)
		}
	})
	t.Run("tombstone horizon", func(t *testing.T) {
		clock := testkit.NewClock(epoch)
		cfg := testConfig(clock)
		cfg.TombstoneHorizon = time.Minute
		s := open(t, cfg)
		// One delete a second for ten minutes, versions on the clock's time.
		for i, k := range keysOf(600) {
			s.Apply(del(k, v(int64(i)*1000)))
			clock.Advance(time.Second)
		}
		s.Reclaim()
		if n := s.Tombstones(); n < 59 || n > 61 {
			t.Errorf("%d tombstones left, want about 60 (one minute's worth)", n)
		}
		// Apply alone keeps up too: each drops a few on the way.
		clock.Advance(time.Hour)
		nowMs := clock.Now().Sub(epoch).Milliseconds()
		for i, k := range keysOf(100) {
			s.Apply(del("x"+k, v(nowMs+int64(i))))
		}
		if n := s.Tombstones(); n != 100 {
			t.Errorf("%d tombstones after an hour and 100 new deletes, want just those 100", n)
		}
	})
}

// scriptClock returns the scripted times in order, then rest.
type scriptClock struct {
	mu     sync.Mutex
	script []int64
	rest   int64
}

func (c *scriptClock) UnixNano() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.script) > 0 {
		t := c.script[0]
		c.script = c.script[1:]
		return t
	}
	return c.rest
}

// TestExpiredBetweenClockReads pins the window between the engine's clock
// reading (before it locks the shard) and the next one: an entry live at
// the first is live to Apply too (it decides by the engine's reading), and
// once expired it must leave its tombstone like any expired entry, or the
// older write it hides gets in.
func TestExpiredBetweenClockReads(t *testing.T) {
	start := epoch.UnixNano()
	exp := start + int64(time.Second)
	clock := &scriptClock{rest: start}
	cfg := testConfig(nil)
	cfg.Clock = clock
	s := open(t, cfg)
	apply(t, s, setExp("k", "new", v(5), exp), Applied)

	clock.mu.Lock()
	clock.script = []int64{exp - 1, exp} // the engine's reading, then the store's
	clock.rest = exp
	clock.mu.Unlock()
	apply(t, s, set("k", "old", v(3)), Stale)
	if e, ok := s.Get("k"); ok {
		t.Fatalf("Get(k) = %q@%v: the older write got in", e.Value, e.Version)
	}
}

// TestClockNeverGoesBack: a clock stepping back neither revives an expired
// entry nor makes the engine and Apply disagree on an op's expiry (Apply
// would call it live and store it, the engine would drop it untraced).
func TestClockNeverGoesBack(t *testing.T) {
	s, clock := newStore(t)
	exp := clock.UnixNano() + int64(time.Second)
	apply(t, s, setExp("a", "v", v(1), exp), Applied)
	clock.Advance(time.Second)
	if _, ok := s.Get("a"); ok {
		t.Fatal("Get at expiry found the entry")
	}
	clock.Advance(-time.Minute)
	if _, ok := s.Get("a"); ok {
		t.Fatal("Get found an expired entry after the clock stepped back")
	}
	apply(t, s, setExp("b", "v", v(1), exp), AlreadyExpired)
	if _, ok := s.Tombstone("b"); !ok {
		t.Fatal("the already expired Set left no tombstone")
	}
}

// TestMergeTombstoneGhosts: after merging another node's tombstone-ghost
// table, a write that table covers is refused here too, whatever the two
// tables' sizes; an empty or malformed table merges nothing.
func TestMergeTombstoneGhosts(t *testing.T) {
	for _, senderSlots := range []int{1, 256, 1024, 4096} {
		t.Run(strconv.Itoa(senderSlots), func(t *testing.T) {
			clock := testkit.NewClock(epoch)
			cfg := testConfig(clock) // 1024 ghost slots
			sender := open(t, func() Config { c := cfg; c.GhostSlots = senderSlots; c.MaxTombstones = 1; return c }())
			apply(t, sender, del("k", v(5)), Applied)
			apply(t, sender, del("other", v(6)), Applied) // over the bound: k's tombstone leaves, its ghost is 5
			if _, ok := sender.Tombstone("k"); ok {
				t.Fatal("k's tombstone is still exact; the test needs it dropped")
			}
			s := open(t, cfg)
			if !s.MergeTombstoneGhosts(sender.TombstoneGhosts()) {
				t.Fatal("MergeTombstoneGhosts refused a well-formed table")
			}
			apply(t, s, set("k", "old", v(4)), Refused)
			apply(t, s, set("k", "new", v(7)), Applied)
			// The merged knowledge travels on in this store's own table.
			if !GhostCovers(s.TombstoneGhosts(), "k", v(5).HLC) {
				t.Error("the merged ghost is not in this store's TombstoneGhosts")
			}
		})
	}
	s, _ := newStore(t)
	for _, bad := range [][]uint64{nil, {1, 2, 3}} {
		if s.MergeTombstoneGhosts(bad) {
			t.Errorf("MergeTombstoneGhosts(%v) merged", bad)
		}
		if GhostCovers(bad, "k", 1) {
			t.Errorf("GhostCovers(%v) covers a version: a table that cannot be read proves nothing", bad)
		}
	}
	apply(t, s, set("k", "v", v(1)), Applied)
}

// TestLocalGhostsDoNotTravel pins the bug where a region's evictions and
// FLUSHALL erased data in the others: ghosts of evicted, flushed or
// unvouched entries refuse older writes here but are not in the table a
// full sync sends; deletes and expiries whose tombstones left are.
func TestLocalGhostsDoNotTravel(t *testing.T) {
	clock := testkit.NewClock(epoch)
	cfg := testConfig(clock)
	cfg.MaxEntries, cfg.MaxTombstones = 2, 1
	s := open(t, cfg)
	apply(t, s, set("evicted", "v", v(5)), Applied)
	apply(t, s, set("a", "v", v(6)), Applied)
	apply(t, s, set("b", "v", v(7)), Applied) // evicts "evicted"
	apply(t, s, set("evicted", "older", v(4)), Refused)
	s.Purge() // flushes a and b
	apply(t, s, set("a", "older", v(3)), Refused)
	apply(t, s, del("deleted", v(8)), Applied)
	apply(t, s, del("other", v(9)), Applied) // "deleted"'s tombstone leaves
	g := s.TombstoneGhosts()
	for _, k := range []string{"evicted", "a", "b"} {
		if GhostCovers(g, k, v(3).HLC) {
			t.Errorf("the travelling table covers %q, which was only evicted or flushed here", k)
		}
	}
	if !GhostCovers(g, "deleted", v(8).HLC) {
		t.Error("the travelling table does not cover a delete whose tombstone left")
	}
	// A receiver of the table takes the evicted and flushed keys' versions.
	r := open(t, testConfig(clock))
	r.MergeTombstoneGhosts(g)
	apply(t, r, set("evicted", "v", v(5)), Applied)
	apply(t, r, set("a", "v", v(6)), Applied)
	apply(t, r, set("deleted", "older", v(2)), Refused)
}

// TestExpiredThenEvictedIsAnExpiry: an entry the engine evicts (or FLUSHALL
// purges) after its expiry passed leaves the expiry's record, which full
// syncs carry, not a local ghost. Otherwise a peer away meanwhile, holding
// an older version, keeps it after a full sync from this store: nothing it
// receives says a newer write superseded it. (Purge lost it until this
// test; the engine already reports an expired eviction as Expired.)
func TestExpiredThenEvictedIsAnExpiry(t *testing.T) {
	for _, how := range []string{"evicted", "purged"} {
		t.Run(how, func(t *testing.T) {
			clock := testkit.NewClock(epoch)
			cfg := testConfig(clock)
			cfg.MaxEntries, cfg.MaxTombstones = 1, 1
			s := open(t, cfg)
			exp := clock.UnixNano() + int64(time.Second)
			apply(t, s, setExp("k", "v", v(5), exp), Applied)
			clock.Advance(2 * time.Second)
			if how == "evicted" {
				apply(t, s, set("other", "v", v(6)), Applied) // evicts k, expired
			} else {
				s.Purge()
			}
			// A peer that missed the write, holding k's older version, takes
			// this store's full sync: the snapshot's ops, then its ghosts.
			peer := open(t, testConfig(clock))
			apply(t, peer, set("k", "older", v(1)), Applied)
			keys := map[string]bool{}
			for _, op := range snapshotOps(s) {
				peer.Apply(op)
				keys[op.Key] = true
			}
			g := s.TombstoneGhosts()
			peer.MergeTombstoneGhosts(g)
			peer.DropUnvouched(func(key string, ver Version) bool { return keys[key] || !GhostCovers(g, key, ver.HLC) })
			if e, ok := peer.Peek("k"); ok {
				t.Fatalf("after the full sync the peer holds k = %+v; the expired write superseded it", e)
			}
			if r := s.Apply(set("k", "older", v(4))); r == Applied {
				t.Fatal("an older write of k applied here after its expiry was evicted or purged")
			}
		})
	}
}
