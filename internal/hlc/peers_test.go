package hlc_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
)

func TestEstimateOffset(t *testing.T) {
	tests := []struct {
		name             string
		send, peer, recv int64
		want             time.Duration
	}{
		{"in sync", 1000, 1050, 1100, 0},
		{"peer ahead", 1000, 5050, 1100, 4000},
		{"peer behind", 1000, 50, 1100, -1000},
		{"zero round trip", 7, 9, 7, 2},
		{"large values do not overflow", math.MaxInt64 - 10, math.MaxInt64, math.MaxInt64, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hlc.EstimateOffset(tt.send, tt.peer, tt.recv); got != tt.want {
				t.Errorf("EstimateOffset(%d, %d, %d) = %v, want %v", tt.send, tt.peer, tt.recv, got, tt.want)
			}
		})
	}
}

// peerOp is one step of an out-of-bounds scenario.
type peerOp struct {
	forget bool
	peer   string
	offset time.Duration
	expect int // > 0: ExpectPeers(expect) instead
}

func observe(peer string, offset time.Duration) peerOp { return peerOp{peer: peer, offset: offset} }
func forget(peer string) peerOp                        { return peerOp{forget: true, peer: peer} }
func expect(n int) peerOp                              { return peerOp{expect: n} }

func TestOutOfBounds(t *testing.T) {
	const maxOff = 500 * time.Millisecond
	far, near := time.Second, 10*time.Millisecond
	tests := []struct {
		name    string
		ops     []peerOp
		wantIn  bool
		wantFar int
	}{
		{"no peers", nil, true, 0},
		{"one near", []peerOp{observe("a", near)}, true, 0},
		{"one far is a majority of one", []peerOp{observe("a", far)}, false, 1},
		{"exactly max is in bounds", []peerOp{observe("a", maxOff), observe("b", -maxOff)}, true, 0},
		{"just beyond max", []peerOp{observe("a", maxOff+1)}, false, 1},
		{"half is not a majority", []peerOp{observe("a", far), observe("b", -far), observe("c", near), observe("d", 0)}, true, 2},
		{"two of three ahead", []peerOp{observe("a", far), observe("b", far), observe("c", near)}, false, 2},
		{"two of three behind", []peerOp{observe("a", -far), observe("b", -far), observe("c", near)}, false, 2},
		{"min duration", []peerOp{observe("a", math.MinInt64)}, false, 1},
		{"peers come back", []peerOp{observe("a", far), observe("b", far), observe("c", near), observe("a", near)}, true, 1},
		{"latest offset wins", []peerOp{observe("a", near), observe("a", far)}, false, 1},
		{"forgetting a near peer", []peerOp{observe("a", far), observe("b", near), forget("b")}, false, 1},
		{"forgetting a far peer", []peerOp{observe("a", far), observe("b", far), observe("c", near), forget("a")}, true, 1},
		{"forgetting an unknown peer", []peerOp{observe("a", near), forget("zz")}, true, 0},
		{"forget all", []peerOp{observe("a", far), forget("a")}, true, 0},
		// Chaos seed 1001: a node restarted just before a partition had
		// measured one of its two peers, which was far; the other, near,
		// was measured only later. One far of two peers is no majority.
		{"one far of two expected", []peerOp{expect(2), observe("a", far)}, true, 1},
		{"two far of two expected", []peerOp{expect(2), observe("a", far), observe("b", -far)}, false, 2},
		{"two far of three expected", []peerOp{expect(3), observe("a", far), observe("b", far)}, false, 2},
		{"more tracked than expected", []peerOp{expect(1), observe("a", far), observe("b", near), observe("c", near)}, true, 1},
		{"expecting more later", []peerOp{observe("a", far), expect(3)}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClock(t, hlc.Config{MaxOffset: maxOff})
			for _, op := range tt.ops {
				switch {
				case op.expect > 0:
					c.ExpectPeers(op.expect)
				case op.forget:
					c.ForgetPeer(op.peer)
				default:
					c.ObservePeerOffset(op.peer, op.offset)
				}
			}
			if got := c.InBounds(); got != tt.wantIn {
				t.Errorf("InBounds() = %v, want %v", got, tt.wantIn)
			}
			if got := c.Stats().PeersOutOfBounds; got != tt.wantFar {
				t.Errorf("PeersOutOfBounds = %d, want %d", got, tt.wantFar)
			}
			_, err := c.Now()
			if tt.wantIn && err != nil {
				t.Errorf("Now() in bounds: %v", err)
			}
			if !tt.wantIn && !errors.Is(err, hlc.ErrClockOutOfBounds) {
				t.Errorf("Now() out of bounds: err = %v, want ErrClockOutOfBounds", err)
			}
		})
	}
}

