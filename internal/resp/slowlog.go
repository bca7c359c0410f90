package resp

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SLOWLOG, as Redis 7.0's: the commands that took at least
// slowlog-log-slower-than microseconds (default 10,000; -1 logs nothing, 0
// everything), the last slowlog-max-len of them (default 128), newest
// first. A command's time is the one commandstats measures (latency.go):
// from its parse to its reply in the output buffer, blocking included, so
// a fast command pays one comparison for the slowlog (run). Each entry
// keeps at most 32 arguments and 128 bytes of each, in Redis's forms ("...
// (N more arguments)", "... (N more bytes)"), with passwords redacted as
// Redis redacts them (AUTH, HELLO ... AUTH, CONFIG SET requirepass); EXEC
// is not logged, its commands are. Like Redis, the list is trimmed to
// slowlog-max-len when an entry is added. slowlog-max-len is at most
// maxSlowlogLen (Redis: LONG_MAX), so the list holds at most about 50 MiB.

// Defaults of the slowlog settings, Redis's.
const (
	DefaultSlowlogSlowerThan = 10 * time.Millisecond
	DefaultSlowlogMaxLen     = 128
	// maxSlowlogLen bounds slowlog-max-len: an entry holds at most 32
	// arguments of 128 bytes and a few more, about 5 KiB.
	maxSlowlogLen = 10_000

	slowlogMaxArgs   = 32
	slowlogMaxString = 128
)

// slowEntry is one SLOWLOG entry.
type slowEntry struct {
	id     int64
	unix   int64 // when it was logged, Unix seconds
	micros int64
	args   []string
	addr   string
	name   string
}

// slowLog is the server's slowlog. slowerThan and maxLen are read without
// the lock; the entries are under it.
type slowLog struct {
	// slowerThan is slowlog-log-slower-than in nanoseconds, math.MaxInt64
	// when it is -1 (off); slowerMicros is as CONFIG GET shows it.
	slowerThan   atomic.Int64
	slowerMicros atomic.Int64
	maxLen       atomic.Int64

	mu      sync.Mutex
	entries []slowEntry // oldest first
	nextID  int64
}

func (l *slowLog) init() {
	l.setSlowerThan(DefaultSlowlogSlowerThan.Microseconds())
	l.maxLen.Store(DefaultSlowlogMaxLen)
}

// setSlowerThan sets slowlog-log-slower-than, in microseconds (-1: off).
func (l *slowLog) setSlowerThan(us int64) {
	l.slowerMicros.Store(us)
	switch {
	case us < 0:
		l.slowerThan.Store(math.MaxInt64)
	case us > math.MaxInt64/int64(time.Microsecond):
		l.slowerThan.Store(math.MaxInt64)
	default:
		l.slowerThan.Store(us * int64(time.Microsecond))
	}
}

