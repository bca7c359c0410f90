package resp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/glob"
)

// Hashes: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HGETALL, HKEYS, HVALS,
// HLEN, HEXISTS, HSTRLEN, HINCRBY, HINCRBYFLOAT, HRANDFIELD and HSCAN,
// with Redis 7.0's replies and error texts. A write is one
// Session.UpdateHash: atomic on this node, and merged field by field in
// every region (a field is last-writer-wins; fields written at once in
// two regions all survive; HINCRBY of one field in two regions at once
// keeps one of them). Fields are returned in the order of their names
// (Redis returns a small hash's in insertion order, a large one's in hash
// order: neither is promised). docs/compatibility.md has the rules.

const (
	errWrongType       = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errHashNotInteger  = "ERR hash value is not an integer"
	errHashNotFloat    = "ERR hash value is not a float"
	errNaNOrInfinity   = "ERR value is NaN or Infinity"
	errOutOfRangeValue = "ERR value is out of range"
	// maxRandFieldCount bounds the fields one HRANDFIELD with a negative
	// count returns (repeats allowed): Redis has no bound.
	maxRandFieldCount = 1 << 16
	// Redis 7.0's hash-max-listpack-entries and hash-max-listpack-value,
	// for OBJECT ENCODING.
	listpackEntries = 128
	listpackValue   = 64
)

// replyErr is an error a hash callback replies with (it writes nothing).
type replyErr string

func (e replyErr) Error() string { return string(e) }

// hashFields reads key's hash for a read command: ok is false after it
// replied WRONGTYPE; fields is empty for an absent key.
func (c *conn) hashFields(key []byte) (fields []geocache.Field, ok bool) {
	fields, err := c.s.node.HGetAllShared(peekKey(key))
	if errors.Is(err, geocache.ErrWrongType) {
		c.replyError(errWrongType)
		return nil, false
	}
	return fields, true
}

// findField returns the value of name in fields (sorted by name).
func findField(fields []geocache.Field, name []byte) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(fields, name, func(f geocache.Field, n []byte) int { return bytes.Compare(f.Name, n) })
	if !ok {
		return nil, false
	}
	return fields[i].Value, true
}

// updateHash runs fn on key's hash and replies with reply unless the write
// failed (then it replied with the error).
func (c *conn) updateHash(key []byte, fn func(h *geocache.HashTx) error, reply func()) {
	ctx, cancel := c.writeCtx()
	err := c.sess.UpdateHash(ctx, string(key), fn)
	cancel()
	var re replyErr
	switch {
	case errors.As(err, &re):
		c.replyError(string(re))
	case errors.Is(err, geocache.ErrWrongType):
		c.replyError(errWrongType)
	case errors.Is(err, geocache.ErrHashFull):
		c.replyError("ERR " + strings.TrimPrefix(err.Error(), "geocache: "))
	case err != nil:
		c.replyWriteError(err)
	default:
		reply()
	}
}

func cmdHset(c *conn, args [][]byte)  { c.hset(args, "hset") }
func cmdHmset(c *conn, args [][]byte) { c.hset(args, "hmset") }

func (c *conn) hset(args [][]byte, name string) {
	if len(args)%2 != 0 {
		c.wrongArity(name)
		return
	}
	added := 0
	c.updateHash(args[1], func(h *geocache.HashTx) error {
		added = 0
		for i := 2; i < len(args); i += 2 {
			if h.Set(args[i], args[i+1]) {
				added++
			}
		}
		return nil
	}, func() {
		if name == "hmset" {
			c.replyOK()
		} else {
			c.replyInt(int64(added))
		}
	})
}

func cmdHsetnx(c *conn, args [][]byte) {
	done := false
	c.updateHash(args[1], func(h *geocache.HashTx) error {
		_, exists := h.Get(args[2])
		done = !exists
		if done {
			h.Set(args[2], args[3])
		}
		return nil
	}, func() { c.replyBool(done) })
}

