package resp

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
	"time"

	"github.com/geocache/geocache"
)

// String commands that read or rewrite a value in place: GETSET, STRLEN,
// APPEND, GETRANGE (and SUBSTR), SETRANGE, GETBIT, SETBIT, BITCOUNT,
// EXPIRETIME, PEXPIRETIME, TOUCH and TIME, with Redis 7.0's replies and
// error texts.
//
// Across regions, a command that changes part of a value (APPEND,
// SETRANGE, SETBIT) is a read-modify-write on the serving node, made under
// the key's lock, whose result is an ordinary whole-value write with a new
// version: regions converge to the last writer's whole value, so of two
// APPENDs made at the same time in two regions only the later survives
// (docs/compatibility.md). The entry keeps its expiry, as in Redis.

const (
	errStringTooLong = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	errBitOffset     = "ERR bit offset is not an integer or out of range"
	errBitValue      = "ERR bit is not an integer or out of range"
	errOffsetRange   = "ERR offset is out of range"
)

// lookup returns key's entry without touching its recency, or found ==
// false.
func (c *conn) lookup(key []byte) (geocache.Item, bool) {
	it, err := c.s.node.Lookup(peekKey(key))
	return it, err == nil
}

// lookupString is lookup for a string command: ok is false after it
// replied WRONGTYPE to a hash.
func (c *conn) lookupString(key []byte) (it geocache.Item, found, ok bool) {
	it, found = c.lookup(key)
	if found && it.Type == geocache.TypeHash {
		c.replyError(errWrongType)
		return it, found, false
	}
	return it, found, true
}

// isHash reports whether an Update callback's entry is a hash, which a
// string command answers WRONGTYPE.
func isHash(cur geocache.Item, found bool) bool { return found && cur.Type == geocache.TypeHash }

func cmdGetset(c *conn, args [][]byte) {
	val := args[2]
	ctx, cancel := c.writeCtx()
	prev, found, err := c.sess.Update(ctx, string(args[1]), func(cur geocache.Item, found bool) geocache.Change {
		if isHash(cur, found) {
			return geocache.Change{}
		}
		return geocache.Change{Action: geocache.Put, Value: val, ExpireAt: c.s.node.DefaultExpireAt()}
	})
	cancel()
	c.replyPrevious(prev, found, err)
}

func cmdStrlen(c *conn, args [][]byte) {
	if it, _, ok := c.lookupString(args[1]); ok {
		c.replyInt(int64(len(it.Value)))
	}
}

// rewrite applies fn to key's value under the key's lock and stores the
// result with the entry's expiry, announcing ev (the command's keyspace
// event). fn returns the new value, or ok == false after replying with an
// error (nothing is written). done is called with the value written (the
// current one if fn wrote nothing), unless fn failed or the write failed
// (then rewrite has replied).
func (c *conn) rewrite(key []byte, ev geocache.Event, fn func(cur []byte, found bool) (next []byte, write, ok bool), done func(next []byte)) {
	var next []byte
	failed := false
	ctx, cancel := c.writeCtx()
	_, _, err := c.sess.Update(ctx, string(key), func(cur geocache.Item, found bool) geocache.Change {
		if isHash(cur, found) {
			c.replyError(errWrongType)
			failed = true
			return geocache.Change{}
		}
		n, write, ok := fn(cur.Value, found)
		if !ok {
			failed = true
			return geocache.Change{}
		}
		if !write {
			next = cur.Value
			return geocache.Change{}
		}
		next = n
		ch := geocache.Change{Action: geocache.Put, Value: n, ExpireAt: cur.ExpireAt, Event: ev}
		if !found {
			ch.ExpireAt = c.s.node.DefaultExpireAt()
		}
		return ch
	})
	cancel()
	switch {
	case failed:
	case err != nil:
		c.replyWriteError(err)
	default:
		done(next)
	}
}

