package resp

import (
	"strconv"
)

// The request reader: it turns the bytes a client sends into commands,
// within the limits of the Config, without allocating once its buffers have
// grown to the connection's working size.
//
// Requests come in two forms, as in Redis:
//
//   - multibulk: "*<n>\r\n" then n times "$<len>\r\n<len bytes>\r\n";
//   - inline: one line of space-separated words, ended by "\n" (a "\r"
//     before it is dropped), with Redis's quoting ("a b", 'a b', \xHH ...).
//
// The reader is incremental: it is handed the unconsumed bytes of the
// connection's buffer, parses as far as they go and remembers where it
// stopped, so a command that arrives in many reads is parsed once, not once
// per read. Every length is checked against its limit as soon as its header
// is complete, before the bytes it announces are awaited: a client cannot
// make the server buffer more than the limits allow by announcing a large
// length ("$999999999999") and then dribbling or withholding the data.

const (
	// maxInline is the longest inline request line, as Redis's
	// PROTO_INLINE_MAX_SIZE.
	maxInline = 64 << 10
	// maxHeaderLine bounds a "*<n>" or "$<len>" line, CRLF included: a
	// sign, 19 digits and CRLF fit.
	maxHeaderLine = 32
)

// protoError is a malformed or over-limit request. The connection answers
// it with "-ERR Protocol error: <msg>" and closes, as Redis does.
type protoError struct {
	msg string
	// limit marks a request that was well formed but over one of the
	// configured limits (counted in Stats.Rejected).
	limit bool
	// detail gives the figures of a limit the client is answered in
	// Redis's words ("invalid bulk length"), for the server's log.
	detail string
	// tooLarge marks a request over the byte limit passed to next: the
	// connection words it for the limit that applied (MaxRequestBytes or
	// the unauthenticated budget).
	tooLarge bool
}

func (e *protoError) Error() string { return "Protocol error: " + e.msg }

var (
	errMultibulkLength = &protoError{msg: "invalid multibulk length"}
	errBulkLength      = &protoError{msg: "invalid bulk length"}
	errBulkEnd         = &protoError{msg: "expected CRLF after bulk data"}
	errInlineTooBig    = &protoError{msg: "too big inline request", limit: true}
	errUnbalanced      = &protoError{msg: "unbalanced quotes in request"}
	errTooLarge        = &protoError{msg: "request too large", limit: true, tooLarge: true}
)

// reader parses requests. The zero value is not usable: set the limits.
type reader struct {
	maxArgs int // most arguments in one command
	maxBulk int // largest single argument, in bytes

	// State of the command being parsed; positions are relative to the
	// command's first byte, so they survive the buffer being compacted or
	// grown between calls.
	multi   bool     // parsing a multibulk command
	nargs   int      // arguments it announced
	pos     int      // bytes of it parsed so far
	bulkLen int      // length of the argument whose data is awaited; -1: its header is
	offs    []uint32 // start and end of each argument read so far

	argv   [][]byte // the arguments returned by next, reused
	inline []byte   // unquoted inline arguments, reused
}

func newReader(maxArgs, maxBulk int) *reader {
	return &reader{maxArgs: maxArgs, maxBulk: maxBulk, bulkLen: -1}
}

