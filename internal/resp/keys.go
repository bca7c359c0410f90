package resp

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/geocache/geocache"
)

// Key and string commands. Plain reads and writes call the node directly;
// every conditional write (NX, XX, GET, KEEPTTL, GETDEL, GETEX, the EXPIRE
// conditions, SETNX, PERSIST) is one Session.Update, so the condition and
// the write are atomic on this node.

// peekKey views a key argument as a string without copying it. It is only
// for node calls that do not keep the key (Get, TTL, Lookup: they hash it
// and compare it, and report removals with the stored key): the bytes are
// the connection's read buffer, which the next request overwrites. Writes
// keep their key and get a copy (string(key)).
func peekKey(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

const (
	errNotInteger   = "ERR value is not an integer or out of range"
	errSyntax       = "ERR syntax error"
	nsPerMs         = int64(time.Millisecond)
	maxUnixMs       = math.MaxInt64 / nsPerMs // the last millisecond an expiry in Unix ns can hold (year 2262)
	expireSeconds   = 's'
	expireMillis    = 'm'
	expireAtSeconds = 'S'
	expireAtMillis  = 'M'
)

// parseInt parses an integer argument as Redis's string2ll: an optional
// '-', digits without leading zeros, no '+' or spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 19 || (b[0] == '0' && (len(b) > 1 || neg)) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0') // 19 digits fit in a uint64
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n-1) - 1, true
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	}
	return 0, false
}

func (s *Server) nowMs() int64 { return s.now() / nsPerMs }

// expiryOf turns an expiry argument into an absolute Unix time in ns, as
// Redis's getExpireMillisecondsOrReply (SET, SETEX, GETEX ...): the value
// must be a positive integer whose absolute time in milliseconds fits.
// On failure it has replied and returns false.
func (c *conn) expiryOf(arg []byte, kind byte, cmdName string) (int64, bool) {
	v, ok := parseInt(arg)
	if !ok {
		c.replyError(errNotInteger)
		return 0, false
	}
	if v <= 0 || ((kind == expireSeconds || kind == expireAtSeconds) && v > math.MaxInt64/1000) {
		c.replyError("ERR invalid expire time in '" + cmdName + "' command")
		return 0, false
	}
	if kind == expireSeconds || kind == expireAtSeconds {
		v *= 1000
	}
	if kind == expireSeconds || kind == expireMillis {
		now := c.s.nowMs()
		if v > math.MaxInt64-now {
			c.replyError("ERR invalid expire time in '" + cmdName + "' command")
			return 0, false
		}
		v += now
	}
	return min(v, maxUnixMs) * nsPerMs, true // beyond what Unix ns hold: that last instant, as expire does
}

func noCancel() {}

// writeCtx returns the context of a write: the server's for Local
// acknowledgement; bounded by the connection's ack timeout otherwise.
func (c *conn) writeCtx() (context.Context, context.CancelFunc) {
	if c.sess.Ack() == geocache.Local {
		return c.s.ctx, noCancel
	}
	c.flush() // the replies before a write that may wait go out now
	ctx, cancel := context.WithTimeout(c.s.ctx, c.ackTimeout)
	c.s.blocked.Add(1)
	return ctx, func() {
		c.s.blocked.Add(-1)
		cancel()
	}
}

// replyWriteError answers a failed write.
func (c *conn) replyWriteError(err error) {
	switch {
	case errors.Is(err, geocache.ErrAckTimeout):
		c.replyError("TIMEOUT write applied locally, not acknowledged by enough regions within " + c.ackTimeout.String() + " (" + strings.TrimPrefix(err.Error(), geocache.ErrAckTimeout.Error()+": ") + ")")
	case errors.Is(err, geocache.ErrTooLarge):
		c.replyError("ERR " + strings.TrimPrefix(err.Error(), "geocache: ")) // "key or value too large: ..."
	case errors.Is(err, geocache.ErrStarting):
		c.replyError("TRYAGAIN this node is starting: it takes writes once it has merged its peers' clocks")
	case errors.Is(err, geocache.ErrClockSkew):
		c.replyError("TRYAGAIN this node's clock is out of bounds relative to its peers; it refuses writes until it is back in bounds")
	case errors.Is(err, geocache.ErrContended):
		c.replyError("TRYAGAIN the key was rewritten during every attempt of this conditional write; nothing was written")
	case errors.Is(err, geocache.ErrClosed), c.s.ctx.Err() != nil:
		c.replyError("ERR server is shutting down")
	default:
		c.replyError("ERR " + err.Error())
	}
}

func cmdGet(c *conn, args [][]byte) {
	v, err := c.s.node.GetShared(peekKey(args[1]))
	switch {
	case errors.Is(err, geocache.ErrWrongType):
		c.replyError(errWrongType)
	case err != nil:
		c.replyNull()
	default:
		c.replyValue(v)
	}
}

