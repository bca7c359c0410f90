package resp

import (
	"errors"
	"strings"
	"time"

	"github.com/geocache/geocache"
)

// Operations commands: CLIENT KILL, NO-EVICT and REPLY, RESET, OBJECT and
// MEMORY, with Redis 7.0's replies and errors. (CONFIG SET is in
// settings.go, SLOWLOG in slowlog.go.)

// needAuth reports whether c must AUTH before other commands: a password
// is set and c has not authenticated. As in Redis, a connection made while
// no password was set counts as authenticated, and clearing the password
// lets every connection in.
func (c *conn) needAuth() bool { return !c.authed && c.s.passwordSet() }

// kill closes o from another connection's goroutine (CLIENT KILL), as
// Redis's freeClient: nothing more is read from it or written to it, its
// goroutines end (its serve goroutine's read fails, and so does its pub/sub
// writer's write or a watcher's read), and it leaves the server through
// dropConn as any connection does.
func (o *conn) kill() {
	o.killed.Store(true)
	o.closeRaw()
}

// clientType is CLIENT KILL TYPE's class of a connection: pubsub while it
// has subscriptions, normal otherwise (geocache has no replica or master
// connections on this port).
func (o *conn) clientType() string {
	if o.subscribed() {
		return "pubsub"
	}
	return "normal"
}

// clientKill is CLIENT KILL ip:port (answers +OK or "No such client"; may
// kill the caller) and CLIENT KILL <filter> <value> ... with ID, ADDR,
// LADDR, TYPE, USER and SKIPME (answers how many it killed; skips the
// caller unless SKIPME no), as Redis 7.0. The caller, if killed, is closed
// after its reply.
func (c *conn) clientKill(args [][]byte) {
	var addr, laddr, typ []byte
	var id int64
	skipme := true
	if len(args) == 3 {
		addr, skipme = args[2], false
	} else {
		for i := 2; i < len(args); i += 2 {
			opt, more := args[i], i+1 < len(args)
			if !more {
				c.replyError(errSyntax)
				return
			}
			v := args[i+1]
			switch {
			case equalFold(opt, "id"):
				n, ok := parseInt(v)
				if !ok || n < 1 {
					c.replyError("ERR client-id should be greater than 0")
					return
				}
				id = n
			case equalFold(opt, "type"):
				switch t := strings.ToLower(string(v)); t {
				case "normal", "pubsub", "slave", "replica", "master":
					typ = []byte(t)
				default:
					c.replyError("ERR Unknown client type '" + string(v) + "'")
					return
				}
			case equalFold(opt, "addr"):
				addr = v
			case equalFold(opt, "laddr"):
				laddr = v
			case equalFold(opt, "user"):
				if string(v) != "default" {
					c.replyError("ERR No such user '" + string(v) + "'")
					return
				}
				// Every connection is the default user's: no filter.
			case equalFold(opt, "skipme"):
				switch {
				case equalFold(v, "yes"):
					skipme = true
				case equalFold(v, "no"):
					skipme = false
				default:
					c.replyError(errSyntax)
					return
				}
			default:
				c.replyError(errSyntax)
				return
			}
		}
	}
	killed, self := 0, false
	for _, o := range c.s.connsByID() {
		switch {
		case addr != nil && o.nc.RemoteAddr().String() != string(addr),
			laddr != nil && o.nc.LocalAddr().String() != string(laddr),
			typ != nil && o.clientType() != string(typ),
			id != 0 && o.id != id,
			o == c && skipme:
			continue
		}
		if o == c {
			self = true
		} else {
			o.kill()
		}
		killed++
	}
	switch {
	case len(args) != 3:
		c.replyInt(int64(killed))
	case killed == 0:
		c.replyError("ERR No such client")
		return
	default:
		c.replyOK()
	}
	if self {
		c.quit = true // after the reply, as Redis's CLIENT_CLOSE_AFTER_REPLY
	}
}

// clientReply is CLIENT REPLY ON|OFF|SKIP, as Redis: OFF drops the replies
// of every command from this one on, SKIP the next command's only (it does
// nothing while OFF), ON answers +OK and ends both. Pub/sub messages and
// (un)subscribe confirmations are delivered regardless, as Redis 7.0 does.
func (c *conn) clientReply(mode []byte) {
	switch {
	case equalFold(mode, "on"):
		c.replyOff, c.skipThis, c.skipNext = false, false, false
		c.unmute()
		c.replyOK()
	case equalFold(mode, "off"):
		c.replyOff = true
	case equalFold(mode, "skip"):
		if !c.replyOff {
			c.skipNext = true
		}
	default:
		c.replyError(errSyntax)
	}
}

// unmute lets the running command's replies through again (CLIENT REPLY
// ON, RESET).
func (c *conn) unmute() {
	if c.mute {
		c.out = c.out[:min(c.muteAt, len(c.out))]
		c.mute = false
	}
}

// cmdReset is RESET (Redis 6.2): the connection as new, but for its id and
// address. It leaves MULTI and unwatches, unsubscribes from everything
// without confirmations, speaks RESP2, forgets its name, turns CLIENT
// REPLY back on (a reply skipped by SKIP stays skipped, as in Redis),
// deauthenticates when a password is set (the authentication timeout
// starts again), and, geocache's own, returns to the default
// acknowledgement level. It answers +RESET.
func cmdReset(c *conn, _ [][]byte) {
	c.tx, c.watched = nil, nil
	c.redirect = false
	if c.ps != nil {
		c.endPubSub()
		if c.werr != nil {
			return // the queue could not be written out: the connection ends
		}
	}
	c.resp3 = false
	c.proto.Store(2)
	c.mu.Lock()
	c.name = ""
	c.mu.Unlock()
	c.replyOff, c.skipNext = false, false
	if !c.skipThis {
		c.unmute()
	}
	if c.s.passwordSet() {
		c.authed = false
		c.authSince, c.unauthUsed = time.Now(), 0
	} else {
		c.authed = true
	}
	c.sess.SetAck(geocache.Local)
	c.ackTimeout = DefaultAckTimeout
	c.replySimple("RESET")
}

