package resp

import (
	"cmp"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/pubsub"
)

// Pub/sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH and
// PUBSUB, with Redis 7.0's replies, on the node's cross-region messages.
//
// The server's hub (internal/pubsub) receives every message the node
// delivers (geocache.Node.OnMessage): those published here and those that
// arrive from other nodes. It hands each to the subscribed connections
// without blocking: a connection with subscriptions has an output queue,
// and a writer goroutine of its own that writes the queue out, so that a
// message reaches a client whose serve goroutine is waiting for its next
// command. While the connection is subscribed, everything it sends —
// replies and messages, in the order they were made — goes through that
// queue; once it unsubscribes from everything the queue is written out,
// the writer stops, and the connection writes its replies itself again.
//
// The queue is bounded as Redis bounds a subscriber's output buffer
// (client-output-buffer-limit pubsub 32mb 8mb 60): a connection whose
// unwritten output reaches Config.PubSubHardLimit, or stays at or above
// PubSubSoftLimit for longer than PubSubSoftTime, is disconnected at once
// and its queue dropped (Stats.OutputBufferDisconnections). No other bound
// applies while it is subscribed: like Redis, a subscriber that reads
// nothing is not timed out while it stays within the limits, and an idle
// one is never closed for being quiet. The connection's own replies are
// paced like any connection's: its serve goroutine waits, before reading
// the next command, until at most flushAt bytes of its replies are left
// to write.
//
// Ordering: a SUBSCRIBE confirmation is queued with the hub locked, right
// after the subscription is registered (the client learns of it only once
// it exists, and no message of it can come first), and an UNSUBSCRIBE
// confirmation after the subscription is removed (the hub holds its lock
// while it delivers, so no message of the channel can come after the
// confirmation). Before a subscribed
// connection runs a command, the replies before it are queued (exec): a
// message the command publishes to the connection itself — PUBLISH, a
// keyspace event of its write — comes after them and before its own
// reply, as in Redis.
//
// Lock order: pubsub.Hub.mu, then psQueue.mu; nothing is called under
// psQueue.mu.

// pubsubState is a connection's subscriptions. Its serve goroutine owns it.
type pubsubState struct {
	// channels and patterns map each subscription to its rank in the
	// order they were made: UNSUBSCRIBE and PUNSUBSCRIBE without
	// arguments go through them in that order (Redis 7.0 does for
	// patterns; for channels its order is its hash table's).
	channels map[string]uint64
	patterns map[string]uint64
	made     uint64
	// q is the output queue while its writer runs; nil otherwise.
	q *psQueue
}

func (p *pubsubState) count() int { return len(p.channels) + len(p.patterns) }

// subscribed reports whether c has a subscription (Redis's CLIENT_PUBSUB).
func (c *conn) subscribed() bool { return c.subs.Load() > 0 }

func (c *conn) pubsub() *pubsubState {
	if c.ps == nil {
		c.ps = &pubsubState{channels: map[string]uint64{}, patterns: map[string]uint64{}}
	}
	return c.ps
}

// psQueue is a subscribed connection's output: the bytes its serve
// goroutine and the publishers queue, which its writer goroutine writes.
// It is the connection's pubsub.Subscriber.
type psQueue struct {
	c *conn

	wake    chan struct{} // cap 1: bytes were queued, or the queue stopped or died
	drained chan struct{} // cap 1: the writer wrote some bytes (or the queue died)
	done    chan struct{} // closed when the writer returns

	// mu guards the fields below. Never held while calling anything.
	mu sync.Mutex
	// The bytes queued and not yet taken by the writer: sealed blocks,
	// oldest first, then the tail, which grows by append up to psBlock
	// (or one larger frame) before it is sealed. The writer drops each
	// block once written, so the memory held is the unwritten bytes and
	// at most two blocks, never one contiguous buffer of a burst's size.
	sealed  [][]byte
	tail    []byte
	spare   []byte // a small written block, the next tail: no allocation per message
	queued  int64  // bytes ever queued
	written int64  // bytes ever written; queued-written are unwritten
	resp3   bool   // the protocol of the messages queued now
	// softSince is when the unwritten bytes reached PubSubSoftLimit; zero
	// while they are below it.
	softSince time.Time
	stopping  bool  // the writer returns once the queue is empty
	dead      bool  // disconnected: nothing is queued or written any more
	deadErr   error // why
	// killedUnwritten is what a disconnection for the output limit left
	// unwritten, for the writer goroutine's log line (logKill).
	killedUnwritten int64
}

