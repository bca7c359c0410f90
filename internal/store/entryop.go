package store

import "strconv"

// EntryOfOp returns the entry op would leave on a store that knows nothing
// else of its key: for a Set, a Counter or a Hash from outside (a peer's
// answer), its value, a counter's in base 10 and its state in State, a
// hash's state in State (Empty if no field is live). ok is false for a
// Delete (a tombstone reads as absent) and for an op that is not well
// formed (a state that does not decode, or whose version or expiry is not
// the op's), which the caller refuses as it would refuse it in Apply.
func EntryOfOp(op *Op) (e Entry, ok bool) {
	e = Entry{Value: op.Value, Version: op.Version, ExpireAt: op.ExpireAt, Kind: op.Kind}
	switch op.Kind {
	case KindSet:
		return e, true
	case KindCounter:
		if !checkCounterOp(op) {
			return Entry{}, false
		}
		c, _ := decodeCounter(op.Value)
		e.State, e.Value = op.Value, strconv.AppendInt(nil, c.value(), 10)
		return e, true
	case KindHash:
		if !checkHashOp(op) {
			return Entry{}, false
		}
		e.State, e.Value, e.Empty = op.Value, nil, !hashHasLive(op.Value)
		return e, true
	}
	return Entry{}, false
}

// HashFields returns the live fields of a hash's State (as Entry.State
// holds it: one the store or EntryOfOp checked), in name order, sharing
// its bytes.
func HashFields(state []byte) []Field { return liveFields(state) }
