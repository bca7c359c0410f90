// Package glob matches strings against Redis's glob-style patterns, the
// syntax of KEYS, SCAN MATCH, CONFIG GET, PSUBSCRIBE and PUBSUB CHANNELS:
// * (any run of bytes), ? (any one byte), [abc], [^abc] and [a-z] (classes;
// a range may be given high to low), and \x (x itself).
//
// Match answers as Redis 7.0's stringmatchlen (util.c) does, edge cases
// included — a port of it is the reference model of the tests — but runs
// in O(len(pattern)·len(s)) time whatever the pattern, one star
// backtracked at a time, where Redis's recursion can take exponential time
// (and gives up, not matching, past 1,000 nested stars; Match goes on). It
// allocates nothing, and takes the pattern and the string as either string
// or []byte, so that callers convert neither.
package glob
