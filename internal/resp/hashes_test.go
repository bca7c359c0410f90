package resp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

const wrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value"

// hashScript is every hash command, with its errors, and WRONGTYPE for
// every string command on a hash and every hash command on a string,
// against Redis 7.0's behaviour (every reply as redis-server 7.0.15 gives
// it). Fields are written in the order of their names where a reply lists
// them: geocache lists them by name, Redis a small hash's in insertion
// order.
var hashScript = []step{
	both("+OK", "FLUSHALL"),
	// A hash whose last field is deleted is gone to every command.
	both(":1", "HSET", "gone", "f", "v"),
	both(":1", "DBSIZE"),
	both(":1", "HDEL", "gone", "f"),
	both(":0", "DBSIZE"),
	both(":0", "EXISTS", "gone"),
	both("+none", "TYPE", "gone"),
	both(`[]`, "KEYS", "*"),
	both(`["0" []]`, "SCAN", "0"),
	both("nil", "RANDOMKEY"),
	both("nil", "OBJECT", "ENCODING", "gone"),
	both("nil", "MEMORY", "USAGE", "gone"),
	both(":0", "DEL", "gone"),
	both("nil", "GET", "gone"),
	both(":1", "SETNX", "gone", "x"),
	both(`"x"`, "GET", "gone"),
	both(":2", "HSET", "h", "a", "1", "b", "2"),
	both(":1", "HSET", "h", "b", "20", "c", "3"),
	both(":0", "HSET", "h", "a", "10"),
	both(`"10"`, "HGET", "h", "a"),
	both("nil", "HGET", "h", "zz"),
	both("nil", "HGET", "nosuch", "a"),
	both(`["10" nil "3"]`, "HMGET", "h", "a", "zz", "c"),
	both(`[nil nil]`, "HMGET", "nosuch", "a", "b"),
	both(`["a" "10" "b" "20" "c" "3"]`, "HGETALL", "h"),
	both(`[]`, "HGETALL", "nosuch"),
	both(`["a" "b" "c"]`, "HKEYS", "h"),
	both(`["10" "20" "3"]`, "HVALS", "h"),
	both(`[]`, "HKEYS", "nosuch"),
	both(`[]`, "HVALS", "nosuch"),
	both(":3", "HLEN", "h"),
	both(":0", "HLEN", "nosuch"),
	both(":1", "HEXISTS", "h", "a"),
	both(":0", "HEXISTS", "h", "zz"),
	both(":0", "HEXISTS", "nosuch", "a"),
	both(":2", "HSTRLEN", "h", "b"),
	both(":0", "HSTRLEN", "h", "zz"),
	both(":0", "HSTRLEN", "nosuch", "a"),
	both("+OK", "HMSET", "h", "d", "4", "e", "5"),
	both(":0", "HSETNX", "h", "a", "x"),
	both(":1", "HSETNX", "h", "f", "6"),
	both(`"10"`, "HGET", "h", "a"),
	both(":1", "HSETNX", "new", "f", "v"),
	both(":2", "HDEL", "h", "d", "e", "zz"),
	both(":0", "HDEL", "h", "d"),
	both(":0", "HDEL", "nosuch", "a"),
	both("+hash", "TYPE", "h"), // a simple string: the raw client quotes it too
	both(":1", "EXISTS", "h"),
	both(`"listpack"`, "OBJECT", "ENCODING", "h"),
	// Deleting every field deletes the key.
	both(":1", "HDEL", "new", "f"),
	both(":0", "EXISTS", "new"),
	both("+none", "TYPE", "new"),
	both(":-2", "TTL", "new"),
	both(`[]`, "HGETALL", "new"),
	both(":1", "HSET", "new", "g", "1"),
	both(`["g" "1"]`, "HGETALL", "new"),
	// HINCRBY, HINCRBYFLOAT.
	both(":15", "HINCRBY", "h", "a", "5"),
	both(":-5", "HINCRBY", "h", "n", "-5"),
	both(":5", "HINCRBY", "fresh", "n", "5"),
	both(notInt, "HINCRBY", "h", "a", "x"),
	both(notInt, "HINCRBY", "h", "a", "1.5"),
	both("-ERR increment or decrement would overflow", "HINCRBY", "h", "a", "9223372036854775807"),
	both(":0", "HSET", "h", "f", "abc"),
	both("-ERR hash value is not an integer", "HINCRBY", "h", "f", "1"),
	both(":1", "HSET", "h", "z", "01"),
	both("-ERR hash value is not an integer", "HINCRBY", "h", "z", "1"),
	both(`"15.5"`, "HINCRBYFLOAT", "h", "a", "0.5"),
	both(`"1.3"`, "HINCRBYFLOAT", "fl", "x", "1.3"),
	both(`"1001.29999999999999999"`, "HINCRBYFLOAT", "fl", "x", "1e3"),
	both("-ERR hash value is not a float", "HINCRBYFLOAT", "h", "f", "1"),
	both("-ERR value is not a valid float", "HINCRBYFLOAT", "h", "a", "abc"),
	both("-ERR value is not a valid float", "HINCRBYFLOAT", "h", "a", "nan"),
	both("-ERR value is NaN or Infinity", "HINCRBYFLOAT", "h", "a", "inf"),
	both("-ERR hash value is not an integer", "HINCRBY", "h", "a", "1"),
	both(`"15.5"`, "HGET", "h", "a"),
	// HRANDFIELD on a hash of one field (deterministic).
	both(":1", "HSET", "one", "k", "v"),
	both(`"k"`, "HRANDFIELD", "one"),
	both(`["k"]`, "HRANDFIELD", "one", "1"),
	both(`["k"]`, "HRANDFIELD", "one", "5"),
	both(`["k" "k" "k"]`, "HRANDFIELD", "one", "-3"),
	both(`["k" "v" "k" "v"]`, "HRANDFIELD", "one", "-2", "WITHVALUES"),
	both(`["k" "v"]`, "HRANDFIELD", "one", "2", "withvalues"),
	both(`[]`, "HRANDFIELD", "one", "0"),
	both("nil", "HRANDFIELD", "nosuch"),
	both(`[]`, "HRANDFIELD", "nosuch", "3"),
	both(`[]`, "HRANDFIELD", "nosuch", "-3"),
	both(":3", "HSET", "abc", "a", "1", "b", "2", "c", "3"),
	both(`["a" "b" "c"]`, "HRANDFIELD", "abc", "3"),
	both(`["a" "1" "b" "2" "c" "3"]`, "HRANDFIELD", "abc", "10", "WITHVALUES"),
	both(notInt, "HRANDFIELD", "one", "x"),
	both(syntaxErr, "HRANDFIELD", "one", "1", "WITHVALUE"),
	both(syntaxErr, "HRANDFIELD", "one", "1", "WITHVALUES", "x"),
	both("-ERR value is out of range", "HRANDFIELD", "one", "9223372036854775807", "WITHVALUES"),
	both("-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807", "HRANDFIELD", "one", "-9223372036854775808"),
	// HSCAN: a small hash whole, with cursor 0, whatever the cursor.
	both(`["0" ["a" "1" "b" "2" "c" "3"]]`, "HSCAN", "abc", "0"),
	both(`["0" ["a" "1" "b" "2" "c" "3"]]`, "HSCAN", "abc", "0", "COUNT", "1"),
	both(`["0" ["b" "2"]]`, "HSCAN", "abc", "0", "MATCH", "b*"),
	both(`["0" ["a" "1" "b" "2" "c" "3"]]`, "HSCAN", "abc", "0", "MATCH", "*"),
	both(`["0" ["a" "1" "b" "2" "c" "3"]]`, "HSCAN", "abc", "7"),
	both(`["0" []]`, "HSCAN", "nosuch", "0"),
	both(`["0" []]`, "HSCAN", "nosuch", "0", "NOVALUES"), // options are read for an existing hash only
	both(syntaxErr, "HSCAN", "abc", "0", "NOVALUES"),
	both(syntaxErr, "HSCAN", "abc", "0", "COUNT", "0"),
	both(syntaxErr, "HSCAN", "abc", "0", "TYPE", "string"),
	both(syntaxErr, "HSCAN", "abc", "0", "COUNT"),
	both(notInt, "HSCAN", "abc", "0", "COUNT", "x"),
	both("-ERR invalid cursor", "HSCAN", "abc", "x"),
	// Expiry, keys, renames and copies of a hash.
	both(":1", "EXPIRE", "abc", "100"),
	both(":100", "TTL", "abc"),
	both(":3", "HLEN", "abc"),
	both(":1", "PERSIST", "abc"),
	both(":-1", "TTL", "abc"),
	both("+OK", "RENAME", "abc", "abc2"),
	both("+hash", "TYPE", "abc2"),
	both(`["a" "1" "b" "2" "c" "3"]`, "HGETALL", "abc2"),
	both(":1", "COPY", "abc2", "abc3"),
	both(`["a" "b" "c"]`, "HKEYS", "abc3"),
	both(":1", "DEL", "abc3"),
	both(":0", "EXISTS", "abc3"),
	both(`["0" ["abc2"]]`, "SCAN", "0", "MATCH", "abc*", "TYPE", "hash"),
	both(`["0" []]`, "SCAN", "0", "MATCH", "abc*", "TYPE", "string"),
	both(`["abc2"]`, "KEYS", "abc*"),
	// WRONGTYPE: string commands on a hash.
	both(wrongType, "GET", "abc2"),
	both(`[nil]`, "MGET", "abc2"),
	both(wrongType, "GETSET", "abc2", "x"),
	both(wrongType, "GETDEL", "abc2"),
	both(wrongType, "GETEX", "abc2"),
	both(wrongType, "GETEX", "abc2", "EX", "10"),
	both(wrongType, "SET", "abc2", "x", "GET"),
	both(wrongType, "APPEND", "abc2", "x"),
	both(wrongType, "STRLEN", "abc2"),
	both(wrongType, "GETRANGE", "abc2", "0", "-1"),
	both(wrongType, "SETRANGE", "abc2", "0", "x"),
	both(wrongType, "GETBIT", "abc2", "0"),
	both(wrongType, "SETBIT", "abc2", "0", "1"),
	both(wrongType, "BITCOUNT", "abc2"),
	both(wrongType, "INCR", "abc2"),
	both(wrongType, "INCRBY", "abc2", "2"),
	both(wrongType, "DECR", "abc2"),
	both(wrongType, "INCRBYFLOAT", "abc2", "1"),
	both(":-1", "TTL", "abc2"), // nothing changed
	both(`["a" "b" "c"]`, "HKEYS", "abc2"),
	both(":0", "SETNX", "abc2", "x"),
	both(":0", "MSETNX", "abc2", "x", "other", "y"),
	both("nil", "SET", "abc2", "x", "NX"),
	both(":1", "TOUCH", "abc2"),
	// Hash commands on a string and on a counter.
	both("+OK", "SET", "s", "text"),
	both(":1", "INCR", "cnt"),
	both(wrongType, "HSET", "s", "f", "v"),
	both(wrongType, "HMSET", "s", "f", "v"),
	both(wrongType, "HSETNX", "s", "f", "v"),
	both(wrongType, "HGET", "s", "f"),
	both(wrongType, "HMGET", "s", "f"),
	both(wrongType, "HDEL", "s", "f"),
	both(wrongType, "HGETALL", "s"),
	both(wrongType, "HKEYS", "s"),
	both(wrongType, "HVALS", "s"),
	both(wrongType, "HLEN", "s"),
	both(wrongType, "HEXISTS", "s", "f"),
	both(wrongType, "HSTRLEN", "s", "f"),
	both(wrongType, "HINCRBY", "s", "f", "1"),
	both(wrongType, "HINCRBYFLOAT", "s", "f", "1"),
	both(wrongType, "HRANDFIELD", "s"),
	both(wrongType, "HRANDFIELD", "s", "2"),
	both(wrongType, "HSCAN", "s", "0"),
	both(wrongType, "HSET", "cnt", "f", "v"),
	both(wrongType, "HGETALL", "cnt"),
	both(`"text"`, "GET", "s"),
	// SET replaces a hash; a hash command then sees a string.
	both("+OK", "SET", "abc2", "plain"),
	both("+string", "TYPE", "abc2"),
	both(wrongType, "HLEN", "abc2"),
	both("+OK", "SET", "s", "x", "XX"),
	both(":1", "DEL", "s"),
	both(":1", "HSET", "s", "f", "v"),
	both("+hash", "TYPE", "s"),
	// OBJECT ENCODING by Redis's listpack thresholds.
	both(":1", "HSET", "longv", "f", strings.Repeat("x", 65)),
	both(`"hashtable"`, "OBJECT", "ENCODING", "longv"),
	// Arity.
	both(arity("hset"), "HSET", "h", "a"),
	both(arity("hset"), "HSET", "h", "a", "1", "b"),
	both(arity("hmset"), "HMSET", "h", "a", "1", "b"),
	both(arity("hget"), "HGET", "h"),
	both(arity("hmget"), "HMGET", "h"),
	both(arity("hdel"), "HDEL", "h"),
	both(arity("hgetall"), "HGETALL"),
	both(arity("hlen"), "HLEN", "h", "x"),
	both(arity("hincrby"), "HINCRBY", "h", "a"),
	both(arity("hincrbyfloat"), "HINCRBYFLOAT", "h", "a"),
	both(arity("hsetnx"), "HSETNX", "h", "a"),
	both(arity("hrandfield"), "HRANDFIELD"),
	both(arity("hscan"), "HSCAN", "h"),
	both(arity("hstrlen"), "HSTRLEN", "h"),
	both(arity("hexists"), "HEXISTS", "h"),
	// In a transaction.
	both("+OK", "MULTI"),
	both("+QUEUED", "HSET", "tx", "a", "1"),
	both("+QUEUED", "HINCRBY", "tx", "a", "2"),
	both("+QUEUED", "HGETALL", "tx"),
	both("+QUEUED", "HGET", "s", "f"),
	both("+QUEUED", "GET", "tx"),
	both(`[:1 :3 ["a" "3"] "v" `+wrongType+`]`, "EXEC"),
}

func TestHashScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runSteps(t, addr, hashScript, false)
}

// TestHashScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there.
func TestHashScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runSteps(t, addr, hashScript, true)
}

// hashRESP3Script is the replies that differ in RESP3 (HGETALL a map,
// HRANDFIELD WITHVALUES pairs), after HELLO 3.
var hashRESP3Script = []step{
	both("+OK", "FLUSHALL"),
	both(":2", "HSET", "h", "a", "1", "b", "2"),
	both(`{"a": "1", "b": "2"}`, "HGETALL", "h"),
	both(`{}`, "HGETALL", "nosuch"),
	both(`[["a" "1"] ["b" "2"]]`, "HRANDFIELD", "h", "2", "WITHVALUES"),
	both(":1", "HSET", "one", "k", "v"),
	both(`[["k" "v"]]`, "HRANDFIELD", "one", "1", "WITHVALUES"),
	both(`[["k" "v"] ["k" "v"]]`, "HRANDFIELD", "one", "-2", "WITHVALUES"),
	both(`["a" "b"]`, "HKEYS", "h"),
	both("nil", "HGET", "h", "zz"),
	both(`["0" ["a" "1" "b" "2"]]`, "HSCAN", "h", "0"),
}

func runRESP3Steps(t *testing.T, addr string, steps []step) {
	r := dialRaw(t, addr)
	r.do("HELLO", "3") // the servers describe themselves differently
	for i, st := range steps {
		if got := r.do(st.args...); got != st.want {
			t.Errorf("step %d %q: got %s\n\twant %s", i, st.args, got, st.want)
		}
	}
}

