package resp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// parseAll runs the reader over data as a connection does when the bytes
// arrive in pieces of chunk bytes (0: all at once), and records each
// command (its arguments, quoted) and the error that stopped it, if any.
func parseAll(data []byte, chunk int, maxArgs, maxBulk, limit int) (out []string, err error) {
	r := newReader(maxArgs, maxBulk)
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	var buf []byte
	start := 0
	for fed := 0; fed < len(data); {
		end := min(fed+chunk, len(data))
		buf = append(buf, data[fed:end]...)
		fed = end
		for {
			args, n, err := r.next(buf[start:], limit)
			if err != nil {
				return out, err
			}
			if n == 0 {
				break
			}
			if n > len(buf)-start || n > max(limit, maxInline+1) {
				panic(fmt.Sprintf("consumed %d of %d bytes (limit %d)", n, len(buf)-start, limit))
			}
			if len(args) > maxArgs {
				panic(fmt.Sprintf("%d arguments over the limit of %d", len(args), maxArgs))
			}
			total := 0
			for _, a := range args {
				if len(a) > maxBulk && buf[start] == '*' {
					panic(fmt.Sprintf("an argument of %d bytes over the limit of %d", len(a), maxBulk))
				}
				total += len(a)
			}
			if total > n {
				panic(fmt.Sprintf("%d bytes of arguments from %d bytes of input", total, n))
			}
			start += n
			if len(args) > 0 {
				out = append(out, fmt.Sprintf("%q", args))
			}
		}
	}
	return out, nil
}

func TestReader(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{in: "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", want: []string{`["GET" "k"]`}},
		{in: "*1\r\n$0\r\n\r\n", want: []string{`[""]`}},
		{in: "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", want: []string{`["PING"]`}},
		{in: "GET k\r\n\r\n  \t \r\nSET  a   b\n", want: []string{`["GET" "k"]`, `["SET" "a" "b"]`}},
		{in: `SET "a b" 'c d' "\x41\x4a\n" '\'' "" x` + "\n", want: []string{`["SET" "a b" "c d" "AJ\n" "'" "" "x"]`}},
		{in: "SET a\x00b\r\n", want: []string{`["SET" "a\x00b"]`}},
		{in: "SET \"a\"b\n", err: "unbalanced quotes in request"},
		{in: "SET 'a\n", err: "unbalanced quotes in request"},
		{in: "*1\r\n$5\r\nabc", want: nil},
		{in: "*2\r\n$1\r\na\r\n$-1\r\n", err: "invalid bulk length"},
		{in: "*1\r\n$1\r\naXY", err: "expected CRLF after bulk data"},
		{in: "*1\r\n:1\r\n", err: "expected '$', got ':'"},
		{in: "*9\r\n", err: "invalid multibulk length"},
		{in: "*1\r\n$65\r\n", err: "invalid bulk length"},
		{in: "*4\r\n$60\r\n" + strings.Repeat("a", 60) + "\r\n$60\r\n", err: "request too large"},
		{in: "a b c d e f g h i\n", err: "too many arguments: 9 (limit 8)"},
		{in: strings.Repeat("a", 101), err: "request too large"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 3} {
			got, err := parseAll([]byte(tt.in), chunk, 8, 64, 100)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("%q in pieces of %d: %v, %v; want %v, %q", tt.in, chunk, got, err, tt.want, tt.err)
			}
		}
	}
}

// TestReaderNeed: once an argument's length is known the reader says how
// many bytes it needs, so the connection grows its buffer once.
func TestReaderNeed(t *testing.T) {
	r := newReader(8, 1<<20)
	b := []byte("*2\r\n$3\r\nSET\r\n$100000\r\nab")
	if _, n, err := r.next(b, 1<<20); n != 0 || err != nil {
		t.Fatalf("next = %d, %v", n, err)
	}
	if got, want := r.need(), len("*2\r\n$3\r\nSET\r\n$100000\r\n")+100000+2; got != want {
		t.Errorf("need = %d; want %d", got, want)
	}
}

// TestReaderAllocs: parsing allocates nothing once the reader's buffers
// have grown.
func TestReaderAllocs(t *testing.T) {
	r := newReader(1<<20, 1<<20)
	for _, in := range []string{cmd("SET", "key:1", strings.Repeat("v", 100)), "GET \"key 1\" x\r\n"} {
		b := []byte(in)
		r.next(b, 1<<20)
		if n := testing.AllocsPerRun(100, func() {
			if _, n, err := r.next(b, 1<<20); n != len(b) || err != nil {
				t.Fatalf("next = %d, %v", n, err)
			}
		}); n != 0 {
			t.Errorf("%q: %v allocations per command; want 0", in, n)
		}
	}
}

// FuzzReader checks that the reader never panics, stays within its limits,
// and parses the same commands (and the same error) whether the bytes come
// at once, one by one, or in pieces of any size.
func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		cmd("SET", "k", "v") + cmd("GET", "k"),
		"*1\r\n$4\r\nPING\r\nPING\r\n",
		`SET "a\x41" 'b\'c' d` + "\n",
		"*1\r\n$-2\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999999\r\n",
		"*999999999999\r\n",
		"*0\r\n*-1\r\n\r\n",
		"*2\r\n$1\r\na\r\n$2\r\nbcXY",
		"\x00\xff\r\n",
	} {
		f.Add([]byte(seed), uint8(1))
		f.Add([]byte(seed), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole, errWhole := parseAll(data, 0, 16, 256, 2048)
		split, errSplit := parseAll(data, int(chunk), 16, 256, 2048)
		if fmt.Sprint(whole) != fmt.Sprint(split) || !sameError(errWhole, errSplit) {
			t.Fatalf("at once: %v, %v\nin pieces of %d: %v, %v", whole, errWhole, chunk, split, errSplit)
		}
		var pe *protoError
		if errWhole != nil && !errors.As(errWhole, &pe) {
			t.Fatalf("error of an unexpected type: %v", errWhole)
		}
	})
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

// FuzzParseInt checks the integer parser against strconv.ParseInt with
// Redis's strictness: no '+', no leading zeros, no "-0".
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-1", "42", "01", "+1", "-0", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "", "-", " 1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseInt([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		strict := err == nil && !strings.HasPrefix(s, "+") && s != "-0" &&
			!strings.HasPrefix(s, "0") && !strings.HasPrefix(s, "-0") || s == "0"
		if ok != strict || (ok && got != want) {
			t.Fatalf("parseInt(%q) = %d, %v; strconv says %d, %v", s, got, ok, want, err)
		}
	})
}

// TestReaderLimitErrors: a count or a length over the limits is answered
// in Redis's words, marked as a limit (Stats.Rejected), with the figures
// kept for the server's log.
func TestReaderLimitErrors(t *testing.T) {
	for _, tt := range []struct{ in, msg, detail string }{
		{"*9\r\n", "invalid multibulk length", "9 arguments, over the limit of 8"},
		{"*1\r\n$65\r\n", "invalid bulk length", "argument of 65 bytes, over the limit of 64"},
		{"*1\r\n$-2\r\n", "invalid bulk length", ""}, // malformed: no limit
	} {
		_, err := parseAll([]byte(tt.in), 0, 8, 64, 100)
		var pe *protoError
		if !errors.As(err, &pe) || pe.msg != tt.msg || pe.detail != tt.detail || pe.limit != (tt.detail != "") {
			t.Errorf("%q: %+v; want %q with detail %q", tt.in, pe, tt.msg, tt.detail)
		}
	}
}
