package resp

import (
	"strings"
	"testing"
)

// helpWant renders a HELP reply as the test client reads it.
func helpWant(lines []string) string {
	return "[+" + strings.Join(lines, " +") + "]"
}

func configFailed(name, why string) string {
	return "-ERR CONFIG SET failed (possibly related to argument '" + name + "') - " + why
}

// redisMemoryHelp is redis-server 7.0.15's MEMORY HELP, whose subcommands
// geocache answers only in part.
var redisMemoryHelp = []string{
	"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"DOCTOR",
	"    Return memory problems reports.",
	"MALLOC-STATS",
	"    Return internal statistics report from the memory allocator.",
	"PURGE",
	"    Attempt to purge dirty pages for reclamation by the allocator.",
	"STATS",
	"    Return information about the memory usage of the server.",
	"USAGE <key> [SAMPLES <count>]",
	"    Return memory in bytes used by <key> and its value. Nested values are",
	"    sampled up to <count> times (default: 5, 0 means sample all).",
	"HELP",
	"    Prints this help.",
}

// opsScript is CLIENT KILL, NO-EVICT and REPLY, CONFIG SET, OBJECT,
// MEMORY, SLOWLOG and RESET against Redis 7.0's behaviour, like
// commandScript; what a script of one connection cannot show (killing,
// silenced replies, the slowlog's entries, a password for new
// connections) has tests of its own below.
var opsScript = []step{
	both("+OK", "FLUSHALL"),
	// CLIENT NO-EVICT and REPLY
	both("+OK", "CLIENT", "NO-EVICT", "on"),
	both("+OK", "CLIENT", "NO-EVICT", "OFF"),
	both(syntaxErr, "CLIENT", "NO-EVICT", "maybe"),
	both(arity("client|no-evict"), "CLIENT", "NO-EVICT"),
	both(arity("client|reply"), "CLIENT", "REPLY"),
	both(arity("client|reply"), "CLIENT", "REPLY", "on", "x"),
	both(syntaxErr, "CLIENT", "REPLY", "foo"),
	both("+OK", "CLIENT", "REPLY", "ON"),
	// CLIENT KILL: its errors, and filters no other client matches
	both(arity("client|kill"), "CLIENT", "KILL"),
	both("-ERR No such client", "CLIENT", "KILL", "1.2.3.4:5"),
	both("-ERR No such client", "CLIENT", "KILL", "id"),
	both(":0", "CLIENT", "KILL", "ID", "9999999999"),
	both("-ERR client-id should be greater than 0", "CLIENT", "KILL", "ID", "abc"),
	both("-ERR client-id should be greater than 0", "CLIENT", "KILL", "id", "0"),
	both(syntaxErr, "CLIENT", "KILL", "foo", "bar"),
	both(syntaxErr, "CLIENT", "KILL", "ID", "1", "2"),
	both(syntaxErr, "CLIENT", "KILL", "ID", "1", "SKIPME", "maybe"),
	both(syntaxErr, "CLIENT", "KILL", "MAXAGE", "10"),
	both("-ERR No such user 'nosuch'", "CLIENT", "KILL", "USER", "nosuch"),
	both("-ERR Unknown client type 'foo'", "CLIENT", "KILL", "TYPE", "foo"),
	both(":0", "CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "no"),
	both(":0", "CLIENT", "KILL", "LADDR", "1.2.3.4:5", "skipme", "YES"),
	both(":0", "CLIENT", "KILL", "TYPE", "master"),
	both(":0", "CLIENT", "KILL", "type", "REPLICA", "USER", "default"),
	// OBJECT
	both(arity("object"), "OBJECT"),
	both(arity("object|encoding"), "OBJECT", "ENCODING"),
	both(arity("object|encoding"), "OBJECT", "encoding", "a", "b"),
	both(arity("object|help"), "OBJECT", "HELP", "x"),
	both("-ERR unknown subcommand 'foo'. Try OBJECT HELP.", "OBJECT", "foo"),
	both(helpWant(objectHelp), "OBJECT", "HELP"),
	both("nil", "OBJECT", "ENCODING", "nokey"),
	both("nil", "OBJECT", "REFCOUNT", "nokey"),
	both("nil", "OBJECT", "IDLETIME", "nokey"),
	both("nil", "OBJECT", "FREQ", "nokey"),
	both("+OK", "MSET", "i", "12345", "neg", "-5", "z", "0", "big", "12345678901234567890", "mx", "9223372036854775807",
		"mn", "-9223372036854775808", "s44", strings.Repeat("x", 44), "s45", strings.Repeat("x", 45), "sp", " 1", "lz", "01",
		"plus", "+5", "f", "1.5", "e", "", "negz", "-0"),
	both(`"int"`, "OBJECT", "ENCODING", "i"),
	both(`"int"`, "object", "encoding", "neg"),
	both(`"int"`, "OBJECT", "ENCODING", "z"),
	both(`"int"`, "OBJECT", "ENCODING", "mx"),
	both(`"int"`, "OBJECT", "ENCODING", "mn"),
	both(`"embstr"`, "OBJECT", "ENCODING", "big"),
	both(`"embstr"`, "OBJECT", "ENCODING", "s44"),
	both(`"raw"`, "OBJECT", "ENCODING", "s45"),
	both(`"embstr"`, "OBJECT", "ENCODING", "sp"),
	both(`"embstr"`, "OBJECT", "ENCODING", "lz"),
	both(`"embstr"`, "OBJECT", "ENCODING", "plus"),
	both(`"embstr"`, "OBJECT", "ENCODING", "f"),
	both(`"embstr"`, "OBJECT", "ENCODING", "e"),
	both(`"embstr"`, "OBJECT", "ENCODING", "negz"),
	both(":1", "OBJECT", "REFCOUNT", "i"),
	both(":1", "OBJECT", "REFCOUNT", "s45"),
	both("-"+errNoFreq, "OBJECT", "FREQ", "i"),
	ours("-"+errNoIdle, "OBJECT", "IDLETIME", "i"),
	// MEMORY
	both(arity("memory"), "MEMORY"),
	both(arity("memory|usage"), "MEMORY", "USAGE"),
	both(arity("memory|help"), "MEMORY", "HELP", "x"),
	both("-ERR unknown subcommand 'foo'. Try MEMORY HELP.", "MEMORY", "foo"),
	ours(helpWant(memoryHelp), "MEMORY", "HELP"),
	theirs(helpWant(redisMemoryHelp), "MEMORY", "HELP"),
	both("nil", "MEMORY", "USAGE", "nokey"),
	both("nil", "MEMORY", "USAGE", "nokey", "SAMPLES", "0"),
	both("nil", "MEMORY", "USAGE", "nokey", "samples", "5", "SAMPLES", "7"),
	both(syntaxErr, "MEMORY", "USAGE", "i", "SAMPLES"),
	both(notInt, "MEMORY", "USAGE", "i", "SAMPLES", "x"),
	both(notInt, "MEMORY", "USAGE", "nokey", "SAMPLES", "x"),
	both(syntaxErr, "MEMORY", "USAGE", "i", "SAMPLES", "-1"),
	both(syntaxErr, "MEMORY", "USAGE", "i", "foo", "1"),
	both(syntaxErr, "MEMORY", "USAGE", "i", "extra"),
	// SLOWLOG: the commands; its entries are TestSlowlogEntries'
	both(arity("slowlog"), "SLOWLOG"),
	both("-ERR unknown subcommand 'foo'. Try SLOWLOG HELP.", "SLOWLOG", "foo"),
	both(arity("slowlog|len"), "SLOWLOG", "LEN", "x"),
	both(arity("slowlog|reset"), "SLOWLOG", "RESET", "x"),
	both(arity("slowlog|help"), "SLOWLOG", "HELP", "x"),
	both("-ERR count should be greater than or equal to -1", "SLOWLOG", "GET", "x"),
	both("-ERR count should be greater than or equal to -1", "SLOWLOG", "GET", "-2"),
	both("-ERR count should be greater than or equal to -1", "SLOWLOG", "GET", "99999999999999999999"),
	both("-ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP.", "SLOWLOG", "GET", "1", "2"),
	both(helpWant(slowlogHelp), "SLOWLOG", "HELP"),
	both(`["slowlog-log-slower-than" "10000"]`, "CONFIG", "GET", "slowlog-log-slower-than"),
	both(`["slowlog-max-len" "128"]`, "CONFIG", "GET", "slowlog-max-len"),
	both("+OK", "CONFIG", "SET", "slowlog-log-slower-than", "-1"),
	both("+OK", "SLOWLOG", "RESET"),
	both(":0", "SLOWLOG", "LEN"),
	both("[]", "SLOWLOG", "GET"),
	both("[]", "SLOWLOG", "GET", "-1"),
	both(`["slowlog-log-slower-than" "-1"]`, "CONFIG", "GET", "slowlog-log-slower-than"),
	both(configFailed("slowlog-log-slower-than", "argument must be between -1 and 9223372036854775807 inclusive"), "CONFIG", "SET", "slowlog-log-slower-than", "-2"),
	both(configFailed("slowlog-log-slower-than", "argument couldn't be parsed into an integer"), "CONFIG", "SET", "slowlog-log-slower-than", "1k"),
	ours(configFailed("slowlog-max-len", "argument must be between 0 and 10000 inclusive"), "CONFIG", "SET", "slowlog-max-len", "10001"),
	ours(configFailed("slowlog-max-len", "argument must be between 0 and 10000 inclusive"), "CONFIG", "SET", "slowlog-max-len", "-1"),
	both(configFailed("slowlog-max-len", "argument couldn't be parsed into an integer"), "CONFIG", "SET", "slowlog-max-len", "99999999999999999999"),
	both("+OK", "CONFIG", "SET", "slowlog-max-len", "5", "slowlog-log-slower-than", "10000"),
	both(`["slowlog-max-len" "5"]`, "CONFIG", "GET", "slowlog-max-len"),
	both("+OK", "CONFIG", "SET", "slowlog-max-len", "128"),
	// CONFIG SET: numbers, all or nothing, duplicates, immutables
	both("+OK", "CONFIG", "SET", "timeout", "300"),
	both(`["timeout" "300"]`, "CONFIG", "GET", "timeout"),
	both(configFailed("timeout", "argument must be between 0 and 2147483647 inclusive"), "CONFIG", "SET", "timeout", "-1"),
	both(configFailed("timeout", "argument must be between 0 and 2147483647 inclusive"), "CONFIG", "SET", "timeout", "2147483648"),
	both(configFailed("timeout", "argument couldn't be parsed into an integer"), "CONFIG", "SET", "timeout", "1.5"),
	both(configFailed("maxclients", "argument must be between 1 and 4294967295 inclusive"), "CONFIG", "SET", "maxclients", "0"),
	both(configFailed("maxclients", "argument couldn't be parsed into an integer"), "CONFIG", "SET", "maxclients", "1k"),
	both(configFailed("maxclients", "argument must be between 1 and 4294967295 inclusive"), "CONFIG", "SET", "MAXCLIENTS", "0"),
	both(configFailed("maxclients", "argument must be between 1 and 4294967295 inclusive"), "CONFIG", "SET", "timeout", "7", "maxclients", "0"),
	both(configFailed("timeout", "argument couldn't be parsed into an integer"), "CONFIG", "SET", "timeout", "x", "maxclients", "0"),
	both(`["timeout" "300"]`, "CONFIG", "GET", "timeout"),
	both(configFailed("TIMEOUT", "duplicate parameter"), "CONFIG", "SET", "timeout", "7", "TIMEOUT", "8"),
	both(configFailed("databases", "can't set immutable config"), "CONFIG", "SET", "timeout", "7", "databases", "16", "foo", "1"),
	both("-ERR Unknown option or number of arguments for CONFIG SET - 'foo'", "CONFIG", "SET", "foo", "1", "databases", "16"),
	both("+OK", "CONFIG", "SET", "maxclients", "5000", "timeout", "0"),
	both(`["maxclients" "5000"]`, "CONFIG", "GET", "maxclients"),
	both("+OK", "CONFIG", "SET", "maxclients", "10000"),
	// maxmemory: Redis's units (memtoull)
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", "1t"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", "1kib"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", "-1"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", "abc"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", "1.5mb"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", " 1"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "maxmemory", "10%"),
	both(configFailed("maxmemory", "argument must be a memory value"), "CONFIG", "SET", "timeout", "5", "maxmemory", "1x"),
	both("+OK", "CONFIG", "SET", "maxmemory", "100mb"),
	both(`["maxmemory" "104857600"]`, "CONFIG", "GET", "maxmemory"),
	both("+OK", "CONFIG", "SET", "maxmemory", "100M"),
	both(`["maxmemory" "100000000"]`, "CONFIG", "GET", "maxmemory"),
	both("+OK", "CONFIG", "SET", "maxmemory", "1GB", "timeout", "5"),
	both(`["maxmemory" "1073741824"]`, "CONFIG", "GET", "maxmemory"),
	both(`["timeout" "5"]`, "CONFIG", "GET", "timeout"),
	both("+OK", "CONFIG", "SET", "maxmemory", "1g", "timeout", "0"),
	both(`["maxmemory" "1000000000"]`, "CONFIG", "GET", "maxmemory"),
	both("+OK", "CONFIG", "SET", "maxmemory", "64kb"),
	both(`["maxmemory" "65536"]`, "CONFIG", "GET", "maxmemory"),
	ours(configFailed("maxmemory", "argument must be between 1 and 9223372036854775807 inclusive"), "CONFIG", "SET", "maxmemory", "0"),
	ours(configFailed("maxmemory", "argument must be between 1 and 9223372036854775807 inclusive"), "CONFIG", "SET", "maxmemory", ""),
	ours(configFailed("maxmemory", "argument must be between 1 and 9223372036854775807 inclusive"), "CONFIG", "SET", "maxmemory", "18446744073709551615"),
	ours(configFailed("maxmemory", "argument is too small: each shard of the store must hold one entry"), "CONFIG", "SET", "maxmemory", "1", "timeout", "9"),
	both(`["maxmemory" "65536"]`, "CONFIG", "GET", "maxmemory"),
	both(`["timeout" "0"]`, "CONFIG", "GET", "timeout"),
	both("+OK", "CONFIG", "SET", "maxmemory", "64mb"),
	theirs("+OK", "CONFIG", "SET", "maxmemory", "0"),
	// client-output-buffer-limit: the pubsub class, Redis's units
	both("+OK", "CONFIG", "SET", "client-output-buffer-limit", "pubsub 32m 8m 60"),
	ours(`["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 32000000 8000000 60"]`, "CONFIG", "GET", "client-output-buffer-limit"),
	both("+OK", "CONFIG", "SET", "client-output-buffer-limit", "PUBSUB 0 0 0"),
	ours(`["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 0 0 0"]`, "CONFIG", "GET", "client-output-buffer-limit"),
	both("+OK", "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1k 2kb +5"),
	ours(`["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 1000 2048 5"]`, "CONFIG", "GET", "client-output-buffer-limit"),
	both("+OK", "CONFIG", "SET", "client-output-buffer-limit", ""),
	ours(`["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 1000 2048 5"]`, "CONFIG", "GET", "client-output-buffer-limit"),
	both(configFailed("client-output-buffer-limit", "Invalid client class specified in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "foo 1 2 3"),
	both(configFailed("client-output-buffer-limit", "Invalid client class specified in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "master 1 2 3"),
	both(configFailed("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2"),
	both(configFailed("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub  1 2 3"),
	both(configFailed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub x 2 3"),
	both(configFailed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2 x"),
	both(configFailed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2 -1"),
	both(configFailed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub -1 2 3"),
	both(configFailed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2 60k"),
	both(configFailed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration."), "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2 99999999999999999999"),
	ours(configFailed("client-output-buffer-limit", "only the pubsub class has limits here: normal is 0 0 0"), "CONFIG", "SET", "client-output-buffer-limit", "normal 1 2 3 pubsub 4 5 6"),
	ours(`["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 1000 2048 5"]`, "CONFIG", "GET", "client-output-buffer-limit"),
	ours("+OK", "CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0 slave 0 0 0 pubsub 33554432 8388608 60"),
	theirs("+OK", "CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
	ours(`["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 33554432 8388608 60"]`, "CONFIG", "GET", "client-output-buffer-limit"),
	// requirepass: this connection stays authenticated (new ones:
	// TestConfigSetRequirepass)
	both("+OK", "CONFIG", "SET", "requirepass", "secret"),
	ours(`["requirepass" "(hidden)"]`, "CONFIG", "GET", "requirepass"),
	both(`"x"`, "ECHO", "x"),
	both("-"+errWrongPass, "AUTH", "wrong"),
	both("+OK", "AUTH", "secret"),
	both("+OK", "CONFIG", "SET", "requirepass", ""),
	both(`["requirepass" ""]`, "CONFIG", "GET", "requirepass"),
	// RESET
	both(arity("reset"), "RESET", "x"),
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "1"),
	both("+RESET", "RESET"),
	both("-ERR EXEC without MULTI", "EXEC"),
	both(":0", "EXISTS", "a"),
	both("+OK", "WATCH", "w"),
	both("+RESET", "RESET"),
	both("+OK", "SET", "w", "1"),
	both("+OK", "MULTI"),
	both("+QUEUED", "GET", "w"),
	both(`["1"]`, "EXEC"),
	both("+OK", "CLIENT", "SETNAME", "foo"),
	both("+RESET", "RESET"),
	both("nil", "CLIENT", "GETNAME"),
	both("+OK", "FLUSHALL"),
}

func TestOpsScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runSteps(t, addr, opsScript, false)
}

// TestOpsScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there and leaves the settings it changes as Redis's
// defaults.
func TestOpsScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runSteps(t, addr, opsScript, true)
}
