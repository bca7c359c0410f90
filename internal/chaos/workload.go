package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// opTimeout bounds one operation (a QUORUM write waits up to quorumAckMS
// for its acknowledgement; a paused node answers nothing).
const (
	opTimeout   = 8 * time.Second
	quorumAckMS = 2000
)

// newClient returns a go-redis client of one connection to addr: every
// command, pipelines included, goes over the same connection, and nothing
// is retried (a retried write would blur the history). ack, if not empty,
// is the connection's acknowledgement level (QUORUM or ALL, waiting up to
// quorumAckMS).
func newClient(addr string, ack string, readTimeout time.Duration) *redis.Client {
	opt := &redis.Options{
		Addr: addr, PoolSize: 1, PipelinePoolSize: -1, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: readTimeout, WriteTimeout: 2 * time.Second,
		PoolTimeout: opTimeout, DisableIdentity: true, ContextTimeoutEnabled: true,
	}
	if ack != "" {
		opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "GEOCACHE", "ACK", ack, fmt.Sprint(quorumAckMS)).Err()
		}
	}
	return redis.NewClient(opt)
}

// writer is one client: it stays on one node, writes its own keys alone
// and its share of the shared keys (no other client writes them on that
// node), and reads.
type writer struct {
	h             *harness
	idx           int // global client index
	nd            *node
	local, quorum *redis.Client
	all           *redis.Client // GEOCACHE ACK ALL
	rng           *rand.Rand
	own, shared   []string
	ops           []Op
	seq           int
	last          string            // the key last written
	lastVer       map[string]ownVer // this client's last own version of each key
}

type ownVer struct {
	inc int
	ver Version
}

// sharedKey is the name of shared key i; ownKey of a writer's key.
func sharedKey(i int) string      { return fmt.Sprintf("s%d", i) }
func ownKey(client, i int) string { return fmt.Sprintf("o%d.%d", client, i) }

func (w *writer) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		ok := w.step()
		pause := time.Duration(0)
		if m := w.h.cfg.ThinkTime; m > 0 {
			pause = min(time.Duration(w.rng.ExpFloat64()*float64(m)), 10*m)
		}
		if !ok {
			pause = max(pause, 50*time.Millisecond) // the node is down or paused: do not spin
		}
		if pause > 0 {
			select {
			case <-stop:
				return
			case <-time.After(pause):
			}
		}
	}
}

// step runs one operation and reports whether it got a reply.
func (w *writer) step() bool {
	r := w.rng.IntN(100)
	ownKey := w.own[w.rng.IntN(len(w.own))]
	u := w.rng.Float64()
	var ack string
	switch {
	case u < w.h.cfg.QuorumFraction:
		ack = AckQuorum
	case u < w.h.cfg.QuorumFraction+w.h.cfg.AllFraction:
		ack = AckAll
	}
	if len(w.h.counters) > 0 && w.rng.Float64() < w.h.cfg.CounterFraction {
		// (no draw without counters: a seed replays as before them)
		return w.incr(w.rng.IntN(len(w.h.counters)), ack)
	}
	if len(w.h.hashes) > 0 && w.rng.Float64() < w.h.cfg.HashFraction {
		return w.hashOp(w.rng.IntN(len(w.h.hashes)), ack)
	}

	switch {
	case r < 24:
		return w.write(KindSet, ownKey, 0, ack)
	case r < 38:
		return w.write(KindSet, ownKey, w.ttl(), ack)
	case r < 46:
		return w.write(KindDel, ownKey, 0, ack)
	case r < 52:
		return w.write(KindPExpire, ownKey, time.Duration(300+w.rng.IntN(4700))*time.Millisecond, ack)
	case r < 55:
		return w.write(KindPersist, ownKey, 0, ack)
	case r < 67 && len(w.shared) > 0:
		var ttl time.Duration
		if w.rng.IntN(10) < 3 {
			ttl = w.ttl()
		}
		return w.write(KindSet, w.shared[w.rng.IntN(len(w.shared))], ttl, ack)
	case r < 71 && len(w.shared) > 0:
		return w.write(KindDel, w.shared[w.rng.IntN(len(w.shared))], 0, ack)
	case r < 85 && w.last != "":
		return w.get(w.last) // read your write
	default:
		return w.get(w.h.anyKey(w.rng))
	}
}

// ttl is a write's time to live: mostly short enough to expire during the
// run, sometimes long.
func (w *writer) ttl() time.Duration {
	if w.rng.IntN(10) < 7 {
		return time.Duration(300+w.rng.IntN(2700)) * time.Millisecond
	}
	return time.Duration(10+w.rng.IntN(50)) * time.Second
}

// Acknowledgement levels of a write (Local is "").
const (
	AckQuorum = "quorum"
	AckAll    = "all"
)

func (w *writer) newOp(kind, key string, ack string) *Op {
	w.seq++
	inc := w.nd.incarnation()
	return &Op{Client: w.idx, Node: w.nd.idx, Quorum: ack != "", All: ack == AckAll, Kind: kind, Key: key, Inc0: inc}
}

