package geocache

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache/internal/repl"
)

// Session is a sequence of writes through one node, with its own default
// acknowledgement level, whose writes can be waited for together — what a
// Redis connection is to WAIT. It is safe for concurrent use; create one
// with Node.NewSession.
type Session struct {
	n    *Node
	ack  atomic.Uint32
	last atomic.Uint64 // sequence number of the session's latest write
}

// NewSession returns a session on n whose writes default to Local
// acknowledgement.
func (n *Node) NewSession() *Session { return &Session{n: n} }

// SetAck sets the acknowledgement level of the session's writes that do not
// pass WithAck.
func (s *Session) SetAck(a Ack) { s.ack.Store(uint32(a)) }

// Ack returns the session's default acknowledgement level.
func (s *Session) Ack() Ack { return Ack(s.ack.Load()) }

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
// writes returns at once with the number of other regions known.
func (s *Session) Wait(ctx context.Context, regions int) (int, error) {
	got, err := s.n.repl.Wait(ctx, s.last.Load(), regions)
	if errors.Is(err, repl.ErrClosed) {
		return got, ErrClosed
	}
	return got, err
}
