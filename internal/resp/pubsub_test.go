package resp

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// psStep is one step of a pub/sub script: client sends args (none: it only
// reads) and reads one reply per element of want, rendered by readFrame
// ("*" accepts any reply).
type psStep struct {
	client int
	args   []string
	want   []string
	// geocacheOnly: geocache deliberately answers otherwise than Redis
	// 7.0 (see commandScript).
	geocacheOnly bool
}

// The clients of pubsubScript.
const (
	subA = iota // the main subscriber
	pubB        // a publisher, later a subscriber too
	cliC        // a third client
	psClients
)

// on is a step where geocache answers as Redis does. cmdline is split on
// spaces; two single quotes stand for an empty argument; "" sends
// nothing.
func on(client int, cmdline string, want ...string) psStep {
	var args []string
	if cmdline != "" {
		for _, a := range strings.Split(cmdline, " ") {
			if a == "''" {
				a = ""
			}
			args = append(args, a)
		}
	}
	return psStep{client: client, args: args, want: want}
}

// onOurs is a step only geocache answers this way.
func onOurs(client int, cmdline string, want ...string) psStep {
	st := on(client, cmdline, want...)
	st.geocacheOnly = true
	return st
}

func cantExecute(name string) string {
	return "-ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
}

// pubsubScript is SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
// PUBLISH and PUBSUB against Redis 7.0's behaviour, in RESP2 and RESP3,
// with three clients. Replies that list several channels in Redis's hash
// order are checked by the other tests. Push frames (RESP3) render as
// ">[...]". The channels start with "ps:" so that the script can run
// against a Redis other clients use (but PUBSUB NUMPAT counts theirs).
var pubsubScript = []psStep{
	// Not subscribed: UNSUBSCRIBE and PUNSUBSCRIBE answer, arities.
	on(subA, "UNSUBSCRIBE", `["unsubscribe" nil :0]`),
	on(subA, "PUNSUBSCRIBE", `["punsubscribe" nil :0]`),
	on(subA, "UNSUBSCRIBE ps:a ps:b", `["unsubscribe" "ps:a" :0]`, `["unsubscribe" "ps:b" :0]`),
	on(subA, "SUBSCRIBE", arity("subscribe")),
	on(subA, "PSUBSCRIBE", arity("psubscribe")),
	on(pubB, "PUBLISH ps:a", arity("publish")),
	on(pubB, "PUBLISH ps:a b c", arity("publish")),
	on(pubB, "PUBLISH ps:a nobody", ":0"),
	// SUBSCRIBE: one confirmation per argument, repeats included, with
	// the subscriptions so far.
	on(subA, "SUBSCRIBE ps:a ps:b ps:a", `["subscribe" "ps:a" :1]`, `["subscribe" "ps:b" :2]`, `["subscribe" "ps:a" :2]`),
	// Subscribed mode in RESP2: PING answers an array, other commands are
	// refused after the unknown-command and arity errors, a container's
	// with its subcommand's name.
	on(subA, "PING", `["pong" ""]`),
	on(subA, "PING hi", `["pong" "hi"]`),
	on(subA, "PING a b", arity("ping")),
	on(subA, "GET k", cantExecute("get")),
	on(subA, "ECHO x", cantExecute("echo")),
	on(subA, "FOO", "-ERR unknown command 'FOO', with args beginning with: "),
	on(subA, "GET", arity("get")),
	on(subA, "SUBSCRIBE", arity("subscribe")),
	on(subA, "PUBLISH ps:a x", cantExecute("publish")),
	on(subA, "HELLO 3", cantExecute("hello")),
	on(subA, "AUTH x", cantExecute("auth")),
	on(subA, "CLIENT LIST", cantExecute("client|list")),
	on(subA, "CLIENT GETNAME x", arity("client|getname")),
	on(subA, "CLIENT FOO", "-ERR unknown subcommand 'FOO'. Try CLIENT HELP."),
	on(subA, "CLIENT", arity("client")),
	on(subA, "CONFIG GET x", cantExecute("config|get")),
	on(subA, "CONFIG FOO", "-ERR unknown subcommand 'FOO'. Try CONFIG HELP."),
	on(subA, "PUBSUB NUMPAT", cantExecute("pubsub|numpat")),
	on(subA, "PUBSUB NUMPAT x", arity("pubsub|numpat")),
	on(subA, "COMMAND", cantExecute("command")),
	// PSUBSCRIBE: the count covers channels and patterns.
	on(subA, "PSUBSCRIBE ps:h* ps:a", `["psubscribe" "ps:h*" :3]`, `["psubscribe" "ps:a" :4]`),
	// PUBLISH answers the receivers; a subscriber of the channel and of a
	// matching pattern counts twice and gets both, message first.
	on(pubB, "PUBLISH ps:a hello", ":2"),
	on(subA, "", `["message" "ps:a" "hello"]`, `["pmessage" "ps:a" "ps:a" "hello"]`),
	on(pubB, "PUBLISH ps:zz nobody", ":0"),
	on(pubB, "PUBLISH ps:hat x", ":1"),
	on(pubB, "PUBLISH ps:b hi", ":1"),
	// ps:zz reached nobody: the next frame is ps:hat's.
	on(subA, "", `["pmessage" "ps:h*" "ps:hat" "x"]`, `["message" "ps:b" "hi"]`),
	// PUBSUB, from a client that is not subscribed.
	on(pubB, "PUBSUB CHANNELS ps:a*", `["ps:a"]`),
	on(pubB, "PUBSUB CHANNELS ps:h*", `[]`), // a pattern is not a channel
	onOurs(pubB, "PUBSUB CHANNELS ps:*", `["ps:a" "ps:b"]`),
	on(pubB, "PUBSUB NUMSUB ps:a ps:b ps:c", `["ps:a" :1 "ps:b" :1 "ps:c" :0]`),
	on(pubB, "PUBSUB NUMSUB", `[]`),
	on(pubB, "pubsub numsub ps:h*", `["ps:h*" :0]`),
	on(pubB, "PUBSUB NUMPAT", ":2"),
	on(pubB, "PUBSUB", arity("pubsub")),
	on(pubB, "PUBSUB FOO", "-ERR unknown subcommand 'FOO'. Try PUBSUB HELP."),
	on(pubB, "PUBSUB NUMPAT x", arity("pubsub|numpat")),
	on(pubB, "PUBSUB HELP x", arity("pubsub|help")),
	on(pubB, "PUBSUB CHANNELS a b", "-ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP."),
	on(pubB, "PUBSUB channels a b", "-ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP."),
	// Redis's HELP also lists the sharded commands, which geocache lacks.
	onOurs(pubB, "PUBSUB HELP", `[+PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are: +CHANNELS [<pattern>] `+
		`+    Return the currently active channels matching a <pattern> (default: '*'). +NUMPAT +    Return number of subscriptions to patterns. `+
		`+NUMSUB [<channel> ...] +    Return the number of subscribers for the specified channels, excluding `+
		`+    pattern subscriptions(default: no channels). +HELP +    Prints this help.]`),
	// A second subscriber; one pattern twice is one subscription.
	on(pubB, "PSUBSCRIBE ps:p* ps:p* ps:q?", `["psubscribe" "ps:p*" :1]`, `["psubscribe" "ps:p*" :1]`, `["psubscribe" "ps:q?" :2]`),
	on(cliC, "PUBSUB NUMPAT", ":4"),
	on(cliC, "PUBLISH ps:pp x", ":1"),
	on(pubB, "", `["pmessage" "ps:p*" "ps:pp" "x"]`),
	// PUNSUBSCRIBE without arguments: every pattern, in the order they
	// were made; then the client is back to normal.
	on(pubB, "PUNSUBSCRIBE", `["punsubscribe" "ps:p*" :1]`, `["punsubscribe" "ps:q?" :0]`),
	on(pubB, "GET ps:nosuch", "nil"),
	on(pubB, "PING", "+PONG"),
	on(cliC, "PUBLISH ps:pp x", ":0"),
	on(cliC, "PUBSUB NUMPAT", ":2"),
	// UNSUBSCRIBE of some channels, of one never subscribed, of all.
	on(subA, "UNSUBSCRIBE ps:a ps:x", `["unsubscribe" "ps:a" :3]`, `["unsubscribe" "ps:x" :3]`),
	on(cliC, "PUBLISH ps:a again", ":1"),
	on(subA, "", `["pmessage" "ps:a" "ps:a" "again"]`),
	on(subA, "PUNSUBSCRIBE", `["punsubscribe" "ps:h*" :2]`, `["punsubscribe" "ps:a" :1]`),
	on(subA, "UNSUBSCRIBE", `["unsubscribe" "ps:b" :0]`),
	on(subA, "UNSUBSCRIBE", `["unsubscribe" nil :0]`),
	on(subA, "PING", "+PONG"),
	on(subA, "GET ps:nosuch", "nil"),
	on(cliC, "PUBSUB NUMSUB ps:a ps:b", `["ps:a" :0 "ps:b" :0]`),
	// RESP3: confirmations and messages are pushes, and every command
	// runs while subscribed.
	on(subA, "HELLO 3", "*"),
	on(subA, "UNSUBSCRIBE", `>["unsubscribe" nil :0]`),
	on(subA, "PUNSUBSCRIBE ps:x", `>["punsubscribe" "ps:x" :0]`),
	on(subA, "SUBSCRIBE ps:r", `>["subscribe" "ps:r" :1]`),
	on(subA, "PING", "+PONG"),
	on(subA, "PING x", `"x"`),
	on(subA, "GET ps:nosuch", "nil"),
	on(subA, "ECHO e", `"e"`),
	on(subA, "PSUBSCRIBE ps:r*", `>["psubscribe" "ps:r*" :2]`),
	// Its own message comes before the reply to its PUBLISH, as in Redis.
	on(subA, "PUBLISH ps:r m1", `>["message" "ps:r" "m1"]`, `>["pmessage" "ps:r*" "ps:r" "m1"]`, ":2"),
	on(pubB, "PUBLISH ps:r m2", ":2"),
	on(subA, "", `>["message" "ps:r" "m2"]`, `>["pmessage" "ps:r*" "ps:r" "m2"]`),
	on(subA, "PUBSUB NUMSUB ps:r", `["ps:r" :1]`),
	// HELLO 2 while subscribed: RESP2 rules again, and no way back.
	on(subA, "HELLO 2", "*"),
	on(subA, "GET ps:k", cantExecute("get")),
	on(subA, "HELLO 3", cantExecute("hello")),
	on(pubB, "PUBLISH ps:r m3", ":2"),
	on(subA, "", `["message" "ps:r" "m3"]`, `["pmessage" "ps:r*" "ps:r" "m3"]`),
	on(subA, "UNSUBSCRIBE", `["unsubscribe" "ps:r" :1]`),
	on(subA, "PUNSUBSCRIBE", `["punsubscribe" "ps:r*" :0]`),
	on(subA, "HELLO 3", "*"),
	on(subA, "UNSUBSCRIBE ps:a ps:b", `>["unsubscribe" "ps:a" :0]`, `>["unsubscribe" "ps:b" :0]`),
	on(subA, "HELLO 2", "*"),
	// The empty channel: no pattern matches it, not even "*" (Redis's
	// matcher), though PUBSUB CHANNELS without a pattern lists it.
	on(subA, "SUBSCRIBE ''", `["subscribe" "" :1]`),
	on(pubB, "PSUBSCRIBE *", `["psubscribe" "*" :1]`),
	on(cliC, "PUBLISH '' e", ":1"),
	on(subA, "", `["message" "" "e"]`),
	on(cliC, "PUBSUB NUMSUB ''", `["" :1]`),
	on(pubB, "PSUBSCRIBE ''", `["psubscribe" "" :2]`), // the empty pattern matches it
	on(cliC, "PUBLISH '' f", ":2"),
	on(subA, "", `["message" "" "f"]`),
	on(pubB, "", `["pmessage" "" "" "f"]`),
	on(pubB, "PUNSUBSCRIBE", `["punsubscribe" "*" :1]`, `["punsubscribe" "" :0]`),
	on(subA, "UNSUBSCRIBE ''", `["unsubscribe" "" :0]`),
	// QUIT while subscribed answers and closes.
	on(subA, "SUBSCRIBE ps:q", `["subscribe" "ps:q" :1]`),
	on(subA, "QUIT", "+OK"),
}