// waitMS is the timeout of the WAIT that follows some Local writes.
const waitMS = 1000

// write runs one write followed by GEOCACHE VERSION on the same connection
// (and, for some Local writes, WAIT for every other region).
func (w *writer) write(kind, key string, ttl time.Duration, ack string) bool {
	op := w.newOp(kind, key, ack)
	var args []any
	switch kind {
	case KindSet:
		op.Value = fmt.Sprintf("%s|%d.%d", key, w.idx, w.seq)
		value := op.Value
		if w.rng.Float64() < w.h.cfg.LargeFraction {
			value, op.Large = padValue(op.Value), true
		}
		args = []any{"SET", key, value}
		if ttl > 0 {
			op.TTL = ttl
			args = append(args, "PX", ttl.Milliseconds())
		}
	case KindDel:
		args = []any{"DEL", key}
	case KindPExpire:
		op.TTL = ttl
		args = []any{"PEXPIRE", key, ttl.Milliseconds()}
	case KindPersist:
		args = []any{"PERSIST", key}
	}
	c := w.client(ack)
	wait := ack == "" && w.h.cfg.Regions > 1 && w.rng.Float64() < w.h.cfg.WaitFraction
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pipe := c.Pipeline()
	cmd := pipe.Do(ctx, args...)
	ver := pipe.Do(ctx, "GEOCACHE", "VERSION", key)
	var waitCmd *redis.Cmd
	if wait {
		waitCmd = pipe.Do(ctx, "WAIT", w.h.cfg.Regions-1, waitMS)
	}
	op.Invoke = w.h.clock.now()
	pipe.Exec(ctx)
	op.Complete = w.h.clock.now()
	op.Inc1 = w.nd.incarnation()
	val, err := cmd.Result()
	op.Status, op.Err, op.Late = classify(err)
	if op.Status == StatusOK && (kind == KindPExpire || kind == KindPersist) && val == int64(0) {
		op.Status = StatusNoop
	}
	if op.Status == StatusOK || op.Status == StatusNotAcked || op.Status == StatusNoop {
		v, verr := parseVersion(ver.Result())
		if verr != nil {
			op.Err = strings.TrimSpace(op.Err + " version: " + verr.Error())
		}
		op.Ver = v
		op.Own = op.Status != StatusNoop && w.owns(op, v)
		if op.Own {
			w.lastVer[key] = ownVer{op.Inc0, *v}
		}
	}
	if waitCmd != nil {
		op.Wait = -1 // sent, no integer reply
		if n, err := waitCmd.Int(); err == nil {
			op.Wait = n
		}
		op.Waited = true
	}
	if op.mayApply() {
		w.last = key
	}
	w.ops = append(w.ops, *op)
	return replied(op)
}

// replied reports whether the node answered op (an error reply counts):
// if not, it is down or paused, and the client backs off.
func replied(op *Op) bool {
	switch op.Status {
	case StatusUnknown:
		return false
	case StatusFail:
		return !strings.Contains(op.Err, "connection refused") && !strings.Contains(op.Err, "failed to dial")
	}
	return true
}

// owns reports whether the version v read right after op is op's own: it
// comes from this node (no other client writes this key here, so a version
// of this node is this client's), it is newer than this client's previous
// write of the key in the same incarnation, and it is the right kind.
func (w *writer) owns(op *Op, v *Version) bool {
	if v == nil || v.Origin != w.nd.id || op.Inc0 != op.Inc1 {
		return false
	}
	if prev, ok := w.lastVer[op.Key]; ok && prev.inc == op.Inc0 && v.Compare(prev.ver) <= 0 {
		return false
	}
	switch op.Kind {
	case KindDel:
		return v.Deleted
	case KindPersist:
		return !v.Deleted && v.ExpireAt == -1
	case KindPExpire:
		return !v.Deleted && v.ExpireAt != -1
	case KindSet:
		return !v.Deleted && (op.TTL > 0) == (v.ExpireAt != -1)
	}
	return false
}

func (w *writer) get(key string) bool {
	op := w.newOp(KindGet, key, "")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	op.Invoke = w.h.clock.now()
	v, err := w.local.Get(ctx, key).Result()
	op.Complete = w.h.clock.now()
	op.Inc1 = w.nd.incarnation()
	switch {
	case errors.Is(err, redis.Nil):
		op.Status = StatusOK
	case err == nil:
		op.Status, op.Found, op.Value = StatusOK, true, unpadValue(v)
	default:
		op.Status, op.Err, op.Late = classify(err)
	}
	w.ops = append(w.ops, *op)
	return replied(op)
}

// classify turns a command's error into a status. late reports a request
// that may still be executed after the client gave up on it (a timeout: the
// request may sit unread in the socket of a paused node).
func classify(err error) (status, msg string, late bool) {
	if err == nil {
		return StatusOK, "", false
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		if strings.HasPrefix(msg, "TIMEOUT") {
			return StatusNotAcked, msg, false
		}
		if strings.HasPrefix(msg, "ERR forwarding to ") {
			// Forwarded to its owner, which may have run it (--cluster-forward).
			return StatusUnknown, msg, true
		}
		return StatusFail, msg, false
	}
	msg = err.Error()
	var ne net.Error
	switch {
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "failed to dial") || errors.Is(err, redis.ErrPoolTimeout):
		return StatusFail, msg, false // the request was never sent
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return StatusUnknown, msg, true
	}
	return StatusUnknown, msg, false
}

