package hlc_test

import (
	"errors"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/clock"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name          string
		cfg           hlc.Config
		wantErr       error
		wantMaxOffset time.Duration
	}{
		{"zero value uses defaults", hlc.Config{}, nil, hlc.DefaultMaxOffset},
		{"explicit max offset", hlc.Config{MaxOffset: 250 * time.Millisecond}, nil, 250 * time.Millisecond},
		{"negative max offset", hlc.Config{MaxOffset: -time.Nanosecond}, hlc.ErrInvalidConfig, 0},
		{"very negative max offset", hlc.Config{MaxOffset: math.MinInt64}, hlc.ErrInvalidConfig, 0},
		{"largest max offset", hlc.Config{MaxOffset: hlc.MaxMaxOffset}, nil, hlc.MaxMaxOffset},
		{"max offset over the limit", hlc.Config{MaxOffset: hlc.MaxMaxOffset + 1}, hlc.ErrInvalidConfig, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := hlc.New(tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if c != nil {
					t.Errorf("New() returned a clock with error %v", err)
				}
				return
			}
			if got := c.MaxOffset(); got != tt.wantMaxOffset {
				t.Errorf("MaxOffset() = %v, want %v", got, tt.wantMaxOffset)
			}
		})
	}
}

// TestNowSystemClock checks the default physical source: timestamps track
// time.Now, within the real clock's tolerance (clock.StepThreshold).
func TestNowSystemClock(t *testing.T) {
	c, err := hlc.New(hlc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tol := clock.StepThreshold.Milliseconds()
	before := time.Now().UnixMilli()
	ts := mustNow(t, c)
	after := time.Now().UnixMilli()
	if ms := ts.WallMillis(); ms < before-tol || ms > after+tol {
		t.Errorf("Now() = %v, want ms in [%d, %d] ± %d", ts, before, after, tol)
	}
}

// TestNowMonotonic steps physical time through a script and checks that
// every Now is strictly greater than the previous one and follows the rules.
func TestNowMonotonic(t *testing.T) {
	ms := start.UnixMilli()
	tests := []struct {
		name  string
		moves []time.Duration // physical move before each batch of calls
		calls int             // Now calls per move
	}{
		{"stands still", []time.Duration{0}, 1000},
		{"moves forward", []time.Duration{time.Millisecond, 5 * time.Millisecond, time.Second}, 10},
		{"sub-millisecond steps", []time.Duration{100 * time.Microsecond, 100 * time.Microsecond, 900 * time.Microsecond}, 3},
		{"steps backwards", []time.Duration{-time.Millisecond, -time.Second, -time.Hour}, 100},
		{"back then forward past", []time.Duration{-time.Second, 500 * time.Millisecond, 600 * time.Millisecond}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, pc := newClock(t, hlc.Config{})
			prev := mustNow(t, c)
			if want := hlc.MakeTimestamp(ms, 0); prev != want {
				t.Fatalf("first Now() = %v, want %v", prev, want)
			}
			for _, d := range tt.moves {
				pc.Advance(d)
				pt := pc.Now().UnixMilli()
				for range tt.calls {
					ts := mustNow(t, c)
					if ts <= prev {
						t.Fatalf("Now() = %v after %v: not increasing", ts, prev)
					}
					// l = max(l, pt): the clock never falls behind physical time,
					want := prev + 1
					if pt > prev.WallMillis() {
						want = hlc.MakeTimestamp(pt, 0) // and restarts the counter when pt leads.
					}
					if ts != want {
						t.Fatalf("Now() = %v (physical %d, previous %v), want %v", ts, pt, prev, want)
					}
					prev = ts
				}
			}
		})
	}
}

