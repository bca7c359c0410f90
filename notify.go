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
// node.
//
// A change made on this node announces the events Redis 7.0 announces for
// the command that made it, in Redis's order and classes: Event names
// them (set, then expire for a write with an expiry; append, setrange,
// setbit, incrby, incrbyfloat; hset, hdel, hincrby, hincrbyfloat; del,
// expire, persist, rename_from and rename_to, copy_to), preceded by new
// when the key is created. A change replicated from another region has no
// command: it announces what it did to this node's copy, by the type of
// the value it left (set for a string, incrby for a counter's increments,
// hset for a hash's fields, del for a removal; docs/operations.md). The
// node's own removals announce expired, evicted and del (a drop after a
// full sync), and reads of absent keys keymiss.

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
// channels, then the classes (A for all but m and n; g generic, e.g. del,
// expire; $ strings, e.g. set, incrby; h hashes, e.g. hset; x expired; e
// evicted; n new; m keymiss; l s z t d are accepted and have no events
// here). "" turns them off, as does a value without K or E. It returns an
// error wrapping ErrKeyspaceEvents for any other character, and changes
// nothing then.
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

// Event is the keyspace notification a write announces, named as Redis
// names the event of the command (Change.Event, HashTx.SetEvent). The
// zero value, EventAuto, announces what the write is.
type Event uint8

// Events. Each is announced in its class (Redis's), after "new" (class n)
// if the write creates the key.
const (
	// EventAuto announces what the write does: "set" ($) for a value
	// stored, "expire" (g) for an Update that Puts the current value back
	// with another expiry ("persist" if it has none), "del" (g) for a
	// removal.
	EventAuto Event = iota
	// EventSet is "set" ($): SET, GETSET, SETNX, MSET.
	EventSet
	// EventSetExpire is "set" ($) then "expire" (g): a SET with an
	// expiry (SET EX, SETEX, PSETEX; Set with WithTTL or WithExpireAt).
	// Given an expiry already past, it stores nothing and announces
	// "set", "expire" and "expired" (x), as Redis's SET EXAT in the past
	// followed by the expiry.
	EventSetExpire
	EventAppend      // "append" ($)
	EventSetRange    // "setrange" ($)
	EventSetBit      // "setbit" ($)
	EventIncrBy      // "incrby" ($): INCR, INCRBY, DECR, DECRBY (IncrBy)
	EventIncrByFloat // "incrbyfloat" ($)
	EventDel         // "del" (g)
	// EventExpire is "expire" (g); a removal announces "del" (g), as an
	// EXPIRE with a time in the past.
	EventExpire
	EventPersist      // "persist" (g)
	EventHset         // "hset" (h): HSET, HMSET, HSETNX
	EventHdel         // "hdel" (h), then "del" (g) if it deleted the last field
	EventHincrBy      // "hincrby" (h)
	EventHincrByFloat // "hincrbyfloat" (h)

	// The writes of COPY and RENAME, announced by the node.
	eventCopyTo     // "new" (n), whether or not the key held an entry, then "copy_to" (g)
	eventRenameTo   // nothing: Rename announces "new", "rename_from" and "rename_to"
	eventRenameFrom // nothing: see eventRenameTo
	numEvents
)

// eventNames are the events' names and classes (EventAuto and the
// node's own have none).
var eventNames = [numEvents]struct {
	name  string
	class uint32
}{
	EventSet:          {"set", notifyString},
	EventSetExpire:    {"set", notifyString},
	EventAppend:       {"append", notifyString},
	EventSetRange:     {"setrange", notifyString},
	EventSetBit:       {"setbit", notifyString},
	EventIncrBy:       {"incrby", notifyString},
	EventIncrByFloat:  {"incrbyfloat", notifyString},
	EventDel:          {"del", notifyGeneric},
	EventExpire:       {"expire", notifyGeneric},
	EventPersist:      {"persist", notifyGeneric},
	EventHset:         {"hset", notifyHash},
	EventHdel:         {"hdel", notifyHash},
	EventHincrBy:      {"hincrby", notifyHash},
	EventHincrByFloat: {"hincrbyfloat", notifyHash},
	eventCopyTo:       {"copy_to", notifyGeneric},
}

// String returns the name of the event Redis announces ("set" for
// EventSetExpire, which announces "expire" after it), "auto" for
// EventAuto.
func (e Event) String() string {
	switch {
	case e == EventAuto:
		return "auto"
	case e < numEvents && eventNames[e].name != "":
		return eventNames[e].name
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// onChange is the store's report of a change (store.Config.OnChange). It
// costs one atomic load when notifications are off.
func (n *Node) onChange(key string, c store.Notice) {
	flags := n.notify.Load()
	if flags&(notifyKeyspace|notifyKeyevent) == 0 {
		return
	}
	ev := Event(c.Event)
	switch c.Change {
	case store.ChangeExpired:
		n.notifyEvent(flags, notifyExpired, "expired", key)
		return
	case store.ChangeEvicted:
		n.notifyEvent(flags, notifyEvicted, "evicted", key)
		return
	}
	switch ev {
	case eventRenameTo, eventRenameFrom:
		return // Rename announces them
	case eventCopyTo:
		// Redis's COPY deletes a destination it replaces and adds it
		// anew: "new" either way.
		if c.Change == store.ChangeSet {
			n.notifyEvent(flags, notifyNew, "new", key)
			n.notifyEvent(flags, eventNames[eventCopyTo].class, eventNames[eventCopyTo].name, key)
		}
		return
	}
	switch c.Change {
	case store.ChangeSet, store.ChangeLapsed:
		if c.Change == store.ChangeLapsed && ev != EventSetExpire {
			// A write already past its expiry that removed the key's entry.
			if !c.Created {
				n.notifyEvent(flags, notifyGeneric, "del", key)
			}
			return
		}
		if c.Created {
			n.notifyEvent(flags, notifyNew, "new", key)
		}
		if ev == EventAuto || ev >= numEvents {
			// Replicated, or a write that names no command: what it
			// did, by the type of the value it left.
			switch c.Kind {
			case store.KindCounter:
				ev = EventIncrBy
			case store.KindHash:
				ev = EventHset
			default:
				ev = EventSet
			}
		}
		n.notifyEvent(flags, eventNames[ev].class, eventNames[ev].name, key)
		if ev == EventSetExpire {
			n.notifyEvent(flags, notifyGeneric, "expire", key)
		}
		if c.Change == store.ChangeLapsed {
			// As Redis: the write and its expiry, which then expires.
			n.notifyEvent(flags, notifyExpired, "expired", key)
		}
	case store.ChangeDelete:
		if ev == EventHdel {
			n.notifyEvent(flags, notifyHash, "hdel", key)
		}
		n.notifyEvent(flags, notifyGeneric, "del", key)
	}
}

// announceRename announces a RENAME of src to dst, as Redis: dst is added
// ("new", even if it held an entry, which Redis deletes first), then
// "rename_from" of src and "rename_to" of dst.
func (n *Node) announceRename(src, dst string) {
	flags := n.notify.Load()
	if flags&(notifyKeyspace|notifyKeyevent) == 0 {
		return
	}
	n.notifyEvent(flags, notifyNew, "new", dst)
	n.notifyEvent(flags, notifyGeneric, "rename_from", src)
	n.notifyEvent(flags, notifyGeneric, "rename_to", dst)
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