// errOutputLimit ends a subscriber over its output buffer limit.
var errOutputLimit = errors.New("resp: pub/sub output buffer limit reached")

// errDrainTimeout ends a connection that is no longer subscribed and
// whose queue did not drain within the write timeout.
var errDrainTimeout = errors.New("resp: queued replies not written within the write timeout")

func wakeup(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// startWriter starts c's output queue and its writer. c.out stays c's
// batch of replies; flush moves it into the queue from now on.
func (c *conn) startWriter() {
	q := &psQueue{
		c:       c,
		wake:    make(chan struct{}, 1),
		drained: make(chan struct{}, 1),
		done:    make(chan struct{}),
		resp3:   c.resp3,
	}
	// The deadline armed for the last direct write (deadline.go) must not
	// cut the writer's writes: a subscriber is bounded by the limits.
	c.setWriteDeadline(time.Time{})
	c.wdl = time.Time{}
	c.ps.q = q
	go q.run()
}

// stopWriter writes out c's queue and stops its writer; c then writes its
// replies itself again. c must have no subscription left in the hub. The
// queue must drain without the client stalling it for longer than the
// write timeout; otherwise the connection is closed (c.werr).
func (c *conn) stopWriter() {
	q := c.ps.q
	c.flush()
	q.mu.Lock()
	q.stopping = true
	q.mu.Unlock()
	wakeup(q.wake)
	d := c.writeTimeout()
	t := time.NewTimer(d)
	defer t.Stop()
wait:
	for {
		select {
		case <-q.done:
			break wait
		case <-q.drained:
			t.Reset(d) // progress: the bound is on a stall, not on the whole
		case <-t.C:
			q.kill(errDrainTimeout)
		}
	}
	c.ps.q = nil
	q.mu.Lock()
	err := q.deadErr
	q.mu.Unlock()
	if err != nil && c.werr == nil {
		c.werr = err
	}
}

// endPubSub removes c's subscriptions from the hub and writes out its
// queue: the last thing before the connection closes (dropConn).
func (c *conn) endPubSub() {
	p := c.ps
	if p == nil {
		return
	}
	hub := c.s.hub
	for ch := range p.channels {
		hub.Unsubscribe(p.q, ch)
	}
	for pat := range p.patterns {
		hub.PUnsubscribe(p.q, pat)
	}
	clear(p.channels)
	clear(p.patterns)
	c.subs.Store(0)
	if p.q != nil {
		c.stopWriter()
	}
}

// queueOut moves c's batch of replies into its queue (flush while the
// writer runs) and waits until at most flushAt bytes of them are left to
// write. It returns false once the connection is dead.
func (c *conn) queueOut() bool {
	q := c.ps.q
	if len(c.out) > 0 && c.werr == nil {
		// While subscribed the client is bounded by the output limits
		// alone; once not (its queue about to stop), by the write timeout,
		// as a connection that writes itself.
		var stall time.Duration
		if !c.subscribed() {
			stall = c.writeTimeout()
		}
		if err := q.enqueueReplies(c.out, c.resp3, stall); err != nil {
			c.werr = err
		}
		if c.s.idle() > 0 {
			c.lastFlush = time.Now()
		}
	}
	if cap(c.out) > outKeep {
		c.out = make([]byte, 0, 1024)
	} else {
		c.out = c.out[:0]
	}
	return c.werr == nil
}

// enqueueReplies queues b, replies made in protocol resp3 (which the
// messages queued after them use too), and paces the caller: it returns
// once at most flushAt bytes of them are left to write. If stall is not
// zero, a wait in which the client reads nothing for that long kills the
// connection.
func (q *psQueue) enqueueReplies(b []byte, resp3 bool, stall time.Duration) error {
	q.mu.Lock()
	if q.dead {
		err := q.deadErr
		q.mu.Unlock()
		return err
	}
	if !q.admitLocked(len(b)) {
		q.mu.Unlock()
		q.kill(errOutputLimit)
		return errOutputLimit
	}
	q.tail = append(q.roomLocked(len(b)), b...)
	q.addLocked(len(b))
	q.resp3 = resp3
	end := q.queued
	q.mu.Unlock()
	wakeup(q.wake)

	var timer *time.Timer
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.dead && end-q.written > flushAt {
		q.mu.Unlock()
		switch {
		case stall == 0:
			<-q.drained
		case timer == nil:
			timer = time.NewTimer(stall)
			defer timer.Stop()
			fallthrough
		default:
			select {
			case <-q.drained:
				timer.Reset(stall)
			case <-timer.C:
				q.kill(errDrainTimeout)
			}
		}
		q.mu.Lock()
	}
	return q.deadErr
}

// queueReply queues b, a reply, without pacing the caller, which wakes
// the writer. It may run with the hub locked.
func (q *psQueue) queueReply(b []byte) {
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return
	}
	if !q.admitLocked(len(b)) {
		q.mu.Unlock()
		q.kill(errOutputLimit)
		return
	}
	q.tail = append(q.roomLocked(len(b)), b...)
	q.addLocked(len(b))
	q.mu.Unlock()
}

