package resp

// globMatch reports whether s matches the glob pattern p, ignoring ASCII
// case, with Redis's stringmatch syntax: * (any run), ? (any byte),
// [abc], [^abc], [a-z] (classes), and \x (x itself). It runs in
// O(len(p)·len(s)) time whatever the pattern — one star is backtracked at a
// time — where Redis's recursive matcher can take exponential time.
func globMatch(p []byte, s string) bool { return stringMatch(p, s, true) }

// stringMatch reports whether s matches the glob pattern p with Redis's
// stringmatchlen syntax (* ? [abc] [^abc] [a-z] \x), case-sensitively
// unless nocase. globMatch is it without case:
// KEYS and SCAN MATCH compare case-sensitively, CONFIG GET does not. Its
// cost is O(len(p)·len(s)) whatever the pattern.
func stringMatch(p []byte, s string, nocase bool) bool {
	eq := func(a, b byte) bool { return a == b || (nocase && lower(a) == lower(b)) }
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				starP, starS = pi, si
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if next, ok := matchClassCase(p, pi, s[si], nocase); ok {
					pi = next
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if eq(p[pi+1], s[si]) {
						pi += 2
						si++
						continue
					}
				} else if s[si] == '\\' {
					pi++
					si++
					continue
				}
			default:
				if eq(p[pi], s[si]) {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClassCase matches c against the class starting at p[at] == '['
// (case-insensitively if nocase) and returns the index after it. An
// unclosed class runs to the end of p, as in Redis.
func matchClassCase(p []byte, at int, c byte, nocase bool) (next int, ok bool) {
	fold := func(b byte) byte {
		if nocase {
			return lower(b)
		}
		return b
	}
	i := at + 1
	not := i < len(p) && p[i] == '^'
	if not {
		i++
	}
	match := false
	fc := fold(c)
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if fold(p[i]) == fc {
				match = true
			}
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := fold(p[i]), fold(p[i+2])
			if lo > hi {
				lo, hi = hi, lo
			}
			if fc >= lo && fc <= hi {
				match = true
			}
			i += 2
		default:
			if fold(p[i]) == fc {
				match = true
			}
		}
		i++
	}
	if i < len(p) {
		i++ // past ']'
	}
	return i, match != not
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
