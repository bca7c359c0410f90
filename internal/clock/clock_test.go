package clock

import (
	"testing"
	"testing/synctest"
	"time"
)

// A Real reads the wall clock: between two time.Now readings, within the
// step threshold (it may keep its own timeline up to that far).
func TestRealReadsWallClock(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    *Real
	}{{"wall", NewReal()}, {"monotonic", NewMonotonic()}} {
		t.Run(tt.name, func(t *testing.T) {
			for range 1000 {
				before := time.Now().UnixNano()
				got := tt.r.UnixNano()
				after := time.Now().UnixNano()
				if got < before-int64(StepThreshold) || got > after+int64(StepThreshold) {
					t.Fatalf("UnixNano = %d, outside [%d, %d] ± %v", got, before, after, StepThreshold)
				}
			}
		})
	}
}

// Readings never go back while the wall clock does not step, across the
// anchor moves of wall checks too.
func TestRealNeverGoesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewReal()
		last := r.UnixNano()
		for range 50 {
			time.Sleep(CheckInterval / 7) // virtual time: several checks happen
			for range 10 {
				if now := r.UnixNano(); now < last {
					t.Fatalf("reading %d after %d", now, last)
				} else {
					last = now
				}
			}
		}
	})
}

// In a synctest bubble a Real reads the bubble's virtual time exactly.
func TestRealInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, r := range []*Real{NewReal(), NewMonotonic()} {
			for _, d := range []time.Duration{0, time.Millisecond, 3 * CheckInterval, time.Hour} {
				time.Sleep(d)
				if got, want := r.UnixNano(), time.Now().UnixNano(); got != want {
					t.Errorf("after %v: UnixNano = %d, want %d", d, got, want)
				}
			}
		}
	})
}

// A Real created outside a bubble and read inside re-anchors on the
// bubble's time rather than mixing two monotonic clocks.
func TestRealCreatedOutsideBubble(t *testing.T) {
	r := NewReal()
	synctest.Test(t, func(t *testing.T) {
		r.UnixNano()
		time.Sleep(time.Second / 2)
		if got, want := r.UnixNano(), time.Now().UnixNano(); got != want {
			t.Errorf("UnixNano = %d, want the bubble's %d", got, want)
		}
	})
}

// A check of the wall clock takes a step beyond the threshold, forward or
// back, in a wall-following Real only; below it (or in a monotonic Real)
// the timeline continues.
func TestResyncFollowsSteps(t *testing.T) {
	const elapsed = 2 * time.Second
	tests := []struct {
		name       string
		followWall bool
		step       time.Duration // wall clock minus the Real's timeline at the check
		want       time.Duration // the reading at the check minus the anchor's wall + elapsed
	}{
		{"no step", true, 0, 0},
		{"jitter below the threshold", true, StepThreshold / 2, 0},
		{"jitter back below the threshold", true, -StepThreshold / 2, 0},
		{"step forward", true, 5 * time.Second, 5 * time.Second},
		{"step back", true, -5 * time.Second, -5 * time.Second},
		{"monotonic ignores a step forward", false, 5 * time.Second, 0},
		{"monotonic ignores a step back", false, -5 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReal(tt.followWall)
			a := r.anchor.Load()
			now := a.mono.Add(elapsed) // keeps the monotonic reading
			base := a.wall + int64(elapsed)
			got := r.resync(a, now, base+int64(tt.step))
			if got != base+int64(tt.want) {
				t.Errorf("reading %+d ns from the timeline, want %+d", got-base, int64(tt.want))
			}
			if b := r.anchor.Load(); b.wall != got || b.mono != now {
				t.Errorf("anchor (%d, %v), want (%d, %v)", b.wall, b.mono, got, now)
			}
		})
	}
}

func BenchmarkReal(b *testing.B) {
	for _, bb := range []struct {
		name string
		c    Clock
	}{{"wall", NewReal()}, {"monotonic", NewMonotonic()}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bb.c.UnixNano()
			}
		})
	}
	b.Run("time.Now", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = time.Now().UnixNano()
		}
	})
}
