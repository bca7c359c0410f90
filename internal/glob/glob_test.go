package glob

import (
	"path"
	"strings"
	"testing"
)

// TestMatchNocase: CONFIG GET's matching, without case.
func TestMatchNocase(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "maxmemory", true},
		{"max*", "MAXMEMORY", true},
		{"MAX*", "maxclients", true},
		{"max?lients", "maxclients", true},
		{"*policy", "maxmemory-policy", true},
		{"*memory*", "maxmemory-policy", true},
		{"m*m*y", "maxmemory", true},
		{"m*m*y", "maxmemory-policy", true},
		{"m*m*x", "maxmemory", false},
		{"[mt]*", "timeout", true},
		{"[^mt]*", "timeout", false},
		{"[a-n]axclients", "maxclients", true},
		{"[n-a]axclients", "maxclients", true},
		{"[x-z]axclients", "maxclients", false},
		{`max\*`, "max*", true},
		{`max\*`, "maxclients", false},
		{"save", "save", true},
		{"sav", "save", false},
		{"", "", true},
		{"", "x", false},
		{"[", "x", false},
		{"x[", "x", false},
		{`\`, `\`, true},
		{"h?llo", "HELLO", true},
		{"[A-C]x", "bx", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pat, tt.s, true); got != tt.want {
			t.Errorf("Match(%q, %q, nocase) = %v; want %v", tt.pat, tt.s, got, tt.want)
		}
		if got := Match([]byte(tt.pat), []byte(tt.s), true); got != tt.want {
			t.Errorf("Match of []byte(%q), []byte(%q), nocase = %v; want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

// TestMatchCase: KEYS, SCAN MATCH and the pub/sub patterns compare bytes.
func TestMatchCase(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"A*", "apple", false}, {"A*", "Apple", true}, {"[A-C]x", "bx", false}, {"[a-c]x", "bx", true},
		{"[^A]pple", "apple", true}, {`\A`, "a", false}, {"h?llo", "hello", true}, {"HELLO", "hello", false},
		{"news.*", "news.sport", true}, {"news.*", "news", false}, {"news.[st]*", "news.tech", true},
		{"*", "", false}, {"**", "", false}, {"", "", true}, {"?", "", false}, {"[b-]]", "]", true}, {"a*b*c", "abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", false},
	} {
		if got := Match(tt.p, tt.s, false); got != tt.want {
			t.Errorf("Match(%q, %q) = %v; want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

// TestMatchAllocs: matching allocates nothing, whatever the argument types.
func TestMatchAllocs(t *testing.T) {
	p, s := []byte("n*[a-z]?ws.*"), "news.sport"
	if n := testing.AllocsPerRun(100, func() {
		Match(p, s, false)
		Match("a*b", s, true)
	}); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

// FuzzMatchPath checks Match against path.Match on the syntax they share
// (*, ?, literals, no '/'), in lower case.
func FuzzMatchPath(f *testing.F) {
	f.Add("max*", "maxmemory")
	f.Add("*a*b?c*", "xxaybzc")
	f.Add("[a-z]*[^0-9]", "abc")
	f.Fuzz(func(t *testing.T, pat, s string) {
		got := Match(pat, s, true) // must not panic, whatever the pattern
		if !plain(pat) || !plain(s) {
			return
		}
		if want, err := path.Match(pat, s); err == nil && got != want {
			t.Fatalf("Match(%q, %q) = %v; path.Match says %v", pat, s, got, want)
		}
	})
}

// plain reports whether s is lower-case ASCII without the bytes whose
// meaning differs between Match and path.Match.
func plain(s string) bool {
	for i := range len(s) {
		if c := s[i]; c >= 0x80 || ('A' <= c && c <= 'Z') || c == '[' || c == '\\' || c == '/' {
			return false
		}
	}
	return true
}

// FuzzMatchCase keeps the two modes in step: without case, Match agrees
// with itself on lower-cased inputs.
func FuzzMatchCase(f *testing.F) {
	for _, s := range [][2]string{{"a*b", "aXb"}, {"[A-c]?", "Bx"}, {`\*`, "*"}, {"[^a]", "A"}, {"*[", "x["}, {"h?llo", "HELLO"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		g := Match(p, s, true)
		if got := Match([]byte(p), s, true); got != g {
			t.Fatalf("Match([]byte(%q), %q, nocase) = %v; with a string pattern %v", p, s, got, g)
		}
		if lp, ls := strings.ToLower(p), strings.ToLower(s); Match(lp, ls, false) != Match(lp, ls, true) {
			t.Fatalf("on lower case %q, %q the modes differ", lp, ls)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	p := []byte("news.*.[a-m]*")
	for range b.N {
		Match(p, "news.europe.football", false)
	}
}
