package resp

import (
	"regexp"
	"strings"
	"testing"
)

// step is one command of a scripted session and its reply, rendered by
// readReply (+OK, -ERR ..., :1, "bulk", nil, [a b], {k: v}).
type step struct {
	args []string
	want string
	// geocacheOnly marks a step where geocache deliberately differs from
	// Redis (or Redis 7.0, which the differential run uses, lacks the
	// command); see doc.go.
	geocacheOnly bool
	// redisOnly marks a step for the differential run alone: it puts the
	// real Redis back as the scripts found it (CONFIG SET maxmemory 0,
	// which geocache refuses).
	redisOnly bool
}

// both is a step where geocache answers as Redis does.
func both(want string, args ...string) step { return step{args: args, want: want} }

// ours is a step that only geocache answers this way.
func ours(want string, args ...string) step { return step{args: args, want: want, geocacheOnly: true} }

// theirs is a step only the real Redis runs.
func theirs(want string, args ...string) step { return step{args: args, want: want, redisOnly: true} }

const (
	syntaxErr = "-ERR syntax error"
	notInt    = "-ERR value is not an integer or out of range"
)

func arity(name string) string { return "-ERR wrong number of arguments for '" + name + "' command" }

// commandScript is every command against Redis's documented behaviour, in
// order: each step sees the state the earlier ones left. It runs against
// geocache always, and against a real Redis 7 when REDIS_ADDR names one
// (skipping the geocacheOnly steps) to check the script itself.
var commandScript = []step{
	both("+OK", "FLUSHALL"),
	// connection
	both("+PONG", "PING"),
	both(`"hello world"`, "PING", "hello world"),
	both(arity("ping"), "PING", "a", "b"),
	both(`"x y"`, "ECHO", "x y"),
	both(arity("echo"), "ECHO"),
	both("+OK", "SELECT", "0"),
	ours("-ERR DB index is out of range", "SELECT", "1"),
	both(notInt, "SELECT", "x"),
	both("-ERR unknown command 'FOO', with args beginning with: ", "FOO"),
	both("-ERR unknown command 'foo', with args beginning with: 'a' 'b c' ", "foo", "a", "b c"),
	both("-ERR unknown command 'x', with args beginning with: '"+strings.Repeat("a", 128)+"' ", "x", strings.Repeat("a", 200), "b"),
	// GET and SET
	both("nil", "GET", "k"),
	both(arity("get"), "GET"),
	both(arity("get"), "GET", "a", "b"),
	both(arity("set"), "SET", "k"),
	both("+OK", "SET", "k", "v"),
	both(`"v"`, "GET", "k"),
	both(`"v"`, "get", "k"),
	both("nil", "SET", "k", "v2", "NX"),
	both("+OK", "SET", "k", "v2", "XX"),
	both(`"v2"`, "SET", "k", "v3", "NX", "GET"),
	both(`"v2"`, "GET", "k"),
	both("nil", "SET", "k2", "v", "XX", "GET"),
	both(":0", "EXISTS", "k2"),
	both("nil", "SET", "k2", "v", "nx", "get"),
	both(`"v"`, "GET", "k2"),
	both(`"v2"`, "SET", "k", "v3", "GET"),
	both(`"v3"`, "GET", "k"),
	both("nil", "SET", "k", "v", "NX", "NX"),
	both(syntaxErr, "SET", "k", "v", "nx", "xx"),
	both(syntaxErr, "SET", "k", "v", "EX", "1", "PX", "1"),
	both(syntaxErr, "SET", "k", "v", "KEEPTTL", "EX", "5"),
	both(syntaxErr, "SET", "k", "v", "EX"),
	both(syntaxErr, "SET", "k", "v", "FOO"),
	both(syntaxErr, "SET", "k", "v", "EX", "abc", "NX", "XX"),
	both("-ERR invalid expire time in 'set' command", "SET", "k", "v", "EX", "0"),
	both("-ERR invalid expire time in 'set' command", "SET", "k", "v", "PX", "-5"),
	both("-ERR invalid expire time in 'set' command", "SET", "k", "v", "EX", "9223372036854775"),
	both(notInt, "SET", "k", "v", "EX", "abc"),
	both(notInt, "SET", "k", "v", "EX", "01"),
	both(notInt, "SET", "k", "v", "EX", "+1"),
	both("+OK", "SET", "k", "v", "EX", "100"),
	both(":100", "TTL", "k"),
	both("+OK", "SET", "k", "v4", "KEEPTTL"),
	both(":100", "TTL", "k"),
	both(`"v4"`, "SET", "k", "v5", "KEEPTTL", "GET"),
	both(":100", "TTL", "k"),
	both("+OK", "SET", "k", "v5"),
	both(":-1", "TTL", "k"),
	both("+OK", "SET", "k", "v", "EX", "100", "EX", "200"),
	both(":200", "TTL", "k"),
	both("+OK", "SET", "k", "v", "PX", "100000"),
	both(":100", "TTL", "k"),
	both("+OK", "SET", "k", "v", "EXAT", "1"),
	both(":0", "EXISTS", "k"),
	both("+OK", "SET", "k", "v", "PXAT", "1000"),
	both(":0", "EXISTS", "k"),
	both("nil", "SET", "k", "v", "XX", "EX", "10"),
	both(":0", "EXISTS", "k"),
	// SETEX, PSETEX, SETNX
	both("+OK", "SETEX", "k", "100", "v"),
	both(":100", "TTL", "k"),
	both("-ERR invalid expire time in 'setex' command", "SETEX", "k", "0", "v"),
	both(notInt, "SETEX", "k", "x", "v"),
	both(arity("setex"), "SETEX", "k", "1"),
	both("+OK", "PSETEX", "k", "100000", "v"),
	both(":100", "TTL", "k"),
	both("-ERR invalid expire time in 'psetex' command", "PSETEX", "k", "-1", "v"),
	both(":1", "SETNX", "n", "1"),
	both(":0", "SETNX", "n", "2"),
	both(`"1"`, "GET", "n"),
	both(arity("setnx"), "SETNX", "n"),
	// GETDEL, GETEX
	both(`"1"`, "GETDEL", "n"),
	both("nil", "GETDEL", "n"),
	both(":0", "EXISTS", "n"),
	both(arity("getdel"), "GETDEL", "n", "x"),
	both("+OK", "SET", "g", "v"),
	both(`"v"`, "GETEX", "g"),
	both(":-1", "TTL", "g"),
	both(`"v"`, "GETEX", "g", "EX", "100"),
	both(":100", "TTL", "g"),
	both(`"v"`, "GETEX", "g", "PERSIST"),
	both(":-1", "TTL", "g"),
	both(`"v"`, "GETEX", "g", "PX", "200000"),
	both(":200", "TTL", "g"),
	both("-ERR invalid expire time in 'getex' command", "GETEX", "g", "PX", "0"),
	both(syntaxErr, "GETEX", "g", "PERSIST", "EX", "5"),
	both(syntaxErr, "GETEX", "g", "FOO"),
	both(syntaxErr, "GETEX", "g", "NX"),
	both(syntaxErr, "GETEX", "g", "KEEPTTL"),
	both(notInt, "GETEX", "g", "EX", "x"),
	both(`"v"`, "GETEX", "g", "EXAT", "1"),
	both(":0", "EXISTS", "g"),
	both("nil", "GETEX", "nosuch", "EX", "5"),
	both(arity("getex"), "GETEX"),
	// MSET, MGET, EXISTS, DEL, UNLINK, TYPE
	both("+OK", "MSET", "a", "1", "b", "2"),
	both(arity("mset"), "MSET", "a"),
	both(arity("mset"), "MSET", "a", "1", "b"),
	both(`["1" nil "2"]`, "MGET", "a", "nosuch", "b"),
	both(arity("mget"), "MGET"),
	both(":3", "EXISTS", "a", "a", "b", "c"),
	both(arity("exists"), "EXISTS"),
	both("+string", "TYPE", "a"),
	both("+none", "TYPE", "nosuch"),
	both(":2", "DEL", "a", "a", "b", "c"),
	both(":0", "UNLINK", "nosuch"),
	both("+OK", "SET", "u", "1"),
	both(":1", "UNLINK", "u", "nosuch"),
	both(arity("del"), "DEL"),
	// EXPIRE family with Redis 7's conditions
	both("+OK", "SET", "e", "v"),
	both(":0", "EXPIRE", "e", "99", "GT"),
	both(":1", "EXPIRE", "e", "100", "LT"),
	both(":100", "TTL", "e"),
	both(":0", "EXPIRE", "e", "50", "GT"),
	both(":0", "EXPIRE", "e", "99", "GT"),
	both(":1", "EXPIRE", "e", "200", "gt"),
	both(":200", "TTL", "e"),
	both(":0", "EXPIRE", "e", "300", "LT"),
	both(":1", "EXPIRE", "e", "100", "XX"),
	both(":0", "EXPIRE", "e", "300", "NX"),
	both(":1", "EXPIRE", "e", "300", "XX", "GT"),
	both(":300", "TTL", "e"),
	both(":1", "PERSIST", "e"),
	both(":0", "PERSIST", "e"),
	both(":-1", "TTL", "e"),
	both(":0", "EXPIRE", "e", "100", "XX"),
	both(":1", "EXPIRE", "e", "100", "NX"),
	both(":1", "PEXPIRE", "e", "200000"),
	both(":200", "TTL", "e"),
	both(":1", "EXPIREAT", "e", "4102444800"),
	both(":0", "PEXPIREAT", "e", "4102444800000", "GT"),
	both(":1", "PEXPIREAT", "e", "4102444800001", "GT"),
	both("-ERR NX and XX, GT or LT options at the same time are not compatible", "EXPIRE", "e", "10", "NX", "XX"),
	both("-ERR NX and XX, GT or LT options at the same time are not compatible", "EXPIRE", "e", "10", "NX", "GT"),
	both("-ERR GT and LT options at the same time are not compatible", "EXPIRE", "e", "10", "GT", "LT"),
	both("-ERR Unsupported option FOO", "EXPIRE", "e", "10", "FOO"),
	both("-ERR Unsupported option FOO", "EXPIRE", "e", "x", "FOO"),
	both(notInt, "EXPIRE", "e", "x"),
	both(notInt, "EXPIRE", "e", "1.5"),
	both("-ERR invalid expire time in 'expire' command", "EXPIRE", "e", "99999999999999999"),
	both("-ERR invalid expire time in 'pexpire' command", "PEXPIRE", "e", "9223372036854775807"),
	both("-ERR invalid expire time in 'expireat' command", "EXPIREAT", "e", "-9223372036854775808"),
	both(arity("expire"), "EXPIRE", "e"),
	both(arity("pexpireat"), "PEXPIREAT", "e"),
	both(":0", "EXPIRE", "nosuch", "10"),
	both(":1", "EXPIRE", "e", "-1"),
	both(":0", "EXISTS", "e"),
	both("+OK", "SET", "e", "v"),
	both(":1", "PEXPIREAT", "e", "1"),
	both(":0", "EXISTS", "e"),
	both(":-2", "TTL", "nosuch"),
	both(":-2", "PTTL", "nosuch"),
	both(":0", "PERSIST", "nosuch"),
	both(arity("ttl"), "TTL"),
	both(arity("persist"), "PERSIST"),
	// DBSIZE, FLUSHALL, INFO
	both(":2", "DBSIZE"),
	both(arity("dbsize"), "DBSIZE", "x"),
	both(syntaxErr, "FLUSHALL", "foo"),
	both(syntaxErr, "FLUSHALL", "async", "sync"),
	both("+OK", "FLUSHALL", "ASYNC"),
	both(":0", "DBSIZE"),
	both("+OK", "FLUSHALL", "sync"),
	both(`""`, "INFO", "nosuchsection"),
	both(`"# Keyspace\r\n"`, "INFO", "keyspace"),
	both("+OK", "SET", "ks1", "v"),
	both("+OK", "SET", "ks2", "v"),
	both(`"# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n"`, "INFO", "keyspace"),
	both(":2", "DEL", "ks1", "ks2"),
	// CLIENT
	both("-ERR unknown subcommand 'FOO'. Try CLIENT HELP.", "CLIENT", "FOO"),
	both(arity("client"), "CLIENT"),
	both(arity("client|setname"), "CLIENT", "SETNAME"),
	both(arity("client|getname"), "CLIENT", "GETNAME", "x"),
	both("-ERR Client names cannot contain spaces, newlines or special characters.", "CLIENT", "SETNAME", "a b"),
	both("+OK", "CLIENT", "SETNAME", "me"),
	both(`"me"`, "CLIENT", "GETNAME"),
	both("+OK", "CLIENT", "SETNAME", ""),
	both("nil", "CLIENT", "GETNAME"),
	ours("+OK", "CLIENT", "SETINFO", "LIB-NAME", "go-redis(x)"),
	ours("+OK", "CLIENT", "SETINFO", "lib-ver", "9.0"),
	ours("-ERR Unrecognized option 'foo'", "CLIENT", "SETINFO", "foo", "x"),
	ours("-ERR lib-name cannot contain spaces, newlines or special characters.", "CLIENT", "SETINFO", "lib-name", "a b"),
	// CONFIG
	both(arity("config|get"), "CONFIG", "GET"),
	both(arity("config"), "CONFIG"),
	both("-ERR unknown subcommand 'foo'. Try CONFIG HELP.", "CONFIG", "foo"),
	ours(`["maxclients" "10000"]`, "CONFIG", "GET", "maxclients"),
	ours(`["maxmemory" "67108864" "maxmemory-policy" "allkeys-lru" "maxclients" "10000"]`, "CONFIG", "GET", "MAX*"),
	ours(`["maxclients" "10000" "timeout" "0"]`, "CONFIG", "GET", "maxclients", "timeout", "max?lients"),
	both(`[]`, "CONFIG", "GET", "nosuchparam"),
	both("-ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config", "CONFIG", "SET", "databases", "1"),
	both("-ERR Unknown option or number of arguments for CONFIG SET - 'foo'", "CONFIG", "SET", "foo", "bar"),
	both("-ERR Unknown option or number of arguments for CONFIG SET - 'foo'", "CONFIG", "SET", "notify-keyspace-events", "KEA", "foo", "1"),
	both(arity("config|set"), "CONFIG", "SET", "notify-keyspace-events"),
	both("-ERR syntax error", "CONFIG", "SET", "notify-keyspace-events", "KEA", "timeout"),
	both("-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - duplicate parameter", "CONFIG", "SET", "notify-keyspace-events", "KEA", "notify-keyspace-events", "Ex"),
	both("-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.", "CONFIG", "SET", "notify-keyspace-events", "Kq"),
	both("+OK", "CONFIG", "SET", "NOTIFY-KEYSPACE-EVENTS", "KEA"),
	both(`["notify-keyspace-events" "AKE"]`, "CONFIG", "GET", "notify-keyspace-events"),
	both("+OK", "CONFIG", "SET", "notify-keyspace-events", "Egx$"),
	both(`["notify-keyspace-events" "g$xE"]`, "CONFIG", "GET", "notify-keyspace-events"),
	both("+OK", "CONFIG", "SET", "notify-keyspace-events", ""),
	both(`["notify-keyspace-events" ""]`, "CONFIG", "GET", "notify-keyspace-events"),
	// COMMAND
	both("-ERR unknown subcommand 'FOO'. Try COMMAND HELP.", "COMMAND", "FOO"),
	both(arity("command|count"), "COMMAND", "COUNT", "x"),
	ours(`[["get" :2 [+readonly +fast] :1 :1 :1 [] [] [] []]]`, "COMMAND", "INFO", "get"),
	ours(`[nil]`, "COMMAND", "INFO", "nosuch"),
	// WAIT
	both(arity("wait"), "WAIT", "1"),
	both(notInt, "WAIT", "x", "0"),
	both("-ERR timeout is negative", "WAIT", "0", "-1"),
	both("-ERR timeout is not an integer or out of range", "WAIT", "0", "x"),
	both(":0", "WAIT", "0", "0"),
	both(":0", "WAIT", "1", "10"),
	// HELLO and AUTH without a password configured
	both("-NOPROTO unsupported protocol version", "HELLO", "4"),
	both("-NOPROTO unsupported protocol version", "HELLO", "1"),
	both("-ERR Protocol version is not an integer or out of range", "HELLO", "x"),
	both("-ERR Syntax error in HELLO option 'foo'", "HELLO", "3", "foo"),
	both("-ERR Syntax error in HELLO option 'auth'", "HELLO", "3", "auth", "a"),
	both("-ERR Syntax error in HELLO option 'SETNAME'", "HELLO", "2", "SETNAME"),
	both("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", "AUTH", "foo"),
	both("-WRONGPASS invalid username-password pair or user is disabled.", "AUTH", "a", "b"),
	both(syntaxErr, "AUTH", "a", "b", "c"),
	both("+OK", "AUTH", "default", "anything"),
	// GEOCACHE
	ours("-ERR unknown subcommand 'foo'. Try GEOCACHE HELP.", "GEOCACHE", "foo"),
	ours(arity("geocache"), "GEOCACHE"),
	ours(arity("geocache|version"), "GEOCACHE", "VERSION"),
	ours("nil", "GEOCACHE", "VERSION", "nosuch"),
	ours("+LOCAL", "GEOCACHE", "ACK"),
	ours("+OK", "GEOCACHE", "ACK", "quorum"),
	ours("+QUORUM", "GEOCACHE", "ACK"),
	ours("+OK", "GEOCACHE", "ACK", "ALL", "250"),
	ours("+ALL", "GEOCACHE", "ACK"),
	ours("-ERR unknown acknowledgement level 'most': LOCAL, QUORUM or ALL", "GEOCACHE", "ACK", "most"),
	ours("-ERR timeout must be a positive number of milliseconds, at most a day", "GEOCACHE", "ACK", "all", "0"),
	ours("+OK", "GEOCACHE", "ACK", "LOCAL"),
	ours(arity("geocache|ack"), "GEOCACHE", "ACK", "LOCAL", "1", "2"),
	ours(arity("geocache|regions"), "GEOCACHE", "REGIONS", "x"),
	// QUIT answers and closes
	both("+OK", "QUIT", "ignored"),
}

func TestCommandScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runScript(t, addr, false)
}

// TestCommandScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there.
func TestCommandScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runScript(t, addr, true)
}

func runScript(t *testing.T, addr string, redis bool) {
	r := dialRaw(t, addr)
	for i, st := range commandScript {
		if len(st.args) == 0 || (redis && st.geocacheOnly) || (!redis && st.redisOnly) {
			continue
		}
		if got := r.do(st.args...); got != st.want {
			t.Errorf("step %d %q: got %s\n\twant %s", i, st.args, got, st.want)
		}
	}
	r.expectClosed("")
}

// TestClientListLastCommand: CLIENT LIST's cmd= follows a client's last
// command as it changes, also when a command repeats in between
// (noteCommand takes the lock only for a change), as in Redis.
func TestClientListLastCommand(t *testing.T) {
	_, addr := startServer(t, Config{})
	a, admin := dialRaw(t, addr), dialRaw(t, addr)
	id := strings.TrimPrefix(a.do("CLIENT", "ID"), ":")
	line := regexp.MustCompile(`id=` + id + ` [^\\]* cmd=([a-z|-]+) `) // do renders the list quoted, lines joined by \n
	lastOf := func() string {
		t.Helper()
		m := line.FindStringSubmatch(admin.do("CLIENT", "LIST"))
		if m == nil {
			t.Fatalf("client %s not listed", id)
		}
		return m[1]
	}
	for _, step := range [][]string{{"GET", "k"}, {"SET", "k", "v"}, {"SET", "k", "w"}, {"GET", "k"}, {"PING"}, {"PING"}, {"GET", "k"}} {
		a.do(step...)
		if got, want := lastOf(), strings.ToLower(step[0]); got != want {
			t.Errorf("after %q: cmd=%s; want %s", step, got, want)
		}
	}
}
