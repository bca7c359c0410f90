package repl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// Fetch connections. A node that keeps only its own slots answers a read
// of another slot's key by asking an owner in its region (Fetch). The
// question does not go on a replication link, where it would queue behind
// the link's full syncs and large values: it goes on a connection of its
// own to the owner's replication address, opened by a FetchHello (checked
// as a Hello: same cluster, protocol and identity rules, over the same
// TLS) and carrying only Fetch requests, answered in order by Fetched
// frames. Such a connection takes over no stream, and counts toward the
// owner's MaxInbound like any other. A node keeps at most one per peer
// address, on which the fetches of all its callers are pipelined (at most
// maxFetchesInFlight at a time); either side closes it after DeadTimeout
// without traffic, and a fetch that finds its connection closed under it
// tries once more on a new one (a fetch is a read: asking twice is
// harmless).

// fetchProto is the first protocol version with fetch connections: a
// peer of an older one refuses a FetchHello.
const fetchProto = 10

// maxFetchesInFlight bounds the fetches waiting for their answer on one
// connection: past it, Fetch fails at once (ErrFetchBusy).
const maxFetchesInFlight = 4096

// ErrFetchBusy is returned by Fetch when maxFetchesInFlight fetches are
// already waiting for the same peer.
var ErrFetchBusy = errors.New("repl: too many fetches in flight to the peer")

// Fetched is a peer's answer to Fetch.
type Fetched struct {
	// Op is the peer's entry of the key (KindSet, KindCounter or
	// KindHash, with its state and version) or its tombstone (KindDelete),
	// if Found. The caller checks a Counter's or Hash's state as it
	// would a replicated one's (store.EntryOfOp).
	Op    store.Op
	Found bool
	// Partial: the peer may lack writes its region holds of the key's
	// slot (it does not keep the slot, or is still filling it).
	Partial bool
	// Addr is the replication address of the peer that answered.
	Addr string
}

// Fetch asks the node at the replication address addr for its entry of
// key, making it most recently used there if touch. It fails with ctx's
// error, ErrClosed, ErrFetchBusy, or the connection's.
func (r *Replicator) Fetch(ctx context.Context, addr, key string, touch bool) (Fetched, error) {
	if len(key) > wire.MaxKeyLen {
		return Fetched{}, fmt.Errorf("repl: key of %d bytes, over %d", len(key), wire.MaxKeyLen)
	}
	for attempt := 0; ; attempt++ {
		fc, reused, err := r.fetchConnTo(ctx, addr)
		if err != nil {
			r.fetchFailures.Add(1)
			return Fetched{}, err
		}
		ans, err := fc.ask(ctx, r.ctx, key, touch)
		if err == nil && ans.Found && ans.Op.Key != key {
			err = fmt.Errorf("repl: the peer at %s answered a fetch of one key with another's entry", addr)
			fc.fail(err)
			r.fetchFailures.Add(1)
			return Fetched{}, err
		}
		if err == nil {
			r.fetchesSent.Add(1)
			ans.Addr = addr
			return ans, nil
		}
		// A connection found open may have been closing (idle on the
		// peer's side): once more on a new one.
		if !reused || attempt > 0 || ctx.Err() != nil || r.ctx.Err() != nil || errors.Is(err, ErrFetchBusy) {
			r.fetchFailures.Add(1)
			if r.ctx.Err() != nil {
				return Fetched{}, ErrClosed
			}
			return Fetched{}, err
		}
	}
}

// fetchPeer is the fetch connection to one peer address. turn is held
// (a token in it) while the connection is looked at or dialed, so that
// callers share one dial, the dials to other peers do not wait for it,
// and a caller whose context ends stops waiting for it.
type fetchPeer struct {
	turn  chan struct{} // capacity 1
	conn  *fetchConn    // nil or failed: none open
	tried bool          // dialed at least once (under turn)
	// failed is when the last dial or handshake failed, err why (under
	// turn; nil once one succeeds): the peer is not dialed again before
	// fetchRedial has passed, and fetches meanwhile fail at once with err.
	failed time.Time
	err    error
}