// next parses the command at the start of b, which holds the connection's
// unconsumed bytes (the same first bytes as in the previous call while a
// command is incomplete). It returns the number of bytes the command took
// and its arguments, or n == 0 if b does not hold all of it yet. A complete
// but empty command ("*0\r\n", a blank line) has n > 0 and no arguments.
// limit is the most bytes the command may take.
//
// The arguments alias b (or the reader's inline buffer) and are valid until
// b's bytes are modified or next is called again.
func (r *reader) next(b []byte, limit int) (args [][]byte, n int, err error) {
	if !r.multi {
		if len(b) == 0 {
			return nil, 0, nil
		}
		if b[0] != '*' {
			return r.nextInline(b, limit)
		}
		line, ok, err := headerLine(b, 0, errMultibulkLength)
		if !ok || err != nil {
			return nil, 0, err
		}
		count, ok := parseLength(line[1:])
		if !ok {
			return nil, 0, errMultibulkLength
		}
		end := len(line) + 2
		if count <= 0 { // "*0", "*-1": nothing to do, as in Redis
			return nil, end, nil
		}
		if count > r.maxArgs {
			// Redis 7.0's text for a count over its limit (2^31-1 there).
			return nil, 0, &protoError{msg: errMultibulkLength.msg, limit: true,
				detail: strconv.Itoa(count) + " arguments, over the limit of " + strconv.Itoa(r.maxArgs)}
		}
		if end > limit {
			return nil, 0, errTooLarge
		}
		r.multi, r.nargs, r.pos, r.bulkLen = true, count, end, -1
		r.offs = r.offs[:0]
	}
	for len(r.offs) < 2*r.nargs {
		if r.bulkLen < 0 {
			if r.pos >= len(b) {
				return nil, 0, nil
			}
			if b[r.pos] != '$' {
				return nil, 0, &protoError{msg: "expected '$', got '" + printable(b[r.pos]) + "'"}
			}
			line, ok, err := headerLine(b, r.pos, errBulkLength)
			if !ok || err != nil {
				return nil, 0, err
			}
			size, ok := parseLength(line[1:])
			if !ok || size < 0 {
				return nil, 0, errBulkLength
			}
			if size > r.maxBulk {
				// Redis 7.0's text for a length over proto-max-bulk-len.
				return nil, 0, &protoError{msg: errBulkLength.msg, limit: true,
					detail: "argument of " + strconv.Itoa(size) + " bytes, over the limit of " + strconv.Itoa(r.maxBulk)}
			}
			start := r.pos + len(line) + 2
			if size > limit || start+size+2 > limit {
				return nil, 0, errTooLarge
			}
			r.pos, r.bulkLen = start, size
		}
		end := r.pos + r.bulkLen
		if end+2 > len(b) {
			return nil, 0, nil
		}
		if b[end] != '\r' || b[end+1] != '\n' {
			return nil, 0, errBulkEnd
		}
		r.offs = append(r.offs, uint32(r.pos), uint32(end))
		r.pos, r.bulkLen = end+2, -1
	}
	r.argv = r.argv[:0]
	for i := 0; i < len(r.offs); i += 2 {
		r.argv = append(r.argv, b[r.offs[i]:r.offs[i+1]:r.offs[i+1]])
	}
	// Take the result before reset: reset may let go of an argv grown past
	// the working size, and must not take this command's arguments with it
	// (it once did, for 1,707 arguments and more: the command vanished
	// unanswered and every later reply of the pipeline was off by one).
	args, n = r.argv, r.pos
	r.reset()
	return args, n, nil
}

// need returns how many bytes from the command's start the reader needs
// before it can make progress, when that is known (the data of an announced
// argument); otherwise 0.
func (r *reader) need() int {
	if r.multi && r.bulkLen >= 0 {
		return r.pos + r.bulkLen + 2
	}
	return 0
}

// reset readies the reader for the next command, dropping buffers that one
// large command grew beyond the working size.
func (r *reader) reset() {
	r.multi, r.nargs, r.pos, r.bulkLen = false, 0, 0, -1
	if cap(r.offs) > 4096 {
		r.offs = nil
	}
	if cap(r.argv) > 2048 {
		r.argv = nil
	}
	if cap(r.inline) > 16<<10 {
		r.inline = nil
	}
}

// headerLine returns the "*<n>" or "$<len>" line starting at b[at], without
// its CRLF, or ok == false if it is not complete yet.
func headerLine(b []byte, at int, bad *protoError) (line []byte, ok bool, err error) {
	rest := b[at:]
	if len(rest) > maxHeaderLine {
		rest = rest[:maxHeaderLine]
	}
	for i := 1; i < len(rest); i++ {
		if rest[i] == '\n' {
			if rest[i-1] != '\r' {
				return nil, false, bad
			}
			return rest[:i-1], true, nil
		}
	}
	if len(b)-at >= maxHeaderLine {
		return nil, false, bad
	}
	return nil, false, nil
}