func cmdHdel(c *conn, args [][]byte) {
	removed := 0
	c.updateHash(args[1], func(h *geocache.HashTx) error {
		removed = 0
		for _, f := range args[2:] {
			if h.Delete(f) {
				removed++
			}
		}
		return nil
	}, func() { c.replyInt(int64(removed)) })
}

func cmdHget(c *conn, args [][]byte) {
	fields, ok := c.hashFields(args[1])
	if !ok {
		return
	}
	if v, found := findField(fields, args[2]); found {
		c.replyValue(v)
	} else {
		c.replyNull()
	}
}

func cmdHmget(c *conn, args [][]byte) {
	fields, ok := c.hashFields(args[1])
	if !ok {
		return
	}
	c.replyArray(len(args) - 2)
	for _, name := range args[2:] {
		if v, found := findField(fields, name); found {
			c.replyValue(v)
		} else {
			c.replyNull()
		}
		c.flushIfFull()
	}
}

func cmdHgetall(c *conn, args [][]byte) {
	fields, ok := c.hashFields(args[1])
	if !ok {
		return
	}
	if c.resp3 {
		c.replyMap(len(fields))
	} else {
		c.replyArray(2 * len(fields))
	}
	for _, f := range fields {
		c.replyBulk(f.Name)
		c.replyValue(f.Value)
		c.flushIfFull()
	}
}

func cmdHkeys(c *conn, args [][]byte) { c.hashColumn(args[1], true) }
func cmdHvals(c *conn, args [][]byte) { c.hashColumn(args[1], false) }

func (c *conn) hashColumn(key []byte, names bool) {
	fields, ok := c.hashFields(key)
	if !ok {
		return
	}
	c.replyArray(len(fields))
	for _, f := range fields {
		if names {
			c.replyBulk(f.Name)
		} else {
			c.replyValue(f.Value)
		}
		c.flushIfFull()
	}
}

func cmdHlen(c *conn, args [][]byte) {
	if fields, ok := c.hashFields(args[1]); ok {
		c.replyInt(int64(len(fields)))
	}
}

func cmdHexists(c *conn, args [][]byte) {
	if fields, ok := c.hashFields(args[1]); ok {
		_, found := findField(fields, args[2])
		c.replyBool(found)
	}
}

func cmdHstrlen(c *conn, args [][]byte) {
	if fields, ok := c.hashFields(args[1]); ok {
		v, _ := findField(fields, args[2])
		c.replyInt(int64(len(v)))
	}
}

// cmdHincrby is a read-modify-write of one field: exact on this node,
// last-writer-wins across regions (not a counter).
func cmdHincrby(c *conn, args [][]byte) {
	d, ok := parseInt(args[3])
	if !ok {
		c.replyError(errNotInteger)
		return
	}
	var result int64
	c.updateHash(args[1], func(h *geocache.HashTx) error {
		var v int64
		if cur, found := h.Get(args[2]); found {
			if v, ok = parseInt(cur); !ok {
				return replyErr(errHashNotInteger)
			}
		}
		if d < 0 && v < 0 && d < minInt64-v || d > 0 && v > 0 && d > maxInt64-v {
			return replyErr(errOverflow)
		}
		result = v + d
		h.Set(args[2], strconv.AppendInt(nil, result, 10))
		h.SetEvent(geocache.EventHincrBy)
		return nil
	}, func() { c.replyInt(result) })
}

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// cmdHincrbyfloat is HINCRBY in Redis's long double arithmetic
// (INCRBYFLOAT's).
func cmdHincrbyfloat(c *conn, args [][]byte) {
	d, ok := parseLongDouble(args[3])
	if !ok {
		c.replyError(errNotFloat)
		return
	}
	if !longDoubleFinite(d) {
		c.replyError(errNaNOrInfinity)
		return
	}
	var next []byte
	c.updateHash(args[1], func(h *geocache.HashTx) error {
		v := newLongDouble()
		if cur, found := h.Get(args[2]); found {
			if v, ok = parseLongDouble(cur); !ok {
				return replyErr(errHashNotFloat)
			}
		}
		v.Add(v, d)
		if !longDoubleFinite(v) {
			return replyErr(errNaNOrInf)
		}
		next = formatLongDouble(v)
		h.Set(args[2], next)
		h.SetEvent(geocache.EventHincrByFloat)
		return nil
	}, func() { c.replyBulk(next) })
}

