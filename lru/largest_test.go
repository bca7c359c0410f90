package lru

import (
	"errors"
	"testing"
)

// LargestEntry lowers the automatic shard count until one shard holds an
// entry of that size, and no further.
func TestLargestEntryFitsOneShard(t *testing.T) {
	for _, tc := range []struct {
		maxBytes, largest int64
	}{
		{64 << 20, 16 << 20},
		{256 << 20, 16<<20 + 64<<10},
		{256 << 20, 1 << 20},
		{1 << 30, 512 << 20},
		{8 << 20, 16 << 20}, // larger than the budget: one shard, still too small
	} {
		c, err := New(Config[string, []byte]{MaxBytes: tc.maxBytes, LargestEntry: tc.largest, ReclaimInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		shards := len(c.shards)
		fits := c.MaxEntrySize() >= tc.largest
		if fits != (tc.largest <= tc.maxBytes-int64(entryOverhead[string, []byte]())) {
			t.Errorf("MaxBytes %d, LargestEntry %d: %d shards, largest entry %d", tc.maxBytes, tc.largest, shards, c.MaxEntrySize())
		}
		// One shard more would not hold it (unless the automatic count
		// already did).
		if auto := autoShards(0, tc.maxBytes); shards < auto && tc.maxBytes/int64(2*shards)-int64(entryOverhead[string, []byte]()) >= tc.largest {
			t.Errorf("MaxBytes %d, LargestEntry %d: %d shards, when %d would hold it", tc.maxBytes, tc.largest, shards, 2*shards)
		}
		if fits {
			big := make([]byte, tc.largest-1)
			c.Set("k", big)
			if got, ok := c.Get("k"); !ok || len(got) != len(big) {
				t.Errorf("MaxBytes %d: an entry of %d bytes was not stored", tc.maxBytes, tc.largest)
			}
		}
		c.Close()
	}
	if _, err := New(Config[string, []byte]{MaxBytes: 1 << 20, LargestEntry: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative LargestEntry: %v", err)
	}
}
