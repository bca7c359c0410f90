package hlc_test

import (
	"errors"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
)

// Merge takes remote timestamps up to 2 × MaxOffset ahead of physical time
// and refuses the others without moving the clock: one forged stamp at
// MaxTimestamp no longer exhausts it.
func TestMergeRefusesFarAhead(t *testing.T) {
	c, pc := newClock(t, hlc.Config{MaxOffset: 100 * time.Millisecond})
	mustNow(t, c)
	now := pc.Now().UnixMilli()
	for _, tt := range []struct {
		name   string
		remote hlc.Timestamp
		ok     bool
	}{
		{"behind", hlc.MakeTimestamp(now-1000, 0), true},
		{"within max offset", hlc.MakeTimestamp(now+100, 3), true},
		{"at the tolerance", hlc.MakeTimestamp(now+200, 0), true},
		{"beyond the tolerance", hlc.MakeTimestamp(now+201, 0), false},
		{"ten minutes ahead", hlc.MakeTimestamp(now+600_000, 0), false},
		{"max", hlc.MaxTimestamp, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := c.Last()
			ts, err := c.Merge(tt.remote)
			checkErr := c.Check(tt.remote)
			if tt.ok {
				if err != nil || checkErr != nil || ts <= tt.remote || ts <= before {
					t.Fatalf("Merge = %v, %v; Check = %v; want a merge above %v and %v", ts, err, checkErr, tt.remote, before)
				}
				return
			}
			if !errors.Is(err, hlc.ErrRemoteAhead) || !errors.Is(checkErr, hlc.ErrRemoteAhead) || ts != 0 {
				t.Fatalf("Merge = %v, %v; Check = %v; want ErrRemoteAhead", ts, err, checkErr)
			}
			if c.Last() != before {
				t.Fatalf("a refused merge moved the clock from %v to %v", before, c.Last())
			}
		})
	}
	if _, err := c.Now(); err != nil {
		t.Fatalf("Now after refusals: %v", err)
	}
	if s := c.Stats(); s.RemoteRefused != 6 {
		t.Errorf("RemoteRefused %d, want 6 (3 Merge + 3 Check)", s.RemoteRefused)
	}
}

// A clock that merged its own physical time while it ran 10 minutes ahead
// (or took a timestamp from Update) refuses writes through NowWithin once
// its physical clock is set back, until physical time catches up.
func TestNowWithinAfterClockSetBack(t *testing.T) {
	c, pc := newClock(t, hlc.Config{MaxOffset: 100 * time.Millisecond})
	pc.Advance(10 * time.Minute) // the clock runs ahead
	if _, err := c.NowWithin(); err != nil {
		t.Fatal(err)
	}
	pc.Advance(-10 * time.Minute) // fixed
	if _, err := c.NowWithin(); !errors.Is(err, hlc.ErrAheadOfPhysical) {
		t.Fatalf("NowWithin after the clock was set back: %v, want ErrAheadOfPhysical", err)
	}
	if c.Writable() {
		t.Error("Writable while ahead of physical time")
	}
	if !c.InBounds() {
		t.Error("InBounds (peers' view only) changed")
	}
	pc.Advance(10*time.Minute - 150*time.Millisecond) // within 2 × MaxOffset
	if _, err := c.NowWithin(); err != nil {
		t.Fatalf("NowWithin once caught up: %v", err)
	}
	if !c.Writable() {
		t.Error("not Writable once caught up")
	}
}

// NowWithinAt versions by the physical reading it is given, not a reading
// of its own: the caller's expiry and the version come from one reading.
// Its checks use that reading too.
func TestNowWithinAt(t *testing.T) {
	c, _ := newClock(t, hlc.Config{MaxOffset: 100 * time.Millisecond})
	given := start.Add(3 * time.Second) // the physical clock still reads start
	ts, err := c.NowWithinAt(given.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	if want := hlc.MakeTimestamp(given.UnixMilli(), 0); ts != want {
		t.Errorf("NowWithinAt(start+3s) = %v, want %v", ts, want)
	}
	// The last timestamp is now 3 s ahead of a reading of start: more than
	// RemoteTolerance (200 ms).
	if _, err := c.NowWithinAt(start.UnixNano()); !errors.Is(err, hlc.ErrAheadOfPhysical) {
		t.Errorf("NowWithinAt(start) 3 s behind the last timestamp: %v, want ErrAheadOfPhysical", err)
	}
	if ts2, err := c.NowWithinAt(given.UnixNano()); err != nil || ts2 != ts+1 {
		t.Errorf("NowWithinAt(start+3s) again = %v, %v; want %v", ts2, err, ts+1)
	}
}
