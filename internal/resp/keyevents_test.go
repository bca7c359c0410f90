package resp

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// evStep is one step of keyEventScript: commands sent in order on the
// commanding connection (each reply checked when want is not "*"), then
// the keyspace events they announced, as "key:event" in the order the
// keyevent channel carried them.
type evStep struct {
	cmds   [][]string
	wants  []string
	events []string
}

// ev is a step of one command.
func ev(cmdline, want string, events ...string) evStep {
	return evStep{cmds: [][]string{fields(cmdline)}, wants: []string{want}, events: events}
}

// fields splits a command line at spaces; an argument of two single quotes
// stands for an empty one.
func fields(cmdline string) []string {
	f := strings.Fields(cmdline)
	for i, a := range f {
		if a == "''" {
			f[i] = ""
		}
	}
	return f
}

// evs is a step of several commands, whose events are checked together:
// Redis announces the expiry of a key SET with a time in the past when
// something next touches it, geocache at once.
func evs(cmdlines []string, events ...string) evStep {
	st := evStep{events: events}
	for _, c := range cmdlines {
		st.cmds = append(st.cmds, fields(c))
		st.wants = append(st.wants, "*")
	}
	return st
}

// keyEventScript is every write command geocache answers, with the
// keyspace events redis-server 7.0.15 announces for it (notify-keyspace-
// events AKEn: every class, new included): the same names, classes and
// order. A command that changes nothing announces nothing.
var keyEventScript = []evStep{
	// strings
	ev("SET a 1", "+OK", "a:new", "a:set"),
	ev("SET a 2", "+OK", "a:set"),
	ev("SET a 3 EX 100", "+OK", "a:set", "a:expire"),
	ev("SET a 4 KEEPTTL", "+OK", "a:set"),
	ev("SET a 5 PX 100000 GET", `"4"`, "a:set", "a:expire"),
	ev("SET a 6 NX", "nil"),
	ev("SET b 6 XX", "nil"),
	ev("SET a 7 XX EXAT 99999999999", "+OK", "a:set", "a:expire"),
	evs([]string{"SET a 8 EXAT 1", "EXISTS a"}, "a:set", "a:expire", "a:expired"),
	evs([]string{"SET b 8 PXAT 1000", "EXISTS b"}, "b:new", "b:set", "b:expire", "b:expired"),
	ev("SETEX a 100 v", "+OK", "a:new", "a:set", "a:expire"),
	ev("PSETEX a 100000 v", "+OK", "a:set", "a:expire"),
	ev("SETNX n 1", ":1", "n:new", "n:set"),
	ev("SETNX n 2", ":0"),
	ev("GETSET n 3", `"1"`, "n:set"),
	ev("GETSET m 3", "nil", "m:new", "m:set"),
	ev("MSET m 1 o 2", "+OK", "m:set", "o:new", "o:set"),
	ev("MSETNX p 1 q 2", ":1", "p:new", "p:set", "q:new", "q:set"),
	ev("MSETNX q 1 r 2", ":0"),
	ev("GETDEL p", `"1"`, "p:del"),
	ev("GETDEL p", "nil"),
	ev("APPEND g x", ":1", "g:new", "g:append"),
	ev("APPEND g y", ":2", "g:append"),
	ev("APPEND e ''", ":0", "e:new", "e:append"),
	ev("APPEND e ''", ":0", "e:append"),
	ev("SETRANGE g 1 Z", ":2", "g:setrange"),
	ev("SETRANGE g 3 Z", ":4", "g:setrange"),
	ev("SETRANGE g 0 ''", ":4"),
	ev("SETRANGE h 0 ''", ":0"),
	ev("SETRANGE i 2 Z", ":3", "i:new", "i:setrange"),
	ev("SETBIT j 3 1", ":0", "j:new", "j:setbit"),
	ev("SETBIT j 3 1", ":1"),
	ev("SETBIT j 3 0", ":1", "j:setbit"),
	ev("SETBIT j 5 0", ":0"),
	ev("SETBIT j 20 0", ":0", "j:setbit"),
	ev("SETBIT k 3 0", ":0", "k:new", "k:setbit"),
	// counters
	ev("INCR c", ":1", "c:new", "c:incrby"),
	ev("INCRBY c 5", ":6", "c:incrby"),
	ev("DECR c", ":5", "c:incrby"),
	ev("DECRBY c 2", ":3", "c:incrby"),
	ev("INCRBY c 0", ":3", "c:incrby"),
	ev("INCR g", notInt),
	ev("INCRBYFLOAT f 1.5", `"1.5"`, "f:new", "f:incrbyfloat"),
	ev("INCRBYFLOAT c 1", `"4"`, "c:incrbyfloat"),
	ev("INCRBYFLOAT g 1", "-ERR value is not a valid float"),
	// expiry
	ev("EXPIRE n 100", ":1", "n:expire"),
	ev("PEXPIRE n 100000", ":1", "n:expire"),
	ev("EXPIREAT n 99999999999", ":1", "n:expire"),
	ev("PEXPIREAT n 99999999999000", ":1", "n:expire"),
	ev("EXPIRE n 100 NX", ":0"),
	ev("EXPIRE n 200 XX", ":1", "n:expire"),
	ev("EXPIRE nosuch 10", ":0"),
	ev("PERSIST n", ":1", "n:persist"),
	ev("PERSIST n", ":0"),
	ev("EXPIRE n -1", ":1", "n:del"),
	ev("EXPIREAT m 1", ":1", "m:del"),
	ev("SET t v", "+OK", "t:new", "t:set"),
	ev("GETEX t EX 100", `"v"`, "t:expire"),
	ev("GETEX t", `"v"`),
	ev("GETEX t PERSIST", `"v"`, "t:persist"),
	ev("GETEX t PERSIST", `"v"`),
	ev("GETEX t PXAT 1", `"v"`, "t:del"),
	ev("EXPIRE c 100", ":1", "c:expire"), // of a counter
	// keys
	ev("DEL o nosuch q", ":2", "o:del", "q:del"),
	ev("SET u v", "+OK", "u:new", "u:set"),
	ev("UNLINK u", ":1", "u:del"),
	ev("RENAME a a2", "+OK", "a2:new", "a:rename_from", "a2:rename_to"),
	ev("RENAME a2 g", "+OK", "g:new", "a2:rename_from", "g:rename_to"), // over a key: new all the same
	ev("RENAME g g", "+OK"),
	ev("RENAMENX g i", ":0"),
	ev("RENAMENX g a", ":1", "a:new", "g:rename_from", "a:rename_to"),
	ev("COPY a a3", ":1", "a3:new", "a3:copy_to"),
	ev("COPY a a3", ":0"),
	ev("COPY a a3 REPLACE", ":1", "a3:new", "a3:copy_to"),
	// hashes
	ev("HSET h a 1 b 2", ":2", "h:new", "h:hset"),
	ev("HSET h a 1", ":0", "h:hset"),
	ev("HMSET h c 3", "+OK", "h:hset"),
	ev("HSETNX h a 9", ":0"),
	ev("HSETNX h d 4", ":1", "h:hset"),
	ev("HINCRBY h n 1", ":1", "h:hincrby"),
	ev("HINCRBY h n 0", ":1", "h:hincrby"),
	ev("HINCRBYFLOAT h f 1.5", `"1.5"`, "h:hincrbyfloat"),
	ev("HINCRBY h a x", "-ERR value is not an integer or out of range"),
	ev("HDEL h zz", ":0"),
	ev("HDEL h a b", ":2", "h:hdel"),
	ev("EXPIRE h 100", ":1", "h:expire"),
	ev("PERSIST h", ":1", "h:persist"),
	ev("RENAME h h2", "+OK", "h2:new", "h:rename_from", "h2:rename_to"),
	ev("COPY h2 h3", ":1", "h3:new", "h3:copy_to"),
	ev("HDEL h2 c d n f", ":4", "h2:hdel", "h2:del"),
	ev("HSET h2 x 1", ":1", "h2:new", "h2:hset"),
	ev("DEL h2 h3", ":2", "h2:del", "h3:del"),
	// refused (WRONGTYPE): nothing changes, nothing is announced
	ev("HSET a x 1", errWrongTypeReply),
	ev("APPEND h2 x", ":1", "h2:new", "h2:append"),
	ev("HSET h2 x 1", errWrongTypeReply),
	ev("HSET h3 x 1", ":1", "h3:new", "h3:hset"),
	ev("SET h3 x GET", errWrongTypeReply),
	ev("APPEND h3 x", errWrongTypeReply),
	ev("INCR h3", errWrongTypeReply),
	ev("SET h3 x", "+OK", "h3:set"),
	// a transaction: its commands' events, in order
	evs([]string{"MULTI", "INCR c", "APPEND c x", "DEL c", "EXEC"}, "c:incrby", "c:append", "c:del"),
	// FLUSHALL announces nothing
	ev("FLUSHALL", "+OK"),
	ev("SET z 1", "+OK", "z:new", "z:set"),
}