// fits reports whether the node takes a value of n bytes, replying with
// Redis's error if not. It is asked before the value is built: SETRANGE
// and SETBIT may ask for up to 512 MiB.
func (c *conn) fits(n int64) bool {
	if c.s.node.CheckSize(0, n) != nil {
		c.replyError(errStringTooLong)
		return false
	}
	return true
}

func cmdAppend(c *conn, args [][]byte) {
	add := args[2]
	c.rewrite(args[1], geocache.EventAppend, func(cur []byte, found bool) ([]byte, bool, bool) {
		if !c.fits(int64(len(cur)) + int64(len(add))) {
			return nil, false, false
		}
		next := make([]byte, 0, len(cur)+len(add)) // the store's bytes are shared: never append to them
		return append(append(next, cur...), add...), true, true
	}, func(next []byte) { c.replyInt(int64(len(next))) })
}

// rangeOf turns Redis's start and end indexes (negative from the end,
// inclusive) into a slice of a value of n units, as getrange and bitcount
// do; empty reports that the range selects nothing.
func rangeOf(start, end, n int64) (lo, hi int64, empty bool) {
	if start < 0 && end < 0 && start > end {
		return 0, 0, true
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		return 0, 0, true
	}
	return start, end, false
}

func cmdGetrange(c *conn, args [][]byte) {
	start, ok1 := parseInt(args[2])
	end, ok2 := parseInt(args[3])
	if !ok1 || !ok2 {
		c.replyError(errNotInteger)
		return
	}
	it, _, ok := c.lookupString(args[1])
	if !ok {
		return
	}
	lo, hi, empty := rangeOf(start, end, int64(len(it.Value)))
	if empty {
		c.replyBulk(nil)
		return
	}
	c.replyValue(it.Value[lo : hi+1])
}

func cmdSetrange(c *conn, args [][]byte) {
	off, ok := parseInt(args[2])
	if !ok {
		c.replyError(errNotInteger)
		return
	}
	if off < 0 {
		c.replyError(errOffsetRange)
		return
	}
	val := args[3]
	c.rewrite(args[1], geocache.EventSetRange, func(cur []byte, found bool) ([]byte, bool, bool) {
		if len(val) == 0 { // nothing to write: Redis answers the length and creates no key
			return nil, false, true
		}
		if off > math.MaxInt64-int64(len(val)) {
			c.replyError(errStringTooLong)
			return nil, false, false
		}
		if !c.fits(off + int64(len(val))) {
			return nil, false, false
		}
		next := make([]byte, max(int64(len(cur)), off+int64(len(val))))
		copy(next, cur)
		copy(next[off:], val)
		return next, true, true
	}, func(next []byte) { c.replyInt(int64(len(next))) })
}

// bitOffset parses a bit offset as Redis's getBitOffsetFromArgument: its
// byte must lie within proto-max-bulk-len (MaxBulkBytes).
func (c *conn) bitOffset(arg []byte) (int64, bool) {
	off, ok := parseInt(arg)
	if !ok || off < 0 || off>>3 >= int64(c.s.cfg.MaxBulkBytes) {
		c.replyError(errBitOffset)
		return 0, false
	}
	return off, true
}

func cmdGetbit(c *conn, args [][]byte) {
	off, ok := c.bitOffset(args[2])
	if !ok {
		return
	}
	if it, _, ok := c.lookupString(args[1]); ok {
		c.replyInt(int64(bitAt(it.Value, off)))
	}
}

func bitAt(v []byte, off int64) byte {
	if i := off >> 3; i < int64(len(v)) {
		return v[i] >> (7 - byte(off&7)) & 1
	}
	return 0
}

func cmdSetbit(c *conn, args [][]byte) {
	off, ok := c.bitOffset(args[2])
	if !ok {
		return
	}
	var on bool
	switch string(args[3]) {
	case "0":
	case "1":
		on = true
	default:
		c.replyError(errBitValue)
		return
	}
	var old byte
	c.rewrite(args[1], geocache.EventSetBit, func(cur []byte, found bool) ([]byte, bool, bool) {
		old = bitAt(cur, off)
		need := off>>3 + 1
		if !c.fits(need) {
			return nil, false, false
		}
		if found && need <= int64(len(cur)) && (old == 1) == on {
			// As Redis 7.0: a bit already so in a string long enough is
			// no change (no write, no keyspace event).
			return nil, false, true
		}
		next := make([]byte, max(int64(len(cur)), need))
		copy(next, cur)
		mask := byte(1) << (7 - byte(off&7))
		if on {
			next[off>>3] |= mask
		} else {
			next[off>>3] &^= mask
		}
		return next, true, true
	}, func([]byte) { c.replyInt(int64(old)) })
}

