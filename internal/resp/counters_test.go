package resp

import (
	"fmt"
	"testing"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// counterScript is INCR, INCRBY, DECR, DECRBY and INCRBYFLOAT against
// Redis 7.0's behaviour (every reply as redis-server 7.0.15 gives it),
// like stringScript.
var counterScript = []step{
	both("+OK", "FLUSHALL"),
	both(":1", "INCR", "new"),
	both(":-1", "DECR", "new2"),
	both("+OK", "SET", "k", "10"),
	both(":11", "INCR", "k"),
	both(":21", "INCRBY", "k", "10"),
	both(":16", "DECRBY", "k", "5"),
	both(":15", "DECR", "k"),
	both(":14", "INCRBY", "k", "-1"),
	both(":15", "DECRBY", "k", "-1"),
	both(`"15"`, "GET", "k"),
	both("-ERR decrement would overflow", "DECRBY", "k", "-9223372036854775808"),
	both("-ERR increment or decrement would overflow", "INCRBY", "k", "9223372036854775807"),
	both("+OK", "SET", "min", "-9223372036854775808"),
	both("-ERR increment or decrement would overflow", "DECR", "min"),
	both(":-9223372036854775807", "INCR", "min"),
	both(notInt, "INCRBY", "k", "abc"),
	both(notInt, "INCRBY", "k", "1.5"),
	both(notInt, "INCRBY", "k", "99999999999999999999"),
	both("+OK", "SET", "s", "abc"),
	both(notInt, "INCR", "s"),
	both("+OK", "SET", "z", "01"),
	both(notInt, "INCR", "z"),
	both("+OK", "SET", "w", "-0"),
	both(notInt, "INCR", "w"),
	both("+OK", "SET", "sp", " 5"),
	both(notInt, "INCR", "sp"),
	both(`" 5"`, "GET", "sp"), // an error writes nothing
	// The expiry stays.
	both("+OK", "SET", "t", "1", "EX", "100"),
	both(":2", "INCR", "t"),
	both(":100", "TTL", "t"),
	// INCRBYFLOAT, in long double arithmetic.
	both("+OK", "SET", "f", "1.1"),
	both(`"1.3"`, "INCRBYFLOAT", "f", "0.2"),
	both(`"1001.29999999999999999"`, "INCRBYFLOAT", "f", "1e3"),
	both(`"1017.29999999999999999"`, "INCRBYFLOAT", "f", "0x10"),
	both("-ERR increment would produce NaN or Infinity", "INCRBYFLOAT", "f", "inf"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "f", " 1"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "f", "1_0"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "f", "nan"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "f", "abc"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "f", ""),
	both("+OK", "SET", "g", "0.1"),
	both(`"0.3"`, "INCRBYFLOAT", "g", "0.2"),
	both(`"0"`, "INCRBYFLOAT", "g", "-0.3"),
	both("+OK", "SET", "h", "5.0e3"),
	both(`"5200"`, "INCRBYFLOAT", "h", "200"),
	both(`"3000"`, "INCRBYFLOAT", "nf", "3.0e3"),
	both(`"-1.5"`, "INCRBYFLOAT", "neg", "-1.5"),
	both(`"0"`, "INCRBYFLOAT", "neg", "1.5"),
	both(`"1.23456789012345679"`, "INCRBYFLOAT", "prec", "1.23456789012345678901"),
	both(`"100000000000000000000"`, "INCRBYFLOAT", "u", "100000000000000000000"),
	both(`"100000000000000000000"`, "INCRBYFLOAT", "u", "0.5"),
	both(`"99999999999999999996685879655845645660560099847415567207797047994921734868838061872100126921888539320446747225054013223152134749593960583597420814430196418767959100019603190778663109604507106667939153395788938914560543563061268364901618630217086589253444881623791300855757318142424510452728255046343928578048"`, "INCRBYFLOAT", "big", "1e308"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "s", "1"),
	both("+OK", "SET", "e", " 5"),
	both("-ERR value is not a valid float", "INCRBYFLOAT", "e", "1"),
	both(`"12"`, "INCRBYFLOAT", "k2", "12"),
	both(":13", "INCR", "k2"),
	// A counter is a string to every other command.
	both(":1", "INCR", "c"),
	both(":1", "EXPIRE", "c", "100"),
	both(":2", "INCR", "c"),
	both(":100", "TTL", "c"),
	both(":1", "PERSIST", "c"),
	both(":-1", "TTL", "c"),
	both(`"2"`, "GETEX", "c", "EX", "50"),
	both(":50", "TTL", "c"),
	both(":3", "INCR", "c"),
	both(":50", "TTL", "c"),
	both("+string", "TYPE", "c"),
	both(`"int"`, "OBJECT", "ENCODING", "c"),
	both(":1", "STRLEN", "c"),
	both(`"3"`, "GETRANGE", "c", "0", "-1"),
	both(":2", "APPEND", "c", "x"),
	both(`"3x"`, "GET", "c"),
	both(notInt, "INCR", "c"),
	both(":7", "INCRBY", "c2", "7"),
	both(`"7"`, "GETSET", "c2", "40"),
	both(":41", "INCR", "c2"),
	both("+OK", "SET", "c2", "-3"),
	both(":-2", "INCR", "c2"),
	both(`"-0.5"`, "INCRBYFLOAT", "c2", "1.5"),
	both(notInt, "INCR", "c2"),
	both(":5", "INCRBY", "c3", "5"),
	both("+OK", "RENAME", "c3", "c4"),
	both(`"5"`, "GET", "c4"),
	both(":6", "INCR", "c4"),
	both(":1", "DEL", "c4"),
	both(":1", "INCR", "c4"),
	both(`"1"`, "GETDEL", "c4"),
	both(":-1", "DECR", "c4"),
	both(arity("incr"), "INCR"),
	both(arity("incrby"), "INCRBY", "k"),
	both(arity("decrby"), "DECRBY", "k", "1", "2"),
	both(arity("incrbyfloat"), "INCRBYFLOAT", "k"),
}

func TestCounterScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runSteps(t, addr, counterScript, false)
}

// TestCounterScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there.
func TestCounterScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runSteps(t, addr, counterScript, true)
}

// Counters in transactions replicate with them: a MULTI of INCRs in one
// region and INCRs made at once in the other all count in both.
func TestCounterTransactionsAcrossRegions(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	_, aus := startServer(t, Config{Node: nodes[0]})
	_, aeu := startServer(t, Config{Node: nodes[1]})
	linksUp(t, nodes)
	cus, ceu := newClient(t, aus), newClient(t, aeu)
	const rounds = 100
	done := make(chan error, 1)
	go func() {
		for range rounds {
			if _, err := ceu.IncrBy(bg, "{c}b", 2).Result(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range rounds {
		_, err := cus.TxPipelined(bg, func(p redis.Pipeliner) error {
			p.Incr(bg, "{c}a")
			p.IncrBy(bg, "{c}b", 3)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "every increment in both regions", func() bool {
		for _, c := range []*redis.Client{cus, ceu} {
			vals, err := c.MGet(bg, "{c}a", "{c}b").Result()
			if err != nil || fmt.Sprint(vals) != fmt.Sprintf("[%d %d]", rounds, 5*rounds) {
				return false
			}
		}
		return true
	})
}
