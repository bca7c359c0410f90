package resp

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// multiScript is MULTI, EXEC, DISCARD, WATCH and UNWATCH on one
// connection, against Redis 7.0's replies, like stringScript.
var multiScript = []step{
	both("+OK", "FLUSHALL"),
	both("-ERR EXEC without MULTI", "EXEC"),
	both("-ERR DISCARD without MULTI", "DISCARD"),
	both("+OK", "MULTI"),
	both("-ERR MULTI calls can not be nested", "MULTI"),
	both("[]", "EXEC"), // the nested MULTI does not doom the transaction
	both("+OK", "MULTI"),
	both("-ERR WATCH inside MULTI is not allowed", "WATCH", "a"),
	both("[]", "EXEC"),
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "1"),
	both("+QUEUED", "INCR", "a"),
	both("+QUEUED", "GET", "a"),
	both("+QUEUED", "PING"),
	both(`[+OK :2 "2" +PONG]`, "EXEC"),
	// A refused command dooms the transaction: nothing runs.
	both("+OK", "MULTI"),
	both(arity("set"), "SET", "a"),
	both("+QUEUED", "SET", "a", "3"),
	both("-EXECABORT Transaction discarded because of previous errors.", "EXEC"),
	both(`"2"`, "GET", "a"),
	both("+OK", "MULTI"),
	both("-ERR unknown command 'NOSUCH', with args beginning with: 'x' ", "NOSUCH", "x"),
	both("-EXECABORT Transaction discarded because of previous errors.", "EXEC"),
	// An error while running does not stop the others.
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "x"),
	both("+QUEUED", "INCR", "a"),
	both("+QUEUED", "GET", "a"),
	both(`[+OK -ERR value is not an integer or out of range "x"]`, "EXEC"),
	// DISCARD drops the queue.
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "discarded"),
	both("+OK", "DISCARD"),
	both(`"x"`, "GET", "a"),
	// WAIT inside a transaction does not block.
	both("+OK", "MULTI"),
	both("+QUEUED", "WAIT", "0", "0"),
	both("[:0]", "EXEC"),
	// WATCH and UNWATCH outside; UNWATCH is queued inside.
	both(arity("watch"), "WATCH"),
	both("+OK", "WATCH", "a", "b"),
	both("+OK", "UNWATCH"),
	both("+OK", "MULTI"),
	both("+QUEUED", "UNWATCH"),
	both("[+OK]", "EXEC"),
	// The connection's own write to a watched key aborts the EXEC too.
	both("+OK", "WATCH", "a"),
	both("+OK", "SET", "a", "mine"),
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "tx"),
	both("nil", "EXEC"),
	both(`"mine"`, "GET", "a"),
	// EXEC forgets the watched keys: the next transaction runs.
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "tx"),
	both("[+OK]", "EXEC"),
	// A key absent at WATCH and still absent does not abort.
	both("+OK", "WATCH", "nosuch"),
	both("+OK", "MULTI"),
	both("+QUEUED", "GET", "nosuch"),
	both("[nil]", "EXEC"),
	both(arity("multi"), "MULTI", "x"),
	both("-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command", "EXEC", "x"),
	both("+OK", "MULTI"),
	both("+QUEUED", "SET", "a", "never"),
	both("-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command", "EXEC", "x"),
	both("-ERR EXEC without MULTI", "EXEC"),
	both("+OK", "MULTI"),
	both(arity("discard"), "DISCARD", "x"),
	both("-EXECABORT Transaction discarded because of previous errors.", "EXEC"),
}

func TestMultiScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runSteps(t, addr, multiScript, false)
}

// TestMultiScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL there.
func TestMultiScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runSteps(t, addr, multiScript, true)
	watchByOther(t, addr)
}

// WATCH sees another client's write: EXEC answers nil and runs nothing.
func TestWatchAbortsOnOtherClientsWrite(t *testing.T) {
	_, addr := startServer(t, Config{})
	watchByOther(t, addr)
}

func watchByOther(t *testing.T, addr string) {
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, st := range []struct {
		c    *rawConn
		args []string
		want string
	}{
		{a, []string{"SET", "w", "0"}, "+OK"},
		{a, []string{"WATCH", "w"}, "+OK"},
		{b, []string{"SET", "w", "1"}, "+OK"},
		{a, []string{"MULTI"}, "+OK"},
		{a, []string{"SET", "w", "2"}, "+QUEUED"},
		{a, []string{"EXEC"}, "nil"},
		{a, []string{"GET", "w"}, `"1"`},
		{a, []string{"WATCH", "w"}, "+OK"},
		{b, []string{"DEL", "w"}, ":1"},
		{a, []string{"MULTI"}, "+OK"},
		{a, []string{"SET", "w", "3"}, "+QUEUED"},
		{a, []string{"EXEC"}, "nil"},
		{a, []string{"EXISTS", "w"}, ":0"},
	} {
		if got := st.c.do(st.args...); got != st.want {
			t.Fatalf("%q: got %s, want %s", st.args, got, st.want)
		}
	}
}