// incarnation is the index of nd's current (or last) process.
func (nd *node) incarnation() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.incs) - 1
}

// probe is a visibility probe: a key written on one node, polled on every
// other until seen.
type probe struct {
	Key  string        `json:"key"`
	Node int           `json:"node"`
	T0   int64         `json:"t0"`
	Seen map[int]int64 `json:"seen"` // node -> completion of the first read that saw it
}

// prober writes probes; watchers (one per node) poll them.
type prober struct {
	h       *harness
	clients []*redis.Client // per node, for writes
	ops     []Op

	mu      sync.Mutex
	pending []*probe
	done    []*probe
}

func (p *prober) run(stop <-chan struct{}) {
	t := time.NewTicker(p.h.cfg.ProbeInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.expire()
		i := n % len(p.clients)
		nd := p.h.cl.nodes[i]
		key := fmt.Sprintf("p%d", n)
		op := Op{Client: -1, Node: i, Kind: KindSet, Key: key, Value: key + "|probe", Inc0: nd.incarnation()}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		op.Invoke = p.h.clock.now()
		err := p.clients[i].Set(ctx, key, op.Value, 0).Err()
		op.Complete = p.h.clock.now()
		cancel()
		op.Inc1 = nd.incarnation()
		op.Status, op.Err, op.Late = classify(err)
		p.ops = append(p.ops, op)
		if op.Status != StatusOK {
			continue
		}
		p.mu.Lock()
		p.pending = append(p.pending, &probe{Key: key, Node: i, T0: op.Invoke, Seen: map[int]int64{i: op.Complete}})
		p.mu.Unlock()
	}
}

// probeTimeout is how long a probe is polled for.
const probeTimeout = 10 * time.Second

// expire moves seen and timed-out probes to done.
func (p *prober) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.h.clock.now()
	keep := p.pending[:0]
	for _, pr := range p.pending {
		switch {
		case len(pr.Seen) == len(p.clients):
			p.done = append(p.done, pr)
		case now-pr.T0 > int64(probeTimeout):
			p.done = append(p.done, pr)
		default:
			keep = append(keep, pr)
		}
	}
	p.pending = keep
}

// watch polls node i for the pending probes it has not seen yet, about
// every millisecond while there are any.
func (p *prober) watch(i int, c *redis.Client, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		p.mu.Lock()
		var want []*probe
		var keys []string
		for _, pr := range p.pending {
			if _, ok := pr.Seen[i]; !ok {
				want = append(want, pr)
				keys = append(keys, pr.Key)
			}
		}
		p.mu.Unlock()
		if len(keys) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		vals, err := c.MGet(ctx, keys...).Result()
		cancel()
		t := p.h.clock.now()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		for k, v := range vals {
			if v != nil {
				if _, ok := want[k].Seen[i]; !ok {
					want[k].Seen[i] = t
				}
			}
		}
		p.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// client is the writer's connection for writes acknowledged at level ack
// (GEOCACHE ACK set once per connection).
func (w *writer) client(ack string) *redis.Client {
	switch ack {
	case AckQuorum:
		return w.quorum
	case AckAll:
		return w.all
	}
	return w.local
}

// do runs one command for op on the connection of its acknowledgement
// level, recording its times, incarnation and outcome, and returns its
// integer reply.
func (w *writer) do(op *Op, ack string, args ...any) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	op.Invoke = w.h.clock.now()
	n, err := w.client(ack).Do(ctx, args...).Int64()
	op.Complete = w.h.clock.now()
	op.Inc1 = w.nd.incarnation()
	op.Status, op.Err, op.Late = classify(err)
	return n, err
}

// Large values (Config.LargeFraction): a write's tag, then '~' up to a
// length between 300 KiB and 1 MiB that the tag decides.
const (
	largeMin  = 300 << 10
	largeSpan = 724 << 10
	padByte   = '~'
)

// padValue returns tag padded to its large length.
func padValue(tag string) string {
	return tag + strings.Repeat(string(padByte), padLen(tag))
}

func padLen(tag string) int {
	h := fnv.New32a()
	h.Write([]byte(tag))
	return largeMin - len(tag) + int(h.Sum32()%largeSpan)
}

// unpadValue returns the tag of a large value read back, or v itself if it
// is not one. A large value whose padding is not its tag's (cut short,
// mixed with another) comes back whole: it matches no write, and the
// checks report it.
func unpadValue(v string) string {
	i := strings.IndexByte(v, padByte)
	if i < 0 {
		return v
	}
	tag := v[:i]
	if len(v)-i != padLen(tag) || strings.Trim(v[i:], string(padByte)) != "" {
		return fmt.Sprintf("%.64s...(%d bytes, not a value of this run)", v, len(v))
	}
	return tag
}
