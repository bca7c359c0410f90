package geocache

import (
	"context"
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/repl"
	"github.com/geocache/geocache/internal/store"
)

// Session is a sequence of writes through one node, with its own default
// acknowledgement level, whose writes can be waited for together — what a
// Redis connection is to WAIT. It is safe for concurrent use; create one
// with Node.NewSession.
type Session struct {
	n    *Node
	ack  atomic.Uint32
	last atomic.Uint64 // sequence number of the session's latest write
	// slots are the hash slots of the keys the session wrote (nil until
	// its first write of a key): Wait counts a region of nodes that keep
	// only their own slots once nodes holding those slots acknowledged,
	// whatever the state of the others.
	slots atomic.Pointer[sessionSlots]

	mu       sync.Mutex  // guards the batch (BeginBatch)
	batching atomic.Bool // written under mu; read without it on every write (collect)
	pending  []store.Op  // the batch's writes
	messages []store.Op  // messages published during the batch
}

// NewSession returns a session on n whose writes default to Local
// acknowledgement.
func (n *Node) NewSession() *Session { return &Session{n: n} }

// SetAck sets the acknowledgement level of the session's writes that do not
// pass WithAck.
func (s *Session) SetAck(a Ack) { s.ack.Store(uint32(a)) }

// Ack returns the session's default acknowledgement level.
func (s *Session) Ack() Ack { return Ack(s.ack.Load()) }

// sessionSlots is a set of hash slots, written with atomic ORs.
type sessionSlots [cluster.Slots / 64]atomic.Uint64

// noteSlot adds key's slot to the session's slots.
func (s *Session) noteSlot(key string) {
	set := s.slots.Load()
	if set == nil {
		s.slots.CompareAndSwap(nil, new(sessionSlots))
		set = s.slots.Load()
	}
	slot := cluster.KeySlot(key)
	if w := &set[slot>>6]; w.Load()&(1<<(slot&63)) == 0 {
		w.Or(1 << (slot & 63))
	}
}

// writtenSlots returns the slots of the keys the session wrote, in order.
func (s *Session) writtenSlots() []uint16 {
	slots := []uint16{} // not nil: nil would mean every slot
	set := s.slots.Load()
	if set == nil {
		return slots
	}
	for i := range set {
		for w := set[i].Load(); w != 0; w &= w - 1 {
			slots = append(slots, uint16(i*64+bits.TrailingZeros64(w)))
		}
	}
	return slots
}

func (s *Session) noteWrite(seq uint64) {
	for {
		cur := s.last.Load()
		if seq <= cur || s.last.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Set is Node.Set in the session.
func (s *Session) Set(ctx context.Context, key string, value []byte, opts ...Option) error {
	return s.n.set(ctx, s, key, value, opts)
}

// Delete is Node.Delete in the session.
func (s *Session) Delete(ctx context.Context, key string, opts ...Option) error {
	return s.n.delete(ctx, s, key, opts)
}

// Update is Node.Update in the session.
func (s *Session) Update(ctx context.Context, key string, fn func(cur Item, found bool) Change, opts ...Option) (Item, bool, error) {
	return s.n.update(ctx, s, key, fn, opts)
}

// Expire is Node.Expire in the session.
func (s *Session) Expire(ctx context.Context, key string, ttl time.Duration, opts ...Option) error {
	return s.n.expire(ctx, s, key, s.n.phys.UnixNano()+int64(ttl), opts)
}

// Persist is Node.Persist in the session.
func (s *Session) Persist(ctx context.Context, key string, opts ...Option) error {
	return s.n.expire(ctx, s, key, 0, opts)
}

// Wait blocks until the session's writes so far are applied in at least
// regions other regions, or ctx ends, and returns how many other regions
// have applied them (Redis's WAIT, counting regions). A session without
// writes returns at once with the number of other regions known. In a
// region whose nodes keep only their own slots, the writes count as
// applied once nodes holding the slots of the keys the session wrote have
// acknowledged them: the slots the session never wrote, whose owners may
// be failing over, do not hold it up.
func (s *Session) Wait(ctx context.Context, regions int) (int, error) {
	got, err := s.n.repl.Wait(ctx, s.last.Load(), s.writtenSlots(), regions)
	if errors.Is(err, repl.ErrClosed) {
		return got, ErrClosed
	}
	return got, err
}

// BeginBatch makes the session's next writes one transaction: each is
// applied on this node at once, as usual, but they enter the replication
// log together at EndBatch, after which every other node applies them as
// one unit (through its BatchGate: the RESP server's clients see all of
// them or none). Messages published through the session meanwhile follow
// the batch. Writes of a batch do not wait for their acknowledgement
// level: EndBatch waits for the session's level on the whole batch. The
// RESP server's EXEC runs its queue inside a batch. A session runs one
// batch at a time; BeginBatch during one panics.
func (s *Session) BeginBatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.batching.Load() {
		panic("geocache: Session.BeginBatch inside a batch")
	}
	s.batching.Store(true)
}

// EndBatch appends the batch's writes to the replication log as one
// transaction, then the messages published during it, and waits, within
// ctx, for the session's acknowledgement level (ErrAckTimeout: applied
// here and replicating, not yet acknowledged). A batch without writes
// appends nothing.
func (s *Session) EndBatch(ctx context.Context) error {
	s.mu.Lock()
	ops, msgs := s.pending, s.messages
	s.batching.Store(false)
	s.pending, s.messages = nil, nil
	s.mu.Unlock()
	var last uint64
	if len(ops) > 0 {
		last = s.n.repl.AppendBatch(ops)
	}
	for _, m := range msgs {
		last = s.n.repl.Append(m)
	}
	if last == 0 {
		return nil
	}
	for _, op := range ops {
		s.noteSlot(op.Key)
	}
	s.noteWrite(last)
	if s.Ack() == Local {
		return nil
	}
	keys := make([]string, 0, len(ops)) // messages have none: any node takes them
	for _, op := range ops {
		keys = append(keys, op.Key)
	}
	return s.n.await(ctx, last, s.Ack(), keys...)
}

// collect keeps op for the batch, if one is open, and reports whether it
// did. Outside a batch it costs one atomic load.
func (s *Session) collect(op store.Op) bool {
	if !s.batching.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.batching.Load() {
		return false
	}
	if op.Kind == store.KindPublish {
		s.messages = append(s.messages, op)
	} else {
		s.pending = append(s.pending, op)
	}
	return true
}

// Publish is Node.Publish in the session: inside a batch, the message is
// delivered here at once and to other nodes after the batch.
func (s *Session) Publish(ctx context.Context, channel string, payload []byte) (int, error) {
	return s.n.publishMessage(ctx, s, channel, payload)
}

// BatchGate runs apply, which applies one replicated transaction (a batch
// of writes to keys), as one unit for the readers of this node. The RESP
// server installs one that holds back its clients' commands on keys
// meanwhile (see Node.SetBatchGate).
type BatchGate func(keys []string, apply func())

// SetBatchGate installs the gate through which this node applies the
// transactions replicated from other nodes, and returns the function that
// removes it. Without one, each write of a transaction is applied
// atomically on its own, in order. One gate at a time: the last installed
// wins.
func (n *Node) SetBatchGate(g BatchGate) (remove func()) {
	p := &g
	n.gate.Store(p)
	return func() { n.gate.CompareAndSwap(p, nil) }
}

func (n *Node) applyBatch(keys []string, apply func()) {
	if g := n.gate.Load(); g != nil {
		(*g)(keys, apply)
		return
	}
	apply()
}