func TestPubSubScript(t *testing.T) {
	_, addr := startServer(t, Config{})
	runPubSubScript(t, addr, false)
}

// TestPubSubScriptAgainstRedis checks the script against a real Redis:
// REDIS_ADDR=127.0.0.1:6379 go test -run AgainstRedis ./internal/resp/.
func TestPubSubScriptAgainstRedis(t *testing.T) {
	addr := redisAddr(t)
	runPubSubScript(t, addr, true)
}

func runPubSubScript(t *testing.T, addr string, redis bool) {
	var clients [psClients]*rawConn
	for i := range clients {
		clients[i] = dialRaw(t, addr)
	}
	for i, st := range pubsubScript {
		if redis && st.geocacheOnly {
			continue
		}
		r := clients[st.client]
		if st.args != nil {
			r.send(cmd(st.args...))
		}
		for j, want := range st.want {
			if got := r.frame(); want != "*" && got != want {
				t.Fatalf("step %d (client %d) %q, reply %d: got %s\n\twant %s", i, st.client, st.args, j, got, want)
			}
		}
	}
	clients[subA].expectClosed("")
}

// frame reads one reply or push, rendered as readReply does, a push
// (RESP3 '>') with a leading ">".
func (r *rawConn) frame() string {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	b, err := r.br.Peek(1)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	s := r.reply()
	if b[0] == '>' {
		s = ">" + s
	}
	return s
}