func cmdBitcount(c *conn, args [][]byte) {
	var start, end int64
	isBit, ranged := false, false
	switch len(args) {
	case 2:
	case 4, 5:
		var ok1, ok2 bool
		start, ok1 = parseInt(args[2])
		end, ok2 = parseInt(args[3])
		if !ok1 || !ok2 {
			c.replyError(errNotInteger)
			return
		}
		if len(args) == 5 {
			switch {
			case equalFold(args[4], "bit"):
				isBit = true
			case equalFold(args[4], "byte"):
			default:
				c.replyError(errSyntax)
				return
			}
		}
		ranged = true
	default:
		c.replyError(errSyntax)
		return
	}
	it, found, ok := c.lookupString(args[1])
	if !ok {
		return
	}
	if !found {
		c.replyInt(0)
		return
	}
	v := it.Value
	if !ranged {
		c.replyInt(popcount(v))
		return
	}
	n := int64(len(v))
	if isBit {
		n <<= 3
	}
	lo, hi, empty := rangeOf(start, end, n)
	if empty {
		c.replyInt(0)
		return
	}
	if !isBit {
		c.replyInt(popcount(v[lo : hi+1]))
		return
	}
	count := popcount(v[lo>>3 : hi>>3+1])
	// Take off the bits of the first and last bytes outside the range.
	count -= int64(bits.OnesCount8(v[lo>>3] & ^byte(0xFF>>(lo&7))))
	count -= int64(bits.OnesCount8(v[hi>>3] & byte(0xFF>>(hi&7+1))))
	c.replyInt(count)
}

func popcount(v []byte) int64 {
	n := 0
	for len(v) >= 8 {
		n += bits.OnesCount64(uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
			uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56)
		v = v[8:]
	}
	for _, b := range v {
		n += bits.OnesCount8(b)
	}
	return int64(n)
}

// cmdExpiretime answers the absolute expiry in Unix seconds (rounded, as
// Redis does); -1 without expiry, -2 for a missing key.
func cmdExpiretime(c *conn, args [][]byte) { c.replyExpireTime(args[1], false) }

// cmdPexpiretime is EXPIRETIME in milliseconds.
func cmdPexpiretime(c *conn, args [][]byte) { c.replyExpireTime(args[1], true) }

func (c *conn) replyExpireTime(key []byte, millis bool) {
	it, found := c.lookup(key)
	switch {
	case !found:
		c.replyInt(-2)
	case it.ExpireAt.IsZero():
		c.replyInt(-1)
	case millis:
		c.replyInt(it.ExpireAt.UnixMilli())
	default:
		c.replyInt((it.ExpireAt.UnixMilli() + 500) / 1000)
	}
}

// cmdTouch counts the keys that exist and makes each the most recently
// used, as a read does.
func cmdTouch(c *conn, args [][]byte) {
	n := 0
	for _, k := range args[1:] {
		if _, err := c.s.node.GetShared(peekKey(k)); err == nil || errors.Is(err, geocache.ErrWrongType) {
			n++ // a hash is touched too
		}
	}
	c.replyInt(int64(n))
}

// cmdTime answers the serving node's clock: Unix seconds and the
// microseconds within the second, as two bulk strings.
func cmdTime(c *conn, _ [][]byte) {
	t := time.Unix(0, c.s.now())
	c.replyArray(2)
	c.replyBulkString(strconv.FormatInt(t.Unix(), 10))
	c.replyBulkString(strconv.Itoa(t.Nanosecond() / 1000))
}
