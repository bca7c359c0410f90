package resp

import (
	"strconv"
)

// Append-style RESP encoders. Each appends one reply (or the header of an
// aggregate) to dst and returns the extended slice; none allocates when dst
// has room. The resp3 flag chooses between the RESP2 and RESP3 forms where
// they differ (null, map, set, verbatim string); everything else is the
// same in both.

func appendPrefix(dst []byte, c byte, n int64) []byte {
	dst = append(dst, c)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// appendSimple appends a simple string ("+OK"). s must not hold CR or LF.
func appendSimple(dst []byte, s string) []byte {
	dst = append(dst, '+')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// appendError appends an error reply; msg starts with its code ("ERR ...",
// "WRONGPASS ..."). CR and LF in msg become spaces, as Redis does.
func appendError(dst []byte, msg string) []byte {
	dst = append(dst, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\r', '\n')
}

func appendInt(dst []byte, n int64) []byte { return appendPrefix(dst, ':', n) }

func appendBulk(dst []byte, b []byte) []byte {
	dst = appendPrefix(dst, '$', int64(len(b)))
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

func appendBulkString(dst []byte, s string) []byte {
	dst = appendPrefix(dst, '$', int64(len(s)))
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// appendNull appends the null reply: "$-1" in RESP2, "_" in RESP3.
func appendNull(dst []byte, resp3 bool) []byte {
	if resp3 {
		return append(dst, '_', '\r', '\n')
	}
	return append(dst, '$', '-', '1', '\r', '\n')
}

// appendNullArray appends a null aggregate: "*-1" in RESP2, "_" in RESP3.
func appendNullArray(dst []byte, resp3 bool) []byte {
	if resp3 {
		return append(dst, '_', '\r', '\n')
	}
	return append(dst, '*', '-', '1', '\r', '\n')
}

func appendArray(dst []byte, n int) []byte { return appendPrefix(dst, '*', int64(n)) }

// appendPush appends the header of an out-of-band message of n elements
// (pub/sub): a push ">n" in RESP3, an array in RESP2.
func appendPush(dst []byte, n int, resp3 bool) []byte {
	if resp3 {
		return appendPrefix(dst, '>', int64(n))
	}
	return appendPrefix(dst, '*', int64(n))
}

// appendMap appends the header of a map of n pairs: "%n" in RESP3, an array
// of 2n alternating keys and values in RESP2.
func appendMap(dst []byte, n int, resp3 bool) []byte {
	if resp3 {
		return appendPrefix(dst, '%', int64(n))
	}
	return appendPrefix(dst, '*', int64(2*n))
}

// appendSet appends the header of a set of n elements: "~n" in RESP3, an
// array in RESP2.
func appendSet(dst []byte, n int, resp3 bool) []byte {
	if resp3 {
		return appendPrefix(dst, '~', int64(n))
	}
	return appendPrefix(dst, '*', int64(n))
}

// appendVerbatim appends a text reply such as INFO's: a verbatim string
// ("=<len>\r\ntxt:...") in RESP3, a bulk string in RESP2.
func appendVerbatim(dst []byte, text string, resp3 bool) []byte {
	if !resp3 {
		return appendBulkString(dst, text)
	}
	dst = appendPrefix(dst, '=', int64(len(text)+4))
	dst = append(dst, "txt:"...)
	dst = append(dst, text...)
	return append(dst, '\r', '\n')
}
