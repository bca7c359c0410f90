package glob

import (
	"math/rand/v2"
	"testing"
	"time"
)

// redisMatch is Redis 7.0's stringmatchlen (util.c), line for line, as the
// reference model Match is checked against: recursive, exponential in the
// worst case (cut off at 1,000 nested stars, where Match goes on), and
// reading C strings past their length (at returns the NUL there).
func redisMatch(p, s []byte, nocase bool) bool {
	skip := false
	return redisImpl(p, 0, len(p), s, 0, len(s), nocase, &skip, 0)
}

// at emulates C's NUL-terminated reads.
func at(b []byte, i int) byte {
	if i >= 0 && i < len(b) {
		return b[i]
	}
	return 0
}

func tl(c byte) byte { return lower(c) }

func redisImpl(pat []byte, pi, plen int, str []byte, si, slen int, nocase bool, skip *bool, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	for plen > 0 && slen > 0 {
		switch at(pat, pi) {
		case '*':
			for plen > 0 && at(pat, pi+1) == '*' {
				pi++
				plen--
			}
			if plen == 1 {
				return true
			}
			for slen > 0 {
				if redisImpl(pat, pi+1, plen-1, str, si, slen, nocase, skip, nesting+1) {
					return true
				}
				if *skip {
					return false
				}
				si++
				slen--
			}
			*skip = true
			return false
		case '?':
			si++
			slen--
		case '[':
			pi++
			plen--
			not := at(pat, pi) == '^'
			if not {
				pi++
				plen--
			}
			match := false
			for {
				if at(pat, pi) == '\\' && plen >= 2 {
					pi++
					plen--
					if at(pat, pi) == at(str, si) {
						match = true
					}
				} else if at(pat, pi) == ']' {
					break
				} else if plen == 0 {
					pi--
					plen++
					break
				} else if plen >= 3 && at(pat, pi+1) == '-' {
					start, end, c := at(pat, pi), at(pat, pi+2), at(str, si)
					if start > end {
						start, end = end, start
					}
					if nocase {
						start, end, c = tl(start), tl(end), tl(c)
					}
					pi += 2
					plen -= 2
					if c >= start && c <= end {
						match = true
					}
				} else {
					if !nocase {
						if at(pat, pi) == at(str, si) {
							match = true
						}
					} else if tl(at(pat, pi)) == tl(at(str, si)) {
						match = true
					}
				}
				pi++
				plen--
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			si++
			slen--
		case '\\':
			if plen >= 2 {
				pi++
				plen--
			}
			fallthrough
		default:
			if !nocase {
				if at(pat, pi) != at(str, si) {
					return false
				}
			} else if tl(at(pat, pi)) != tl(at(str, si)) {
				return false
			}
			si++
			slen--
		}
		pi++
		plen--
		if slen == 0 {
			for at(pat, pi) == '*' {
				pi++
				plen--
			}
			break
		}
	}
	return plen == 0 && slen == 0
}

// TestMatchAgainstRedisModel compares Match with redisMatch on random
// short patterns and strings over the bytes that matter (the seed is
// printed, so that a failure can be replayed).
func TestMatchAgainstRedisModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	alphabet := []byte("abzAZ*?[]^-\\\x00")
	gen := func(max int) []byte {
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return b
	}
	n := 300_000
	if testing.Short() {
		n = 30_000
	}
	for range n {
		p, s, nocase := gen(10), gen(7), r.IntN(2) == 0
		if got, want := Match(p, s, nocase), redisMatch(p, s, nocase); got != want {
			t.Fatalf("Match(%q, %q, nocase=%v) = %v; Redis's stringmatchlen says %v", p, s, nocase, got, want)
		}
	}
}

// FuzzMatchRedis: Match agrees with Redis's matcher on any input (but
// patterns of more than 1,000 stars, where Redis gives up).
func FuzzMatchRedis(f *testing.F) {
	for _, s := range [][2]string{{"*", ""}, {"[b-]]", "b"}, {"[B-[", "b"}, {`[\a]`, "A"}, {"h*o", "hello"}, {"a[", "a"}} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, p, s string, nocase bool) {
		if len(p) > 1000 {
			return
		}
		if got, want := Match(p, s, nocase), redisMatch([]byte(p), []byte(s), nocase); got != want {
			t.Fatalf("Match(%q, %q, nocase=%v) = %v; Redis's stringmatchlen says %v", p, s, nocase, got, want)
		}
	})
}
