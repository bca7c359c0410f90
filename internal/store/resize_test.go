package store

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/lru"
)

// Every entry is charged its key, its value and EntryOverhead.
func TestEntryOverhead(t *testing.T) {
	s, _ := newStore(t)
	if s.EntryOverhead() <= 0 {
		t.Fatalf("EntryOverhead = %d; want a positive charge", s.EntryOverhead())
	}
	apply(t, s, set("k", "value", v(1)), Applied)
	apply(t, s, set("key2", "", v(2)), Applied)
	if got, want := s.Bytes(), int64(len("k")+len("value")+len("key2"))+2*s.EntryOverhead(); got != want {
		t.Errorf("Bytes = %d; want keys and values plus 2 × EntryOverhead = %d", got, want)
	}
}

// A smaller budget evicts the least recently used entries down to it at
// once, as evictions (ghosts, ChangeEvicted); a larger one takes more
// entries again; limits Open refuses change nothing.
func TestResize(t *testing.T) {
	clock := testkit.NewClock(epoch)
	var c changes
	cfg := testConfig(clock)
	cfg.MaxEntries = 0
	cfg.OnChange = c.on
	probe := open(t, Config{MaxBytes: 1 << 20, Shards: 1, ReclaimInterval: -1})
	per := int64(len("k00")+len("v")) + probe.EntryOverhead() // every entry here costs this
	cfg.MaxBytes = 10 * per
	s := open(t, cfg)
	for i := range 10 {
		apply(t, s, set(resizeKey(i), "v", v(int64(i+1))), Applied)
	}
	s.Get(resizeKey(0)) // the most recently used now
	c.take()

	if err := s.Resize(0, 4*per); err != nil {
		t.Fatalf("Resize to 4 entries' bytes: %v", err)
	}
	if s.Len() != 4 || s.Bytes() != 4*per {
		t.Fatalf("after shrinking: %d entries, %d bytes; want 4, %d", s.Len(), s.Bytes(), 4*per)
	}
	for _, k := range []string{resizeKey(0), resizeKey(7), resizeKey(8), resizeKey(9)} {
		if _, ok := s.Peek(k); !ok {
			t.Errorf("%s, among the most recently used, was evicted", k)
		}
	}
	evicted := c.take()
	slices.Sort(evicted)
	if want := []string{"k01:evicted", "k02:evicted", "k03:evicted", "k04:evicted", "k05:evicted", "k06:evicted"}; !slices.Equal(evicted, want) {
		t.Errorf("reported %v; want %v", evicted, want)
	}
	if st := s.Stats(); st.Evictions != 6 {
		t.Errorf("Stats.Evictions = %d; want 6", st.Evictions)
	}
	// An evicted key's ghost refuses a late write older than what left.
	apply(t, s, set(resizeKey(1), "old", v(1)), Refused)

	if err := s.Resize(0, 8*per); err != nil {
		t.Fatalf("Resize to 8 entries' bytes: %v", err)
	}
	for i := 10; i < 14; i++ {
		apply(t, s, set(resizeKey(i), "v", v(int64(i+1))), Applied)
	}
	if s.Len() != 8 {
		t.Errorf("after growing: %d entries; want 8", s.Len())
	}

	for _, bad := range []struct {
		entries int
		bytes   int64
		lru     bool
	}{
		{0, 0, true},   // no limit at all
		{0, 10, true},  // not room for one entry
		{0, -1, false}, // negative
		{-1, 8 * per, false},
	} {
		err := s.Resize(bad.entries, bad.bytes)
		if !errors.Is(err, ErrInvalidConfig) || errors.Is(err, lru.ErrInvalidConfig) != bad.lru {
			t.Errorf("Resize(%d, %d) = %v; want ErrInvalidConfig (lru's too: %v)", bad.entries, bad.bytes, err, bad.lru)
		}
	}
	if s.Len() != 8 || s.Bytes() != 8*per {
		t.Errorf("refused resizes changed the store: %d entries, %d bytes", s.Len(), s.Bytes())
	}
	if got := c.take(); len(got) != 4 {
		t.Errorf("refused resizes reported %v; want only the 4 writes", got)
	}

	// An entry limit alone works too.
	if err := s.Resize(3, 0); err != nil {
		t.Fatalf("Resize(3, 0): %v", err)
	}
	if s.Len() != 3 {
		t.Errorf("after Resize(3, 0): %d entries; want 3", s.Len())
	}
}

func resizeKey(i int) string {
	k := strconv.Itoa(i)
	if len(k) < 2 {
		k = "0" + k
	}
	return "k" + k
}
