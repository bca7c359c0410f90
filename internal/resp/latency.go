package resp

import (
	"time"

	"github.com/geocache/geocache/internal/latency"
)

// maxCommands bounds the statistics entries (statEntries: the commands
// and the containers' subcommands); commandLatency has one histogram per
// possible entry, so that the server needs no allocation for it.
const maxCommands = 192

// commandLatency times the commands a server executes: one sharded
// histogram per command of the table, indexed by command.id, each shard
// used by the connections whose id falls on it. A command's time runs from
// conn.tick — set when its batch of requests was read, and moved to the
// end of each command — to its reply in the output buffer: its parsing and
// execution, one clock read per command (plus one per read batch), two
// atomic adds on a line few other connections share; no lock, no
// allocation. A command refused before it runs (unknown, wrong arity,
// NOAUTH) is not timed; its microsecond goes to the next command of the
// batch. The zero value is ready to use.
type commandLatency [maxCommands]latency.Sharded

func init() {
	if len(statEntries) > maxCommands {
		panic("resp: more commands and subcommands than maxCommands")
	}
}

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow reads the monotonic clock only: time.Now reads the wall clock
// too, which doubles the cost of timing a command where clock reads are
// slow (virtual machines).
func monoNow() time.Duration { return time.Since(monoBase) }

// observe records that c has just executed cmd, and returns the time it
// took (SLOWLOG compares it with its threshold).
func (l *commandLatency) observe(c *conn, cmd *command) time.Duration {
	now := monoNow()
	d := now - c.tick
	l[cmd.id].Observe(uint64(c.id), d)
	c.tick = now
	return d
}

// CommandLatency returns, for every command executed at least once, the
// histogram of its times: parsing and execution until its reply is in the
// output buffer (see commandLatency), so without network time or waiting
// for the client, and including the time a command blocks (WAIT, a write
// waiting for other regions). Commands refused before they run (unknown,
// wrong arity, NOAUTH) are not timed. A container command called with one
// of its subcommands is keyed by both names, as Redis 7 reports it
// ("client|list"); with an unknown one, by the container's name.
func (s *Server) CommandLatency() map[string]latency.Snapshot { return s.latencySince(&noBase) }
