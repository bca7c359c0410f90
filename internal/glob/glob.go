package glob

// Match reports whether s matches pattern, comparing bytes exactly, or
// ignoring ASCII case if nocase (CONFIG GET does; KEYS, SCAN MATCH and the
// pub/sub patterns do not). An unclosed class runs to the end of the
// pattern, and a lone trailing backslash matches a backslash, as in Redis.
func Match[P, S ~string | ~[]byte](pattern P, s S, nocase bool) bool {
	p := pattern
	if len(s) == 0 {
		// Redis's matcher looks at the pattern only while bytes of s are
		// left: the empty string matches the empty pattern alone, not
		// even "*" (KEYS * and SCAN without MATCH list the empty key by
		// a shortcut of their own).
		return len(p) == 0
	}
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
				if next, ok := matchClass(p, pi, s[si], nocase); ok {
					pi = next
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if eq(p[pi+1], s[si], nocase) {
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
				if eq(p[pi], s[si], nocase) {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Backtrack: the last star takes one more byte.
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func eq(a, b byte, nocase bool) bool {
	return a == b || (nocase && lower(a) == lower(b))
}

// matchClass matches c against the class starting at p[at] == '[' and
// returns the index after it, with Redis's rules: an unclosed class runs
// to the end of p; a range may end in ']' ("[b-]]" is ]..b) and may be
// given high to low, its bounds swapped before nocase folds them (so a
// range that folding turns around matches nothing); an escaped byte in a
// class compares exactly even with nocase.
func matchClass[P ~string | ~[]byte](p P, at int, c byte, nocase bool) (next int, ok bool) {
	i := at + 1
	not := i < len(p) && p[i] == '^'
	if not {
		i++
	}
	match := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if p[i] == c {
				match = true
			}
		case i+2 < len(p) && p[i+1] == '-':
			lo, hi, x := p[i], p[i+2], c
			if lo > hi {
				lo, hi = hi, lo
			}
			if nocase {
				lo, hi, x = lower(lo), lower(hi), lower(x)
			}
			if x >= lo && x <= hi {
				match = true
			}
			i += 2
		default:
			if eq(p[i], c, nocase) {
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