// TestPubSubGoRedis runs go-redis's PubSub (Subscribe, PSubscribe,
// Channel) end to end, in RESP2 and RESP3, across two regions: a message
// published in us reaches a subscriber in eu, and one published in eu
// both.
func TestPubSubGoRedis(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprint("RESP", proto), func(t *testing.T) {
			nodes := openRegions(t, "us", "eu")
			_, aus := startServer(t, Config{Node: nodes[0]})
			_, aeu := startServer(t, Config{Node: nodes[1]})
			linksUp(t, nodes)
			resp := func(o *redis.Options) { o.Protocol = proto }
			cus, ceu := newClient(t, aus, resp), newClient(t, aeu, resp)

			sub := ceu.Subscribe(bg, "news")
			defer sub.Close()
			if _, err := sub.Receive(bg); err != nil { // the confirmation
				t.Fatal(err)
			}
			if err := sub.PSubscribe(bg, "sport.*"); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, "the subscriptions", func() bool {
				n, err := ceu.PubSubNumPat(bg).Result()
				return err == nil && n == 1
			})
			ch := sub.Channel()
			// Published in us: eu's subscriber counts on eu, not here.
			if n, err := cus.Publish(bg, "news", "from us").Result(); err != nil || n != 0 {
				t.Fatalf("PUBLISH in us = %d, %v; want 0 receivers in us", n, err)
			}
			if n, err := ceu.Publish(bg, "sport.tennis", "from eu").Result(); err != nil || n != 1 {
				t.Fatalf("PUBLISH in eu = %d, %v; want 1 receiver", n, err)
			}
			got := map[string]string{}
			for range 2 {
				select {
				case m := <-ch:
					got[m.Channel] = m.Pattern + "|" + m.Payload
				case <-time.After(testkit.EventuallyTimeout):
					t.Fatalf("messages so far %v; want two", got)
				}
			}
			if got["news"] != "|from us" || got["sport.tennis"] != "sport.*|from eu" {
				t.Fatalf("messages %v", got)
			}
			if err := sub.Ping(bg, "hi"); err != nil {
				t.Fatalf("PING on the subscribed connection: %v", err)
			}
			if chs, err := ceu.PubSubChannels(bg, "*").Result(); err != nil || len(chs) != 1 || chs[0] != "news" {
				t.Fatalf("PUBSUB CHANNELS = %v, %v", chs, err)
			}
			if n, err := ceu.PubSubNumSub(bg, "news", "none").Result(); err != nil || n["news"] != 1 || n["none"] != 0 {
				t.Fatalf("PUBSUB NUMSUB = %v, %v", n, err)
			}
			if err := sub.Unsubscribe(bg, "news"); err != nil {
				t.Fatal(err)
			}
			if err := sub.PUnsubscribe(bg); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, "the unsubscriptions", func() bool {
				n, err := ceu.Publish(bg, "news", "x").Result()
				m, err2 := ceu.PubSubNumPat(bg).Result()
				return err == nil && err2 == nil && n == 0 && m == 0
			})
		})
	}
}

