package resp

import (
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// keyLocks isolates transactions on this server: a command locks the
// stripes of the keys it names (its key positions in the command table)
// while it runs, and EXEC locks the stripes of every key of its queued
// commands, and of the keys its connection WATCHes, for the whole batch.
// So no other client's command on a key of the batch runs in the middle of
// it, and the batch's commands see no other client's write to their keys
// between them. Writes that arrive from other regions and commands
// without keys (KEYS, SCAN, RANDOMKEY, DBSIZE) are not held back: they may
// see part of a batch.
//
// Stripes are taken in increasing order, so two commands that share
// stripes never deadlock.
//
// Taking stripes costs a command a hash and a lock, and serializes writers
// of one hot key for their whole command, so commands take them only while
// a transaction runs: a command sets its connection's running flag and
// then reads txs; EXEC adds to txs and then waits until no connection's
// flag is set. The atomics are sequentially consistent, so either the
// command sees the transaction (and takes its stripes) or EXEC sees the
// command (and waits for it to end): never neither.
type keyLocks struct {
	txs     atomic.Int32 // transactions running or waiting to
	seed    maphash.Seed
	stripes [keyStripes]struct {
		sync.Mutex
		_ [64 - 8]byte // one stripe per cache line: no false sharing
	}
}

// keyStripes is a power of two: 4,096 stripes cost 256 KiB.
const keyStripes = 1 << 12

func newKeyLocks() *keyLocks { return &keyLocks{seed: maphash.MakeSeed()} }

// enter marks a command running on the connection whose flag is running,
// and reports true if it may run without its stripes (no transaction
// runs); the caller then clears the flag when the command ends. On false
// the flag is clear again and the command must take its stripes.
func (l *keyLocks) enter(running *atomic.Bool) bool {
	running.Store(true)
	if l.txs.Load() == 0 {
		return true
	}
	running.Store(false)
	return false
}

// beginTx announces a transaction: commands from now on take their
// stripes. It then waits until every command that started without them
// has ended (the flags of conns). endTx must follow.
func (l *keyLocks) beginTx(conns func(yield func(*atomic.Bool))) {
	l.txs.Add(1)
	conns(func(running *atomic.Bool) {
		for spins := 0; running.Load(); spins++ {
			if spins < 100 {
				runtime.Gosched()
			} else {
				time.Sleep(20 * time.Microsecond)
			}
		}
	})
}

func (l *keyLocks) endTx() { l.txs.Add(-1) }

func (l *keyLocks) stripe(key []byte) uint32 {
	return uint32(maphash.Bytes(l.seed, key)) & (keyStripes - 1)
}

// stripesOf appends to dst the stripes of keys, sorted and without
// repeats.
func (l *keyLocks) stripesOf(dst []uint32, keys ...[]byte) []uint32 {
	for _, k := range keys {
		dst = append(dst, l.stripe(k))
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// lock locks the given stripes, which must be sorted without repeats.
func (l *keyLocks) lock(stripes []uint32) {
	for _, s := range stripes {
		l.stripes[s].Lock()
	}
}

func (l *keyLocks) unlock(stripes []uint32) {
	for _, s := range stripes {
		l.stripes[s].Unlock()
	}
}

// commandKeys appends to dst the keys of a command's arguments by the
// command's key positions (firstKey, lastKey, step as COMMAND reports
// them); commands without keys add none.
func commandKeys(dst [][]byte, cmd *command, args [][]byte) [][]byte {
	if cmd.firstKey <= 0 || cmd.firstKey >= len(args) {
		return dst
	}
	last := cmd.lastKey
	if last < 0 {
		last += len(args)
	}
	last = min(last, len(args)-1)
	step := max(cmd.step, 1)
	for i := cmd.firstKey; i <= last; i += step {
		dst = append(dst, args[i])
	}
	return dst
}