// parseLength parses a decimal length as Redis's string2ll does: an
// optional '-', digits, no leading zeros (but "0"), no '+', no spaces, no
// overflow.
func parseLength(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 || (b[0] == '0' && len(b) > 1) {
		return 0, false // 18 digits cannot overflow an int64; longer lengths are over any limit
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		if n == 0 {
			return 0, false
		}
		return -n, true
	}
	return n, true
}

// printable renders one byte of a protocol error message.
func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return `\x` + strconv.FormatUint(uint64(c)>>4, 16) + strconv.FormatUint(uint64(c)&15, 16)
}

// nextInline parses an inline command: one line split into words.
func (r *reader) nextInline(b []byte, limit int) ([][]byte, int, error) {
	i := r.pos
	for ; i < len(b) && b[i] != '\n'; i++ {
	}
	if i == len(b) {
		r.pos = i
		switch {
		case i > limit:
			return nil, 0, errTooLarge
		case i > maxInline:
			return nil, 0, errInlineTooBig
		}
		return nil, 0, nil
	}
	n := i + 1
	if n > limit {
		return nil, 0, errTooLarge
	}
	if n > maxInline {
		return nil, 0, errInlineTooBig
	}
	r.pos = 0
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, err := r.splitInline(line)
	if err != nil {
		return nil, 0, err
	}
	if len(args) > r.maxArgs {
		return nil, 0, &protoError{msg: "too many arguments: " + strconv.Itoa(len(args)) + " (limit " + strconv.Itoa(r.maxArgs) + ")", limit: true}
	}
	r.reset()
	return args, n, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// splitInline splits line into arguments as Redis's sdssplitargs: words
// separated by spaces, tabs, CR or LF (leading whitespace also skips \v and
// \f, as there); unlike Redis, a NUL byte is an ordinary byte; "double quotes" with \xHH, \n, \r, \t, \b, \a and
// \<any> escapes; 'single quotes' with \' only; a closing quote must be
// followed by whitespace or the end of the line.
func (r *reader) splitInline(line []byte) ([][]byte, error) {
	r.inline = r.inline[:0]
	r.offs = r.offs[:0]
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			break
		}
		start := len(r.inline)
		var inq, insq bool
		done := false
		for !done {
			switch {
			case inq:
				switch {
				case p == len(line):
					return nil, errUnbalanced
				case line[p] == '\\' && p+3 < len(line) && line[p+1] == 'x' && isHex(line[p+2]) && isHex(line[p+3]):
					r.inline = append(r.inline, hexVal(line[p+2])<<4|hexVal(line[p+3]))
					p += 3
				case line[p] == '\\' && p+1 < len(line):
					p++
					c := line[p]
					switch c {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					}
					r.inline = append(r.inline, c)
				case line[p] == '"':
					if p+1 < len(line) && !isSpace(line[p+1]) {
						return nil, errUnbalanced
					}
					done = true
				default:
					r.inline = append(r.inline, line[p])
				}
			case insq:
				switch {
				case p == len(line):
					return nil, errUnbalanced
				case line[p] == '\\' && p+1 < len(line) && line[p+1] == '\'':
					p++
					r.inline = append(r.inline, '\'')
				case line[p] == '\'':
					if p+1 < len(line) && !isSpace(line[p+1]) {
						return nil, errUnbalanced
					}
					done = true
				default:
					r.inline = append(r.inline, line[p])
				}
			default:
				switch {
				case p == len(line) || line[p] == ' ' || line[p] == '\t' || line[p] == '\n' || line[p] == '\r':
					done = true
					continue // do not step past the end or the separator twice
				case line[p] == '"':
					inq = true
				case line[p] == '\'':
					insq = true
				default:
					r.inline = append(r.inline, line[p])
				}
			}
			if p < len(line) {
				p++
			}
		}
		r.offs = append(r.offs, uint32(start), uint32(len(r.inline)))
	}
	r.argv = r.argv[:0]
	for i := 0; i < len(r.offs); i += 2 {
		r.argv = append(r.argv, r.inline[r.offs[i]:r.offs[i+1]:r.offs[i+1]])
	}
	if len(r.argv) == 0 {
		return nil, nil
	}
	return r.argv, nil
}
