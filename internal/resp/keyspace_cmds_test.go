package resp

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

// keyspaceScript is KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX, COPY and
// MSETNX against Redis 7.0's behaviour, like commandScript. Replies that
// list several keys depend on the order of the walk, which differs from
// Redis's: those are checked by TestKeysAndScanListEveryKey instead.
var keyspaceScript = []step{
	both("+OK", "FLUSHALL"),
	both("[]", "KEYS", "*"),
	both("nil", "RANDOMKEY"),
	both(`["0" []]`, "SCAN", "0"),
	both("+OK", "SET", "only", "1"),
	both(`"only"`, "RANDOMKEY"),
	both(arity("randomkey"), "RANDOMKEY", "x"),
	both(`["0" ["only"]]`, "SCAN", "0", "COUNT", "1000"),
	both(":1", "DEL", "only"),
	// KEYS: Redis's glob, case-sensitive
	both("+OK", "MSET", "apple", "1", "Apple", "2", "banana", "3", "a*b", "4"),
	both(`["Apple"]`, "KEYS", "A*"),
	both(`["banana"]`, "KEYS", "b?n*"),
	both(`["apple"]`, "KEYS", "[a]pp?e"),
	both(`["Apple"]`, "KEYS", "[^a]pple"),
	both(`["apple"]`, "KEYS", "[a-b]pple"),
	both(`["a*b"]`, "KEYS", `a\*b`),
	both(`[]`, "KEYS", "x*"),
	both(`[]`, "KEYS", "APPLE"),
	both(arity("keys"), "KEYS"),
	both(arity("keys"), "KEYS", "a", "b"),
	// SCAN: options, case-insensitive TYPE, errors in Redis's order
	both(`["0" ["banana"]]`, "SCAN", "0", "MATCH", "ban*", "COUNT", "1000"),
	both(`["0" ["banana"]]`, "SCAN", "0", "type", "STRING", "match", "b*", "count", "1000"),
	both(`["0" []]`, "SCAN", "0", "TYPE", "hash", "COUNT", "1000"),
	both(`["0" []]`, "SCAN", "0", "TYPE", "nosuchtype", "COUNT", "1000"),
	both(`["0" ["banana"]]`, "SCAN", "", "MATCH", "ban*", "COUNT", "1000"),
	both(`["0" ["banana"]]`, "SCAN", "+0", "MATCH", "ban*", "COUNT", "1000", "COUNT", "500"),
	both(`["0" []]`, "SCAN", "18446744073709551615", "MATCH", "nothing"),
	ours(`["0" []]`, "SCAN", "-1"),
	both("-ERR invalid cursor", "SCAN", "abc"),
	both("-ERR invalid cursor", "SCAN", "1x"),
	both("-ERR invalid cursor", "SCAN", " 1"),
	both("-ERR invalid cursor", "SCAN", "-"),
	both("-ERR invalid cursor", "SCAN", "18446744073709551616"),
	both("-ERR invalid cursor", "SCAN", "x", "COUNT", "0"),
	both(syntaxErr, "SCAN", "0", "COUNT", "0"),
	both(syntaxErr, "SCAN", "0", "COUNT", "-1"),
	both(notInt, "SCAN", "0", "COUNT", "x"),
	both(notInt, "SCAN", "0", "COUNT", "99999999999999999999"),
	both(syntaxErr, "SCAN", "0", "MATCH"),
	both(syntaxErr, "SCAN", "0", "COUNT"),
	both(syntaxErr, "SCAN", "0", "FOO", "bar"),
	both(arity("scan"), "SCAN"),
	both(":4", "DEL", "apple", "Apple", "banana", "a*b"),
	// RENAME and RENAMENX
	both("+OK", "SET", "s", "v"),
	both("-ERR no such key", "RENAME", "nosuch", "x"),
	both("+OK", "RENAME", "s", "s"),
	both(":0", "RENAMENX", "s", "s"),
	both("-ERR no such key", "RENAMENX", "nosuch", "x"),
	both("-ERR no such key", "RENAMENX", "nosuch", "nosuch"),
	both("+OK", "SET", "d", "w"),
	both(":0", "RENAMENX", "s", "d"),
	both(`"w"`, "GET", "d"),
	both(`"v"`, "GET", "s"),
	both(":1", "EXPIRE", "s", "100"),
	both("+OK", "RENAME", "s", "d"),
	both(":100", "TTL", "d"),
	both(`"v"`, "GET", "d"),
	both(":0", "EXISTS", "s"),
	both(":1", "RENAMENX", "d", "s"),
	both(":100", "TTL", "s"),
	both(":0", "EXISTS", "d"),
	both("+OK", "RENAME", "s", "d"),
	both(arity("rename"), "RENAME", "d"),
	both(arity("renamenx"), "RENAMENX", "d", "x", "y"),
	// COPY
	both("-ERR source and destination objects are the same", "COPY", "d", "d"),
	both(":0", "COPY", "nosuch", "e"),
	both(":1", "COPY", "d", "e"),
	both(`"v"`, "GET", "e"),
	both(":100", "TTL", "e"),
	both(`"v"`, "GET", "d"),
	both(":0", "COPY", "d", "e"),
	both("+OK", "SET", "d", "v2", "EX", "200"),
	both(":0", "COPY", "d", "e"),
	both(":1", "COPY", "d", "e", "REPLACE"),
	both(`"v2"`, "GET", "e"),
	both(":200", "TTL", "e"),
	both("+OK", "SET", "d", "v3"),
	both(":0", "COPY", "d", "e", "DB", "0"),
	both(":1", "COPY", "d", "e", "db", "0", "replace"),
	both(":-1", "TTL", "e"),
	both(":1", "COPY", "d", "e", "REPLACE", "REPLACE"),
	both(":0", "COPY", "nosuch", "e", "REPLACE"),
	both(`"v3"`, "GET", "e"),
	ours("-ERR DB index is out of range", "COPY", "d", "e", "DB", "1"),
	ours("-ERR DB index is out of range", "COPY", "d", "d", "DB", "1"),
	both("-ERR DB index is out of range", "COPY", "d", "e", "DB", "16"),
	both("-ERR DB index is out of range", "COPY", "d", "e", "DB", "-1"),
	both(notInt, "COPY", "d", "e", "DB", "x"),
	both(syntaxErr, "COPY", "d", "e", "DB"),
	both(syntaxErr, "COPY", "d", "e", "FOO"),
	both(syntaxErr, "COPY", "d", "d", "FOO"),
	both(arity("copy"), "COPY", "d"),
	both(":2", "DEL", "d", "e"),
	// MSETNX
	both(":1", "MSETNX", "m1", "1", "m2", "2"),
	both(":0", "MSETNX", "m1", "x", "m3", "3"),
	both(":0", "MSETNX", "m3", "3", "m2", "x"),
	both(":0", "EXISTS", "m3"),
	both(`["1" "2"]`, "MGET", "m1", "m2"),
	both(":1", "MSETNX", "k", "1", "k", "2"),
	both(`"2"`, "GET", "k"),
	both(arity("msetnx"), "MSETNX", "x"),
	both(arity("msetnx"), "MSETNX", "x", "1", "y"),
	both(arity("msetnx"), "MSETNX"),
	ours("-ERR key or value too large: key of 1 bytes, value of 1048577 (limits 65536, 1048576); nothing was written", "MSETNX", "n", "1", "x", strings.Repeat("x", 1<<20+1)),
	both(":0", "EXISTS", "n"),
	both(":3", "DBSIZE"),
}

