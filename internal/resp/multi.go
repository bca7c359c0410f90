package resp

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/geocache/geocache"
)

// Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis 7.0's
// replies. After MULTI a connection queues its commands (+QUEUED); EXEC
// runs them back to back while holding the stripes of every key they name
// and every key the connection watches (keylocks.go), so no other client's
// command on those keys runs in between, and answers an array of their
// replies. A command refused while queuing (unknown, wrong arity, not
// authenticated) makes EXEC answer EXECABORT and run nothing. EXEC answers
// a null array, and runs nothing, if a watched key changed on this node
// since WATCH: a new version of it (written here or replicated from
// another region), or its entry gone (deleted, expired, evicted).
//
// Across regions each write of the batch replicates on its own, in order:
// another region applies them one by one, and a reader there may see part
// of the batch (docs/compatibility.md).

// txState is a connection's open transaction.
type txState struct {
	cmds   []queued
	bytes  int  // of the queued arguments
	failed bool // a command was refused while queuing: EXEC aborts
}

// queued is one command of a transaction, with a copy of its arguments
// (the reader reuses its buffers).
type queued struct {
	cmd  *command
	args [][]byte
}

// watchedKey is a key a connection WATCHes, and what this node held of it
// when WATCH ran.
type watchedKey struct {
	key  string
	live bool
	hlc  uint64
	orig uint32
}

// Bounds of one connection's transaction state: the queued arguments
// count against MaxRequestBytes (a transaction holds no more than one
// request may), and a connection watches at most maxWatched keys.
const maxWatched = 100_000

func cmdMulti(c *conn, _ [][]byte) {
	if c.tx != nil {
		c.replyError("ERR MULTI calls can not be nested")
		return
	}
	c.tx = &txState{}
	c.replyOK()
}

func cmdDiscard(c *conn, _ [][]byte) {
	if c.tx == nil {
		c.replyError("ERR DISCARD without MULTI")
		return
	}
	c.tx, c.watched = nil, nil
	c.replyOK()
}

func cmdWatch(c *conn, args [][]byte) {
	if c.tx != nil {
		c.replyError("ERR WATCH inside MULTI is not allowed")
		return
	}
	for _, k := range args[1:] {
		key := string(k)
		if c.watching(key) {
			continue
		}
		if len(c.watched) >= maxWatched {
			c.replyError("ERR too many watched keys: a connection watches at most 100000")
			return
		}
		c.watched = append(c.watched, c.snapshotKey(key))
	}
	c.replyOK()
}

func cmdUnwatch(c *conn, _ [][]byte) {
	c.watched = nil
	c.replyOK()
}

func (c *conn) watching(key string) bool {
	for _, w := range c.watched {
		if w.key == key {
			return true
		}
	}
	return false
}

// snapshotKey records what this node holds of key now.
func (c *conn) snapshotKey(key string) watchedKey {
	it, err := c.s.node.Lookup(key)
	if err != nil {
		return watchedKey{key: key}
	}
	return watchedKey{key: key, live: true, hlc: it.HLC, orig: it.Origin}
}

// queue adds a command to the open transaction and answers +QUEUED, or
// refuses it (and dooms the transaction) when it would exceed the bound.
func (c *conn) queue(cmd *command, args [][]byte) {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	if c.tx.bytes+n > c.s.cfg.MaxRequestBytes {
		c.tx.failed = true
		c.replyError("ERR transaction too large: its queued commands exceed the request limit")
		return
	}
	buf := make([]byte, 0, n)
	copied := make([][]byte, len(args))
	for i, a := range args {
		buf = append(buf, a...)
		copied[i] = buf[len(buf)-len(a):]
	}
	c.tx.cmds = append(c.tx.cmds, queued{cmd: cmd, args: copied})
	c.tx.bytes += n
	c.replySimple("QUEUED")
}

func cmdExec(c *conn, _ [][]byte) {
	tx, watched := c.tx, c.watched
	if tx == nil {
		c.replyError("ERR EXEC without MULTI")
		return
	}
	c.tx, c.watched = nil, nil
	if tx.failed {
		c.replyError("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	var keys [][]byte
	for _, w := range watched {
		keys = append(keys, []byte(w.key))
	}
	for _, q := range tx.cmds {
		keys = commandKeys(keys, q.cmd, q.args)
	}
	start, err := c.execIsolated(tx, watched, keys)
	c.asking = false // an ASKING queued in the transaction ends with it, as in Redis
	if err != nil {
		// Applied here and replicating, as a single write that times out:
		// the transaction's answer is the error.
		if start <= len(c.out) { // else a queued SUBSCRIBE sent the replies already
			c.out = c.out[:start]
			c.replyWriteError(err)
		}
	}
}

// execIsolated runs the queue holding the stripes of keys, unless a
// watched key changed, and then, with the stripes released, hands the
// batch to replication and waits for the connection's acknowledgement
// level (no key stays held for that wait). It returns where EXEC's reply
// starts in c.out.
func (c *conn) execIsolated(tx *txState, watched []watchedKey, keys [][]byte) (int, error) {
	c.s.locks.beginTx(c.s.otherConnsRunning(c))
	stripes := c.s.locks.stripesOf(nil, keys...)
	c.s.locks.lock(stripes)
	release := func() {
		c.s.locks.unlock(stripes)
		c.s.locks.endTx()
	}
	for _, w := range watched {
		if c.snapshotKey(w.key) != w {
			release()
			c.replyNullArray()
			return 0, nil
		}
	}
	start := len(c.out)
	c.replyArray(len(tx.cmds))
	c.inExec = true
	c.sess.BeginBatch()
	func() {
		defer func() { c.inExec = false }()
		defer release()
		for _, q := range tx.cmds {
			c.run(q.cmd, q.args)
		}
	}()
	ctx, cancel := c.writeCtx()
	defer cancel()
	return start, c.sess.EndBatch(ctx)
}

// applyBatch is the node's BatchGate: a transaction replicated from
// another node is applied as EXEC runs one here, isolated from the
// clients' commands on its keys.
func (s *Server) applyBatch(keys []string, apply func()) {
	s.locks.beginTx(s.otherConnsRunning(nil))
	defer s.locks.endTx()
	bs := make([][]byte, len(keys))
	for i, k := range keys {
		bs[i] = []byte(k)
	}
	stripes := s.locks.stripesOf(nil, bs...)
	s.locks.lock(stripes)
	defer s.locks.unlock(stripes)
	apply()
}

// otherConnsRunning walks the running flags of every connection but c
// (beginTx waits for them).
func (s *Server) otherConnsRunning(c *conn) func(yield func(*atomic.Bool)) {
	return func(yield func(*atomic.Bool)) {
		s.mu.Lock()
		flags := make([]*atomic.Bool, 0, len(s.conns))
		for o := range s.conns {
			if o != c {
				flags = append(flags, &o.running)
			}
		}
		s.mu.Unlock()
		for _, f := range flags {
			yield(f)
		}
	}
}

// waitInExec is WAIT inside a transaction: it does not block, as in
// Redis, and answers how many other regions have the connection's writes
// now.
func (c *conn) waitInExec(n int64) {
	ctx, cancel := context.WithCancel(c.s.ctx)
	cancel()
	got, err := c.sess.Wait(ctx, int(max(n, 0)))
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, geocache.ErrClosed) {
		c.replyWriteError(err)
		return
	}
	c.replyInt(int64(got))
}
