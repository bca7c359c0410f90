package repl

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

func newTestLog(t *testing.T, cfg LogConfig) *Log[int] {
	t.Helper()
	l, err := NewLog[int](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLogAppendRead(t *testing.T) {
	l := newTestLog(t, LogConfig{})
	for i := range 100 {
		if seq := l.Append(i, 10); seq != uint64(i+1) {
			t.Fatalf("Append #%d got seq %d", i, seq)
		}
	}
	got, next, err := l.Read(11, 1<<30, nil)
	if err != nil || next != 101 || len(got) != 90 || got[0] != 10 || got[89] != 99 {
		t.Fatalf("Read(11) = %d records ending %v, next %d, err %v", len(got), got[len(got)-1:], next, err)
	}
	got, next, _ = l.Read(1, 25, nil)
	if !slices.Equal(got, []int{0, 1, 2}) || next != 4 {
		t.Errorf("Read(1, 25 bytes) = %v next %d; want [0 1 2] next 4", got, next)
	}
	if b := l.BytesAfter(95); b != 50 {
		t.Errorf("BytesAfter(95) = %d; want 50", b)
	}
	if b := l.BytesAfter(100); b != 0 {
		t.Errorf("BytesAfter(100) = %d; want 0", b)
	}
	got, next, _ = l.Read(101, 100, nil)
	if len(got) != 0 || next != 101 {
		t.Errorf("Read at the end = %v next %d; want nothing, 101", got, next)
	}
}

func TestLogBounds(t *testing.T) {
	tests := []struct {
		name      string
		cfg       LogConfig
		wantFirst uint64
	}{
		{"bytes", LogConfig{MaxBytes: 100}, 991},    // 10 records of 10 bytes
		{"records", LogConfig{MaxRecords: 50}, 951}, // 50 records
		{"both", LogConfig{MaxBytes: 300, MaxRecords: 20}, 981},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLog(t, tt.cfg)
			for i := range 1000 {
				l.Append(i, 10)
			}
			st := l.Stats()
			if st.First != tt.wantFirst || st.Next != 1001 || st.Dropped != tt.wantFirst-1 {
				t.Fatalf("Stats = %+v; want first %d", st, tt.wantFirst)
			}
			if _, _, err := l.Read(tt.wantFirst-1, 1<<30, nil); !errors.Is(err, ErrTruncated) {
				t.Errorf("Read before first: %v; want ErrTruncated", err)
			}
			got, _, err := l.Read(tt.wantFirst, 1<<30, nil)
			if err != nil || got[0] != int(tt.wantFirst-1) || got[len(got)-1] != 999 {
				t.Errorf("Read(first) = %v..., %v", got[:1], err)
			}
		})
	}
	// A record larger than the byte limit still goes in, alone.
	l := newTestLog(t, LogConfig{MaxBytes: 100})
	l.Append(1, 10)
	l.Append(2, 500)
	if st := l.Stats(); st.Records != 1 || st.First != 2 {
		t.Errorf("after an oversized record: %+v; want it alone", st)
	}
	if _, err := NewLog[int](LogConfig{MaxBytes: -1}); err == nil {
		t.Error("negative MaxBytes accepted")
	}
}

func TestLogSubscribe(t *testing.T) {
	l := newTestLog(t, LogConfig{})
	ch, cancel := l.Subscribe()
	l.Append(1, 1)
	l.Append(2, 1) // coalesced with the first wake-up
	select {
	case <-ch:
	default:
		t.Fatal("no wake-up after Append")
	}
	select {
	case <-ch:
		t.Fatal("two wake-ups for two appends; want them coalesced")
	default:
	}
	cancel()
	l.Append(3, 1)
	select {
	case <-ch:
		t.Fatal("wake-up after cancel")
	default:
	}
}

func TestLogConcurrent(t *testing.T) {
	l := newTestLog(t, LogConfig{MaxRecords: 1000})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 5000 {
				l.Append(i, 1)
			}
		})
	}
	wg.Go(func() {
		next := uint64(1)
		for range 2000 {
			got, n, err := l.Read(next, 100, nil)
			if errors.Is(err, ErrTruncated) {
				next = l.Stats().First
				continue
			}
			if n != next+uint64(len(got)) {
				t.Errorf("Read(%d) returned %d records and next %d", next, len(got), n)
				return
			}
			next = n
		}
	})
	wg.Wait()
	if st := l.Stats(); st.Next != 20_001 || st.Records != 1000 {
		t.Errorf("Stats = %+v; want next 20001 and 1000 records", st)
	}
}