// fetchRedial is how long a peer whose dial or handshake failed is not
// dialed again for a fetch: a peer that is down, or of a protocol version
// without fetches, costs one dial a second, not one per read.
const fetchRedial = time.Second

// maxFetchPeers is the number of peer addresses past which the ones
// without an open connection are forgotten.
const maxFetchPeers = 64

// fetchConnTo returns the open fetch connection to addr, or opens one;
// reused says it was open already.
func (r *Replicator) fetchConnTo(ctx context.Context, addr string) (*fetchConn, bool, error) {
	r.fetchMu.Lock()
	p := r.fetchPeers[addr]
	if p == nil {
		if len(r.fetchPeers) >= maxFetchPeers {
			for a, q := range r.fetchPeers {
				select {
				case q.turn <- struct{}{}:
					// Not one just made, whose caller has yet to dial.
					if q.tried && (q.conn == nil || !q.conn.open()) {
						delete(r.fetchPeers, a)
					}
					<-q.turn
				default: // being dialed
				}
			}
		}
		if r.fetchPeers == nil {
			r.fetchPeers = map[string]*fetchPeer{}
		}
		p = &fetchPeer{turn: make(chan struct{}, 1)}
		r.fetchPeers[addr] = p
	}
	r.fetchMu.Unlock()

	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	defer func() { <-p.turn }()
	if p.conn != nil && p.conn.open() {
		return p.conn, true, nil
	}
	if p.err != nil && time.Since(p.failed) < fetchRedial {
		return nil, false, fmt.Errorf("%w (not dialed again within %v)", p.err, fetchRedial)
	}
	p.tried = true
	start := time.Now()
	conn, hfc, _, err := r.dialFetch(ctx, addr)
	if err != nil {
		// The peer's failure, not the caller's: refused, or not answering
		// within fetchRedial (a caller's short context aside).
		if r.ctx.Err() == nil && (ctx.Err() == nil || time.Since(start) >= fetchRedial) {
			p.failed, p.err = time.Now(), err
		}
		return nil, false, err
	}
	p.err = nil
	fc := &fetchConn{fc: hfc}
	p.conn = fc
	go func() {
		defer r.wg.Done()
		defer r.untrack(conn)
		fc.fail(r.readFetched(fc))
	}()
	return fc, false, nil
}

// dialFetch opens a fetch connection to addr and returns it with the
// peer's Hello. The connection is tracked, and counted in r.wg: the caller
// ends with r.wg.Done() and r.untrack(conn). The dial and the handshake
// end with ctx, with Close, and after DeadTimeout.
func (r *Replicator) dialFetch(ctx context.Context, addr string) (net.Conn, *frameConn, *wire.Hello, error) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DeadTimeout)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)() // Close does not wait for a dial
	conn, err := r.cfg.Dial(dctx, addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("repl: fetch connection to %s: %w", addr, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		conn.Close()
		return nil, nil, nil, ErrClosed
	}
	r.conns[conn] = struct{}{}
	r.wg.Add(1) // under mu, before Close can wait
	r.mu.Unlock()
	fc := newHandshakeConn(conn, r.cfg.MaxFrame, r.cfg.DeadTimeout)
	// The handshake ends with the dial's context too: a peer that accepts
	// and never answers holds a caller no longer than its context.
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	h, err := r.fetchHandshake(fc)
	if !stop() && err == nil {
		err = dctx.Err()
	}
	if err != nil {
		r.untrack(conn)
		r.wg.Done()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, nil, fmt.Errorf("repl: fetch connection to %s: %w", addr, err)
	}
	fc.grow()
	return conn, fc, h, nil
}

// fetchHandshake opens a fetch connection: FetchHello, then the peer's
// Hello, checked as a link's and returned.
func (r *Replicator) fetchHandshake(fc *frameConn) (*wire.Hello, error) {
	if err := fc.write(&wire.FetchHello{Hello: *r.hello()}); err != nil {
		return nil, err
	}
	h, err := readHello(fc)
	if err != nil {
		return nil, err
	}
	rej := r.checkHello(h)
	if rej == nil && (h.Proto < fetchProto || h.Proto > wire.Proto) {
		rej = &wire.Reject{Code: wire.RejectProtocol, Message: fmt.Sprintf("answered a FetchHello of protocol %d with %d", wire.Proto, h.Proto)}
	}
	if rej != nil {
		fc.write(publicReject(rej, h))
		return nil, fmt.Errorf("this node refused the peer: %s", rej.Message)
	}
	return h, nil
}

