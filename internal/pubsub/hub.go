package pubsub

import (
	"slices"
	"sync"

	"github.com/geocache/geocache/internal/glob"
)

// Subscriber receives the messages of its subscriptions. Its methods are
// called with the hub's read lock held, possibly from several publishing
// goroutines at once: they must not block, must not call the hub, and must
// not keep payload after they return (copy it).
type Subscriber interface {
	// Message delivers payload, published on channel, to a subscription to
	// channel.
	Message(channel string, payload []byte)
	// PMessage delivers payload, published on channel, to a subscription
	// to pattern, which channel matches.
	PMessage(pattern, channel string, payload []byte)
}

// Hub holds the subscriptions of a server. The zero value is not usable;
// create it with New. Its methods are safe for concurrent use.
type Hub struct {
	// mu guards the fields below. Publish holds it for reading while it
	// calls the subscribers.
	mu       sync.RWMutex
	channels map[string]map[Subscriber]struct{}
	patterns map[string]*pattern
	// patList holds the patterns of patterns, for Publish to walk without
	// a map iteration; each pattern knows its index (swap-remove).
	patList []*pattern
}

type pattern struct {
	text  string
	index int // in Hub.patList
	subs  map[Subscriber]struct{}
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{
		channels: make(map[string]map[Subscriber]struct{}),
		patterns: make(map[string]*pattern),
	}
}

// Subscribe subscribes s to channel. Subscribing twice is the same as
// once. then, if not nil, runs once the subscription is made, before any
// message is delivered to it (the hub is locked meanwhile): what it
// records — the RESP server queues the SUBSCRIBE confirmation — comes
// after the subscription exists and before its first message. It must not
// block, nor call the hub.
func (h *Hub) Subscribe(s Subscriber, channel string, then func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.channels[channel]
	if subs == nil {
		subs = make(map[Subscriber]struct{}, 1)
		h.channels[channel] = subs
	}
	subs[s] = struct{}{}
	if then != nil {
		then()
	}
}

// Unsubscribe removes the subscription of s to channel, if any.
func (h *Hub) Unsubscribe(s Subscriber, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.channels[channel]
	delete(subs, s)
	if len(subs) == 0 {
		delete(h.channels, channel) // a channel without subscribers costs nothing
	}
}

// PSubscribe subscribes s to the channels that match the glob pattern
// (glob.Match, case-sensitive). Subscribing twice is the same as once.
// then is as for Subscribe.
func (h *Hub) PSubscribe(s Subscriber, pat string, then func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.patterns[pat]
	if p == nil {
		p = &pattern{text: pat, index: len(h.patList), subs: make(map[Subscriber]struct{}, 1)}
		h.patterns[pat] = p
		h.patList = append(h.patList, p)
	}
	p.subs[s] = struct{}{}
	if then != nil {
		then()
	}
}

// PUnsubscribe removes the subscription of s to pattern, if any.
func (h *Hub) PUnsubscribe(s Subscriber, pat string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.patterns[pat]
	if p == nil {
		return
	}
	delete(p.subs, s)
	if len(p.subs) > 0 {
		return
	}
	delete(h.patterns, pat)
	last := len(h.patList) - 1
	moved := h.patList[last]
	h.patList[p.index], moved.index = moved, p.index
	h.patList[last] = nil
	h.patList = h.patList[:last]
}

// Publish delivers payload to every subscriber of channel (Message), then
// to every subscriber of each pattern channel matches (PMessage), and
// returns the number of deliveries: a subscriber of the channel and of a
// matching pattern counts twice, as in Redis. Its signature is
// geocache.MessageFunc's.
func (h *Hub) Publish(channel string, payload []byte) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for s := range h.channels[channel] {
		s.Message(channel, payload)
		n++
	}
	for _, p := range h.patList {
		if !glob.Match(p.text, channel, false) {
			continue
		}
		for s := range p.subs {
			s.PMessage(p.text, channel, payload)
			n++
		}
	}
	return n
}

// Channels returns, sorted, the channels that have at least one
// subscriber and match pattern (glob.Match, case-sensitive); all of them
// if pattern is nil. Pattern subscriptions do not count (PUBSUB
// CHANNELS).
func (h *Hub) Channels(pattern []byte) []string {
	h.mu.RLock()
	out := make([]string, 0, len(h.channels))
	for ch := range h.channels {
		if pattern == nil || glob.Match(pattern, ch, false) {
			out = append(out, ch)
		}
	}
	h.mu.RUnlock()
	slices.Sort(out)
	return out
}

// NumSub returns the number of subscribers of channel, pattern
// subscriptions aside (PUBSUB NUMSUB).
func (h *Hub) NumSub(channel string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels[channel])
}

// NumChannels returns the number of channels with at least one subscriber
// (INFO's pubsub_channels).
func (h *Hub) NumChannels() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.channels)
}

// NumPat returns the number of distinct patterns subscribed to, however
// many subscribers each has, as Redis 7's PUBSUB NUMPAT and INFO's
// pubsub_patterns.
func (h *Hub) NumPat() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.patList)
}
