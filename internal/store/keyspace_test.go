package store

import (
	"strconv"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

func TestKeyspace(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	s, err := Open(Config{Clock: clock, ReclaimInterval: -1, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ks := s.Keyspace(0); ks != (Keyspace{}) {
		t.Fatalf("empty store: %+v", ks)
	}
	now := clock.UnixNano()
	ver := func(i int) Version { return Version{HLC: hlc.MakeTimestamp(now/1e6, uint16(i)), Origin: 1} }
	// 100 keys: 40 with an expiry 10 s away, 20 with 30 s, 40 without.
	for i := range 100 {
		op := Op{Kind: KindSet, Key: string(rune('a'+i%26)) + string(rune('0'+i/26)), Value: []byte("v"), Version: ver(i)}
		switch {
		case i < 40:
			op.ExpireAt = now + int64(10*time.Second)
		case i < 60:
			op.ExpireAt = now + int64(30*time.Second)
		}
		if res := s.Apply(op); res != Applied {
			t.Fatalf("apply %d: %v", i, res)
		}
	}
	ks := s.Keyspace(0)
	if ks.Keys != 100 || ks.Sampled != 100 || ks.Expires != 60 || ks.TTLCount != 60 {
		t.Fatalf("exact walk: %+v", ks)
	}
	if avg := time.Duration(ks.TTLSum / int64(ks.TTLCount)); avg != (40*10*time.Second+20*30*time.Second)/60 {
		t.Errorf("average TTL %v", avg)
	}

	// After 15 s the first 40 have expired but are not reclaimed: still
	// keys and expires, as in Redis, but not in the average TTL.
	clock.Advance(15 * time.Second)
	ks = s.Keyspace(0)
	if ks.Keys != 100 || ks.Expires != 60 || ks.TTLCount != 20 || time.Duration(ks.TTLSum/int64(ks.TTLCount)) != 15*time.Second {
		t.Errorf("after 15 s: %+v", ks)
	}

	// A partial walk extrapolates from what it saw.
	ks = s.Keyspace(50)
	if ks.Sampled != 50 || ks.Keys != 100 || ks.Expires < 1 || ks.Expires > 100 {
		t.Errorf("sample of 50: %+v", ks)
	}
}

// Above the sample, expires is the sample's proportion: keys land in the
// shards by hash, so a walk of some shards sees about the same share of
// keys with an expiry as the whole store holds.
func TestKeyspaceSampled(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	s, err := Open(Config{Clock: clock, ReclaimInterval: -1, Shards: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := clock.UnixNano()
	const keys = 20_000
	for i := range keys {
		op := Op{Kind: KindSet, Key: "key:" + strconv.Itoa(i), Value: []byte("v"),
			Version: Version{HLC: hlc.MakeTimestamp(now/1e6, 1), Origin: 1}}
		if i%4 == 0 { // a quarter expire in a minute
			op.ExpireAt = now + int64(time.Minute)
		}
		s.Apply(op)
	}
	ks := s.Keyspace(5_000)
	if ks.Keys != keys || ks.Sampled != 5_000 {
		t.Fatalf("%+v", ks)
	}
	if ks.Expires < keys/4*9/10 || ks.Expires > keys/4*11/10 {
		t.Errorf("estimated %d keys with an expiry, want about %d", ks.Expires, keys/4)
	}
	if avg := time.Duration(ks.TTLSum / int64(ks.TTLCount)); avg != time.Minute {
		t.Errorf("average TTL %v, want 1m", avg)
	}
}