// fetchConn is an open fetch connection: the answers due, in the order of
// the requests sent.
type fetchConn struct {
	fc  *frameConn
	mu  sync.Mutex
	due []chan fetchAnswer
	err error // once failed; due is then empty
	// out holds the requests not yet written, while one caller writes
	// (writing); spare is the buffer of the last write, reused.
	out, spare []byte
	writing    bool
}

type fetchAnswer struct {
	ans Fetched
	err error
}

func (c *fetchConn) open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// ask sends one request and waits for its answer.
func (c *fetchConn) ask(ctx, closing context.Context, key string, touch bool) (Fetched, error) {
	ch := make(chan fetchAnswer, 1)
	c.mu.Lock()
	switch {
	case c.err != nil:
		c.mu.Unlock()
		return Fetched{}, c.err
	case len(c.due) >= maxFetchesInFlight:
		c.mu.Unlock()
		return Fetched{}, ErrFetchBusy
	}
	c.due = append(c.due, ch)
	// The requests go out in the order of due, several to a write: the
	// caller that finds no write in progress writes what the others
	// queued meanwhile too.
	c.out = (&wire.Fetch{Touch: touch, Key: key}).Append(c.out)
	if !c.writing {
		c.writing = true
		var err error
		for len(c.out) > 0 && err == nil {
			out := c.out
			c.out, c.spare = c.spare[:0], nil // spare is free: its write is done
			c.mu.Unlock()
			err = c.fc.writeBytes(out)
			c.mu.Lock()
			c.spare = out
		}
		c.writing = false
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
		}
	} else {
		c.mu.Unlock()
	}
	select {
	case a := <-ch:
		return a.ans, a.err
	case <-ctx.Done():
		return Fetched{}, ctx.Err()
	case <-closing.Done():
		return Fetched{}, ErrClosed
	}
}

// answer hands the next answer to its request; false if none is due.
func (c *fetchConn) answer(a Fetched) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.due) == 0 {
		return false
	}
	ch := c.due[0]
	c.due[0] = nil
	c.due = c.due[1:]
	ch <- fetchAnswer{ans: a}
	return true
}