// TestOutOfBoundsRecovery walks a node out of bounds and back, checking
// that it refuses writes meanwhile, still merges remote stamps, stays
// monotonic, and logs both transitions.
func TestOutOfBoundsRecovery(t *testing.T) {
	rec := &recorder{}
	c, pc := newClock(t, hlc.Config{Logger: slog.New(rec)})
	before := mustNow(t, c)

	c.ObservePeerOffset("eu", 2*time.Second)
	c.ObservePeerOffset("us", 2*time.Second)
	c.ObservePeerOffset("ap", 0)
	for range 3 {
		if ts, err := c.Now(); !errors.Is(err, hlc.ErrClockOutOfBounds) || ts != 0 {
			t.Fatalf("Now() = %v, %v; want 0, ErrClockOutOfBounds", ts, err)
		}
	}
	// Receive events still apply while out of bounds.
	pc.Advance(time.Millisecond)
	merged := c.Update(hlc.MakeTimestamp(start.UnixMilli()+2000, 0))
	if merged <= before {
		t.Fatalf("Update while out of bounds = %v, not above %v", merged, before)
	}

	c.ObservePeerOffset("eu", 40*time.Millisecond) // eu fixed our clock
	after := mustNow(t, c)
	if after <= merged {
		t.Errorf("Now() after recovery = %v, not above %v", after, merged)
	}
	if got := c.Stats().OutOfBoundsRefusals; got != 3 {
		t.Errorf("OutOfBoundsRefusals = %d, want 3", got)
	}
	logs := rec.snapshot()
	var levels []slog.Level
	for _, r := range logs {
		if r.Level != slog.LevelWarn { // skip the remote-ahead warning
			levels = append(levels, r.Level)
		}
	}
	if len(levels) != 2 || levels[0] != slog.LevelError || levels[1] != slog.LevelInfo {
		t.Errorf("transition log levels = %v, want [ERROR INFO]", levels)
	}
}

// TestPeerCap checks the bound on tracked peers.
func TestPeerCap(t *testing.T) {
	c, _ := newClock(t, hlc.Config{})
	for i := range hlc.MaxPeers {
		c.ObservePeerOffset(fmt.Sprint("p", i), 0)
	}
	// New peers beyond the cap are ignored and counted, even far ones.
	for i := range 3 {
		c.ObservePeerOffset(fmt.Sprint("extra", i), time.Hour)
	}
	s := c.Stats()
	if s.Peers != hlc.MaxPeers || s.PeersRejected != 3 || s.PeersOutOfBounds != 0 {
		t.Fatalf("Stats() = %+v, want %d peers, 3 rejected, none out of bounds", s, hlc.MaxPeers)
	}
	// Tracked peers still update at the cap.
	for i := range hlc.MaxPeers/2 + 1 {
		c.ObservePeerOffset(fmt.Sprint("p", i), -time.Hour)
	}
	if c.InBounds() {
		t.Errorf("InBounds() = true with a majority of tracked peers an hour behind")
	}
	// Forgetting frees a slot.
	c.ForgetPeer("p0")
	c.ObservePeerOffset("newcomer", 0)
	if s := c.Stats(); s.Peers != hlc.MaxPeers || s.PeersRejected != 3 {
		t.Errorf("after forget and observe: Stats() = %+v, want %d peers, 3 rejected", s, hlc.MaxPeers)
	}
}
