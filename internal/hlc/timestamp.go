package hlc

import (
	"strconv"
	"time"
)

// Timestamp is a hybrid logical clock value: wall-clock milliseconds since
// the Unix epoch in the high 48 bits and a logical counter in the low 16
// bits. Timestamps compare with the ordinary integer operators. The zero
// Timestamp is smaller than every timestamp a Clock issues after 1970.
type Timestamp uint64

const (
	// LogicalBits is the width of the logical counter.
	LogicalBits = 16

	// MaxLogical is the largest logical counter value.
	MaxLogical = 1<<LogicalBits - 1

	// MaxWallMillis is the largest millisecond part a Timestamp can hold
	// (in the year 10889).
	MaxWallMillis = 1<<(64-LogicalBits) - 1

	// MaxTimestamp is the largest Timestamp. A clock that reaches it can issue
	// no further timestamps (see ErrExhausted).
	MaxTimestamp Timestamp = 1<<64 - 1
)

// MakeTimestamp returns the timestamp with millisecond part ms (since the
// Unix epoch) and counter logical. An ms outside [0, MaxWallMillis] is
// clamped into that range.
func MakeTimestamp(ms int64, logical uint16) Timestamp {
	ms = min(max(ms, 0), MaxWallMillis)
	return Timestamp(uint64(ms)<<LogicalBits | uint64(logical))
}

// WallMillis returns the millisecond part of t: milliseconds since the Unix
// epoch.
func (t Timestamp) WallMillis() int64 { return int64(t >> LogicalBits) }

// Logical returns the logical counter of t.
func (t Timestamp) Logical() uint16 { return uint16(t) }

// Time returns the wall-clock part of t as a time.Time in the local time
// zone. The logical counter is dropped.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.WallMillis()) }

// String formats t as "<ms>.<logical>", for example "1732580000123.5".
func (t Timestamp) String() string {
	var buf [32]byte
	b := strconv.AppendInt(buf[:0], t.WallMillis(), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(t.Logical()), 10)
	return string(b)
}
