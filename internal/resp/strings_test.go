package resp

import (
	"strconv"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

// stringScript is the string commands against Redis 7.0's behaviour, in
// order, like commandScript: it runs against geocache always, and against
// a real Redis when REDIS_ADDR names one (skipping the geocacheOnly steps).
var stringScript = []step{
	both("+OK", "FLUSHALL"),
	// GETSET
	both("nil", "GETSET", "g", "a"),
	both(`"a"`, "GETSET", "g", "b"),
	both(`"b"`, "GET", "g"),
	both("+OK", "SET", "g", "c", "EX", "100"),
	both(`"c"`, "GETSET", "g", "d"),
	both(":-1", "TTL", "g"), // GETSET drops the expiry, as SET does
	both(arity("getset"), "GETSET", "g"),
	// STRLEN
	both(":0", "STRLEN", "nosuch"),
	both("+OK", "SET", "s", "Hello"),
	both(":5", "STRLEN", "s"),
	both(arity("strlen"), "STRLEN", "s", "x"),
	// APPEND keeps the expiry
	both(":5", "APPEND", "ap", "Hello"),
	both(":11", "APPEND", "ap", " World"),
	both(`"Hello World"`, "GET", "ap"),
	both(":11", "APPEND", "ap", ""),
	both(":1", "EXPIRE", "ap", "100"),
	both(":12", "APPEND", "ap", "!"),
	both(":100", "TTL", "ap"),
	both(arity("append"), "APPEND", "ap"),
	// GETRANGE and SUBSTR
	both(`"Hell"`, "GETRANGE", "s", "0", "3"),
	both(`"llo"`, "GETRANGE", "s", "-3", "-1"),
	both(`"Hello"`, "GETRANGE", "s", "0", "-1"),
	both(`"H"`, "GETRANGE", "s", "0", "-100"),
	both(`""`, "GETRANGE", "s", "-1", "-5"),
	both(`""`, "GETRANGE", "s", "10", "20"),
	both(`"o"`, "GETRANGE", "s", "4", "100"),
	both(`""`, "GETRANGE", "s", "3", "2"),
	both(`""`, "GETRANGE", "nosuch", "0", "1"),
	both(notInt, "GETRANGE", "s", "a", "1"),
	both(notInt, "GETRANGE", "s", "0", "1.5"),
	both(`"el"`, "SUBSTR", "s", "1", "2"),
	both(arity("getrange"), "GETRANGE", "s", "0"),
	// SETRANGE
	both(":4", "SETRANGE", "sr", "2", "ab"),
	both(`"\x00\x00ab"`, "GET", "sr"),
	both(":4", "SETRANGE", "sr", "0", "xy"),
	both(`"xyab"`, "GET", "sr"),
	both(":6", "SETRANGE", "sr", "3", "ZZZ"),
	both(`"xyaZZZ"`, "GET", "sr"),
	both(":6", "SETRANGE", "sr", "0", ""),
	both(":0", "SETRANGE", "empty", "5", ""),
	both(":0", "EXISTS", "empty"),
	both("-ERR offset is out of range", "SETRANGE", "sr", "-1", "x"),
	both(notInt, "SETRANGE", "sr", "x", "x"),
	both("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "sr", "536870911", "xx"),
	ours("-ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "sr", strconv.Itoa(16<<20), "x"), // over the node's 16 MiB here
	both(`"xyaZZZ"`, "GET", "sr"),
	// GETBIT and SETBIT
	both(":0", "SETBIT", "b", "7", "1"),
	both(`"\x01"`, "GET", "b"),
	both(":1", "SETBIT", "b", "7", "0"),
	both(":0", "SETBIT", "b", "0", "1"),
	both(`"\x80"`, "GET", "b"),
	both(":0", "SETBIT", "b", "17", "1"),
	both(`"\x80\x00@"`, "GET", "b"),
	both(":1", "GETBIT", "b", "0"),
	both(":0", "GETBIT", "b", "1"),
	both(":1", "GETBIT", "b", "17"),
	both(":0", "GETBIT", "b", "1000"),
	both(":0", "GETBIT", "nosuch", "3"),
	both("-ERR bit offset is not an integer or out of range", "GETBIT", "b", "-1"),
	both("-ERR bit offset is not an integer or out of range", "GETBIT", "b", "4294967296"),
	both("-ERR bit offset is not an integer or out of range", "SETBIT", "b", "x", "1"),
	both("-ERR bit is not an integer or out of range", "SETBIT", "b", "1", "2"),
	both("-ERR bit is not an integer or out of range", "SETBIT", "b", "1", "-1"),
	ours("-ERR bit offset is not an integer or out of range", "SETBIT", "b", strconv.Itoa(16<<20*8), "1"), // past proto-max-bulk-len, 16 MiB here, as Redis
	// BITCOUNT
	both("+OK", "SET", "bc", "foobar"),
	both(":26", "BITCOUNT", "bc"),
	both(":4", "BITCOUNT", "bc", "0", "0"),
	both(":6", "BITCOUNT", "bc", "1", "1"),
	both(":12", "BITCOUNT", "bc", "1", "2"),
	both(":18", "BITCOUNT", "bc", "1", "-2"),
	both(":17", "BITCOUNT", "bc", "5", "30", "BIT"),
	both(":19", "BITCOUNT", "s", "1", "-2", "BIT"),
	both(":12", "BITCOUNT", "s", "5", "30", "bit"),
	both(":4", "BITCOUNT", "bc", "0", "0", "BYTE"),
	both(":0", "BITCOUNT", "bc", "-1", "-5"),
	both(":0", "BITCOUNT", "bc", "100", "200"),
	both(":0", "BITCOUNT", "nosuch"),
	both(":0", "BITCOUNT", "nosuch", "0", "1"),
	both(syntaxErr, "BITCOUNT", "bc", "1"),
	both(syntaxErr, "BITCOUNT", "bc", "0", "0", "bits"),
	both(syntaxErr, "BITCOUNT", "bc", "0", "0", "BIT", "x"),
	both(notInt, "BITCOUNT", "bc", "a", "0"),
	both(arity("bitcount"), "BITCOUNT"),
	// EXPIRETIME and PEXPIRETIME
	both(":-2", "EXPIRETIME", "nosuch"),
	both(":-2", "PEXPIRETIME", "nosuch"),
	both(":-1", "EXPIRETIME", "s"),
	both(":1", "PEXPIREAT", "s", "7258118400500"),
	both(":7258118401", "EXPIRETIME", "s"), // rounded, as Redis does
	both(":7258118400500", "PEXPIRETIME", "s"),
	both(arity("expiretime"), "EXPIRETIME"),
	// Times past what an expiry in Unix nanoseconds holds (2262-04-11) are
	// accepted as Redis does, and stored as that last instant.
	both(":1", "PEXPIREAT", "s", "9000000000000000"),
	ours(":9223372036854", "PEXPIRETIME", "s"),
	both(":1", "EXPIREAT", "s", "9000000000000"),
	ours(":9223372036854", "PEXPIRETIME", "s"),
	both(":1", "EXPIRE", "s", "9000000000000"),
	ours(":9223372036854", "PEXPIRETIME", "s"),
	both("+OK", "SET", "px", "v", "PXAT", "9000000000000000"),
	ours(":9223372036854", "PEXPIRETIME", "px"),
	both("+OK", "SET", "px", "v", "EX", "9000000000000"),
	ours(":9223372036854", "PEXPIRETIME", "px"),
	both(":1", "PEXPIREAT", "s", "7258118400500"),
	// TOUCH
	both(":2", "TOUCH", "s", "s", "nosuch"),
	both(":0", "TOUCH", "nosuch"),
	both(arity("touch"), "TOUCH"),
	// TIME
	both(arity("time"), "TIME", "x"),
}

func TestStringScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runSteps(t, addr, stringScript, false)
}

// TestStringScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there.
func TestStringScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runSteps(t, addr, stringScript, true)
}

func runSteps(t *testing.T, addr string, steps []step, redis bool) {
	r := dialRaw(t, addr)
	for i, st := range steps {
		if (redis && st.geocacheOnly) || (!redis && st.redisOnly) {
			continue
		}
		if got := r.do(st.args...); got != st.want {
			t.Errorf("step %d %q: got %s\n\twant %s", i, st.args, got, st.want)
		}
	}
}

// TestTime answers the node's clock: seconds and microseconds.
func TestTime(t *testing.T) {
	clock := newManualClock()
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{Clock: clock})})
	r := dialRaw(t, addr)
	clock.advance(1234567 * time.Microsecond)
	want := `["` + strconv.FormatInt(clock.UnixNano()/1e9, 10) + `" "` + strconv.FormatInt(clock.UnixNano()%1e9/1e3, 10) + `"]`
	if got := r.do("TIME"); got != want {
		t.Fatalf("TIME = %s; want %s", got, want)
	}
}

