package chaos

import (
	"testing"
	"time"
)

// Regressions: runs that found a problem, pinned to their seed and
// schedule. Each is skipped while the problem stands, so that the suite
// stays green; remove the t.Skip to check a fix.

// TestRegressHLCAcrossRestart: a node restarted with a clock behind the
// versions its previous process issued (long runs saw it with seeds 1001 and others, see
// docs/reliability.md) versions its first writes below its own earlier
// ones (offset +400ms, then -400ms here). The HLC is neither kept across a restart nor waited out (the node
// accepts writes at once), so a client's write after the restart loses, in
// every region, to the same client's earlier write of the key.
func TestRegressHLCAcrossRestart(t *testing.T) {
	rep := runChaos(t, Config{Seed: 11, Duration: 8 * time.Second, Schedule: &Schedule{
		Offsets: []time.Duration{400 * time.Millisecond, 0, 0},
		Faults:  []Fault{{Kind: FaultSkew, At: 3 * time.Second, Node: 0, Offset: -400 * time.Millisecond}},
	}})
	if rep.HLCRestart.Regressions != 0 {
		t.Errorf("%d writes of the restarted node versioned below its previous process's (up to %.0f ms)",
			rep.HLCRestart.Regressions, rep.HLCRestart.MaxBehindMS)
	}
}

// TestRegressExpiredQuorumWriteResurrects: seed 1006 of the long runs.
// Region us is cut off; a client of eu makes a Quorum-acknowledged write
// that expires (SET PX, or PEXPIRE of a key that had no expiry), which eu
// and ap apply; eu is killed before us is back. The write expires in ap,
// leaving only a ghost there, and nothing ever tells us: us keeps serving
// the older version, without expiry, forever — and eu, refilled from us
// after its restart, serves it again too. Expected: no node holds a
// version older than an acknowledged write (I4; here one that expired:
// I3-older-after-expiry).
func TestRegressExpiredQuorumWriteResurrects(t *testing.T) {
	rep := runChaos(t, Config{Seed: 1006, Duration: 7 * time.Second, Schedule: &Schedule{Faults: []Fault{
		{Kind: FaultIsolate, At: 3 * time.Second, For: 3900 * time.Millisecond, Region: 0},
		{Kind: FaultKill, At: 5 * time.Second, For: 1900 * time.Millisecond, Node: 1},
	}}})
	if !rep.Pass {
		t.Errorf("violations:\n%s", rep.Summary())
	}
}

// TestChaosPartitionOutlastsHorizon: us is cut off for longer than the
// tombstone horizon (2 s) while eu's clients delete and set keys, and eu is
// killed before us is back, so the tombstones of eu's deletes that only ap
// received are gone by the heal (ap keeps ghosts). No node may then hold a
// value older than a delete (I3): us, away longer than the horizon, takes
// full syncs whose drop rule removes what it can no longer vouch for.
func TestChaosPartitionOutlastsHorizon(t *testing.T) {
	rep := runChaos(t, Config{Seed: 21, Duration: 10 * time.Second, TombstoneHorizon: 2 * time.Second, Schedule: &Schedule{Faults: []Fault{
		{Kind: FaultIsolate, At: 2 * time.Second, For: 6 * time.Second, Region: 0},
		{Kind: FaultKill, At: 5 * time.Second, For: 5 * time.Second, Node: 1},
	}}})
	if !rep.Pass {
		t.Errorf("violations:\n%s", rep.Summary())
	}
	if rep.OutlastHorizon != 1 {
		t.Errorf("%d cuts outlasted the horizon, want 1", rep.OutlastHorizon)
	}
}