// Message queues a message of a channel subscription (pubsub.Subscriber).
func (q *psQueue) Message(channel string, payload []byte) {
	q.push(false, "", channel, payload)
}

// PMessage queues a message of a pattern subscription (pubsub.Subscriber).
func (q *psQueue) PMessage(pattern, channel string, payload []byte) {
	q.push(true, pattern, channel, payload)
}

// push queues a message frame: ["message", channel, payload], or
// ["pmessage", pattern, channel, payload], a push in RESP3. It runs on the
// publishing goroutine and never blocks.
func (q *psQueue) push(pmessage bool, pattern, channel string, payload []byte) {
	n := messageLen(pmessage, pattern, channel, payload)
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return
	}
	if !q.admitLocked(n) {
		q.mu.Unlock()
		q.kill(errOutputLimit)
		return
	}
	q.tail = appendMessage(q.roomLocked(n), q.resp3, pmessage, pattern, channel, payload)
	q.addLocked(n)
	q.mu.Unlock()
	wakeup(q.wake)
}

// admitLocked reports whether n more unwritten bytes stay within the
// limits, with Redis's rules (checkClientOutputBufferLimits): the hard
// limit is reached at once; the soft one once the bytes have stayed at or
// above it for longer than PubSubSoftTime.
func (q *psQueue) admitLocked(n int) bool {
	s := q.c.s
	size := q.queued - q.written + int64(n)
	if size >= s.psHard.Load() {
		return false
	}
	if size < s.psSoft.Load() {
		q.softSince = time.Time{}
		return true
	}
	now := time.Now()
	if q.softSince.IsZero() {
		q.softSince = now
		return true
	}
	return now.Sub(q.softSince) <= time.Duration(s.psSoftTime.Load())
}

// psBlock is the size up to which the tail of a queue grows before it is
// sealed.
const psBlock = 64 << 10

// roomLocked returns the tail to append n bytes to: the current one, or a
// new one if the current one would pass psBlock.
func (q *psQueue) roomLocked(n int) []byte {
	if len(q.tail) > 0 && len(q.tail)+n > psBlock {
		q.sealed = append(q.sealed, q.tail)
		q.tail = nil
	}
	if q.tail == nil && q.spare != nil {
		q.tail, q.spare = q.spare, nil
	}
	return q.tail
}