// TestPubSubOrderAcrossRegions: the messages a node publishes reach a
// subscriber in another region in the order they were published, each
// once, after the writes the node made before them.
func TestPubSubOrderAcrossRegions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		nodes := memRegions(t, n, "us", "eu")
		linksUp(t, nodes)
		us := nodes[0]
		memServer(t, n, Config{Node: nodes[1]})
		r := dialMem(t, n, "client")
		if got := r.do("SUBSCRIBE", "c"); got != `["subscribe" "c" :1]` {
			t.Fatalf("SUBSCRIBE: %s", got)
		}
		const msgs = 200
		for i := range msgs {
			if i == msgs/2 {
				if err := us.Set(bg, "k", []byte("written before message 100")); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := us.Publish(bg, "c", []byte(strconv.Itoa(i))); err != nil || got != 0 {
				t.Fatalf("Publish in us = %d, %v; want 0 receivers there", got, err)
			}
		}
		for i := range msgs {
			if got, want := r.reply(), `["message" "c" "`+strconv.Itoa(i)+`"]`; got != want {
				t.Fatalf("message %d: %s; want %s", i, got, want)
			}
			if i == msgs/2 && !nodes[1].Contains("k") {
				t.Fatalf("message %d arrived in eu before the write us made before it", i)
			}
		}
	})
}

// TestPubSubSlowSubscribersDisconnected is the attack: subscribers that
// never read while a client publishes large messages. Each is
// disconnected once its unwritten output reaches the hard limit (counted,
// logged with its address); the bytes queued never pass the limit, the
// heap does not grow with what is published, and a subscriber that reads
// gets every message and stays.
func TestPubSubSlowSubscribersDisconnected(t *testing.T) {
	const (
		hard    = 2 << 20
		size    = 64 << 10
		msgs    = 640 // 40 MiB in all
		readers = 3
	)
	var logs syncBuffer
	s, addr := startServer(t, Config{
		PubSubHardLimit: hard, PubSubSoftLimit: hard / 2,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	var slow []*rawConn
	for range readers {
		r := dialRaw(t, addr) // it reads nothing after the confirmation
		if got := r.do("SUBSCRIBE", "flood"); got != `["subscribe" "flood" :1]` {
			t.Fatalf("SUBSCRIBE: %s", got)
		}
		slow = append(slow, r)
	}
	good := newClient(t, addr).Subscribe(bg, "flood")
	defer good.Close()
	if _, err := good.Receive(bg); err != nil {
		t.Fatal(err)
	}
	received := make(chan int)
	var got atomic.Int64 // messages the reading subscriber has taken
	go func() {
		n := 0
		for range good.Channel(redis.WithChannelSize(msgs)) {
			got.Add(1)
			if n++; n == msgs {
				break
			}
		}
		received <- n
	}()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peakQueued, peakHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if q := uint64(s.Stats().PubSubOutputBytes); q > peakQueued.Load() {
				peakQueued.Store(q)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peakHeap.Load() {
				peakHeap.Store(ms.HeapAlloc)
			}
		}
	}()
	pub := dialRaw(t, addr)
	payload := strings.Repeat("x", size)
	// The publisher stays at most lead messages (1 MiB, half the hard
	// limit) ahead of the reading subscriber, so that it is a subscriber
	// that keeps up however loaded the machine, while the others fall
	// behind without bound.
	const lead = 16
	for i := range msgs {
		for deadline := time.Now().Add(testkit.EventuallyTimeout); got.Load() < int64(i-lead) && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		pub.do("PUBLISH", "flood", payload)
	}
	select {
	case n := <-received:
		if n != msgs {
			t.Fatalf("the reading subscriber got %d messages; want %d", n, msgs)
		}
	case <-time.After(testkit.EventuallyTimeout):
		t.Fatal("the reading subscriber did not get every message")
	}
	close(stop)
	<-sampled

	if got := s.Stats().OutputBufferDisconnections; got != readers {
		t.Errorf("OutputBufferDisconnections = %d; want the %d slow subscribers", got, readers)
	}
	if got := peakQueued.Load(); got >= (readers+1)*hard {
		t.Errorf("up to %d bytes queued for the %d subscribers; limit %d each", got, readers+1, hard)
	}
	// Without the limit, the 40 MiB published would be queued three times
	// (less what the sockets hold). The heap includes garbage not yet
	// collected: the publisher's requests, the reader's messages.
	if grew := int64(peakHeap.Load()) - int64(base); grew > 64<<20 {
		t.Errorf("the heap grew by %d MiB during the flood", grew>>20)
	}
	t.Logf("peak queued %d KiB, heap growth %d KiB", peakQueued.Load()>>10, (int64(peakHeap.Load())-int64(base))>>10)
	for _, r := range slow {
		r.nc.SetReadDeadline(time.Now().Add(testkit.EventuallyTimeout))
		if _, err := io.Copy(io.Discard, r.br); err != nil && !isReset(err) {
			t.Errorf("a slow subscriber's connection: %v; want it closed", err)
		}
	}
	testkit.Eventually(t, "the closed subscribers to leave the channel", func() bool {
		return pub.do("PUBSUB", "NUMSUB", "flood") == `["flood" :1]`
	})
	if got := s.Stats().PubSubOutputBytes; got != 0 {
		t.Errorf("PubSubOutputBytes = %d once idle", got)
	}
	healthy(t, addr)
	// The writer goroutine logs on its way out: wait for the line. The log
	// is rate-limited: one line for the first.
	testkit.Eventually(t, "a warning naming a slow client", func() bool {
		named := false
		for _, r := range slow {
			named = named || strings.Contains(logs.String(), "remote="+r.nc.LocalAddr().String())
		}
		return named && strings.Contains(logs.String(), "level=WARN msg=\"resp: subscriber over its output buffer limit")
	})
	if info := pub.do("INFO", "stats"); !strings.Contains(info, `client_output_buffer_limit_disconnections:3\r\n`) {
		t.Errorf("INFO stats: %s", info)
	}
}

// syncBuffer is testkit.SyncBuffer.
type syncBuffer = testkit.SyncBuffer

// TestPubSubSoftLimit: a subscriber that reads nothing is disconnected
// once its unwritten output has stayed at or above the soft limit for
// longer than PubSubSoftTime — checked, as Redis does, when output is
// added — and not before; below the soft limit it stays, however long.
func TestPubSubSoftLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		n.SetBufferSize(64 << 10)
		node := testNode(t, geocache.Config{})
		s := memServer(t, n, Config{Node: node, PubSubHardLimit: 4 << 20, PubSubSoftLimit: 1 << 20, PubSubSoftTime: time.Minute})
		r := dialMem(t, n, "subscriber")
		if got := r.do("SUBSCRIBE", "c"); got != `["subscribe" "c" :1]` {
			t.Fatalf("SUBSCRIBE: %s", got)
		}
		publish := func(size int) {
			t.Helper()
			if got, err := node.Publish(bg, "c", make([]byte, size)); err != nil || got != 1 {
				t.Fatalf("Publish = %d, %v; want 1 receiver", got, err)
			}
			synctest.Wait()
		}
		alive := func(when string, want bool) {
			t.Helper()
			if got := s.Stats().OutputBufferDisconnections == 0; got != want {
				t.Fatalf("%s: connected %v; want %v (stats %+v)", when, got, want, s.Stats())
			}
		}
		// Below the soft limit for an hour: it stays.
		publish(512 << 10)
		time.Sleep(time.Hour)
		publish(1)
		alive("an hour below the soft limit", true)
		// Above it: 60 s are allowed, counted from the first time.
		publish(1 << 20)
		if got := s.Stats().PubSubOutputBytes; got < 1<<20 {
			t.Fatalf("PubSubOutputBytes = %d; want over the soft limit", got)
		}
		time.Sleep(time.Minute)
		publish(1)
		alive("a minute over the soft limit", true)
		time.Sleep(time.Second)
		publish(1)
		alive("over a minute over the soft limit", false)
		r.nc.SetReadDeadline(time.Now().Add(time.Hour))
		if _, err := io.Copy(io.Discard, r.br); err != nil {
			t.Fatalf("the subscriber's connection: %v; want it closed", err)
		}
		if got := s.Stats(); got.PubSubOutputBytes != 0 || got.PubSubChannels != 0 || got.Clients != 0 {
			t.Fatalf("after the disconnection: %+v", got)
		}
	})
}