// TestUpdateCausality checks the receive rule against the paper's case
// analysis and that the result exceeds both the remote and the previous
// local timestamp.
func TestUpdateCausality(t *testing.T) {
	ms := start.UnixMilli()
	mk := hlc.MakeTimestamp
	tests := []struct {
		name   string
		local  int64 // physical move before the local event that sets l
		locals int   // number of local events (so l = (ms+local, locals-1))
		phys   time.Duration
		remote hlc.Timestamp
		want   hlc.Timestamp
	}{
		{"physical leads both", 0, 1, 10 * time.Millisecond, mk(ms+5, 9), mk(ms+10, 0)},
		{"remote leads", 0, 3, 0, mk(ms+100, 7), mk(ms+100, 8)},
		{"remote leads physical gone back", 0, 1, -time.Second, mk(ms+1, 0), mk(ms+1, 1)},
		{"local leads", 0, 5, -time.Second, mk(ms-1, 60000), mk(ms, 5)},
		{"tie higher remote counter", 0, 3, 0, mk(ms, 40), mk(ms, 41)},
		{"tie higher local counter", 0, 50, 0, mk(ms, 3), mk(ms, 50)},
		{"tie all three", 0, 2, 0, mk(ms, 1), mk(ms, 2)},
		{"remote zero", 0, 1, 0, 0, mk(ms, 1)},
		{"remote counter full", 0, 1, 0, mk(ms+1, hlc.MaxLogical), mk(ms+2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, pc := newClock(t, hlc.Config{})
			var prev hlc.Timestamp
			for range tt.locals {
				prev = mustNow(t, c)
			}
			pc.Advance(tt.phys)
			got := c.Update(tt.remote)
			if got <= tt.remote || got <= prev {
				t.Errorf("Update(%v) = %v, not above remote and previous local %v", tt.remote, got, prev)
			}
			if got != tt.want {
				t.Errorf("Update(%v) = %v, want %v", tt.remote, got, tt.want)
			}
			if next := mustNow(t, c); next <= got {
				t.Errorf("Now() after Update = %v, not above %v", next, got)
			}
		})
	}
}

// TestLogicalOverflow drives more than 65536 events into one millisecond and
// checks the clock carries into the millisecond part instead of wrapping.
func TestLogicalOverflow(t *testing.T) {
	tests := []struct {
		name   string
		events int
		update bool // use Update(0) instead of Now
	}{
		{"now", 3*(hlc.MaxLogical+1) + 10, false},
		{"update", 2*(hlc.MaxLogical+1) + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClock(t, hlc.Config{}) // physical time never moves
			ms := start.UnixMilli()
			var prev hlc.Timestamp
			for i := range tt.events {
				var ts hlc.Timestamp
				if tt.update {
					ts = c.Update(0)
				} else {
					ts = mustNow(t, c)
				}
				if ts <= prev {
					t.Fatalf("event %d: %v after %v: not increasing", i, ts, prev)
				}
				want := hlc.MakeTimestamp(ms+int64(i>>16), uint16(i))
				if ts != want {
					t.Fatalf("event %d: got %v, want %v", i, ts, want)
				}
				prev = ts
			}
			wantOverflows := uint64((tt.events - 1) >> 16)
			if got := c.Stats().LogicalOverflows; got != wantOverflows {
				t.Errorf("LogicalOverflows = %d, want %d", got, wantOverflows)
			}
		})
	}
}

// TestExhausted checks that a clock pushed to MaxTimestamp by a corrupt
// remote stamp neither wraps around nor issues a duplicate.
func TestExhausted(t *testing.T) {
	c, _ := newClock(t, hlc.Config{})
	mustNow(t, c)
	if got := c.Update(hlc.MaxTimestamp - 1); got != hlc.MaxTimestamp {
		t.Fatalf("Update(Max-1) = %v, want MaxTimestamp", got)
	}
	if _, err := c.Now(); !errors.Is(err, hlc.ErrExhausted) {
		t.Fatalf("Now() at MaxTimestamp: err = %v, want ErrExhausted", err)
	}
	if got := c.Update(hlc.MaxTimestamp); got != hlc.MaxTimestamp {
		t.Errorf("Update(Max) = %v, want MaxTimestamp (saturated)", got)
	}
	s := c.Stats()
	if s.Exhausted != 1 || s.RemoteAhead != 2 || s.MaxRemoteLead != math.MaxInt64 {
		t.Errorf("Stats() = %+v, want Exhausted 1, RemoteAhead 2, MaxRemoteLead max", s)
	}
}