// psSpareMax bounds the block a queue keeps for reuse: a quiet subscriber
// holds at most this much.
const psSpareMax = 4 << 10

func (q *psQueue) addLocked(n int) {
	q.queued += int64(n)
	q.c.s.psBytes.Add(int64(n))
}

// kill disconnects the connection: the queue is dropped, and the socket
// closed under the goroutines that read and write it, so that both return
// at once (its TLS layer too, which could otherwise try to send a
// close_notify to a client that reads nothing). It is idempotent and
// never blocks.
func (q *psQueue) kill(err error) {
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return
	}
	q.dead, q.deadErr = true, err
	left := q.queued - q.written
	q.written = q.queued
	q.sealed, q.tail, q.spare = nil, nil, nil
	q.mu.Unlock()
	c := q.c
	c.s.psBytes.Add(-left)
	c.closeRaw()
	if err == errOutputLimit {
		c.s.obufKills.Add(1)
		q.mu.Lock()
		q.killedUnwritten = left // logged by the writer goroutine (run): kill may run under the hub's lock
		q.mu.Unlock()
	}
	wakeup(q.wake)
	wakeup(q.drained)
}

// logKill logs a disconnection for the output limit, from the writer
// goroutine, outside every lock.
func (q *psQueue) logKill() {
	q.mu.Lock()
	left, err := q.killedUnwritten, q.deadErr
	q.mu.Unlock()
	if err != errOutputLimit {
		return
	}
	c := q.c
	c.s.logLimit("resp: subscriber over its output buffer limit; closing the connection", "remote", c.nc.RemoteAddr(), "id", c.id,
		"unwritten", left, "hard_limit", c.s.psHard.Load(), "soft_limit", c.s.psSoft.Load(),
		"soft_time", time.Duration(c.s.psSoftTime.Load()), "output_buffer_disconnections", c.s.obufKills.Load())
}

