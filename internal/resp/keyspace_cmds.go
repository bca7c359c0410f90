package resp

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/glob"
)

// Keyspace commands: KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX, COPY and
// MSETNX, with Redis 7.0's replies and error texts.
//
// KEYS, SCAN and RANDOMKEY see the keys live on this node. A SCAN cursor
// belongs to the node that issued it (the order follows its hash seed):
// every key live on the node from the first call to the last is returned
// exactly once, whatever is written, deleted, expired or evicted meanwhile
// (geocache.Node.Scan).
//
// RENAME, RENAMENX, COPY and MSETNX write several keys, each as its own
// replicated write (docs/compatibility.md): RENAME writes the destination
// with the source's value and expiry, then deletes the source; MSETNX is
// all or nothing on this node, last-writer-wins per key across regions.

const (
	errNoSuchKey  = "ERR no such key"
	errSameObject = "ERR source and destination objects are the same"
	errDBIndex    = "ERR DB index is out of range"
	// keysChunk is how many keys KEYS asks the node for per step: each step
	// holds one engine shard's lock for a bounded number of buckets.
	keysChunk = 1024
)

// parseCursor parses a SCAN cursor as Redis 7.0's parseScanCursorOrReply,
// that is C's strtoul in base 10: an optional sign (a negative cursor
// wraps, as strtoul does), digits, nothing else, within 64 bits; the empty
// string is 0.
func parseCursor(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, true
	}
	neg := false
	switch b[0] {
	case '-':
		neg, b = true, b[1:]
	case '+':
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, true
}

// keyType is what TYPE answers for key: "string", "hash", or "none" if
// absent.
func (c *conn) keyType(key string) string {
	t, ok := c.s.node.Type(key)
	if !ok {
		return "none"
	}
	return t.String()
}

func cmdKeys(c *conn, args [][]byte) {
	pat := args[1]
	all := len(pat) == 1 && pat[0] == '*'
	var keys []string
	c.eachKey(func(k string) {
		if all || glob.Match(pat, k, false) {
			keys = append(keys, k)
		}
	})
	c.replyArray(len(keys))
	for _, k := range keys {
		c.replyBulkString(k)
		c.flushIfFull()
	}
}

// scanOptions parses SCAN's options ([MATCH pattern] [COUNT count], and
// [TYPE type] if withType) as Redis does, replying the error if they are
// wrong (ok false). count is 10 if not given; pat is nil for none or "*".
func (c *conn) scanOptions(opts [][]byte, withType bool) (count int64, pat, typ []byte, ok bool) {
	count = 10
	for i := 0; i < len(opts); i += 2 {
		if i+1 >= len(opts) {
			c.replyError(errSyntax)
			return 0, nil, nil, false
		}
		switch a := opts[i]; {
		case equalFold(a, "count"):
			n, ok := parseInt(opts[i+1])
			if !ok {
				c.replyError(errNotInteger)
				return 0, nil, nil, false
			}
			if n < 1 {
				c.replyError(errSyntax)
				return 0, nil, nil, false
			}
			count = n
		case equalFold(a, "match"):
			pat = opts[i+1]
			if len(pat) == 1 && pat[0] == '*' {
				pat = nil
			}
		case withType && equalFold(a, "type"):
			typ = opts[i+1]
		default:
			c.replyError(errSyntax)
			return 0, nil, nil, false
		}
	}
	return count, pat, typ, true
}

// eachKey calls yield with every key this node lists: every key it holds,
// or, redirecting, those of the slots it is the primary of (primaryOnly).
func (c *conn) eachKey(yield func(key string)) {
	mine := c.primaryOnly()
	var buf []string
	for cur := uint64(0); ; {
		buf, cur = c.s.node.Scan(cur, keysChunk, buf[:0])
		for _, k := range buf {
			if mine == nil || mine(k) {
				yield(k)
			}
		}
		if cur == 0 {
			return
		}
	}
}

