package geocache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/geocache/geocache/internal/store"
)

// Pub/sub across regions. A message published on any node reaches the
// listeners of every node of every region it is connected to: it travels
// in the publishing node's replication log, in order with its writes, so a
// node's messages arrive everywhere in the order it published them, after
// the writes it made before them. Delivery is at most once: a message is
// not stored, a node that was away past its peer's log (or restarted)
// misses what was published meanwhile, and a listener that cannot keep up
// loses what it cannot take (the RESP server disconnects a subscriber over
// its output buffer limit, as Redis does).

// MessageFunc receives a published message: the channel and the payload,
// which it must not modify or keep after it returns (copy it to keep it).
// It runs on the publishing goroutine or the replication goroutine of the
// origin's link, so it must not block; it returns the number of receivers
// it handed the message to (the count PUBLISH answers).
type MessageFunc func(channel string, payload []byte) int

// listeners is the set of registered MessageFuncs, copied on write so that
// delivery takes no lock.
type listeners struct {
	mu   sync.Mutex
	next uint64
	fns  atomic.Pointer[[]listener]
}

type listener struct {
	id uint64
	fn MessageFunc
}

// OnMessage registers fn to receive every message published on this node
// or on any node that replicates to it, and returns the function that
// unregisters it (idempotent). The RESP server registers its SUBSCRIBE and
// PSUBSCRIBE hub this way; an embedded application may register its own.
func (n *Node) OnMessage(fn MessageFunc) (remove func()) {
	l := &n.listeners
	l.mu.Lock()
	l.next++
	id := l.next
	old := l.load()
	fns := append(old[:len(old):len(old)], listener{id: id, fn: fn})
	l.fns.Store(&fns)
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			cur := l.load()
			fns := make([]listener, 0, len(cur))
			for _, x := range cur {
				if x.id != id {
					fns = append(fns, x)
				}
			}
			l.fns.Store(&fns)
		})
	}
}

func (l *listeners) load() []listener {
	if p := l.fns.Load(); p != nil {
		return *p
	}
	return nil
}

// deliver hands a message to this node's listeners and returns how many
// receivers they reached.
func (l *listeners) deliver(channel string, payload []byte) int {
	n := 0
	for _, x := range l.load() {
		n += x.fn(channel, payload)
	}
	return n
}

// Publish sends payload on channel to the listeners of this node (OnMessage)
// and, through replication, of every node of every region, and returns the
// number of receivers on this node, which is what Redis's PUBLISH answers
// in a cluster. It does not wait for other regions. The channel is bounded
// like a key and the payload like a value (ErrTooLarge). Like a write, it
// waits while the node is starting (ErrStarting when ctx ends first), so
// that its place in the node's order is versioned after the previous
// process's writes.
func (n *Node) Publish(ctx context.Context, channel string, payload []byte) (int, error) {
	return n.publishMessage(ctx, nil, channel, payload)
}

func (n *Node) publishMessage(ctx context.Context, s *Session, channel string, payload []byte) (int, error) {
	if err := n.CheckSize(len(channel), int64(len(payload))); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	ver, err := n.version(ctx)
	if err != nil {
		return 0, err
	}
	// The log keeps the payload until every peer has it: a copy, so that
	// the caller may reuse its buffer.
	n.publish(s, store.Op{Kind: store.KindPublish, Key: channel, Value: append([]byte(nil), payload...), Version: ver})
	return n.listeners.deliver(channel, payload), nil
}