const errWrongTypeReply = "-" + errWrongType

// TestKeyEventScript runs keyEventScript against geocache.
func TestKeyEventScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runKeyEventScript(t, addr)
}

// TestKeyEventScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
// It runs FLUSHALL and CONFIG SET notify-keyspace-events there (and sets
// it back to "" at the end).
func TestKeyEventScriptAgainstRedis(t *testing.T) {
	runKeyEventScript(t, redisAddr(t))
}

// pmessage is a keyspace notification's frame, as rawConn renders it.
var pmessage = regexp.MustCompile(`^\["pmessage" "__key\*" "(__keyspace@0__:|__keyevent@0__:|__key_sentinel)(.*)" "(.*)"\]$`)

func runKeyEventScript(t *testing.T, addr string) {
	r, sub := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range [][]string{{"FLUSHALL"}, {"CONFIG", "SET", "notify-keyspace-events", "AKEn"}} {
		if got := r.do(c...); got != "+OK" {
			t.Fatalf("%q: %s", c, got)
		}
	}
	defer r.do("CONFIG", "SET", "notify-keyspace-events", "")
	if got := sub.do("PSUBSCRIBE", "__key*"); got != `["psubscribe" "__key*" :1]` {
		t.Fatalf("PSUBSCRIBE: %s", got)
	}
	for i, st := range keyEventScript {
		for j, c := range st.cmds {
			if got := r.do(c...); st.wants[j] != "*" && got != st.wants[j] {
				t.Errorf("step %d %q: got %s\n\twant %s", i, c, got, st.wants[j])
			}
		}
		// Both servers publish a command's events while it runs, so
		// they come before this message.
		sentinel := strconv.Itoa(i)
		if got := r.do("PUBLISH", "__key_sentinel", sentinel); got != ":1" {
			t.Fatalf("step %d: PUBLISH of the sentinel: %s", i, got)
		}
		var events []string
		var keyspace string // the keyspace message not yet matched by its keyevent one
		for {
			f := sub.frame()
			m := pmessage.FindStringSubmatch(f)
			if m == nil {
				t.Fatalf("step %d %q: subscriber got %s", i, st.cmds, f)
			}
			if m[1] == "__key_sentinel" {
				if m[3] != sentinel {
					t.Fatalf("step %d: sentinel %s, want %s", i, m[3], sentinel)
				}
				break
			}
			// Every event comes on the keyspace channel first, then on
			// the keyevent one, as in Redis.
			switch m[1] {
			case "__keyspace@0__:":
				if keyspace != "" {
					t.Errorf("step %d %q: keyspace event %s not followed by its keyevent one", i, st.cmds, keyspace)
				}
				keyspace = m[2] + ":" + m[3]
			default:
				e := m[3] + ":" + m[2]
				if keyspace != e {
					t.Errorf("step %d %q: keyevent %s after keyspace %q", i, st.cmds, e, keyspace)
				}
				keyspace = ""
				events = append(events, e)
			}
		}
		if !slices.Equal(events, st.events) {
			t.Errorf("step %d %q: events %q\n\twant %q", i, st.cmds, events, st.events)
		}
	}
}