func cmdScan(c *conn, args [][]byte) {
	cursor, ok := parseCursor(args[1])
	if !ok {
		c.replyError("ERR invalid cursor")
		return
	}
	count, pat, typ, ok := c.scanOptions(args[2:], true)
	if !ok {
		return
	}
	keys, next := c.s.node.Scan(cursor, int(min(count, math.MaxInt32)), nil)
	// Filter after collecting, as Redis does: COUNT bounds the work, not
	// the keys that match.
	kept := keys[:0]
	mine := c.primaryOnly()
	for _, k := range keys {
		if pat != nil && !glob.Match(pat, k, false) {
			continue
		}
		if mine != nil && !mine(k) {
			continue
		}
		if typ != nil && !equalFold(typ, c.keyType(k)) {
			continue
		}
		kept = append(kept, k)
	}
	c.replyArray(2)
	c.replyBulkString(strconv.FormatUint(next, 10))
	c.replyArray(len(kept))
	for _, k := range kept {
		c.replyBulkString(k)
	}
}

func cmdRandomkey(c *conn, _ [][]byte) {
	mine := c.primaryOnly()
	// Redirecting, a key of this node's primary slots: each draw finds one
	// with a probability of about its share of the slots, so a few dozen
	// draws miss only when it holds (almost) none.
	for range randomKeyDraws {
		k, err := c.s.node.RandomKey()
		if err != nil {
			break
		}
		if mine == nil || mine(k) {
			c.replyBulkString(k)
			return
		}
	}
	c.replyNull()
}

// randomKeyDraws bounds RANDOMKEY's draws when it redirects.
const randomKeyDraws = 64

func cmdRename(c *conn, args [][]byte) {
	ctx, cancel := c.writeCtx()
	err := c.sess.Rename(ctx, string(args[1]), string(args[2]))
	cancel()
	switch {
	case errors.Is(err, geocache.ErrNotFound):
		c.replyError(errNoSuchKey)
	case err != nil:
		c.replyWriteError(err)
	default:
		c.replyOK()
	}
}

func cmdRenamenx(c *conn, args [][]byte) {
	ctx, cancel := c.writeCtx()
	done, err := c.sess.RenameIfAbsent(ctx, string(args[1]), string(args[2]))
	cancel()
	switch {
	case errors.Is(err, geocache.ErrNotFound):
		c.replyError(errNoSuchKey)
	case err != nil:
		c.replyWriteError(err)
	default:
		c.replyBool(done)
	}
}

func (c *conn) replyBool(b bool) {
	if b {
		c.replyInt(1)
	} else {
		c.replyInt(0)
	}
}

// cmdCopy is COPY source destination [DB destination-db] [REPLACE]. Only
// database 0 exists: DB with another index answers Redis's error for an
// index out of range.
func cmdCopy(c *conn, args [][]byte) {
	replace := false
	for j := 3; j < len(args); j++ {
		switch {
		case equalFold(args[j], "replace"):
			replace = true
		case equalFold(args[j], "db") && j+1 < len(args):
			db, ok := parseInt(args[j+1])
			if !ok {
				c.replyError(errNotInteger)
				return
			}
			if db != 0 {
				c.replyError(errDBIndex)
				return
			}
			j++
		default:
			c.replyError(errSyntax)
			return
		}
	}
	ctx, cancel := c.writeCtx()
	done, err := c.sess.Copy(ctx, string(args[1]), string(args[2]), replace)
	cancel()
	switch {
	case errors.Is(err, geocache.ErrSameKey):
		c.replyError(errSameObject)
	case err != nil:
		c.replyWriteError(err)
	default:
		c.replyBool(done)
	}
}

// cmdMsetnx sets every pair if none of the keys exists here: all or
// nothing on this node; each key its own replicated write (last writer
// wins per key across regions). A key given twice takes its last value,
// as in Redis.
func cmdMsetnx(c *conn, args [][]byte) {
	if len(args)%2 == 0 {
		c.wrongArity("msetnx")
		return
	}
	kvs := make(map[string][]byte, (len(args)-1)/2)
	for i := 1; i < len(args); i += 2 {
		if err := c.s.node.CheckSize(len(args[i]), int64(len(args[i+1]))); err != nil {
			c.replyError("ERR " + strings.TrimPrefix(err.Error(), "geocache: ") + "; nothing was written")
			return
		}
		kvs[string(args[i])] = args[i+1]
	}
	ctx, cancel := c.writeCtx()
	done, err := c.sess.SetAllIfAbsent(ctx, kvs)
	cancel()
	if err != nil {
		c.replyWriteError(err)
		return
	}
	c.replyBool(done)
}