// strOpts are the options of SET and GETEX, parsed as Redis's
// parseExtendedStringArgumentsOrReply.
type strOpts struct {
	nx, xx, get, keepTTL, persist bool
	expKind                       byte // 0 or one of the expire* kinds
	expArg                        []byte
}

func parseStrOpts(args [][]byte, isSet bool) (o strOpts, ok bool) {
	for j := 0; j < len(args); j++ {
		a, next := args[j], j+1 < len(args)
		kind := byte(0)
		switch {
		case isSet && equalFold(a, "nx") && !o.xx:
			o.nx = true
		case isSet && equalFold(a, "xx") && !o.nx:
			o.xx = true
		case isSet && equalFold(a, "get"):
			o.get = true
		case isSet && equalFold(a, "keepttl") && !o.persist && o.expKind == 0:
			o.keepTTL = true
		case !isSet && equalFold(a, "persist") && !o.keepTTL && o.expKind == 0:
			o.persist = true
		case equalFold(a, "ex"):
			kind = expireSeconds
		case equalFold(a, "px"):
			kind = expireMillis
		case equalFold(a, "exat"):
			kind = expireAtSeconds
		case equalFold(a, "pxat"):
			kind = expireAtMillis
		default:
			return o, false
		}
		if kind != 0 {
			if o.keepTTL || o.persist || (o.expKind != 0 && o.expKind != kind) || !next {
				return o, false
			}
			o.expKind, o.expArg = kind, args[j+1]
			j++
		}
	}
	return o, true
}

// strOptsAndExpiry parses the options of SET (isSet) or GETEX and the
// absolute expiry they ask for (0: none), answering the error itself when
// they are bad.
func (c *conn) strOptsAndExpiry(args [][]byte, isSet bool, cmd string) (strOpts, int64, bool) {
	o, ok := parseStrOpts(args, isSet)
	if !ok {
		c.replyError(errSyntax)
		return o, 0, false
	}
	var at int64
	if o.expKind != 0 {
		if at, ok = c.expiryOf(o.expArg, o.expKind, cmd); !ok {
			return o, 0, false
		}
	}
	return o, at, true
}

func cmdSet(c *conn, args [][]byte) {
	if len(args) == 3 {
		c.set(args[1], args[2], 0)
		return
	}
	o, at, ok := c.strOptsAndExpiry(args[3:], true, "set")
	if !ok {
		return
	}
	if !o.nx && !o.xx && !o.get && !o.keepTTL {
		c.set(args[1], args[2], at)
		return
	}
	val := args[2]
	applied, wrongType := false, false
	ctx, cancel := c.writeCtx()
	prev, found, err := c.sess.Update(ctx, string(args[1]), func(cur geocache.Item, found bool) geocache.Change {
		if o.get && isHash(cur, found) {
			wrongType = true // SET ... GET of a hash, as Redis: nothing written
			return geocache.Change{}
		}
		if (o.nx && found) || (o.xx && !found) {
			return geocache.Change{}
		}
		applied = true
		ch := geocache.Change{Action: geocache.Put, Value: val}
		switch {
		case at != 0:
			ch.ExpireAt = time.Unix(0, at)
			ch.Event = geocache.EventSetExpire // "set", then "expire"
		case o.keepTTL && found:
			ch.ExpireAt = cur.ExpireAt
		default:
			ch.ExpireAt = c.s.node.DefaultExpireAt()
		}
		return ch
	})
	cancel()
	switch {
	case err != nil:
		c.replyWriteError(err)
	case wrongType:
		c.replyError(errWrongType)
	case o.get && found:
		c.replyValue(prev.Value)
	case o.get || !applied:
		c.replyNull()
	default:
		c.replyOK()
	}
}

// set is the unconditional SET: at is the absolute expiry in Unix ns, 0
// for the node's default.
func (c *conn) set(key, val []byte, at int64) {
	ctx, cancel := c.writeCtx()
	var err error
	if at == 0 {
		err = c.sess.Set(ctx, string(key), val)
	} else {
		err = c.sess.Set(ctx, string(key), val, geocache.WithExpireAt(time.Unix(0, at)))
	}
	cancel()
	if err != nil {
		c.replyWriteError(err)
		return
	}
	c.replyOK()
}

func cmdSetex(c *conn, args [][]byte) {
	if at, ok := c.expiryOf(args[2], expireSeconds, "setex"); ok {
		c.set(args[1], args[3], at)
	}
}

func cmdPsetex(c *conn, args [][]byte) {
	if at, ok := c.expiryOf(args[2], expireMillis, "psetex"); ok {
		c.set(args[1], args[3], at)
	}
}

