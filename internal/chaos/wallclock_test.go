package chaos

import (
	"strings"
	"testing"
	"time"
)

// The summary names a move of the machine's wall clock against the run's
// clock, which the clock checks cannot tell from the nodes' own errors,
// and says nothing of one within a millisecond.
func TestSummaryNamesAWallClockStep(t *testing.T) {
	for _, tc := range []struct {
		step time.Duration
		want bool
	}{{4700 * time.Millisecond, true}, {300 * time.Microsecond, false}} {
		in := &checkInput{Regions: 1, WallStep: tc.step}
		rep := buildReport(Config{Seed: 1}, Schedule{}, in, Check(in))
		if got := strings.Contains(rep.Summary(), "MACHINE CLOCK: the wall clock moved "+tc.step.String()); got != tc.want {
			t.Errorf("a step of %v named in the summary: %v, want %v:\n%s", tc.step, got, tc.want, rep.Summary())
		}
	}
}
