package store

import (
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

func TestUpdate(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	s, err := Open(Config{MaxEntries: 100, Clock: clock, ReclaimInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := func(ms int64) Version { return Version{HLC: hlc.MakeTimestamp(ms, 0), Origin: 1} }
	rewrite := func(key string, exp int64, ver Version) (Op, Result, bool) {
		_, found, op, res := s.Update(key, ver, func(cur Entry, found bool) (Op, bool) {
			return Op{Kind: KindSet, Value: cur.Value, ExpireAt: exp}, found
		})
		return op, res, found
	}
	if _, _, ok := rewrite("k", 0, v(1)); ok {
		t.Fatal("Update of an absent key reported a live entry")
	}
	if _, found, _, res := s.Update("new", v(2), func(_ Entry, found bool) (Op, bool) {
		return Op{Kind: KindSet, Value: []byte("n")}, !found // SET NX
	}); found || res != Applied {
		t.Fatalf("NX on an absent key: found %v, %v", found, res)
	}
	if prev, found, _, res := s.Update("new", v(3), func(_ Entry, found bool) (Op, bool) {
		return Op{Kind: KindSet, Value: []byte("m")}, !found
	}); !found || res != Declined || string(prev.Value) != "n" {
		t.Fatalf("NX on a present key: prev %q, found %v, %v; want Declined", prev.Value, found, res)
	}
	before := s.Stats()
	if _, _, _, res := s.Update("new", v(4), func(Entry, bool) (Op, bool) {
		return Op{Kind: 9}, true
	}); res != Invalid {
		t.Fatalf("Update with an op of an unknown kind: %v; want Invalid", res)
	}
	// A declined Update is no op and is not counted; an invalid one is, as
	// Apply counts it.
	if after := s.Stats(); after.Invalid != before.Invalid+1 || after.Sets != before.Sets || after.Deletes != before.Deletes {
		t.Errorf("stats %+v after a declined and an invalid Update, from %+v", after, before)
	}
	if e, _ := s.Peek("new"); string(e.Value) != "n" {
		t.Errorf("after a declined and an invalid Update: %q, want n", e.Value)
	}
	s.Apply(Op{Kind: KindSet, Key: "k", Value: []byte("v"), Version: v(10)})
	exp := clock.UnixNano() + int64(time.Second)
	op, res, ok := rewrite("k", exp, v(20))
	if !ok || res != Applied || string(op.Value) != "v" || op.ExpireAt != exp || op.Version != v(20) {
		t.Fatalf("Update = %+v, %v, %v", op, res, ok)
	}
	e, _ := s.Peek("k")
	if e.ExpireAt != exp || e.Version != v(20) || string(e.Value) != "v" {
		t.Fatalf("after Update: %+v", e)
	}
	// A rewrite older than the entry is stale and changes nothing.
	if _, res, _ := rewrite("k", 0, v(15)); res != Stale {
		t.Errorf("older Update: %v; want Stale", res)
	}
	clock.Advance(time.Second)
	if _, _, ok := rewrite("k", 0, v(30)); ok {
		t.Error("Update brought back an expired entry")
	}
}