// Transactions are isolated from the commands of other clients on the
// same keys: with go-redis's TxPipeline, concurrent "GET a; GET b" never
// see a transaction's "SET a n; SET b n" half done, and optimistic
// increments with WATCH lose no update.
func TestMultiIsolation(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := newClient(t, addr)
	const rounds = 300
	var wg sync.WaitGroup
	done := pairWriter(t, &wg, c, rounds)
	var torn []string
	for reading := true; reading; {
		select {
		case <-done:
			reading = false // one more read after the last transaction
		default:
		}
		vals, err := c.MGet(bg, "{x}a", "{x}b").Result()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(vals[0]) != fmt.Sprint(vals[1]) {
			torn = append(torn, fmt.Sprint(vals))
		}
	}
	wg.Wait()
	if len(torn) > 0 {
		t.Fatalf("MGET saw %d half-done transactions, e.g. %s", len(torn), torn[0])
	}

	// Compare-and-set with WATCH from 4 clients: every increment lands
	// exactly once.
	const workers, each = 4, 50
	for range workers {
		wg.Go(func() {
			for range each {
				for {
					err := c.Watch(bg, func(tx *redis.Tx) error {
						n, err := tx.Get(bg, "counter").Int()
						if err != nil && err != redis.Nil {
							return err
						}
						_, err = tx.TxPipelined(bg, func(p redis.Pipeliner) error {
							p.Set(bg, "counter", strconv.Itoa(n+1), 0)
							return nil
						})
						return err
					}, "counter")
					if err == nil {
						break
					}
					if err != redis.TxFailedErr {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if n, err := c.Get(bg, "counter").Int(); err != nil || n != workers*each {
		t.Fatalf("counter = %d, %v; want %d", n, err, workers*each)
	}
}

// A transaction made in one region is applied as one unit in another:
// eu's readers never see half of a us EXEC. (The apply is quick, so this
// checks the path end to end; TestBatchGateIsolatesClients shows the
// gate's isolation with a slow apply.)
func TestMultiAppliedAsOneUnitInOtherRegions(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	_, aus := startServer(t, Config{Node: nodes[0]})
	_, aeu := startServer(t, Config{Node: nodes[1]})
	linksUp(t, nodes)
	cus, ceu := newClient(t, aus), newClient(t, aeu)
	const rounds = 300
	var wg sync.WaitGroup
	done := pairWriter(t, &wg, cus, rounds)
	var torn []string
	last := ""
	for {
		vals, err := ceu.MGet(bg, "{x}a", "{x}b").Result()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(vals[0]) != fmt.Sprint(vals[1]) {
			torn = append(torn, fmt.Sprint(vals))
		}
		last = fmt.Sprint(vals[0])
		select {
		case <-done:
		default:
			continue
		}
		if last == strconv.Itoa(rounds) { // the last transaction arrived
			break
		}
	}
	wg.Wait()
	if len(torn) > 0 {
		t.Fatalf("eu saw %d half-applied transactions, e.g. %s", len(torn), torn[0])
	}
}

// The server's BatchGate holds back its clients' commands on the batch's
// keys while a replicated transaction applies: with the apply made slow on
// purpose, a concurrent MGET still never sees half of it.
func TestBatchGateIsolatesClients(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := newClient(t, addr)
	node := s.node
	ctx := bg
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 50; i++ {
			v := []byte(strconv.Itoa(i))
			s.applyBatch([]string{"{g}a", "{g}b"}, func() {
				node.Set(ctx, "{g}a", v)
				time.Sleep(200 * time.Microsecond) // a reader would see a torn pair now
				node.Set(ctx, "{g}b", v)
			})
		}
	}()
	var torn []string
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		vals, err := c.MGet(bg, "{g}a", "{g}b").Result()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(vals[0]) != fmt.Sprint(vals[1]) {
			torn = append(torn, fmt.Sprint(vals))
		}
	}
	if len(torn) > 0 {
		t.Fatalf("MGET saw %d half-applied batches, e.g. %s", len(torn), torn[0])
	}
}

// pairWriter writes {x}a and {x}b to the same value, 1 to rounds, each
// round one transaction, on a goroutine of wg; the channel closes after
// the last.
func pairWriter(t *testing.T, wg *sync.WaitGroup, c *redis.Client, rounds int) <-chan struct{} {
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := 1; i <= rounds; i++ {
			if _, err := c.TxPipelined(bg, func(p redis.Pipeliner) error {
				p.Set(bg, "{x}a", i, 0)
				p.Set(bg, "{x}b", i, 0)
				return nil
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	return done
}
