package repl

import (
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/wire"
)

// observeVisibility records, for each op of a streamed frame just applied,
// how long after its write it became visible here: this node's physical
// clock now minus the op's HLC wall-clock milliseconds, 0 if negative (the
// origin's clock ahead of this one's, or its HLC pushed ahead by a peer).
// The measure includes the offset between the two clocks and has
// millisecond resolution. It reads the clock once per frame and
// allocates nothing. Ops of full syncs are not observed: they are the
// sender's current state, not writes in flight, and their age says
// nothing about replication.
func (r *Replicator) observeVisibility(o *originState, ops []wire.Op) {
	if len(ops) == 0 {
		return
	}
	now := r.cfg.Physical.UnixNano()
	for i := range ops {
		o.visibility.Observe(time.Duration(now - hlc.Timestamp(ops[i].HLC).WallMillis()*int64(time.Millisecond)))
	}
}
