package repl

import (
	"cmp"
	"sync"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/wire"
)

// Anti-entropy repairs what per-origin streams cannot: a write that its
// origin delivered to some regions but not others before it crashed (its
// new incarnation never resends it), or anything a region missed while a
// full sync's snapshot raced with writes. A round on a link lists every key
// this node holds, with its version (Probe frames, sent only while the log
// is idle), and the peer answers with its newer versions of those keys
// (Repair frames), which this node applies like any replicated write. Both
// directions of a pair run rounds, so every key that both hold converges.
// Keys only the peer holds are not filled in: absence is always allowed
// (I2), and a region that evicted a key should not get it back.

// requestRepair asks every link for an anti-entropy round soon.
func (r *Replicator) requestRepair() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.links {
		l.mu.Lock()
		l.repairWanted = true
		l.mu.Unlock()
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// repairPeriodically requests a round on every link every interval.
func (r *Replicator) repairPeriodically(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.requestRepair()
		case <-r.ctx.Done():
			return
		}
	}
}

// probeRound produces the Probe chunks of one round from a snapshot of the
// store, one chunk at a time, until the store is walked or stop closes. The
// channel is closed at the end.
type probeRound struct {
	chunks chan []wire.Op
	stop   chan struct{}
	wg     sync.WaitGroup
}

// startProbeRound starts a round to a peer that keeps the slots of keeps
// (nil: every key). Live entries of the other slots are not probed: the
// peer does not apply their writes, so it holds no newer version of them
// to repair here, only, for a while, its own writes there (which reach
// their owners by its stream, or by a full sync of the owner's slots) and
// owners' versions it fetched (while it keeps its own write of the key).
// Tombstones are probed whatever their slot: every node applies every
// delete.
func (r *Replicator) startProbeRound(keeps []byte) *probeRound {
	p := &probeRound{chunks: make(chan []wire.Op), stop: make(chan struct{})}
	p.wg.Go(func() {
		defer close(p.chunks)
		var chunk []wire.Op
		size := 0
		send := func() bool {
			if len(chunk) == 0 {
				return true
			}
			select {
			case p.chunks <- chunk:
				chunk, size = nil, 0
				return true
			case <-p.stop:
				return false
			}
		}
		r.cfg.Store.Snapshot(func(op store.Op) bool {
			if keeps != nil && op.Kind != store.KindDelete && !slotIn(keeps, cluster.KeySlot(op.Key)) {
				return true
			}
			if op.Kind == store.KindCounter || op.Kind == store.KindHash {
				// Two counters (hashes) of one version may hold different
				// contributions (fields, resets): the digest tells them
				// apart.
				op.Value = store.CounterDigest(op.Value)
			} else {
				op.Value = nil // versions only
			}
			w := toWireOp(&op)
			if size+w.Size() > r.cfg.BatchBytes && !send() {
				return false
			}
			chunk = append(chunk, w)
			size += w.Size()
			return true
		})
		send()
	})
	return p
}

func (p *probeRound) close() {
	close(p.stop)
	p.wg.Wait()
}

// answerProbe writes Repair frames with this node's newer versions of the
// probed keys, and applies the probed tombstones newer than what this node
// holds: a probe of a tombstone is the whole delete. That is how a newer
// delete reaches a node whose own rounds to the prober do not probe the
// key (the prober does not keep its slot, so the round leaves it out).
func (r *Replicator) answerProbe(fc *frameConn, probe *wire.Probe) error {
	var out []wire.Op
	size := 0
	for i := range probe.Ops {
		p := &probe.Ops[i]
		pv := store.Version{HLC: hlc.Timestamp(p.HLC), Origin: p.VOrigin}
		op, ok := r.entryOp(p.Key, false)
		if !ok {
			continue
		}
		// A newer version, or a counter or hash of the same version with
		// other contents (the prober merges it; its own round with this
		// node brings this node what only the prober has).
		c := op.Version.Compare(pv)
		// A probed tombstone is applied as a streamed delete would be: the
		// store judges it, against a counter's or a hash's reset and
		// fields rather than its newest version, so a counter or hash
		// newer than it may still lose what the delete erased. What is
		// left, if newer, is the answer.
		if p.Kind == wire.KindDelete && (c < 0 || c > 0 && (op.Kind == store.KindCounter || op.Kind == store.KindHash)) {
			r.applyProbedDelete(p)
			if op, ok = r.entryOp(p.Key, false); !ok {
				continue
			}
			if c = op.Version.Compare(pv); c <= 0 {
				continue
			}
		}
		if c < 0 || c == 0 && (!mergesState(op.Kind, p.Kind) || store.SameCounter(op.Value, p.Value)) {
			continue
		}
		w := toWireOp(&op)
		if r.isLarge(&w) {
			if err := r.writeLarge(fc, w); err != nil {
				return err
			}
			continue
		}
		if size+w.Size() > r.cfg.BatchBytes && len(out) > 0 {
			if err := fc.write(&wire.Repair{Origin: r.cfg.NodeID, Ops: out}); err != nil {
				return err
			}
			out, size = out[:0], 0
		}
		out = append(out, w)
		size += w.Size()
	}
	if len(out) == 0 {
		return nil
	}
	return fc.write(&wire.Repair{Origin: r.cfg.NodeID, Ops: out})
}

// applyProbedDelete applies a probed tombstone newer than what this node
// holds, unless its version is too far ahead of this node's clock (a later
// round probes it again).
func (r *Replicator) applyProbedDelete(p *wire.Op) {
	if _, err := r.cfg.Clock.Merge(hlc.Timestamp(p.HLC)); err != nil {
		r.mu.Lock()
		r.repairsHeld++
		r.mu.Unlock()
		return
	}
	if r.cfg.Store.Apply(fromWireOp(p)) == store.Applied {
		r.probedDeletes.Add(1)
	}
}

// applyRepair applies a peer's answer to this node's probe.
// A version too far ahead of this node's clock is not applied (nor merged
// into the clock): a later round offers it again, once in bounds.
func (r *Replicator) applyRepair(l *link, f *wire.Repair) {
	n, held := 0, 0
	var firstErr error
	for i := range f.Ops {
		if _, err := r.cfg.Clock.Merge(hlc.Timestamp(f.Ops[i].HLC)); err != nil {
			held++
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if r.keeps(&f.Ops[i]) && r.cfg.Store.Apply(fromWireOp(&f.Ops[i])) == store.Applied {
			n++
		}
	}
	l.mu.Lock()
	l.repaired += uint64(n)
	name := l.name
	l.mu.Unlock()
	if held == 0 {
		return
	}
	r.mu.Lock()
	r.repairsHeld += uint64(held)
	log, suppressed := r.repairWarn.allow(time.Now(), r.cfg.WarnInterval)
	r.mu.Unlock()
	if log {
		r.cfg.Logger.Warn("anti-entropy repairs not applied: versions ahead of this node's clock by more than twice the max clock offset",
			"peer", l.addr, "node", name, "held", held, "err", firstErr, "suppressed", suppressed)
	}
}

// mergesState reports whether this node's op of kind k and a probed op of
// wire kind w are states of one merging kind (counter, hash), which two
// nodes may hold at one version with different contents: their digests
// decide.
func mergesState(k store.Kind, w wire.Kind) bool {
	return k == store.KindCounter && w == wire.KindCounter || k == store.KindHash && w == wire.KindHash
}