func cmdSetnx(c *conn, args [][]byte) {
	val := args[2]
	ctx, cancel := c.writeCtx()
	_, found, err := c.sess.Update(ctx, string(args[1]), func(_ geocache.Item, found bool) geocache.Change {
		if found {
			return geocache.Change{}
		}
		return geocache.Change{Action: geocache.Put, Value: val, ExpireAt: c.s.node.DefaultExpireAt()}
	})
	cancel()
	switch {
	case err != nil:
		c.replyWriteError(err)
	case found:
		c.replyInt(0)
	default:
		c.replyInt(1)
	}
}

// replyPrevious answers with the value a conditional write replaced, or
// with the write's error; WRONGTYPE for a hash (which the write left
// alone).
func (c *conn) replyPrevious(prev geocache.Item, found bool, err error) {
	switch {
	case err != nil:
		c.replyWriteError(err)
	case isHash(prev, found):
		c.replyError(errWrongType)
	case found:
		c.replyValue(prev.Value)
	default:
		c.replyNull()
	}
}

// removeAlways deletes a key whether or not it exists here: another region
// may hold it, and a cache invalidation must reach it there.
func removeAlways(geocache.Item, bool) geocache.Change {
	return geocache.Change{Action: geocache.Remove}
}

func cmdGetdel(c *conn, args [][]byte) {
	ctx, cancel := c.writeCtx()
	prev, found, err := c.sess.Update(ctx, string(args[1]), func(cur geocache.Item, found bool) geocache.Change {
		if isHash(cur, found) {
			return geocache.Change{} // WRONGTYPE (replyPrevious)
		}
		return geocache.Change{Action: geocache.Remove}
	})
	cancel()
	c.replyPrevious(prev, found, err)
}

func cmdGetex(c *conn, args [][]byte) {
	o, at, ok := c.strOptsAndExpiry(args[2:], false, "getex")
	if !ok {
		return
	}
	if at == 0 && !o.persist {
		cmdGet(c, args)
		return
	}
	nowNs := c.s.now()
	ctx, cancel := c.writeCtx()
	prev, found, err := c.sess.Update(ctx, string(args[1]), func(cur geocache.Item, found bool) geocache.Change {
		switch {
		case !found, isHash(cur, found): // a hash: WRONGTYPE (replyPrevious)
			return geocache.Change{}
		case o.persist:
			if cur.ExpireAt.IsZero() {
				return geocache.Change{}
			}
			return geocache.Change{Action: geocache.Put, Value: cur.Value, Event: geocache.EventPersist}
		case at <= nowNs:
			return geocache.Change{Action: geocache.Remove} // "del", as Redis
		}
		return geocache.Change{Action: geocache.Put, Value: cur.Value, ExpireAt: time.Unix(0, at), Event: geocache.EventExpire}
	})
	cancel()
	c.replyPrevious(prev, found, err)
}

func cmdMget(c *conn, args [][]byte) {
	c.replyArray(len(args) - 1)
	for _, k := range args[1:] {
		if v, err := c.s.node.GetShared(peekKey(k)); err == nil {
			c.replyValue(v)
		} else {
			c.replyNull()
		}
		c.flushIfFull()
	}
}

// localAck makes one write of a multi-key command return after the local
// apply; the command's last write then waits for the connection's level.
// Each origin's writes reach a region in order, so the last write's
// acknowledgement covers the ones before it.
var localAck = geocache.WithAck(geocache.Local)

func cmdMset(c *conn, args [][]byte) {
	if len(args)%2 == 0 {
		c.wrongArity("mset")
		return
	}
	// Check every size first, so that a pair the node would refuse does
	// not leave the pairs before it written.
	for i := 1; i < len(args); i += 2 {
		if err := c.s.node.CheckSize(len(args[i]), int64(len(args[i+1]))); err != nil {
			c.replyError("ERR " + strings.TrimPrefix(err.Error(), "geocache: ") + "; nothing was written")
			return
		}
	}
	ctx, cancel := c.writeCtx()
	defer cancel()
	for i := 1; i < len(args); i += 2 {
		var err error
		if i+2 < len(args) {
			err = c.sess.Set(ctx, string(args[i]), args[i+1], localAck)
		} else {
			err = c.sess.Set(ctx, string(args[i]), args[i+1])
		}
		if err != nil {
			c.replyWriteError(err)
			return
		}
	}
	c.replyOK()
}

func cmdDel(c *conn, args [][]byte) {
	ctx, cancel := c.writeCtx()
	defer cancel()
	n := 0
	for i := 1; i < len(args); i++ {
		var found bool
		var err error
		if i+1 < len(args) {
			_, found, err = c.sess.Update(ctx, string(args[i]), removeAlways, localAck)
		} else {
			_, found, err = c.sess.Update(ctx, string(args[i]), removeAlways)
		}
		if err != nil {
			c.replyWriteError(err)
			return
		}
		if found {
			n++
		}
	}
	c.replyInt(int64(n))
}