// cmdHrandfield is HRANDFIELD key [count [WITHVALUES]], as Redis 7.0: a
// positive count returns distinct fields (all of them if count is at least
// the hash's size), a negative one |count| fields that may repeat.
func cmdHrandfield(c *conn, args [][]byte) {
	if len(args) == 2 {
		fields, ok := c.hashFields(args[1])
		switch {
		case !ok:
		case len(fields) == 0:
			c.replyNull()
		default:
			c.replyBulk(fields[rand.IntN(len(fields))].Name)
		}
		return
	}
	l, ok := parseInt(args[2])
	switch {
	case !ok:
		c.replyError(errNotInteger)
		return
	case l == minInt64:
		c.replyError("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
		return
	case len(args) > 4 || len(args) == 4 && !equalFold(args[3], "withvalues"):
		c.replyError(errSyntax)
		return
	}
	withValues := len(args) == 4
	if withValues && (l < -maxInt64/2 || l > maxInt64/2) {
		c.replyError(errOutOfRangeValue)
		return
	}
	fields, ok := c.hashFields(args[1])
	if !ok {
		return
	}
	if l == 0 || len(fields) == 0 {
		c.replyArray(0)
		return
	}
	var pick []geocache.Field
	switch {
	case l < 0 || l == 1:
		n := -l
		if l == 1 {
			n = 1
		}
		if n > maxRandFieldCount {
			c.replyError("ERR count is out of range: geocache returns at most " + strconv.Itoa(maxRandFieldCount) + " fields")
			return
		}
		pick = make([]geocache.Field, n)
		for i := range pick {
			pick[i] = fields[rand.IntN(len(fields))]
		}
	case l >= int64(len(fields)):
		pick = fields
	default:
		pick = slices.Clone(fields)
		rand.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
		pick = pick[:l]
	}
	switch {
	case withValues && !c.resp3:
		c.replyArray(2 * len(pick))
	default:
		c.replyArray(len(pick))
	}
	for _, f := range pick {
		if withValues && c.resp3 {
			c.replyArray(2)
		}
		c.replyBulk(f.Name)
		if withValues {
			c.replyValue(f.Value)
		}
		c.flushIfFull()
	}
}

// cmdHscan is HSCAN key cursor [MATCH pattern] [COUNT count]. A hash is
// returned whole, with cursor 0, whatever the cursor, as Redis does for a
// small (listpack) hash: every field present throughout is returned once.
func cmdHscan(c *conn, args [][]byte) {
	if _, ok := parseCursor(args[2]); !ok {
		c.replyError("ERR invalid cursor")
		return
	}
	fields, ok := c.hashFields(args[1])
	if !ok {
		return
	}
	if len(fields) == 0 {
		c.replyArray(2)
		c.replyBulkString("0")
		c.replyArray(0)
		return
	}
	_, pat, _, ok := c.scanOptions(args[3:], false)
	if !ok {
		return
	}
	kept := fields[:0:0]
	for _, f := range fields {
		if pat == nil || glob.Match(pat, f.Name, false) {
			kept = append(kept, f)
		}
	}
	c.replyArray(2)
	c.replyBulkString("0")
	c.replyArray(2 * len(kept))
	for _, f := range kept {
		c.replyBulk(f.Name)
		c.replyValue(f.Value)
		c.flushIfFull()
	}
}

// hashEncoding is what Redis 7.0's OBJECT ENCODING answers for a hash of
// these fields: "listpack" up to 128 fields of names and values up to 64
// bytes, "hashtable" beyond. (Redis keeps a hash that once grew past them
// a hashtable; geocache answers from the fields it holds now.)
func hashEncoding(fields []geocache.Field) string {
	if len(fields) > listpackEntries {
		return "hashtable"
	}
	for _, f := range fields {
		if len(f.Name) > listpackValue || len(f.Value) > listpackValue {
			return "hashtable"
		}
	}
	return "listpack"
}
