package geocache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// MemoryUsage is what the budget charges an entry: the node's Bytes are
// their sum.
func TestMemoryUsage(t *testing.T) {
	n, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if err := n.Set(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := n.Set(ctx, "bb", []byte(strings.Repeat("x", 1000))); err != nil {
		t.Fatal(err)
	}
	a, errA := n.MemoryUsage("a")
	b, errB := n.MemoryUsage("bb")
	if errA != nil || errB != nil {
		t.Fatalf("MemoryUsage: %v, %v", errA, errB)
	}
	if b-a != 1+999 || a <= 2 {
		t.Errorf("MemoryUsage a = %d, bb = %d; want key + value + the same overhead", a, b)
	}
	if got := n.Stats().Bytes; got != a+b {
		t.Errorf("Stats.Bytes = %d; want the sum of MemoryUsage, %d", got, a+b)
	}
	if _, err := n.MemoryUsage("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MemoryUsage of a missing key: %v; want ErrNotFound", err)
	}
}

// SetMaxBytes shrinks the budget at once, evicting the least recently
// used entries, and grows it again; budgets it refuses change nothing.
func TestSetMaxBytes(t *testing.T) {
	n, err := Open(Config{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	var per int64
	for i := range 100 {
		if err := n.Set(ctx, "k"+strconv.Itoa(1000+i), []byte("value")); err != nil {
			t.Fatal(err)
		}
		if per == 0 {
			per, _ = n.MemoryUsage("k1000")
		}
	}
	if err := n.SetMaxBytes(-1); err == nil {
		t.Error("SetMaxBytes(-1) accepted")
	}
	var ce *ConfigError
	if err := n.SetMaxBytes(0); !errors.As(err, &ce) || ce.Field != "MaxBytes" || !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetMaxBytes(0) without MaxEntries: %v; want a ConfigError for MaxBytes", err)
	}
	if err := n.SetMaxBytes(10); !errors.As(err, &ce) || !strings.Contains(err.Error(), "MaxBytes 10 is too small") {
		t.Errorf("SetMaxBytes(10): %v; want a ConfigError: too small", err)
	}
	if st := n.Stats(); st.Entries != 100 || st.Evictions != 0 {
		t.Fatalf("refused budgets changed the node: %d entries, %d evictions", st.Entries, st.Evictions)
	}

	budget := 50 * per // room for 50 entries at most, however the shards split it
	if err := n.SetMaxBytes(budget); err != nil {
		t.Fatalf("SetMaxBytes(%d): %v", budget, err)
	}
	if st := n.Stats(); st.Bytes > budget || st.Evictions != 100-uint64(st.Entries) || st.Entries == 100 {
		t.Errorf("after shrinking to %d bytes: %d bytes, %d entries, %d evictions", budget, st.Bytes, st.Entries, st.Evictions)
	}
	if got := n.Config().MaxBytes; got != budget {
		t.Errorf("Config().MaxBytes = %d after SetMaxBytes(%d)", got, budget)
	}
	if err := n.SetMaxBytes(1 << 20); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := n.Set(ctx, "n"+strconv.Itoa(1000+i), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	if st := n.Stats(); st.Entries < 100 {
		t.Errorf("after growing back: %d entries; want the 100 new ones at least", st.Entries)
	}

	m, err := Open(Config{MaxEntries: 1000, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.SetMaxBytes(0); err != nil {
		t.Errorf("SetMaxBytes(0) with MaxEntries: %v", err)
	}
}