func cmdExists(c *conn, args [][]byte) {
	n := 0
	for _, k := range args[1:] {
		if c.s.node.Contains(peekKey(k)) {
			n++
		}
	}
	c.replyInt(int64(n))
}

func cmdType(c *conn, args [][]byte) {
	c.replySimple(c.keyType(peekKey(args[1])))
}

func cmdExpire(c *conn, args [][]byte)    { c.expire(args, "expire", expireSeconds) }
func cmdPexpire(c *conn, args [][]byte)   { c.expire(args, "pexpire", expireMillis) }
func cmdExpireat(c *conn, args [][]byte)  { c.expire(args, "expireat", expireAtSeconds) }
func cmdPexpireat(c *conn, args [][]byte) { c.expire(args, "pexpireat", expireAtMillis) }

// expire is EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT (kind says which) with
// Redis 7's NX|XX|GT|LT: a key without expiry counts as an infinite time
// to live, so GT never applies to it and LT always does. A time not in the
// future deletes the key (and answers 1). Times Redis accepts beyond the
// last instant an expiry can hold here (2262-04-11, the end of Unix
// nanoseconds in 64 bits) are stored as that instant.
func (c *conn) expire(args [][]byte, name string, kind byte) {
	var nx, xx, gt, lt bool
	for _, a := range args[3:] {
		switch {
		case equalFold(a, "nx"):
			nx = true
		case equalFold(a, "xx"):
			xx = true
		case equalFold(a, "gt"):
			gt = true
		case equalFold(a, "lt"):
			lt = true
		default:
			c.replyError("ERR Unsupported option " + string(a))
			return
		}
	}
	if nx && (xx || gt || lt) {
		c.replyError("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		c.replyError("ERR GT and LT options at the same time are not compatible")
		return
	}
	when, ok := parseInt(args[2])
	if !ok {
		c.replyError(errNotInteger)
		return
	}
	invalid := "ERR invalid expire time in '" + name + "' command"
	if kind == expireSeconds || kind == expireAtSeconds {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			c.replyError(invalid)
			return
		}
		when *= 1000
	}
	now := c.s.nowMs()
	if kind == expireSeconds || kind == expireMillis {
		if when > math.MaxInt64-now {
			c.replyError(invalid)
			return
		}
		when += now
	}
	when = min(when, maxUnixMs)
	at := when * nsPerMs // may be negative: a time in the past
	done := false
	ctx, cancel := c.writeCtx()
	_, _, err := c.sess.Update(ctx, string(args[1]), func(cur geocache.Item, found bool) geocache.Change {
		if !found {
			return geocache.Change{}
		}
		hasTTL := !cur.ExpireAt.IsZero()
		curAt := cur.ExpireAt.UnixNano()
		switch {
		case nx && hasTTL, xx && !hasTTL, gt && (!hasTTL || at <= curAt), lt && hasTTL && at >= curAt:
			return geocache.Change{}
		}
		done = true
		if when <= now {
			return geocache.Change{Action: geocache.Remove} // "del", as Redis
		}
		return geocache.Change{Action: geocache.Put, Value: cur.Value, ExpireAt: time.Unix(0, at), Event: geocache.EventExpire}
	})
	cancel()
	switch {
	case err != nil:
		c.replyWriteError(err)
	case done:
		c.replyInt(1)
	default:
		c.replyInt(0)
	}
}

func cmdTTL(c *conn, args [][]byte)  { c.replyTTL(args[1], false) }
func cmdPTTL(c *conn, args [][]byte) { c.replyTTL(args[1], true) }

// replyTTL answers TTL (rounded to seconds, as Redis does) or PTTL: -2 for
// a missing key, -1 for one without expiry.
func (c *conn) replyTTL(key []byte, millis bool) {
	d, err := c.s.node.TTL(peekKey(key))
	switch {
	case err != nil:
		c.replyInt(-2)
	case d == 0:
		c.replyInt(-1)
	default:
		ms := (int64(d) + nsPerMs/2) / nsPerMs
		if !millis {
			ms = (ms + 500) / 1000
		}
		c.replyInt(ms)
	}
}

func cmdPersist(c *conn, args [][]byte) {
	done := false
	ctx, cancel := c.writeCtx()
	_, _, err := c.sess.Update(ctx, string(args[1]), func(cur geocache.Item, found bool) geocache.Change {
		if !found || cur.ExpireAt.IsZero() {
			return geocache.Change{}
		}
		done = true
		return geocache.Change{Action: geocache.Put, Value: cur.Value, Event: geocache.EventPersist}
	})
	cancel()
	switch {
	case err != nil:
		c.replyWriteError(err)
	case done:
		c.replyInt(1)
	default:
		c.replyInt(0)
	}
}
