package geocache

import (
	"errors"
	"fmt"
	"strings"

	"github.com/geocache/geocache/internal/store"
)

// Keyspace notifications, as Redis's notify-keyspace-events: when enabled,
// every change of a key on this node — made here or replicated from any
// region — is published to this node's listeners (Node.OnMessage) on
// "__keyspace@0__:<key>" (the message is the event) and on
// "__keyevent@0__:<event>" (the message is the key). They are this node's
// own and never replicated: each node announces its own changes, so an
// application in any region can invalidate its near cache from its local
// node. Events: set, del (a delete, or an expiry time already in the past,
// or a drop after a full sync), expired, evicted, new (a key created), and
// keymiss (a read of an absent key). A write reports "set" whatever
// command made it (Redis names some after the command: append, expire,
// rename_to, ...).

// Event classes, Redis's NOTIFY_* flags.
const (
	notifyKeyspace = 1 << iota // K
	notifyKeyevent             // E
	notifyGeneric              // g
	notifyString               // $
	notifyList                 // l
	notifySet                  // s
	notifyHash                 // h
	notifyZset                 // z
	notifyExpired              // x
	notifyEvicted              // e
	notifyStream               // t
	notifyKeyMiss              // m
	notifyModule               // d
	notifyNew                  // n

	notifyAll = notifyGeneric | notifyString | notifyList | notifySet | notifyHash | notifyZset |
		notifyExpired | notifyEvicted | notifyStream | notifyModule // A
)

// KeyspaceEventClasses lists the characters SetKeyspaceEvents accepts.
const KeyspaceEventClasses = "Ag$lshzxeKEtmdn"

// ErrKeyspaceEvents is wrapped by SetKeyspaceEvents's error for a class
// character it does not know.
var ErrKeyspaceEvents = errors.New("geocache: invalid keyspace event class")

var notifyClasses = map[byte]uint32{
	'A': notifyAll, 'g': notifyGeneric, '$': notifyString, 'l': notifyList, 's': notifySet,
	'h': notifyHash, 'z': notifyZset, 'x': notifyExpired, 'e': notifyEvicted, 'K': notifyKeyspace,
	'E': notifyKeyevent, 't': notifyStream, 'm': notifyKeyMiss, 'd': notifyModule, 'n': notifyNew,
}

// SetKeyspaceEvents sets the keyspace notifications this node publishes,
// in the syntax of Redis's notify-keyspace-events: K and/or E for the
// channels, then the classes (A for all but m and n; g generic, e.g. del;
// $ strings, e.g. set; x expired; e evicted; n new; m keymiss; l s h z t d
// are accepted and have no events here). "" turns them off, as does a
// value without K or E. It returns an error wrapping ErrKeyspaceEvents for
// any other character, and changes nothing then.
func (n *Node) SetKeyspaceEvents(classes string) error {
	flags, err := parseKeyspaceEvents(classes)
	if err != nil {
		return err
	}
	n.notifyMu.Lock()
	defer n.notifyMu.Unlock()
	n.notify.Store(flags)
	// The store reports the engine's expiries and evictions only while an
	// event is announced for them: otherwise every eviction would collect
	// its entry (an allocation) for a report that onChange drops.
	n.store.ReportRemovals(flags&(notifyKeyspace|notifyKeyevent) != 0 && flags&(notifyExpired|notifyEvicted) != 0)
	return nil
}

func parseKeyspaceEvents(classes string) (uint32, error) {
	var flags uint32
	for i := range len(classes) {
		f, ok := notifyClasses[classes[i]]
		if !ok {
			return 0, fmt.Errorf("%w %q: use the characters of %q", ErrKeyspaceEvents, classes[i], KeyspaceEventClasses)
		}
		flags |= f
	}
	return flags, nil
}

// KeyspaceEvents returns the keyspace notification classes in effect, as
// Redis's CONFIG GET notify-keyspace-events writes them.
func (n *Node) KeyspaceEvents() string {
	flags := n.notify.Load()
	var b strings.Builder
	if flags&notifyAll == notifyAll {
		b.WriteByte('A')
	} else {
		for _, c := range "g$lshzxetdn" {
			if flags&notifyClasses[byte(c)] != 0 {
				b.WriteRune(c)
			}
		}
	}
	for _, c := range "KEm" {
		if flags&notifyClasses[byte(c)] != 0 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// onChange is the store's report of a change (store.Config.OnChange).
func (n *Node) onChange(key string, c store.Change, created bool) {
	flags := n.notify.Load()
	if flags&(notifyKeyspace|notifyKeyevent) == 0 {
		return
	}
	if created {
		n.notifyEvent(flags, notifyNew, "new", key)
	}
	switch c {
	case store.ChangeSet:
		n.notifyEvent(flags, notifyString, "set", key)
	case store.ChangeDelete:
		n.notifyEvent(flags, notifyGeneric, "del", key)
	case store.ChangeExpired:
		n.notifyEvent(flags, notifyExpired, "expired", key)
	case store.ChangeEvicted:
		n.notifyEvent(flags, notifyEvicted, "evicted", key)
	}
}

// keyMiss reports a read of an absent key.
func (n *Node) keyMiss(key string) {
	if flags := n.notify.Load(); flags&notifyKeyMiss != 0 {
		n.notifyEvent(flags, notifyKeyMiss, "keymiss", key)
	}
}

// notifyEvent publishes one event of class to this node's listeners, as
// Redis's notifyKeyspaceEvent does: first the keyspace channel, then the
// keyevent one.
func (n *Node) notifyEvent(flags, class uint32, event, key string) {
	if flags&class == 0 {
		return
	}
	if flags&notifyKeyspace != 0 {
		n.listeners.deliver("__keyspace@0__:"+key, []byte(event))
	}
	if flags&notifyKeyevent != 0 {
		n.listeners.deliver("__keyevent@0__:"+event, []byte(key))
	}
}