// TestKeyEventsOfReplicatedWrites: a region announces the writes it
// receives from another by what they left here: set for a string, incrby
// for a counter, hset for a hash, del for a delete or a hash's last field
// deleted (the region that made them announced Redis's events).
func TestKeyEventsOfReplicatedWrites(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	_, aus := startServer(t, Config{Node: nodes[0]})
	_, aeu := startServer(t, Config{Node: nodes[1]})
	linksUp(t, nodes)
	us, eu := dialRaw(t, aus), dialRaw(t, aeu)
	if got := eu.do("CONFIG", "SET", "notify-keyspace-events", "AE"); got != "+OK" {
		t.Fatal(got)
	}
	sub := dialRaw(t, aeu)
	if got := sub.do("PSUBSCRIBE", "__keyevent@0__:*"); got != `["psubscribe" "__keyevent@0__:*" :1]` {
		t.Fatalf("PSUBSCRIBE: %s", got)
	}
	for _, st := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"SET", "s", "v", "EX", "100"}, "set s"},
		{[]string{"APPEND", "s", "w"}, "set s"},
		{[]string{"EXPIRE", "s", "200"}, "set s"},
		{[]string{"INCR", "c"}, "incrby c"},
		{[]string{"HSET", "h", "f", "v"}, "hset h"},
		{[]string{"HINCRBY", "h", "n", "1"}, "hset h"},
		{[]string{"HDEL", "h", "f", "n"}, "del h"},
		{[]string{"DEL", "s"}, "del s"},
	} {
		us.do(st.cmd...)
		f := sub.frame() // only catches a hang (30 s)
		want := `["pmessage" "__keyevent@0__:*" "__keyevent@0__:` + strings.Fields(st.want)[0] + `" "` + strings.Fields(st.want)[1] + `"]`
		if f != want {
			t.Errorf("%q in us: eu announced %s, want %s", st.cmd, f, want)
		}
	}
}
