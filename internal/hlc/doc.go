// Package hlc implements a hybrid logical clock (Kulkarni, Demirbas et al.,
// "Logical Physical Clocks", 2014) that versions geocache's replicated writes.
//
// # Layout
//
// A [Timestamp] is a uint64: wall-clock milliseconds since the Unix epoch in
// the high 48 bits and a logical counter in the low 16 bits. Comparing two
// timestamps as integers therefore compares (milliseconds, counter)
// lexicographically, which is the order the replication layer uses for
// last-writer-wins. 48 bits of milliseconds last until the year 10889.
//
// # Rules
//
// A [Clock] holds the last timestamp it issued, l. Physical time pt comes
// from an injected [PhysicalClock] (the system clock by default), read once
// per event and truncated to milliseconds.
//
//   - Local or send event ([Clock.Now]): l' = max(l, pt); if the millisecond
//     part did not move the counter is incremented, otherwise it restarts at 0.
//   - Receive event ([Clock.Update]): l' = max(l, l_msg, pt); if the
//     millisecond part equals that of the larger of l and l_msg the counter is
//     that timestamp's counter plus one, otherwise it restarts at 0.
//
// Every event therefore yields a timestamp strictly greater than every
// timestamp this clock issued or received before, even when physical time
// stands still or steps backwards. The one exception is the top of the
// range: a clock that has merged MaxTimestamp (only a corrupt remote stamp
// can carry it) saturates there, and Now returns [ErrExhausted] rather than
// issue a duplicate.
//
// Counter overflow: when the counter would pass 65535 within one millisecond,
// the clock carries into the millisecond part instead (the next timestamp
// is ms+1 with counter 0), exactly as the integer addition l+1 does. The clock
// then runs ahead of physical time by up to a millisecond per 65536 events,
// until physical time catches up. Carries are counted in [Stats].LogicalOverflows.
//
// # Clock offsets
//
// [Config].MaxOffset (500 ms by default) is the largest offset between two
// nodes' physical clocks that the cluster tolerates. It is used twice:
//
//   - A remote timestamp whose millisecond part is ahead of local physical
//     time by more than 2 × MaxOffset ([Clock.RemoteTolerance]: two nodes
//     each within MaxOffset of the others can be that far apart) is refused
//     by [Clock.Merge] (and [Clock.Check]) with [ErrRemoteAhead]: the clock
//     does not move, and the replication layer does not apply the version
//     but holds its stream until physical time has caught up, so that
//     convergence is delayed, never broken, and no peer can drag the clock
//     into the future (one stamp at MaxTimestamp would otherwise exhaust
//     it). [Clock.Update] merges any remote timestamp, counting one more
//     than MaxOffset ahead in [Stats] and logging it at most once per
//     second; it is for local events only.
//   - The transport measures each peer's physical clock against ours
//     ([EstimateOffset]) and reports it with [Clock.ObservePeerOffset]. When a
//     strict majority of the known peers is more than MaxOffset away, it is
//     this node's clock that is wrong: [Clock.Now] then returns
//     [ErrClockOutOfBounds] and issues no timestamp, so the node refuses
//     writes until enough peers report it back in bounds. Receive events are
//     still applied. A node with no known peers is always in bounds.
//
// # Concurrency
//
// A Clock is safe for concurrent use. Each event takes one mutex once and
// reads physical time once; Now and Update do not allocate. The clock starts
// no goroutines and keeps no timers: time is whatever the PhysicalClock says.
package hlc
