package hlc_test

import (
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
)

func TestTimestampParts(t *testing.T) {
	tests := []struct {
		name        string
		ms          int64
		logical     uint16
		wantMs      int64
		wantLogical uint16
		want        string
	}{
		{"zero", 0, 0, 0, 0, "0.0"},
		{"typical", 1732580000123, 5, 1732580000123, 5, "1732580000123.5"},
		{"max logical", 1732580000123, hlc.MaxLogical, 1732580000123, hlc.MaxLogical, "1732580000123.65535"},
		{"max wall", hlc.MaxWallMillis, 7, hlc.MaxWallMillis, 7, "281474976710655.7"},
		{"negative ms clamps to zero", -5, 3, 0, 3, "0.3"},
		{"too large ms clamps", hlc.MaxWallMillis + 10, 1, hlc.MaxWallMillis, 1, "281474976710655.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := hlc.MakeTimestamp(tt.ms, tt.logical)
			if got := ts.WallMillis(); got != tt.wantMs {
				t.Errorf("WallMillis() = %d, want %d", got, tt.wantMs)
			}
			if got := ts.Logical(); got != tt.wantLogical {
				t.Errorf("Logical() = %d, want %d", got, tt.wantLogical)
			}
			if got := ts.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got, want := ts.Time(), time.UnixMilli(tt.wantMs); !got.Equal(want) {
				t.Errorf("Time() = %v, want %v", got, want)
			}
		})
	}
	if hlc.MakeTimestamp(hlc.MaxWallMillis, hlc.MaxLogical) != hlc.MaxTimestamp {
		t.Errorf("MaxTimestamp is not (MaxWallMillis, MaxLogical)")
	}
}

// TestTimestampOrder checks that integer order is (ms, logical)
// lexicographic order, which last-writer-wins relies on.
func TestTimestampOrder(t *testing.T) {
	tests := []struct {
		name string
		a, b hlc.Timestamp // a < b
	}{
		{"logical breaks tie", hlc.MakeTimestamp(10, 1), hlc.MakeTimestamp(10, 2)},
		{"ms beats logical", hlc.MakeTimestamp(10, hlc.MaxLogical), hlc.MakeTimestamp(11, 0)},
		{"zero is smallest", 0, hlc.MakeTimestamp(0, 1)},
		{"max is largest", hlc.MakeTimestamp(hlc.MaxWallMillis, hlc.MaxLogical-1), hlc.MaxTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !(tt.a < tt.b) {
				t.Errorf("%v < %v is false", tt.a, tt.b)
			}
		})
	}
}