// add logs c's command args, which took d (at least the threshold).
func (l *slowLog) add(c *conn, cmd *command, args [][]byte, d time.Duration) {
	if cmd.skipSlowlog {
		return
	}
	e := slowEntry{unix: time.Now().Unix(), micros: d.Microseconds(), args: slowlogArgs(cmd, args), addr: c.nc.RemoteAddr().String()}
	c.mu.Lock()
	e.name = c.name
	c.mu.Unlock()
	max := int(l.maxLen.Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	e.id = l.nextID
	l.nextID++
	l.entries = append(l.entries, e)
	if over := len(l.entries) - max; over > 0 {
		// Trim from the oldest. The slice keeps its array, at most
		// max(slowlog-max-len) entries, so the copies are amortized.
		n := copy(l.entries, l.entries[over:])
		clear(l.entries[n:])
		l.entries = l.entries[:n]
	}
}

// slowlogArgs copies args as a slowlog entry keeps them.
func slowlogArgs(cmd *command, args [][]byte) []string {
	n := min(len(args), slowlogMaxArgs)
	out := make([]string, n)
	for j := range n {
		a := args[j]
		switch {
		case n != len(args) && j == n-1:
			out[j] = "... (" + strconv.Itoa(len(args)-n+1) + " more arguments)"
		case len(a) > slowlogMaxString:
			out[j] = string(a[:slowlogMaxString]) + "... (" + strconv.Itoa(len(a)-slowlogMaxString) + " more bytes)"
		default:
			out[j] = string(a)
		}
	}
	redact(cmd, args, out)
	return out
}

const redacted = "(redacted)"

// redact hides the passwords of a command in its slowlog entry, as Redis's
// redactClientCommandArgument: AUTH's arguments, HELLO's AUTH user and
// password, and CONFIG SET requirepass's value.
func redact(cmd *command, args [][]byte, out []string) {
	hide := func(j int) {
		if j < len(out) {
			out[j] = redacted
		}
	}
	switch cmd.name {
	case "auth":
		for j := 1; j < len(args); j++ {
			hide(j)
		}
	case "hello":
		for j := 2; j < len(args); j++ {
			more := len(args) - 1 - j
			switch {
			case equalFold(args[j], "auth") && more >= 2:
				hide(j + 1)
				hide(j + 2)
				j += 2
			case equalFold(args[j], "setname") && more >= 1:
				j++
			default:
				return // HELLO stops at a bad option, as it redacts
			}
		}
	case "config":
		if len(args) < 2 || !equalFold(args[1], "set") {
			return
		}
		for j := 2; j+1 < len(args); j += 2 {
			if equalFold(args[j], "requirepass") {
				hide(j + 1)
			}
		}
	}
}

var slowlogHelp = []string{
	"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GET [<count>]",
	"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
	"    Entries are made of:",
	"    id, timestamp, time in microseconds, arguments array, client IP and port,",
	"    client name",
	"LEN",
	"    Return the length of the slowlog.",
	"RESET",
	"    Reset the slowlog.",
	"HELP",
	"    Prints this help.",
}

func cmdSlowlog(c *conn, args [][]byte) {
	sub := args[1]
	l := &c.s.slowlog
	switch {
	case equalFold(sub, "get") && len(args) <= 3:
		count := int64(10)
		if len(args) == 3 {
			n, ok := parseInt(args[2])
			if !ok || n < -1 {
				c.replyError("ERR count should be greater than or equal to -1")
				return
			}
			count = n
		}
		l.mu.Lock()
		if count < 0 || count > int64(len(l.entries)) {
			count = int64(len(l.entries))
		}
		entries := make([]slowEntry, count)
		for i := range entries {
			entries[i] = l.entries[len(l.entries)-1-i] // newest first
		}
		l.mu.Unlock()
		c.replyArray(len(entries))
		for _, e := range entries {
			c.replyArray(6)
			c.replyInt(e.id)
			c.replyInt(e.unix)
			c.replyInt(e.micros)
			c.replyArray(len(e.args))
			for _, a := range e.args {
				c.replyBulkString(a)
			}
			c.replyBulkString(e.addr)
			c.replyBulkString(e.name)
			c.flushIfFull()
		}
	case equalFold(sub, "len"):
		if len(args) != 2 {
			c.wrongArity("slowlog|len")
			return
		}
		l.mu.Lock()
		n := len(l.entries)
		l.mu.Unlock()
		c.replyInt(int64(n))
	case equalFold(sub, "reset"):
		if len(args) != 2 {
			c.wrongArity("slowlog|reset")
			return
		}
		l.mu.Lock()
		l.entries = nil
		l.mu.Unlock()
		c.replyOK()
	case equalFold(sub, "help"):
		if len(args) != 2 {
			c.wrongArity("slowlog|help")
			return
		}
		c.helpReply(slowlogHelp)
	case equalFold(sub, "get"):
		c.replyError("ERR unknown subcommand or wrong number of arguments for '" + string(truncate(sub, 128)) + "'. Try SLOWLOG HELP.")
	default:
		c.unknownSubcommand("slowlog", sub)
	}
}

// params are the slowlog's CONFIG GET parameters.
func (l *slowLog) params() [][2]string {
	return [][2]string{
		{"slowlog-log-slower-than", strconv.FormatInt(l.slowerMicros.Load(), 10)},
		{"slowlog-max-len", strconv.FormatInt(l.maxLen.Load(), 10)},
	}
}