// run is the writer goroutine: it takes every block queued, and writes
// each in pieces of at most flushAt bytes (so that the unwritten count
// follows the client's reading), dropping it once written, until the
// queue stops (empty) or dies.
func (q *psQueue) run() {
	defer close(q.done)
	defer q.logKill()
	var blocks [][]byte
	for {
		q.mu.Lock()
		for len(q.sealed) == 0 && len(q.tail) == 0 && !q.dead && !q.stopping {
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if q.dead || (len(q.sealed) == 0 && len(q.tail) == 0) {
			q.mu.Unlock()
			return
		}
		blocks = append(append(blocks[:0], q.sealed...), q.tail)
		clear(q.sealed)
		q.sealed, q.tail = q.sealed[:0], nil
		q.mu.Unlock()
		for i, b := range blocks {
			for off := 0; off < len(b); {
				n, err := q.c.nc.Write(b[off:min(off+flushAt, len(b))])
				off += n
				q.mu.Lock()
				if !q.dead {
					q.written += int64(n)
					q.c.s.psBytes.Add(-int64(n))
					if q.queued-q.written < q.c.s.psSoft.Load() {
						q.softSince = time.Time{}
					}
				}
				q.mu.Unlock()
				wakeup(q.drained)
				if err != nil {
					q.kill(err)
					return
				}
			}
			blocks[i] = nil // written: its memory goes, or serves again
			if cap(b) <= psSpareMax {
				q.mu.Lock()
				if q.spare == nil && !q.dead {
					q.spare = b[:0]
				}
				q.mu.Unlock()
			}
		}
	}
}

// messageLen is the length of the frame appendMessage appends.
func messageLen(pmessage bool, pattern, channel string, payload []byte) int {
	n := 4 + len("$7\r\nmessage\r\n") + bulkLen(len(channel)) + bulkLen(len(payload))
	if pmessage {
		n += len("$8\r\npmessage\r\n") - len("$7\r\nmessage\r\n") + bulkLen(len(pattern))
	}
	return n
}

func bulkLen(n int) int {
	digits := 1
	for x := n; x >= 10; x /= 10 {
		digits++
	}
	return 1 + digits + 2 + n + 2
}

// appendMessage appends a message frame (see push).
func appendMessage(dst []byte, resp3, pmessage bool, pattern, channel string, payload []byte) []byte {
	if !pmessage {
		dst = appendPush(dst, 3, resp3)
		dst = append(dst, "$7\r\nmessage\r\n"...)
	} else {
		dst = appendPush(dst, 4, resp3)
		dst = append(dst, "$8\r\npmessage\r\n"...)
		dst = appendBulkString(dst, pattern)
	}
	dst = appendBulkString(dst, channel)
	return appendBulk(dst, payload)
}

// confirm answers one channel or pattern of a (P)(UN)SUBSCRIBE: [kind,
// name (nil for an UNSUBSCRIBE of nothing), subscriptions left].
//
// Like a message, a confirmation is not silenced by CLIENT REPLY OFF or
// SKIP (Redis 7.0 pushes it regardless): it stays out of what the
// command's silence drops.
func (c *conn) confirm(kind string, name []byte, count int) {
	start := len(c.out)
	c.out = appendPush(c.out, 3, c.resp3)
	c.replyBulkString(kind)
	if name == nil {
		c.replyNull()
	} else {
		c.replyBulk(name)
	}
	c.replyInt(int64(count))
	if c.mute && c.muteAt == start {
		c.muteAt = len(c.out)
	}
}

func cmdSubscribe(c *conn, args [][]byte)  { c.subscribe(args[1:], false) }
func cmdPsubscribe(c *conn, args [][]byte) { c.subscribe(args[1:], true) }

// subscribe subscribes c to the channels (or patterns) names. The replies
// before it are queued first; then each confirmation is queued with the
// hub locked, right after its subscription is made, so that the client
// gets it only once the subscription exists (a publisher it then signals
// reaches it) and before any message of the subscription.
func (c *conn) subscribe(names [][]byte, patterns bool) {
	p := c.pubsub()
	set, kind := p.channels, "subscribe"
	if patterns {
		set, kind = p.patterns, "psubscribe"
	}
	if p.q == nil {
		c.startWriter() // names has one at least, which is new
	}
	if !c.flush() {
		return
	}
	q := p.q
	for _, b := range names {
		_, old := set[string(b)]
		var name string
		if !old {
			name = string(b)
			p.made++
			set[name] = p.made
			c.subs.Store(int32(p.count()))
		}
		c.confirm(kind, b, p.count())
		frame := c.out
		switch {
		case old:
			q.queueReply(frame)
		case patterns:
			c.s.hub.PSubscribe(q, name, func() { q.queueReply(frame) })
		default:
			c.s.hub.Subscribe(q, name, func() { q.queueReply(frame) })
		}
		c.out = c.out[:0]
	}
	wakeup(q.wake)
	if h := c.s.testHookSubscribed; h != nil {
		h() // a message published right after the registration
	}
}

func cmdUnsubscribe(c *conn, args [][]byte)  { c.unsubscribe(args[1:], false) }
func cmdPunsubscribe(c *conn, args [][]byte) { c.unsubscribe(args[1:], true) }

// unsubscribe removes c's subscriptions to names, or to every channel (or
// pattern) if names is empty, in the order they were made. Each leaves
// the hub before its confirmation is queued. Once
// c has no subscription left, its queue is written out and its writer
// stops.
func (c *conn) unsubscribe(names [][]byte, patterns bool) {
	p := c.pubsub()
	set, kind := p.channels, "unsubscribe"
	if patterns {
		set, kind = p.patterns, "punsubscribe"
	}
	if len(names) == 0 {
		if len(set) == 0 {
			c.confirm(kind, nil, p.count())
			return
		}
		all := slices.SortedFunc(maps.Keys(set), func(a, b string) int { return cmp.Compare(set[a], set[b]) })
		for _, name := range all {
			names = append(names, []byte(name))
		}
	}
	for _, b := range names {
		if _, ok := set[string(b)]; ok {
			name := string(b)
			if patterns {
				c.s.hub.PUnsubscribe(p.q, name)
			} else {
				c.s.hub.Unsubscribe(p.q, name)
			}
			delete(set, name)
			c.subs.Store(int32(p.count()))
		}
		c.confirm(kind, b, p.count())
	}
	if p.count() == 0 && p.q != nil {
		c.stopWriter()
	}
}

// cmdPublish publishes through the node: to this node's subscribers and,
// by replication, to every region's. It answers the receivers here.
func cmdPublish(c *conn, args [][]byte) {
	n, err := c.sess.Publish(c.s.ctx, string(args[1]), args[2])
	switch {
	case errors.Is(err, geocache.ErrTooLarge):
		c.replyError("ERR channel or message too large: channel of " + strconv.Itoa(len(args[1])) + " bytes, message of " +
			strconv.Itoa(len(args[2])) + " (limits " + strconv.Itoa(geocache.MaxKeyBytes) + ", " + strconv.Itoa(c.s.nodeCfg.MaxValueBytes) + ")")
	case err != nil:
		c.replyWriteError(err)
	default:
		c.replyInt(int64(n))
	}
}

var pubsubHelp = []string{
	"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"CHANNELS [<pattern>]",
	"    Return the currently active channels matching a <pattern> (default: '*').",
	"NUMPAT",
	"    Return number of subscriptions to patterns.",
	"NUMSUB [<channel> ...]",
	"    Return the number of subscribers for the specified channels, excluding",
	"    pattern subscriptions(default: no channels).",
	"HELP",
	"    Prints this help.",
}

// cmdPubsub answers PUBSUB about this node's subscribers (as Redis
// Cluster's PUBSUB answers about the node asked).
func cmdPubsub(c *conn, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "channels"):
		if len(args) > 3 {
			c.replyError("ERR unknown subcommand or wrong number of arguments for '" + string(truncate(sub, 128)) + "'. Try PUBSUB HELP.")
			return
		}
		var pat []byte
		if len(args) == 3 {
			pat = args[2]
		}
		chs := c.s.hub.Channels(pat)
		c.replyArray(len(chs))
		for _, ch := range chs {
			c.replyBulkString(ch)
			c.flushIfFull()
		}
	case equalFold(sub, "numsub"):
		c.replyArray(2 * (len(args) - 2))
		for _, ch := range args[2:] {
			c.replyBulk(ch)
			c.replyInt(int64(c.s.hub.NumSub(string(ch))))
		}
	case equalFold(sub, "numpat"):
		if len(args) != 2 {
			c.wrongArity("pubsub|numpat")
			return
		}
		c.replyInt(int64(c.s.hub.NumPat()))
	case equalFold(sub, "help"):
		if len(args) != 2 {
			c.wrongArity("pubsub|help")
			return
		}
		c.helpReply(pubsubHelp)
	default:
		c.unknownSubcommand("pubsub", sub)
	}
}

// refuseSubscribed answers a command a RESP2 connection may not run while
// subscribed, with the error Redis gives first: an unknown subcommand or
// a subcommand's arity, then "Can't execute".
func (c *conn) refuseSubscribed(cmd *command, args [][]byte) {
	name := cmd.name
	if cmd.subcommands != nil && len(args) >= 2 {
		sub := strings.ToLower(string(args[1]))
		arity, ok := cmd.subcommands[sub]
		if !ok {
			c.unknownSubcommand(cmd.name, args[1])
			return
		}
		if !arityFits(arity, len(args)) {
			c.wrongArity(cmd.name + "|" + sub)
			return
		}
		name += "|" + sub
	}
	c.replyError("ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
}

// Make sure psQueue is what the hub delivers to.
var _ pubsub.Subscriber = (*psQueue)(nil)