// TestPubSubHardLimitAtOnce: a single message over the hard limit
// disconnects at once; the publisher is answered and served on.
func TestPubSubHardLimitAtOnce(t *testing.T) {
	s, addr := startServer(t, Config{PubSubHardLimit: 64 << 10, PubSubSoftLimit: 32 << 10})
	sub, pub := dialRaw(t, addr), dialRaw(t, addr)
	sub.do("SUBSCRIBE", "c")
	if got := pub.do("PUBLISH", "c", strings.Repeat("x", 64<<10)); got != ":1" {
		t.Fatalf("PUBLISH = %s; want :1 (it was handed over, then cut)", got)
	}
	sub.expectClosed("")
	if got := s.Stats().OutputBufferDisconnections; got != 1 {
		t.Fatalf("OutputBufferDisconnections = %d", got)
	}
	testkit.Eventually(t, "the subscription to go", func() bool { return pub.do("PUBLISH", "c", "x") == ":0" })
}

// TestPubSubIdleTimeoutSparesSubscribers: as in Redis, the idle timeout
// never closes a subscribed client, however quiet; it closes it again
// once it has unsubscribed.
func TestPubSubIdleTimeoutSparesSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		node := testNode(t, geocache.Config{})
		memServer(t, n, Config{Node: node, IdleTimeout: time.Minute})
		sub, psub, idle := dialMem(t, n, "sub"), dialMem(t, n, "psub"), dialMem(t, n, "idle")
		sub.do("SUBSCRIBE", "c")
		psub.do("HELLO", "3")
		psub.do("PSUBSCRIBE", "*")
		idle.do("PING")
		time.Sleep(10 * time.Minute)
		idle.expectClosed("")
		if got, err := node.Publish(bg, "c", []byte("still there")); err != nil || got != 2 {
			t.Fatalf("Publish after 10 quiet minutes = %d, %v; want both subscribers", got, err)
		}
		if got := sub.reply(); got != `["message" "c" "still there"]` {
			t.Fatalf("subscriber: %s", got)
		}
		if got := psub.frame(); got != `>["pmessage" "*" "c" "still there"]` {
			t.Fatalf("pattern subscriber: %s", got)
		}
		if got := sub.do("UNSUBSCRIBE"); got != `["unsubscribe" "c" :0]` {
			t.Fatalf("UNSUBSCRIBE: %s", got)
		}
		time.Sleep(2 * time.Minute)
		sub.expectClosed("")
		if got := psub.do("PING"); got != "+PONG" {
			t.Fatalf("the pattern subscriber after 12 minutes: %s", got)
		}
	})
}