func TestHashRESP3(t *testing.T) {
	_, addr := startServer(t, Config{})
	runRESP3Steps(t, addr, hashRESP3Script)
}

func TestHashRESP3AgainstRedis(t *testing.T) {
	runRESP3Steps(t, redisAddr(t), hashRESP3Script)
}

// openSlowRegions is openRegions on an in-memory network whose links take
// oneWay each way: writes made in two regions within that time are
// concurrent.
func openSlowRegions(t *testing.T, oneWay time.Duration, regions ...string) []*geocache.Node {
	t.Helper()
	mem := testkit.NewNetwork()
	t.Cleanup(func() { mem.Close() })
	for _, a := range regions {
		for _, b := range regions {
			if a != b {
				mem.SetLatency(a, b, oneWay)
			}
		}
	}
	nodes := make([]*geocache.Node, len(regions))
	for i, r := range regions {
		var peers []string
		for j, p := range regions {
			if j != i {
				peers = append(peers, p)
			}
		}
		cfg := geocache.MultiRegion(r, uint32(i+1), r, peers...)
		cfg.Dial = mem.Dialer(r)
		ln, err := mem.Listen(r)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listener = ln
		n, err := geocache.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	return nodes
}

// Hashes across regions: fields written at once in two regions 20 ms
// apart, through RESP, all survive in both (with last-writer-wins of the
// whole hash, most would be lost); a DEL in one region removes the fields
// written before it.
func TestHashFieldsAcrossRegions(t *testing.T) {
	nodes := openSlowRegions(t, 20*time.Millisecond, "us", "eu")
	_, aus := startServer(t, Config{Node: nodes[0]})
	_, aeu := startServer(t, Config{Node: nodes[1]})
	linksUp(t, nodes)
	cus, ceu := newClient(t, aus), newClient(t, aeu)
	const rounds = 50
	done := make(chan error, 1)
	go func() {
		for i := range rounds {
			if err := ceu.HSet(bg, "user", fmt.Sprint("eu", i), i).Err(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range rounds {
		_, err := cus.TxPipelined(bg, func(p redis.Pipeliner) error {
			p.HSet(bg, "user", fmt.Sprint("us", i), i)
			p.HIncrBy(bg, "user", "us-count", 1)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "every field in both regions", func() bool {
		for _, c := range []*redis.Client{cus, ceu} {
			m, err := c.HGetAll(bg, "user").Result()
			if err != nil || len(m) != 2*rounds+1 || m["us-count"] != fmt.Sprint(rounds) {
				return false
			}
		}
		return true
	})
	if err := cus.Del(bg, "user").Err(); err != nil {
		t.Fatal(err)
	}
	if err := ceu.HSet(bg, "user", "late", 1).Err(); err != nil { // maybe before the DEL arrives, maybe after
		t.Fatal(err)
	}
	testkit.Eventually(t, "the DEL in both regions", func() bool {
		var got []string
		for _, c := range []*redis.Client{cus, ceu} {
			keys, err := c.HKeys(bg, "user").Result()
			if err != nil {
				return false
			}
			got = append(got, fmt.Sprint(keys))
		}
		// Either the late field was written after the DEL reached eu (it
		// survives) or before (the DEL, newer, removed it), the same in
		// both regions; no field from before the DEL survives.
		return got[0] == got[1] && (got[0] == "[late]" || got[0] == "[]")
	})
}