// fail ends the connection: every request due gets err.
func (c *fetchConn) fail(err error) {
	if err == nil {
		err = errors.New("repl: fetch connection closed")
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for _, ch := range c.due {
		ch <- fetchAnswer{err: c.err}
	}
	c.due = nil
	c.mu.Unlock()
	c.fc.c.Close()
}

// readFetched reads the answers on c until it fails (the peer closed it,
// or it was idle for DeadTimeout).
func (r *Replicator) readFetched(c *fetchConn) error {
	// A large answer: its Fetched frame (pending), then its LargeOp
	// (large), then its parts.
	var pending *Fetched
	var large *largeRecv
	for {
		f, err := c.fc.read()
		if err != nil {
			return c.fc.rejectRead(err)
		}
		var ans Fetched
		switch f := f.(type) {
		case *wire.Fetched:
			if pending != nil {
				return c.fc.reject(wire.RejectBadFrame, "an answer while a large one is arriving")
			}
			ans = Fetched{Found: f.Found, Partial: f.Partial}
			if f.Large {
				pending = &ans
				continue
			}
			if f.Found {
				ans.Op = fromWireOp(&f.Op)
			}
		case *wire.LargeOp:
			if pending == nil || large != nil || f.Seq != 0 || f.Op.Kind == wire.KindPublish {
				return c.fc.reject(wire.RejectBadFrame, "a large op that answers no fetch")
			}
			if large, err = newLargeRecv(f, r.cfg.MaxValueBytes); err != nil {
				return c.fc.reject(wire.RejectBadFrame, "fetched: %v", err)
			}
			continue
		case *wire.ValuePart:
			if large == nil {
				return c.fc.reject(wire.RejectBadFrame, "a value part that answers no fetch")
			}
			done, err := large.add(f)
			if err != nil {
				return c.fc.reject(wire.RejectBadFrame, "fetched: %v", err)
			}
			if !done {
				continue
			}
			ans = *pending
			ans.Op = fromWireOp(&large.op)
			pending, large = nil, nil
		case *wire.Reject:
			return errors.New("repl: the peer closed the fetch connection: " + f.Code.String() + ": " + f.Message)
		default:
			return c.fc.reject(wire.RejectBadFrame, "unexpected %T frame on a fetch connection", f)
		}
		if !c.answer(ans) {
			return c.fc.reject(wire.RejectBadFrame, "an answer to no fetch")
		}
	}
}

// serveFetches answers the Fetch requests of a connection that started
// with a FetchHello, until it fails or stays idle for DeadTimeout.
func (r *Replicator) serveFetches(c net.Conn, fc *frameConn, h *wire.Hello) error {
	rej := r.checkHello(h)
	if rej == nil && h.Proto < fetchProto {
		rej = &wire.Reject{Code: wire.RejectProtocol, Message: fmt.Sprintf("a FetchHello of protocol %d; fetches exist since %d", h.Proto, fetchProto)}
	}
	if rej != nil {
		r.refused(c.RemoteAddr(), h, rej)
		fc.write(publicReject(rej, h))
		return errors.New("repl: refused fetching peer: " + rej.Message)
	}
	proto := min(h.Proto, wire.Proto)
	if err := fc.write(r.helloAt(proto)); err != nil {
		return err
	}
	fc.grow()
	for {
		f, err := fc.read()
		if err != nil {
			return fc.rejectRead(err)
		}
		switch q := f.(type) {
		case *wire.Fetch:
			err = r.answerFetch(fc, q)
		case *wire.SlotSync:
			if proto < slotSyncProto {
				return fc.reject(wire.RejectBadFrame, "a SlotSync on a connection of protocol %d; slot syncs exist since %d", proto, slotSyncProto)
			}
			if err := fc.flush(); err != nil {
				return err
			}
			err = r.answerSlotSync(fc, h, q)
		default:
			return fc.reject(wire.RejectBadFrame, "unexpected %T frame on a fetch connection", f)
		}
		if err != nil {
			return err
		}
		// The answers to the fetches already here go out together.
		if fc.r.Buffered() == 0 || fc.queued() >= r.cfg.BatchBytes {
			if err := fc.flush(); err != nil {
				return err
			}
		}
	}
}

// answerFetch answers one Fetch with this node's entry or tombstone of the
// key.
func (r *Replicator) answerFetch(fc *frameConn, q *wire.Fetch) error {
	r.fetchesServed.Add(1)
	op, found := r.entryOp(q.Key, q.Touch)
	ans := &wire.Fetched{Found: found, Partial: r.cfg.Holds != nil && !r.cfg.Holds(cluster.KeySlot(q.Key))}
	var w wire.Op
	if found {
		w = toWireOp(&op)
		ans.Op = w
	}
	if !found || !r.isLarge(&w) {
		fc.queue(ans) // written with the answers after it (serveFetches)
		return nil
	}
	ans.Large, ans.Op = true, wire.Op{}
	fc.queue(ans)
	return r.writeLarge(fc, w)
}

// entryOp returns key's live entry as the op that reproduces it (a
// counter's or hash's with its state), else its tombstone, making a live
// entry most recently used if touch.
func (r *Replicator) entryOp(key string, touch bool) (store.Op, bool) {
	var e store.Entry
	var ok bool
	if touch {
		e, ok = r.cfg.Store.Get(key)
	} else {
		e, ok = r.cfg.Store.Peek(key)
	}
	switch {
	case ok && (e.Kind == store.KindCounter || e.Kind == store.KindHash):
		return store.Op{Kind: e.Kind, Key: key, Value: e.State, ExpireAt: e.ExpireAt, Version: e.Version}, true
	case ok:
		return store.Op{Kind: store.KindSet, Key: key, Value: e.Value, ExpireAt: e.ExpireAt, Version: e.Version}, true
	}
	return r.cfg.Store.TombstoneOp(key)
}