// TestPubSubCloseLeavesNothing: a connection that closes, or is closed
// by the server, leaves no subscription behind.
func TestPubSubCloseLeavesNothing(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := newClient(t, addr)
	for _, quit := range []bool{false, true} {
		r := dialRaw(t, addr)
		r.send(cmd("SUBSCRIBE", "a", "b") + cmd("PSUBSCRIBE", "p*"))
		for range 3 {
			r.reply()
		}
		if n, err := c.PubSubNumSub(bg, "a").Result(); err != nil || n["a"] != 1 {
			t.Fatalf("NUMSUB a = %v, %v", n, err)
		}
		if quit {
			if got := r.do("QUIT"); got != "+OK" {
				t.Fatalf("QUIT: %s", got)
			}
		} else {
			r.nc.Close()
		}
		testkit.Eventually(t, "the subscriptions to go", func() bool {
			n, err := c.PubSubNumSub(bg, "a", "b").Result()
			st := s.Stats()
			return err == nil && n["a"] == 0 && n["b"] == 0 && st.PubSubChannels == 0 && st.PubSubPatterns == 0
		})
		if n, err := c.Publish(bg, "pp", "x").Result(); err != nil || n != 0 {
			t.Fatalf("PUBLISH to the closed pattern subscriber = %d, %v", n, err)
		}
	}
}

// TestPubSubIntrospection: CLIENT LIST flags a subscriber P, INFO stats
// counts channels and patterns as Redis, CONFIG GET shows the limits.
func TestPubSubIntrospection(t *testing.T) {
	s, addr := startServer(t, Config{PubSubHardLimit: 4 << 20})
	sub, other := dialRaw(t, addr), dialRaw(t, addr)
	sub.send(cmd("SUBSCRIBE", "a", "b") + cmd("PSUBSCRIBE", "x*", "y*"))
	for range 4 {
		sub.reply()
	}
	other.send(cmd("PSUBSCRIBE", "x*"))
	other.reply()
	other.do("PUNSUBSCRIBE")
	list := other.do("CLIENT", "LIST")
	if !strings.Contains(list, "id=1 ") || !regexp.MustCompile(`id=1 [^\\]* flags=P db=0`).MatchString(list) ||
		!regexp.MustCompile(`id=2 [^\\]* flags=N db=0`).MatchString(list) {
		t.Errorf("CLIENT LIST: %s", list)
	}
	// The filters: by type, and by id in the order given.
	ids := func(list string) (out []string) {
		for _, m := range regexp.MustCompile(`id=(\d+) `).FindAllStringSubmatch(list, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"TYPE", "pubsub"}, []string{"1"}},
		{[]string{"TYPE", "NORMAL"}, []string{"2"}},
		{[]string{"ID", "2", "7", "1", "2"}, []string{"2", "1", "2"}},
	} {
		got := ids(other.do(append([]string{"CLIENT", "LIST"}, tc.args...)...))
		if !slices.Equal(got, tc.want) {
			t.Errorf("CLIENT LIST %v: ids %v, want %v", tc.args, got, tc.want)
		}
	}
	// The subscribers' writers count their bytes out once their write
	// returns, which may be after the client has read the reply: wait for
	// the queues to be empty (a generous deadline only catches a leak).
	info := other.do("INFO", "stats")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(info, `geocache_pubsub_output_bytes:0\r\n`) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		info = other.do("INFO", "stats")
	}
	for _, want := range []string{`pubsub_channels:2\r\n`, `pubsub_patterns:2\r\n`, `client_output_buffer_limit_disconnections:0\r\n`, `geocache_pubsub_output_bytes:0\r\n`} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO stats lacks %s: %s", want, info)
		}
	}
	if st := s.Stats(); st.PubSubChannels != 2 || st.PubSubPatterns != 2 {
		t.Errorf("Stats: %+v", st)
	}
	if got := other.do("CONFIG", "GET", "client-output-buffer-limit"); got != `["client-output-buffer-limit" "normal 0 0 0 slave 0 0 0 pubsub 4194304 8388608 60"]` {
		t.Errorf("CONFIG GET client-output-buffer-limit: %s", got)
	}
	for _, bad := range []Config{{PubSubHardLimit: -1}, {PubSubSoftLimit: -1}, {PubSubSoftTime: -time.Second}} {
		bad.Node = s.node
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// TestPubSubOwnEventsFollowReplies: in RESP3 a subscribed client runs
// any command; a message its command publishes to itself (here a
// keyspace event of its own write) comes after the replies before the
// command and before the command's own reply, as Redis writes them.
func TestPubSubOwnEventsFollowReplies(t *testing.T) {
	node := testNode(t, geocache.Config{})
	if err := node.SetKeyspaceEvents("E$"); err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, Config{Node: node})
	r := dialRaw(t, addr)
	r.do("HELLO", "3")
	if got := r.do("SUBSCRIBE", "__keyevent@0__:set"); got != `["subscribe" "__keyevent@0__:set" :1]` {
		t.Fatalf("SUBSCRIBE: %s", got)
	}
	r.send(cmd("GET", "k") + cmd("SET", "k", "v") + cmd("ECHO", "after"))
	for _, want := range []string{"nil", `>["message" "__keyevent@0__:set" "k"]`, "+OK", `"after"`} {
		if got := r.frame(); got != want {
			t.Fatalf("got %s; want %s", got, want)
		}
	}
}