func TestKeyspaceScript(t *testing.T) {
	// Arguments up to 2 MiB, values up to 1 MiB: a value the node refuses
	// after it was read (MSETNX below).
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{MaxValueBytes: 1 << 20}), MaxBulkBytes: 2 << 20})
	runSteps(t, addr, keyspaceScript, false)
}

// TestKeyspaceScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there.
func TestKeyspaceScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runSteps(t, addr, keyspaceScript, true)
}

// TestKeysAndScanListEveryKey: KEYS and a SCAN walk with small COUNTs
// return each key once, whatever the order; MATCH filters.
func TestKeysAndScanListEveryKey(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := newClient(t, addr)
	var want []string
	for i := range 300 {
		k := fmt.Sprint("key:", i)
		want = append(want, k)
		if err := c.Set(bg, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := c.Keys(bg, "key:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("KEYS key:* = %d keys; want the %d set", len(keys), len(want))
	}
	if n, err := c.Keys(bg, "key:1?").Result(); err != nil || len(n) != 10 {
		t.Fatalf("KEYS key:1? = %v, %v; want 10 keys", n, err)
	}
	for _, count := range []int64{1, 7, 1000} {
		seen := map[string]int{}
		cursor := uint64(0)
		for calls := 0; ; calls++ {
			if calls > 10_000 {
				t.Fatal("SCAN did not finish")
			}
			var page []string
			page, cursor, err = c.Scan(bg, cursor, "key:2*", count).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range page {
				seen[k]++
			}
			if cursor == 0 {
				break
			}
		}
		for _, k := range want {
			if m, _ := path.Match("key:2*", k); m != (seen[k] == 1) {
				t.Fatalf("COUNT %d: %q returned %d times", count, k, seen[k])
			}
		}
	}
}

// TestScanGuaranteeWhileWriting walks with SCAN over RESP while other
// clients write, delete and evict keys (the node holds fewer entries than
// are written): every key present throughout is returned.
func TestScanGuaranteeWhileWriting(t *testing.T) {
	node := testNode(t, geocache.Config{MaxEntries: 3000})
	_, addr := startServer(t, Config{Node: node})
	c := newClient(t, addr)
	stable := map[string]bool{}
	for i := range 200 {
		k := fmt.Sprint("stable:", i)
		stable[k] = true
		if err := c.Set(bg, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(bg)
	var wg sync.WaitGroup
	for w := range 2 {
		wc := newClient(t, addr)
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				k := fmt.Sprintf("churn:%d:%d", w, i%6000)
				if i%4 == 3 {
					wc.Del(ctx, k)
				} else {
					wc.Set(ctx, k, i, 0)
				}
				if i%200 == 0 { // keep the stable keys most recently used
					for s := range stable {
						node.Get(s)
					}
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	for round := range 5 {
		seen := map[string]int{}
		cursor := uint64(0)
		for {
			var page []string
			var err error
			page, cursor, err = c.Scan(bg, cursor, "", 20).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range page {
				seen[k]++
			}
			if cursor == 0 {
				break
			}
		}
		for k := range stable {
			if !node.Contains(k) {
				t.Fatalf("the test evicted %q", k)
			}
			if seen[k] != 1 {
				t.Fatalf("round %d: %q returned %d times; want 1", round, k, seen[k])
			}
		}
	}
}

// TestMsetnxAllOrNothing runs MSETNX calls with overlapping keys at once:
// each call's keys end up all holding its values or none of them.
func TestMsetnxAllOrNothing(t *testing.T) {
	_, addr := startServer(t, Config{})
	keys := []string{"a", "b", "c", "d"}
	for round := range 20 {
		c := newClient(t, addr)
		c.Del(bg, keys...)
		type call struct {
			id   int
			keys []string
			ok   bool
		}
		calls := make([]call, 8)
		var wg sync.WaitGroup
		for i := range calls {
			calls[i] = call{id: i, keys: []string{keys[i%4], keys[(i+1)%4], keys[(i+2)%4]}}
			cc := newClient(t, addr)
			wg.Go(func() {
				var kv []any
				for _, k := range calls[i].keys {
					kv = append(kv, k, fmt.Sprint(round, "-", i))
				}
				ok, err := cc.MSetNX(bg, kv...).Result()
				if err != nil {
					t.Error(err)
				}
				calls[i].ok = ok
			})
		}
		wg.Wait()
		vals, err := c.MGet(bg, keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]any{}
		for i, k := range keys {
			got[k] = vals[i]
		}
		wins := 0
		for _, cl := range calls {
			mine := fmt.Sprint(round, "-", cl.id)
			held := 0
			for _, k := range cl.keys {
				if got[k] == mine {
					held++
				}
			}
			switch {
			case cl.ok && held != len(cl.keys):
				t.Fatalf("round %d: call %d answered 1 but holds %d of its %d keys: %v", round, cl.id, held, len(cl.keys), got)
			case !cl.ok && held != 0:
				t.Fatalf("round %d: call %d answered 0 but holds %d keys: %v", round, cl.id, held, got)
			}
			if cl.ok {
				wins++
			}
		}
		if wins != 1 { // any two calls share a key: exactly one can win
			t.Fatalf("round %d: %d calls won; want 1 (%v)", round, wins, got)
		}
	}
}

// TestRenameAndCopyReplicate: RENAME is a write of the destination with
// the source's value and expiry and a delete of the source; COPY a write;
// both reach the other region as they are here.
func TestRenameAndCopyReplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		nodes := memRegions(t, n, "us", "eu")
		linksUp(t, nodes)
		us, eu := nodes[0], nodes[1]
		memServer(t, n, Config{Node: us})
		r := dialMem(t, n, "client")
		for _, st := range []step{
			both("+OK", "GEOCACHE", "ACK", "ALL", ackMillis),
			both("+OK", "SET", "src", "v", "EX", "1000"),
			both("+OK", "SET", "dst", "old"),
			both("+OK", "RENAME", "src", "dst"),
			both(":1", "COPY", "dst", "cp"),
			both(":1", "MSETNX", "m1", "1", "m2", "2"),
			both(":1", "RENAMENX", "m1", "m3"),
		} {
			if got := r.do(st.args...); got != st.want {
				t.Fatalf("%q = %s; want %s", st.args, got, st.want)
			}
		}
		// ACK ALL: the replies came once eu had applied the writes.
		for _, k := range []string{"dst", "cp", "m2", "m3"} {
			want, err := us.Lookup(k)
			if err != nil {
				t.Fatalf("us: %q: %v", k, err)
			}
			got, err := eu.Lookup(k)
			if err != nil || string(got.Value) != string(want.Value) || !got.ExpireAt.Equal(want.ExpireAt) {
				t.Fatalf("eu: %q = %q expiring %v, %v; want %q expiring %v", k, got.Value, got.ExpireAt, err, want.Value, want.ExpireAt)
			}
		}
		if it, err := eu.Lookup("dst"); err != nil || it.ExpireAt.IsZero() || time.Until(it.ExpireAt) > 1000*time.Second {
			t.Fatalf("eu: dst expiry = %v, %v; want src's", it.ExpireAt, err)
		}
		for _, k := range []string{"src", "m1"} {
			if _, err := eu.Lookup(k); err == nil {
				t.Fatalf("eu: %q still exists after the rename", k)
			}
			if _, _, ok := eu.Tombstone(k); !ok {
				t.Fatalf("eu: no tombstone for the renamed %q", k)
			}
		}
	})
}
