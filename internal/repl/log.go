package repl

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrTruncated is returned by Log.Read when the requested sequence number
// has already been dropped from the log: the reader must fall back to a
// full sync.
var ErrTruncated = errors.New("repl: log truncated past the requested sequence")

// LogConfig bounds a Log. Both limits apply; the oldest records are dropped
// first when either is exceeded.
type LogConfig struct {
	// MaxBytes bounds the sum of record sizes. Default 64 MiB.
	MaxBytes int64
	// MaxRecords bounds the number of records. Default 1<<20.
	MaxRecords int
}

// defaultLogRecords is LogConfig.MaxRecords's default.
const defaultLogRecords = 1 << 20

// Log is an origin's replication log: records numbered from 1 in append
// order, bounded in bytes and records, with a non-blocking wake-up for each
// subscriber. It is safe for concurrent use and starts no goroutines.
type Log[T any] struct {
	mu   sync.Mutex
	ring []logRecord[T] // power-of-two capacity; live records are [head, head+n)
	head int
	n    int
	// first is the sequence number of ring[head]; the next append gets first+n.
	first    uint64
	bytes    int64
	maxBytes int64
	maxRecs  int
	dropped  uint64
	appended int64 // bytes ever appended
	// subs are the subscribers' wake-up channels. A slice, not a map:
	// every append walks it, and a map's walk draws a random start.
	subs []chan struct{}
}

type logRecord[T any] struct {
	rec  T
	size int64
	cum  int64 // bytes appended to the log up to and including this record
}

// NewLog returns an empty log whose first record will have sequence 1.
func NewLog[T any](cfg LogConfig) (*Log[T], error) {
	if cfg.MaxBytes < 0 || cfg.MaxRecords < 0 {
		return nil, fmt.Errorf("repl: invalid log config %+v: limits must not be negative", cfg)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.MaxRecords == 0 {
		cfg.MaxRecords = defaultLogRecords
	}
	return &Log[T]{
		ring:     make([]logRecord[T], 16),
		first:    1,
		maxBytes: cfg.MaxBytes,
		maxRecs:  cfg.MaxRecords,
	}, nil
}

// SetMaxRecords changes the bound on the number of records (0 means the
// default); a lower bound drops the oldest records at the next append.
func (l *Log[T]) SetMaxRecords(n int) {
	if n <= 0 {
		n = defaultLogRecords
	}
	l.mu.Lock()
	l.maxRecs = n
	l.mu.Unlock()
}

// Append adds rec, charging size bytes, and returns its sequence number. It
// drops the oldest records as the limits require and wakes every
// subscriber without blocking.
func (l *Log[T]) Append(rec T, size int64) uint64 {
	l.mu.Lock()
	seq := l.putLocked(rec, size)
	l.notifyLocked()
	l.mu.Unlock()
	return seq
}

// putLocked appends one record, dropping the oldest as the bounds need.
func (l *Log[T]) putLocked(rec T, size int64) uint64 {
	if l.n == len(l.ring) && l.n < l.maxRecs {
		l.growLocked()
	}
	for l.n > 0 && (l.n >= l.maxRecs || l.n == len(l.ring) || l.bytes+size > l.maxBytes) {
		l.dropOldestLocked()
	}
	seq := l.first + uint64(l.n)
	l.appended += size
	l.ring[(l.head+l.n)&(len(l.ring)-1)] = logRecord[T]{rec, size, l.appended}
	l.n++
	l.bytes += size
	return seq
}

// notifyLocked wakes the subscribers, without blocking.
func (l *Log[T]) notifyLocked() {
	for _, ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// AppendAll appends recs (with their sizes) as consecutive records, with
// no other Append between them, and returns the sequence number of the
// first.
func (l *Log[T]) AppendAll(recs []T, sizes []int64) uint64 {
	l.mu.Lock()
	first := l.first + uint64(l.n)
	for i := range recs {
		l.putLocked(recs[i], sizes[i])
	}
	l.notifyLocked()
	l.mu.Unlock()
	return first
}

func (l *Log[T]) growLocked() {
	grown := make([]logRecord[T], min(2*len(l.ring), nextPow2(l.maxRecs)))
	for i := range l.n {
		grown[i] = l.ring[(l.head+i)&(len(l.ring)-1)]
	}
	l.ring = grown
	l.head = 0
}

func (l *Log[T]) dropOldestLocked() {
	r := &l.ring[l.head]
	l.bytes -= r.size
	*r = logRecord[T]{}
	l.head = (l.head + 1) & (len(l.ring) - 1)
	l.n--
	l.first++
	l.dropped++
}

// Read appends to dst the records from sequence from onward, stopping after
// the first record that brings the total size to maxBytes or more (so at
// least one record is returned when any is available), and returns them
// with the sequence number that follows them. It returns ErrTruncated if
// from is older than the oldest record kept.
func (l *Log[T]) Read(from uint64, maxBytes int64, dst []T) ([]T, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from < l.first {
		return dst, from, fmt.Errorf("%w: want %d, oldest kept is %d", ErrTruncated, from, l.first)
	}
	var total int64
	seq := from
	for ; seq < l.first+uint64(l.n) && total < maxBytes; seq++ {
		r := &l.ring[(l.head+int(seq-l.first))&(len(l.ring)-1)]
		dst = append(dst, r.rec)
		total += r.size
	}
	return dst, seq, nil
}

// BytesAfter returns the bytes of the kept records with sequence numbers
// above seq.
func (l *Log[T]) BytesAfter(seq uint64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case seq < l.first:
		return l.bytes
	case seq >= l.first+uint64(l.n):
		return 0
	}
	return l.appended - l.ring[(l.head+int(seq-l.first))&(len(l.ring)-1)].cum
}

// Next returns the sequence number the next Append will get.
func (l *Log[T]) Next() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first + uint64(l.n)
}

// LogStats describes a log's contents.
type LogStats struct {
	First, Next uint64 // oldest kept sequence, next to be assigned
	Records     int
	Bytes       int64
	Dropped     uint64 // records dropped to respect the limits
}

// Stats returns the log's current figures.
func (l *Log[T]) Stats() LogStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LogStats{First: l.first, Next: l.first + uint64(l.n), Records: l.n, Bytes: l.bytes, Dropped: l.dropped}
}

// Subscribe returns a channel that receives a value (coalesced: capacity
// one) after every Append, and a function that ends the subscription.
func (l *Log[T]) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.subs = append(l.subs, ch)
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		l.subs = slices.DeleteFunc(l.subs, func(c chan struct{}) bool { return c == ch })
		l.mu.Unlock()
	}
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