// TestPubSubConcurrent: publishers publish while steady subscribers read
// and others subscribe and unsubscribe over and over (run with -race).
// Each steady subscriber gets every message once, in each publisher's
// order; a churning subscriber never gets a message before its
// SUBSCRIBE confirmation or after its UNSUBSCRIBE one, and is back in
// normal mode once it has unsubscribed.
func TestPubSubConcurrent(t *testing.T) {
	const (
		publishers = 3
		perPub     = 300
		steady     = 3
		churners   = 2
	)
	s, addr := startServer(t, Config{})
	var steadyConns []*rawConn
	for range steady {
		r := dialRaw(t, addr)
		if got := r.do("SUBSCRIBE", "c"); got != `["subscribe" "c" :1]` {
			t.Fatalf("SUBSCRIBE: %s", got)
		}
		steadyConns = append(steadyConns, r)
	}
	msgRE := regexp.MustCompile(`^\["message" "c" "p(\d+):(\d+)"\]$`)
	var wg sync.WaitGroup
	for _, r := range steadyConns {
		wg.Go(func() {
			next := make([]int, publishers)
			for range publishers * perPub {
				got := r.reply()
				m := msgRE.FindStringSubmatch(got)
				if m == nil {
					t.Errorf("steady subscriber: %s", got)
					return
				}
				p, _ := strconv.Atoi(m[1])
				seq, _ := strconv.Atoi(m[2])
				if seq != next[p] {
					t.Errorf("steady subscriber: message %d of publisher %d; want %d", seq, p, next[p])
					return
				}
				next[p]++
			}
		})
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for i := range churners {
		r := dialRaw(t, addr)
		churn.Go(func() {
			sub, unsub, confirm := "SUBSCRIBE", "UNSUBSCRIBE", `["subscribe" "c" :1]`
			if i%2 == 1 {
				sub, unsub, confirm = "PSUBSCRIBE", "PUNSUBSCRIBE", `["psubscribe" "c*" :1]`
			}
			name := "c"
			if i%2 == 1 {
				name = "c*"
			}
			for rounds := 0; ; rounds++ {
				select {
				case <-stop:
					if rounds == 0 {
						t.Error("a churner never ran")
					}
					return
				default:
				}
				r.send(cmd(sub, name))
				if got := r.reply(); got != confirm {
					t.Errorf("first frame after %s: %s; want the confirmation", sub, got)
					return
				}
				r.send(cmd(unsub))
				for {
					got := r.reply()
					if got == `["`+strings.ToLower(unsub)+`" "`+name+`" :0]` {
						break
					}
					if !strings.Contains(got, `"p`) {
						t.Errorf("between the confirmations: %s", got)
						return
					}
				}
				if got := r.do("PING"); got != "+PONG" {
					t.Errorf("PING after unsubscribing: %s; want +PONG", got)
					return
				}
			}
		})
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		r := dialRaw(t, addr)
		pubs.Go(func() {
			for i := range perPub {
				if got := r.do("PUBLISH", "c", fmt.Sprintf("p%d:%d", p, i)); !strings.HasPrefix(got, ":") {
					t.Errorf("PUBLISH: %s", got)
					return
				}
			}
		})
	}
	pubs.Wait()
	wg.Wait()
	close(stop)
	churn.Wait()
	for _, r := range steadyConns {
		if got := r.do("UNSUBSCRIBE"); got != `["unsubscribe" "c" :0]` {
			t.Errorf("UNSUBSCRIBE: %s", got)
		}
	}
	if st := s.Stats(); st.PubSubChannels != 0 || st.PubSubPatterns != 0 {
		t.Errorf("after everyone unsubscribed: %+v", st)
	}
	// A writer goroutine counts the bytes it wrote once its write returns,
	// which may be after the client has read them.
	testkit.Eventually(t, "the subscribers' output written", func() bool { return s.Stats().PubSubOutputBytes == 0 })
}

// TestPubSubConfirmationFirst: a message published the instant a
// subscription is registered comes after the SUBSCRIBE confirmation, in
// RESP2 and RESP3, even in the middle of a pipeline.
func TestPubSubConfirmationFirst(t *testing.T) {
	s, addr := startServer(t, Config{})
	s.testHookSubscribed = func() { s.node.Publish(bg, "c", []byte("at once")) }
	for _, resp3 := range []bool{false, true} {
		r := dialRaw(t, addr)
		prefix := ""
		if resp3 {
			r.do("HELLO", "3")
			prefix = ">"
		}
		r.send(cmd("ECHO", "before") + cmd("SUBSCRIBE", "c") + cmd("PING", "after"))
		want := []string{`"before"`, prefix + `["subscribe" "c" :1]`, prefix + `["message" "c" "at once"]`, `["pong" "after"]`}
		if resp3 {
			want[3] = `"after"`
		}
		for _, w := range want {
			if got := r.frame(); got != w {
				t.Fatalf("RESP3 %v: got %s; want %s", resp3, got, w)
			}
		}
		r.nc.Close()
		testkit.Eventually(t, "the subscriber to go", func() bool { return s.hub.NumSub("c") == 0 })
	}
}

// TestPubSubTLSSlowSubscriber: over TLS too a subscriber that reads
// nothing is cut at the hard limit — at once, without waiting to send it
// a close_notify — while a TLS subscriber that reads is served.
func TestPubSubTLSSlowSubscriber(t *testing.T) {
	ca := newTestCA(t, "test CA")
	tc := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "node")}, MinVersion: tls.VersionTLS12}
	s, tlsAddr, plainAddr := startTLSServer(t, Config{PubSubHardLimit: 256 << 10, PubSubSoftLimit: 128 << 10}, tc)
	clientTLS := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"}

	nc, err := tls.Dial("tcp", tlsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	slow := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	if got := slow.do("SUBSCRIBE", "c"); got != `["subscribe" "c" :1]` {
		t.Fatalf("SUBSCRIBE over TLS: %s", got)
	}
	good := newClient(t, tlsAddr, func(o *redis.Options) { o.TLSConfig = clientTLS }).Subscribe(bg, "c")
	defer good.Close()
	if _, err := good.Receive(bg); err != nil {
		t.Fatal(err)
	}
	msgs := good.Channel(redis.WithChannelSize(1 << 12))
	pub := dialRaw(t, plainAddr)
	payload := strings.Repeat("x", 32<<10)
	sent := 0
	for ; s.Stats().OutputBufferDisconnections == 0; sent++ {
		if sent == 4000 { // 125 MiB: far more than the sockets hold
			t.Fatal("the slow TLS subscriber was never disconnected")
		}
		pub.do("PUBLISH", "c", payload)
		select {
		case <-msgs:
		case <-time.After(testkit.EventuallyTimeout):
			t.Fatalf("the reading TLS subscriber stalled after %d messages", sent)
		}
	}
	slow.nc.SetReadDeadline(time.Now().Add(testkit.EventuallyTimeout))
	// Cut in the middle of a record: EOF, an unexpected one, or a reset.
	if _, err := io.Copy(io.Discard, slow.br); err != nil && !isReset(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("the slow TLS subscriber's connection: %v; want it closed", err)
	}
	if got := pub.do("PUBLISH", "c", "x"); got != ":1" && got != ":2" {
		t.Fatalf("PUBLISH after the disconnection: %s", got)
	}
	testkit.Eventually(t, "the slow subscriber to leave", func() bool { return s.hub.NumSub("c") == 1 })
	t.Logf("disconnected after %d messages of 32 KiB", sent)
}

