package resp

import (
	"bytes"
	"errors"
	"math/big"
	"strings"

	"github.com/geocache/geocache"
)

// Counters: INCR, INCRBY, DECR, DECRBY go to Node.IncrBy: each node's
// increments are its own contribution to the key and every region reads
// their sum, so increments made at once in several regions all count
// (docs/compatibility.md). INCRBYFLOAT is a read-modify-write of the value
// as a string, which replaces a counter (last writer wins), as a SET
// would.

const (
	errOverflow          = "ERR increment or decrement would overflow"
	errDecrementOverflow = "ERR decrement would overflow"
	errNotFloat          = "ERR value is not a valid float"
	errNaNOrInf          = "ERR increment would produce NaN or Infinity"
)

func cmdIncr(c *conn, args [][]byte) { c.incrBy(args[1], 1) }
func cmdDecr(c *conn, args [][]byte) { c.incrBy(args[1], -1) }

func cmdIncrby(c *conn, args [][]byte) {
	d, ok := parseInt(args[2])
	if !ok {
		c.replyError(errNotInteger)
		return
	}
	c.incrBy(args[1], d)
}

func cmdDecrby(c *conn, args [][]byte) {
	d, ok := parseInt(args[2])
	switch {
	case !ok:
		c.replyError(errNotInteger)
	case d == -1<<63:
		c.replyError(errDecrementOverflow)
	default:
		c.incrBy(args[1], -d)
	}
}

// incrBy adds d to key's counter and replies with the result, with
// Redis's errors for a value that is not an integer and for overflow.
func (c *conn) incrBy(key []byte, d int64) {
	ctx, cancel := c.writeCtx()
	v, err := c.sess.IncrBy(ctx, string(key), d)
	cancel()
	switch {
	case errors.Is(err, geocache.ErrNotInteger):
		c.replyError(errNotInteger)
	case errors.Is(err, geocache.ErrOverflow):
		c.replyError(errOverflow)
	case errors.Is(err, geocache.ErrWrongType):
		c.replyError(errWrongType)
	case errors.Is(err, geocache.ErrCounterFull):
		c.replyError("ERR " + strings.TrimPrefix(err.Error(), "geocache: "))
	case err != nil:
		c.replyWriteError(err)
	default:
		c.replyInt(v)
	}
}

func cmdIncrbyfloat(c *conn, args [][]byte) {
	d, ok := parseLongDouble(args[2])
	if !ok {
		c.replyError(errNotFloat)
		return
	}
	c.rewrite(args[1], geocache.EventIncrByFloat, func(cur []byte, found bool) ([]byte, bool, bool) {
		v := newLongDouble()
		if found {
			if v, ok = parseLongDouble(cur); !ok {
				c.replyError(errNotFloat)
				return nil, false, false
			}
		}
		v.Add(v, d)
		if !longDoubleFinite(v) {
			c.replyError(errNaNOrInf)
			return nil, false, false
		}
		next := formatLongDouble(v)
		if !c.fits(int64(len(next))) {
			return nil, false, false
		}
		return next, true, true
	}, func(next []byte) { c.replyBulk(next) })
}

// Redis computes INCRBYFLOAT in C's long double, on x86 the 80-bit
// extended format: a 64-bit mantissa, rounded to nearest even, exponents
// to ±16383. big.Float with 64 bits of precision rounds the same way, so
// the results are Redis's to the last digit (1.1 + 1e3 is
// 1001.29999999999999999 there too).
const (
	longDoublePrec   = 64
	longDoubleMaxExp = 16384 // a magnitude of 2^16384 or more overflows
	// maxLongDoubleChars is Redis's MAX_LONG_DOUBLE_CHARS: a longer
	// string is not a float.
	maxLongDoubleChars = 5 * 1024
)

func newLongDouble() *big.Float { return new(big.Float).SetPrec(longDoublePrec) }

// parseLongDouble parses b as Redis's string2ld (strtold) does: decimal or
// hexadecimal, with an exponent; no spaces, no underscores, nothing after
// the number; infinities parse, NaN does not.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) >= maxLongDoubleChars || bytes.IndexByte(b, '_') >= 0 {
		return nil, false
	}
	s := string(b)
	body := s
	if body[0] == '+' || body[0] == '-' {
		body = body[1:]
	}
	switch lower := bytes.ToLower([]byte(body)); {
	case string(lower) == "inf" || string(lower) == "infinity":
		return newLongDouble().SetInf(s[0] == '-'), true
	case bytes.HasPrefix(lower, []byte("0b")), bytes.HasPrefix(lower, []byte("0o")):
		return nil, false // base prefixes strtold does not know
	}
	f, _, err := newLongDouble().Parse(s, 0)
	if err != nil {
		return nil, false
	}
	if !longDoubleFinite(f) {
		return nil, false // strtold: out of range (ERANGE)
	}
	return f, true
}

func longDoubleFinite(f *big.Float) bool {
	return !f.IsInf() && f.MantExp(nil) <= longDoubleMaxExp
}

// formatLongDouble writes f as Redis's ld2string in LD_STR_HUMAN mode:
// "%.17Lf", then the trailing zeros of the fraction and a bare point
// removed, and "-0" written "0".
func formatLongDouble(f *big.Float) []byte {
	b := f.Append(nil, 'f', 17)
	if bytes.IndexByte(b, '.') >= 0 {
		b = bytes.TrimRight(b, "0")
		b = bytes.TrimSuffix(b, []byte("."))
	}
	if string(b) == "-0" {
		b = b[1:]
	}
	return b
}
