package store

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized tests (0 = from the time)")

// epoch is the fake clocks' start; test versions are milliseconds after it.
var epoch = time.Unix(1_700_000_000, 0)

// newRand returns a seeded generator and logs the seed, so a failure can be
// replayed with -seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ver returns the version ms milliseconds after epoch, with a logical
// counter and origin.
func ver(ms int64, logical uint16, origin uint32) Version {
	return Version{HLC: hlc.MakeTimestamp(epoch.UnixMilli()+ms, logical), Origin: origin}
}

// v is a shorthand: the version n ms after epoch from origin 1.
func v(n int64) Version { return ver(n, 0, 1) }

func set(key, value string, vv Version) Op {
	return Op{Kind: KindSet, Key: key, Value: []byte(value), Version: vv}
}

func setExp(key, value string, vv Version, expireAt int64) Op {
	op := set(key, value, vv)
	op.ExpireAt = expireAt
	return op
}

func del(key string, vv Version) Op { return Op{Kind: KindDelete, Key: key, Version: vv} }

// testConfig is a small deterministic store: a fake clock and no
// background goroutine.
func testConfig(clock *testkit.Clock) Config {
	return Config{MaxEntries: 1024, Shards: 1, Clock: clock, ReclaimInterval: -1, GhostSlots: 1024}
}

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB) (*Store, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(epoch)
	return open(t, testConfig(clock)), clock
}

func apply(t testing.TB, s *Store, op Op, want Result) {
	t.Helper()
	if got := s.Apply(op); got != want {
		t.Fatalf("Apply(%s) = %v, want %v", fmtOp(op), got, want)
	}
}

func fmtOp(op Op) string {
	if op.Kind == KindDelete {
		return fmt.Sprintf("delete %q %v", op.Key, op.Version)
	}
	return fmt.Sprintf("set %q=%q %v exp=%d", op.Key, op.Value, op.Version, op.ExpireAt)
}

// keyState is everything observable about one key.
type keyState struct {
	Live     bool
	Value    string
	Ver      Version
	ExpireAt int64
	Tomb     bool
	TombVer  Version
}

func (k keyState) String() string {
	switch {
	case k.Live && k.Tomb:
		return fmt.Sprintf("live %q@%v exp=%d AND tomb %v", k.Value, k.Ver, k.ExpireAt, k.TombVer)
	case k.Live:
		return fmt.Sprintf("live %q@%v exp=%d", k.Value, k.Ver, k.ExpireAt)
	case k.Tomb:
		return fmt.Sprintf("tomb %v", k.TombVer)
	}
	return "absent"
}

// stateOf reads every key's state with Peek and Tombstone.
func stateOf(s *Store, keys []string) []keyState {
	out := make([]keyState, len(keys))
	for i, k := range keys {
		if e, ok := s.Peek(k); ok {
			out[i].Live, out[i].Value, out[i].Ver, out[i].ExpireAt = true, string(e.Value), e.Version, e.ExpireAt
		}
		out[i].TombVer, out[i].Tomb = s.Tombstone(k)
	}
	return out
}

// model is the reference: each key ends in the state of its newest op.
func model(ops []Op, keys []string, now int64) []keyState {
	out := make([]keyState, len(keys))
	for i, k := range keys {
		var newest *Op
		for j := range ops {
			if ops[j].Key == k && (newest == nil || ops[j].Version.Compare(newest.Version) > 0) {
				newest = &ops[j]
			}
		}
		switch {
		case newest == nil:
		case newest.Kind == KindSet && (newest.ExpireAt == 0 || newest.ExpireAt > now):
			out[i] = keyState{Live: true, Value: string(newest.Value), Ver: newest.Version, ExpireAt: newest.ExpireAt}
		default:
			out[i] = keyState{Tomb: true, TombVer: newest.Version}
		}
	}
	return out
}

func diffStates(keys []string, got, want []keyState) string {
	var d string
	for i := range keys {
		if got[i] != want[i] {
			d += fmt.Sprintf("\n  key %q: got %v, want %v", keys[i], got[i], want[i])
		}
	}
	return d
}

// snapshotOps collects a store's Snapshot.
func snapshotOps(s *Store) []Op {
	var ops []Op
	s.Snapshot(func(op Op) bool { ops = append(ops, op); return true })
	return ops
}

func keysOf(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	return slices.Clip(keys)
}