var objectHelp = []string{
	"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"ENCODING <key>",
	"    Return the kind of internal representation used in order to store the value",
	"    associated with a <key>.",
	"FREQ <key>",
	"    Return the access frequency index of the <key>. The returned integer is",
	"    proportional to the logarithm of the recent access frequency of the key.",
	"IDLETIME <key>",
	"    Return the idle time of the <key>, that is the approximated number of",
	"    seconds elapsed since the last access to the key.",
	"REFCOUNT <key>",
	"    Return the number of references of the value associated with the specified",
	"    <key>.",
	"HELP",
	"    Prints this help.",
}

// Redis 7.0's errors for OBJECT FREQ without an LFU policy and OBJECT
// IDLETIME without access times (its LFU case): geocache's eviction is
// LRU by recency order alone, without access times or counters.
const (
	errNoFreq = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."
	errNoIdle = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."
)

// cmdObject is OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ key and OBJECT
// HELP. A missing key answers nil, before any error, as in Redis.
func cmdObject(c *conn, args [][]byte) {
	sub := args[1]
	if equalFold(sub, "help") {
		if len(args) != 2 {
			c.wrongArity("object|help")
			return
		}
		c.helpReply(objectHelp)
		return
	}
	var name string
	for _, s := range []string{"encoding", "refcount", "idletime", "freq"} {
		if equalFold(sub, s) {
			name = s
		}
	}
	switch {
	case name == "":
		c.unknownSubcommand("object", sub)
		return
	case len(args) != 3:
		c.wrongArity("object|" + name)
		return
	}
	key := peekKey(args[2])
	if name == "encoding" {
		it, err := c.s.node.Lookup(key)
		switch {
		case err != nil:
			c.replyNull()
		case it.Type == geocache.TypeHash:
			fields, _ := c.s.node.HGetAllShared(key)
			c.replyBulkString(hashEncoding(fields))
		default:
			c.replyBulkString(stringEncoding(it.Value))
		}
		return
	}
	if !c.s.node.Contains(key) {
		c.replyNull()
		return
	}
	switch name {
	case "refcount":
		// No value is shared: with a memory budget and an LRU policy,
		// Redis does not share its small integers either.
		c.replyInt(1)
	case "idletime":
		c.replyError(errNoIdle)
	case "freq":
		c.replyError(errNoFreq)
	}
}

// embstrMax is the longest string Redis embeds in its object header.
const embstrMax = 44

// stringEncoding is what Redis's OBJECT ENCODING answers for a string
// value SET stored: "int" for an integer it reads back exactly (up to 20
// bytes, string2l), "embstr" up to 44 bytes, "raw" beyond. (Redis answers
// "raw" for a short string that APPEND or SETRANGE made; geocache keeps no
// trace of how a value was made.)
func stringEncoding(v []byte) string {
	if len(v) <= 20 {
		if _, ok := parseInt(v); ok {
			return "int"
		}
	}
	if len(v) <= embstrMax {
		return "embstr"
	}
	return "raw"
}

var memoryHelp = []string{
	"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"USAGE <key> [SAMPLES <count>]",
	"    Return memory in bytes used by <key> and its value. Nested values are",
	"    sampled up to <count> times (default: 5, 0 means sample all).",
	"HELP",
	"    Prints this help.",
}

// cmdMemory is MEMORY USAGE key [SAMPLES n] and MEMORY HELP. USAGE answers
// what the key's entry counts against the node's memory budget (maxmemory):
// key, value and the store's fixed overhead per entry; nil for a missing
// key. SAMPLES is checked as Redis checks it and has nothing to sample: a
// string has no nested values.
func cmdMemory(c *conn, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "usage"):
		if len(args) < 3 {
			c.wrongArity("memory|usage")
			return
		}
		for j := 3; j < len(args); j++ {
			if !equalFold(args[j], "samples") || j+1 >= len(args) {
				c.replyError(errSyntax)
				return
			}
			n, ok := parseInt(args[j+1])
			switch {
			case !ok:
				c.replyError(errNotInteger)
				return
			case n < 0:
				c.replyError(errSyntax)
				return
			}
			j++
		}
		n, err := c.s.node.MemoryUsage(peekKey(args[2]))
		if errors.Is(err, geocache.ErrNotFound) {
			c.replyNull()
			return
		}
		c.replyInt(n)
	case equalFold(sub, "help"):
		if len(args) != 2 {
			c.wrongArity("memory|help")
			return
		}
		c.helpReply(memoryHelp)
	default:
		c.unknownSubcommand("memory", sub)
	}
}

// The subcommands of CLIENT this file answers (cmdClient dispatches).
func (c *conn) clientOps(sub []byte, args [][]byte) bool {
	switch {
	case equalFold(sub, "kill"):
		if len(args) < 3 {
			c.wrongArity("client|kill")
			return true
		}
		c.clientKill(args)
	case equalFold(sub, "no-evict"):
		if len(args) != 3 {
			c.wrongArity("client|no-evict")
			return true
		}
		// Accepted for clients that set it: geocache never evicts clients.
		if equalFold(args[2], "on") || equalFold(args[2], "off") {
			c.replyOK()
		} else {
			c.replyError(errSyntax)
		}
	case equalFold(sub, "reply"):
		if len(args) != 3 {
			c.wrongArity("client|reply")
			return true
		}
		c.clientReply(args[2])
	default:
		return false
	}
	return true
}