// BenchmarkPubSubFanout: one client PUBLISHes 100-byte messages (each a
// round trip) to n subscribers over loopback; an operation is one message
// delivered to all of them. With REDIS_ADDR set, the same against Redis.
func BenchmarkPubSubFanout(b *testing.B) {
	targets := map[string]string{}
	_, targets["geocache"] = startServer(b, Config{})
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		targets["redis"] = addr
	}
	payload := strings.Repeat("m", 100)
	for _, target := range []string{"geocache", "redis"} {
		addr, ok := targets[target]
		if !ok {
			continue
		}
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", target, n), func(b *testing.B) {
				done := make(chan struct{}, n)
				for range n {
					r := dialRaw(b, addr)
					r.do("SUBSCRIBE", "bench")
					go func() {
						for range b.N {
							if _, err := readReply(r.br); err != nil {
								return
							}
						}
						done <- struct{}{}
					}()
				}
				pub := dialRaw(b, addr)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					pub.send(cmd("PUBLISH", "bench", payload))
					if _, err := readReply(pub.br); err != nil {
						b.Fatal(err)
					}
				}
				for range n {
					<-done
				}
			})
		}
	}
}

// TestPubSubUnsubscribeDrainBounded: once a client is no longer
// subscribed, the output still queued must drain like any reply: a client
// that reads nothing is closed after the write timeout (RequestTimeout
// here), not held for ever, and not counted as over the output limits.
func TestPubSubUnsubscribeDrainBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := testkit.NewNetwork()
		t.Cleanup(func() { n.Close() })
		n.SetBufferSize(64 << 10)
		node := testNode(t, geocache.Config{})
		s := memServer(t, n, Config{Node: node})
		r := dialMem(t, n, "subscriber")
		if got := r.do("SUBSCRIBE", "c"); got != `["subscribe" "c" :1]` {
			t.Fatalf("SUBSCRIBE: %s", got)
		}
		for range 16 {
			node.Publish(bg, "c", make([]byte, 64<<10))
		}
		r.send(cmd("UNSUBSCRIBE")) // and reads nothing
		time.Sleep(time.Hour)
		synctest.Wait()
		if st := s.Stats(); st.Clients != 0 || st.OutputBufferDisconnections != 0 || st.PubSubChannels != 0 {
			t.Fatalf("an hour later: %+v; want the client gone, not counted over the limits", st)
		}
		r.nc.SetReadDeadline(time.Now().Add(time.Hour))
		if _, err := io.Copy(io.Discard, r.br); err != nil {
			t.Fatalf("the client's connection: %v; want it closed", err)
		}
	})
}

// TestMessageLen: the length the limits count is the length queued.
func TestMessageLen(t *testing.T) {
	for _, size := range []int{0, 1, 9, 10, 99, 100, 999, 1000, 65535, 1 << 20} {
		payload := make([]byte, size)
		for _, pm := range []bool{false, true} {
			for _, resp3 := range []bool{false, true} {
				pat, ch := "", strings.Repeat("c", size%97)
				if pm {
					pat = strings.Repeat("p", size%13)
				}
				if got, want := messageLen(pm, pat, ch, payload), len(appendMessage(nil, resp3, pm, pat, ch, payload)); got != want {
					t.Errorf("messageLen(pmessage %v, %d-byte payload) = %d; the frame has %d", pm, size, got, want)
				}
			}
		}
	}
}

// TestPubSubConfirmedMeansSubscribed: once a client has its SUBSCRIBE
// (PSUBSCRIBE) confirmation, the subscription exists: a message published
// right then by another client reaches it.
func TestPubSubConfirmedMeansSubscribed(t *testing.T) {
	_, addr := startServer(t, Config{})
	sub, pub := dialRaw(t, addr), dialRaw(t, addr)
	for i := range 300 {
		ch := "c" + strconv.Itoa(i)
		verb, want := "SUBSCRIBE", `["message" "`+ch+`" "m"]`
		if i%2 == 1 {
			verb, want = "PSUBSCRIBE", `["pmessage" "`+ch+`" "`+ch+`" "m"]`
		}
		sub.send(cmd(verb, ch))
		sub.reply()
		if got := pub.do("PUBLISH", ch, "m"); got != ":1" {
			t.Fatalf("PUBLISH right after %s %s was confirmed: %s; want :1", verb, ch, got)
		}
		if got := sub.reply(); got != want {
			t.Fatalf("%s %s: %s; want %s", verb, ch, got, want)
		}
	}
}
