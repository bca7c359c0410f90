package store

import (
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

func TestRewrite(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	s, err := Open(Config{MaxEntries: 100, Clock: clock, ReclaimInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := func(ms int64) Version { return Version{HLC: hlc.MakeTimestamp(ms, 0), Origin: 1} }
	if _, _, ok := s.Rewrite("k", 0, v(1)); ok {
		t.Fatal("Rewrite of an absent key reported a live entry")
	}
	s.Apply(Op{Kind: KindSet, Key: "k", Value: []byte("v"), Version: v(10)})
	exp := clock.UnixNano() + int64(time.Second)
	op, res, ok := s.Rewrite("k", exp, v(20))
	if !ok || res != Applied || string(op.Value) != "v" || op.ExpireAt != exp || op.Version != v(20) {
		t.Fatalf("Rewrite = %+v, %v, %v", op, res, ok)
	}
	e, _ := s.Peek("k")
	if e.ExpireAt != exp || e.Version != v(20) || string(e.Value) != "v" {
		t.Fatalf("after Rewrite: %+v", e)
	}
	// A rewrite older than the entry is stale and changes nothing.
	if _, res, _ := s.Rewrite("k", 0, v(15)); res != Stale {
		t.Errorf("older Rewrite: %v; want Stale", res)
	}
	clock.Advance(time.Second)
	if _, _, ok := s.Rewrite("k", 0, v(30)); ok {
		t.Error("Rewrite brought back an expired entry")
	}
}
