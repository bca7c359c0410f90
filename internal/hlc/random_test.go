package hlc_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
)

var seedFlag = flag.Uint64("hlc.seed", 0, "seed for TestRandomized (0: derive from the time)")

// TestRandomized mixes Now, Update, physical clock moves and peer offset
// reports, checking the clock against a reference model of the peer table
// and the HLC invariants after every step. Rerun a failure with
// -hlc.seed=<seed from the log>.
func TestRandomized(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -hlc.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	const maxOffset = 200 * time.Millisecond
	c, pc := newClock(t, hlc.Config{MaxOffset: maxOffset})
	model := map[string]time.Duration{}
	var (
		prev        hlc.Timestamp // latest timestamp the clock returned
		issued      int
		refusals    uint64
		remoteAhead uint64
	)
	randDur := func(limit time.Duration) time.Duration {
		return time.Duration(rng.Int64N(int64(2*limit+1))) - limit
	}
	for step := range 50_000 {
		var op string
		switch k := rng.IntN(100); {
		case k < 50:
			op = "now"
			ts, err := c.Now()
			far := 0
			for _, o := range model {
				if o > maxOffset || o < -maxOffset {
					far++
				}
			}
			if wantOut := 2*far > len(model); wantOut {
				if !errors.Is(err, hlc.ErrClockOutOfBounds) {
					t.Fatalf("step %d: Now() err = %v with %d of %d peers far, want ErrClockOutOfBounds", step, err, far, len(model))
				}
				refusals++
				break
			}
			if err != nil {
				t.Fatalf("step %d: Now(): %v", step, err)
			}
			if ts <= prev {
				t.Fatalf("step %d: Now() = %v after %v", step, ts, prev)
			}
			if pt := pc.Now().UnixMilli(); ts.WallMillis() < pt {
				t.Fatalf("step %d: Now() = %v behind physical %d", step, ts, pt)
			}
			prev = ts
			issued++
		case k < 75:
			op = "update"
			pt := pc.Now()
			// Remote stamps near physical time, sometimes far off, sometimes
			// with full counters.
			skew := randDur(100 * time.Millisecond)
			if rng.IntN(10) == 0 {
				skew = randDur(10 * time.Second)
			}
			logical := uint16(rng.IntN(8))
			if rng.IntN(20) == 0 {
				logical = hlc.MaxLogical - uint16(rng.IntN(2))
			}
			remote := hlc.MakeTimestamp(pt.Add(skew).UnixMilli(), logical)
			if time.Duration(remote.WallMillis())*time.Millisecond-time.Duration(pt.UnixNano()) > maxOffset {
				remoteAhead++
			}
			ts := c.Update(remote)
			if ts <= prev || ts <= remote {
				t.Fatalf("step %d: Update(%v) = %v, previous %v", step, remote, ts, prev)
			}
			prev = ts
		case k < 90:
			op = "move"
			pc.Advance(randDur(50 * time.Millisecond))
		case k < 92:
			op = "jump"
			pc.Advance(randDur(time.Hour))
		case k < 98:
			op = "observe"
			peer := fmt.Sprint("peer", rng.IntN(7))
			off := randDur(maxOffset + maxOffset/2)
			c.ObservePeerOffset(peer, off)
			model[peer] = off
		default:
			op = "forget"
			peer := fmt.Sprint("peer", rng.IntN(7))
			c.ForgetPeer(peer)
			delete(model, peer)
		}
		if s := c.Stats(); s.Peers != len(model) || s.OutOfBoundsRefusals != refusals || s.RemoteAhead != remoteAhead {
			t.Fatalf("step %d (%s): Stats() = %+v; model: %d peers, %d refusals, %d remote ahead",
				step, op, s, len(model), refusals, remoteAhead)
		}
	}
	t.Logf("issued %d timestamps, %d refusals, %d remote ahead, final %v", issued, refusals, remoteAhead, prev)
}