// TestPartialWritesReplicateWholeValues: APPEND, SETRANGE and SETBIT are a
// read-modify-write on the serving node whose result travels as a whole
// value with the entry's expiry, so the other region ends with the same
// bytes and expiry.
func TestPartialWritesReplicateWholeValues(t *testing.T) {
	us, _, cus, ceu := twoRegions(t)
	if err := cus.Set(bg, "k", "Hello", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return cus.Append(bg, "k", " World").Err() },
		func() error { return cus.SetRange(bg, "k", 12, "!").Err() },
		func() error { return cus.SetBit(bg, "k", 8*11, 1).Err() },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	want := "Hello World\x80!"
	if got, err := cus.Get(bg, "k").Result(); err != nil || got != want {
		t.Fatalf("us: GET k = %q, %v; want %q", got, err, want)
	}
	usItem, err := us.Lookup("k")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "eu holds us's last whole value", func() bool {
		got, err := ceu.Get(bg, "k").Result()
		return err == nil && got == want
	})
	if at, err := ceu.PExpireTime(bg, "k").Result(); err != nil || at.Milliseconds() != usItem.ExpireAt.UnixMilli() {
		t.Fatalf("eu: PEXPIRETIME k = %v, %v; want %d (us's expiry)", at, err, usItem.ExpireAt.UnixMilli())
	}
}