// TestRemoteAhead checks that a remote stamp beyond MaxOffset is merged,
// counted, and logged at most once per second of physical time.
func TestRemoteAhead(t *testing.T) {
	rec := &recorder{}
	c, pc := newClock(t, hlc.Config{MaxOffset: 100 * time.Millisecond, Logger: slog.New(rec)})
	ms := start.UnixMilli()

	steps := []struct {
		name      string
		advance   time.Duration
		lead      int64 // remote ms minus physical ms
		wantAhead uint64
		wantLead  time.Duration
		wantLogs  int
	}{
		{"within offset", 0, 100, 0, 0, 0},
		{"just beyond", 0, 101, 1, 101 * time.Millisecond, 1},
		{"far ahead same second", 10 * time.Millisecond, 60_000, 2, time.Minute, 1},
		{"again same second", 500 * time.Millisecond, 200, 3, time.Minute, 1},
		{"behind is fine", 0, -5000, 3, time.Minute, 1},
		{"a second later", 490 * time.Millisecond, 300, 4, time.Minute, 2},
		{"physical went back", -time.Hour, 300, 5, time.Minute, 3},
	}
	prev := mustNow(t, c)
	for _, st := range steps {
		pc.Advance(st.advance)
		remote := hlc.MakeTimestamp(pc.Now().UnixMilli()+st.lead, 3)
		got := c.Update(remote)
		if got <= remote || got <= prev {
			t.Fatalf("%s: Update(%v) = %v, not above remote and previous %v", st.name, remote, got, prev)
		}
		prev = got
		s := c.Stats()
		if s.RemoteAhead != st.wantAhead || s.MaxRemoteLead != st.wantLead {
			t.Errorf("%s: RemoteAhead %d, MaxRemoteLead %v; want %d, %v",
				st.name, s.RemoteAhead, s.MaxRemoteLead, st.wantAhead, st.wantLead)
		}
		if n := len(rec.snapshot()); n != st.wantLogs {
			t.Errorf("%s: %d log records, want %d", st.name, n, st.wantLogs)
		}
	}
	logs := rec.snapshot()
	if got := attr(t, logs[1], "suppressed").Uint64(); got != 2 {
		t.Errorf("second record: suppressed = %d, want 2", got)
	}
	if got := attr(t, logs[0], "lead").Duration(); got != 101*time.Millisecond {
		t.Errorf("first record: lead = %v, want 101ms", got)
	}
	// The far-ahead remote moved the clock; Now keeps working.
	if ts := mustNow(t, c); ts <= prev || ts.WallMillis() < ms+60_000 {
		t.Errorf("Now() = %v after merging far-ahead remote, want above %v", ts, prev)
	}
}

// TestConcurrent runs Now and Update from several goroutines while physical
// time moves both ways, and checks that every timestamp is unique and each
// goroutine sees its own increase. Run it with -race.
func TestConcurrent(t *testing.T) {
	const (
		workers = 8
		events  = 5000
	)
	c, pc := newClock(t, hlc.Config{})
	// A second clock plays the remote node whose stamps we receive.
	rpc := testkit.NewClock(start.Add(-20 * time.Millisecond))
	remote, err := hlc.New(hlc.Config{Physical: rpc})
	if err != nil {
		t.Fatal(err)
	}

	got := make([][]hlc.Timestamp, workers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mover sync.WaitGroup
	mover.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d := time.Millisecond
			if i%7 == 0 {
				d = -3 * time.Millisecond
			}
			pc.Advance(d)
			rpc.Advance(time.Millisecond)
		}
	})
	for w := range workers {
		wg.Go(func() {
			seq := make([]hlc.Timestamp, 0, events)
			for i := range events {
				var ts hlc.Timestamp
				if (i+w)%3 == 0 {
					r, err := remote.Now()
					if err != nil {
						t.Errorf("remote Now: %v", err)
						return
					}
					ts = c.Update(r)
					if ts <= r {
						t.Errorf("Update(%v) = %v: not above remote", r, ts)
						return
					}
				} else {
					var err error
					if ts, err = c.Now(); err != nil {
						t.Errorf("Now: %v", err)
						return
					}
				}
				if n := len(seq); n > 0 && ts <= seq[n-1] {
					t.Errorf("worker %d: %v after %v: not increasing", w, ts, seq[n-1])
					return
				}
				seq = append(seq, ts)
			}
			got[w] = seq
		})
	}
	wg.Wait()
	close(stop)
	mover.Wait()

	seen := make(map[hlc.Timestamp]int, workers*events)
	for w, seq := range got {
		for _, ts := range seq {
			if other, dup := seen[ts]; dup {
				t.Fatalf("timestamp %v issued to workers %d and %d", ts, other, w)
			}
			seen[ts] = w
		}
	}
	if len(seen) != workers*events {
		t.Errorf("%d timestamps, want %d", len(seen), workers*events)
	}
}
