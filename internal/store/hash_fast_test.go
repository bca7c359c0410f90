package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/geocache/geocache/internal/testkit"
)

// The in-place paths of hash_enc.go and hash_edit.go against the decoded
// ones of hash.go, which they replace on the hot paths: the same bytes,
// the same answers.

// hashGen makes random hash states of names from a small pool (so that
// edits and joins meet existing fields), with lengths that need one- and
// two-byte varints.
type hashGen struct {
	rng   *rand.Rand
	names [][]byte
}

func newHashGen(rng *rand.Rand, pool int) *hashGen {
	g := &hashGen{rng: rng}
	seen := map[string]bool{}
	for len(g.names) < pool {
		var name []byte
		switch rng.IntN(10) {
		case 0:
			name = []byte{}
		case 1:
			name = bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, 100+rng.IntN(100))
		default:
			name = fmt.Appendf(nil, "f%d", rng.IntN(10*pool))
		}
		if !seen[string(name)] {
			seen[string(name)] = true
			g.names = append(g.names, name)
		}
	}
	return g
}

func (g *hashGen) value() []byte {
	switch g.rng.IntN(8) {
	case 0:
		return []byte{}
	case 1:
		return bytes.Repeat([]byte{'v'}, 120+g.rng.IntN(200))
	}
	return fmt.Appendf(nil, "v%d", g.rng.IntN(1000))
}

// version is a random version ms in [lo, lo+span).
func (g *hashGen) version(lo, span int64) Version {
	return ver(lo+g.rng.Int64N(span), uint16(g.rng.IntN(2)), uint32(1+g.rng.IntN(3)))
}

// state is a random valid state, of about density of the pool's names.
func (g *hashGen) state(density float64) hashState {
	h := hashState{reset: g.version(0, 20)}
	h.ttl = h.reset
	if g.rng.IntN(2) == 0 {
		h.ttl, h.expireAt = g.version(h.reset.HLC.WallMillis()+1, 20), g.rng.Int64N(1<<40)
	}
	for _, name := range g.names {
		if g.rng.Float64() >= density {
			continue
		}
		f := hashField{name: name, ver: g.version(h.reset.HLC.WallMillis()+1, 20)}
		if g.rng.IntN(4) == 0 {
			f.del = true
		} else {
			f.value = g.value()
		}
		h.fields = append(h.fields, f)
	}
	slices.SortFunc(h.fields, func(x, y hashField) int { return bytes.Compare(x.name, y.name) })
	if h.version().Compare(h.reset) <= 0 { // nothing newer than the reset: not a hash
		h.ttl = g.version(h.reset.HLC.WallMillis()+1, 20)
	}
	return h
}

// refEdit is HashEdit as it was on a decoded state: the reference.
type refEdit struct {
	h       *hashState
	ver     Version
	changed bool
	added   int
}

func (e *refEdit) Len() int { return e.h.live() }

func (e *refEdit) Get(name []byte) ([]byte, bool) {
	i, ok := e.h.find(name)
	if !ok || e.h.fields[i].del {
		return nil, false
	}
	return e.h.fields[i].value, true
}

func (e *refEdit) Set(name, value []byte) bool {
	e.changed = true
	if value == nil {
		value = []byte{}
	}
	i, ok := e.h.find(name)
	if ok {
		f := &e.h.fields[i]
		added := f.del
		f.value, f.del, f.ver = value, false, e.ver
		return added
	}
	e.h.fields = slices.Insert(e.h.fields, i, hashField{name: name, value: value, ver: e.ver})
	e.added++
	return true
}

func (e *refEdit) Delete(name []byte) bool {
	i, ok := e.h.find(name)
	if !ok || e.h.fields[i].del {
		return false
	}
	e.changed = true
	f := &e.h.fields[i]
	f.value, f.del, f.ver = nil, true, e.ver
	return true
}

// TestHashEditMatchesDecoded: HashUpdate's in-place edit of an encoded
// state writes exactly the bytes that the decoded edit, joined with the
// state it started from and encoded, wrote (so skipping the join is
// safe), answers every call as it did, and makes a state that supersedes
// the old one at the edit's version (mergeHashLocked's fast path).
func TestHashEditMatchesDecoded(t *testing.T) {
	rng := newRand(t)
	for round := range 20000 {
		g := newHashGen(rng, []int{4, 12, 40}[rng.IntN(3)])
		cur := g.state(rng.Float64())
		enc := cur.encode()
		ver := g.version(cur.version().HLC.WallMillis()+1, 5)
		ref := &refEdit{h: &hashState{reset: cur.reset, ttl: cur.ttl, expireAt: cur.expireAt, fields: slices.Clone(cur.fields)}, ver: ver}
		e := &HashEdit{ver: ver, live: -1}
		fromTomb := rng.IntN(10) == 0 // a new hash over a tombstone: no state
		if fromTomb {
			cur = hashState{reset: cur.reset, ttl: cur.reset}
			ref.h = &hashState{reset: cur.reset, ttl: cur.reset}
			e.reset, e.ttl = cur.reset, cur.reset
		} else {
			e.edit(enc)
		}
		if fromTomb || rng.IntN(5) == 0 { // a fresh hash: the expiry given
			exp := rng.Int64N(1 << 40)
			ref.h.ttl, ref.h.expireAt = ver, exp
			e.ttl, e.expireAt = ver, exp
		}
		nops := 1 + rng.IntN(4)
		if rng.IntN(4) == 0 {
			nops = 10 + rng.IntN(40) // past indexAfter
		}
		for op := range nops {
			name := g.names[rng.IntN(len(g.names))]
			name = slices.Clone(name) // the caller's bytes, not the state's
			switch r := rng.IntN(10); {
			case r < 5:
				value := g.value()
				if got, want := e.Set(name, value), ref.Set(name, value); got != want {
					t.Fatalf("round %d op %d: Set(%q) = %v, want %v", round, op, name, got, want)
				}
			case r < 7:
				if got, want := e.Delete(name), ref.Delete(name); got != want {
					t.Fatalf("round %d op %d: Delete(%q) = %v, want %v", round, op, name, got, want)
				}
			case r < 9:
				got, gotOK := e.Get(name)
				want, wantOK := ref.Get(name)
				if gotOK != wantOK || !bytes.Equal(got, want) {
					t.Fatalf("round %d op %d: Get(%q) = %q %v, want %q %v", round, op, name, got, gotOK, want, wantOK)
				}
			default:
				if got, want := e.Len(), ref.Len(); got != want {
					t.Fatalf("round %d op %d: Len = %d, want %d", round, op, got, want)
				}
			}
		}
		if e.changed != ref.changed || e.added != ref.added || e.fieldCount() != len(ref.h.fields) {
			t.Fatalf("round %d: changed %v added %d fields %d, want %v %d %d", round, e.changed, e.added, e.fieldCount(), ref.changed, ref.added, len(ref.h.fields))
		}
		if !e.changed {
			continue
		}
		size := e.encodedLen()
		got := e.encode(size)
		if len(got) != size || cap(got) != size {
			t.Fatalf("round %d: encoded %d bytes (cap %d), encodedLen %d", round, len(got), cap(got), size)
		}
		want := ref.h.encode()
		if !fromTomb {
			j := joinHash(cur, *ref.h)
			want = j.encode() // the slow path's result
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: in place %x\ndecoded and joined %x", round, got, want)
		}
		if v := ref.h.version(); v != ver {
			t.Fatalf("round %d: the edited state's version is %v, not the edit's %v", round, v, ver)
		}
		if !fromTomb {
			sum, ok, valid := supersedes(enc, got)
			if !ok || !valid || sum.version != ver || sum.expireAt != ref.h.expireAt {
				t.Fatalf("round %d: supersedes = %v %v %v, want the edit's version %v", round, ok, valid, sum.version, ver)
			}
		}
	}
}

// TestHashSupersedesMatchesJoin: supersedes(a, b) holds exactly when
// joinHash(a, b) is b (encoded: the same bytes), over random pairs of
// states (independent, or b grown from a by writes, resets and expiries,
// so that it often does), and never calls a state valid that decodeHash
// refuses, or superseding one it refuses.
func TestHashSupersedesMatchesJoin(t *testing.T) {
	rng := newRand(t)
	hits := 0
	for round := range 50000 {
		g := newHashGen(rng, []int{3, 8, 30}[rng.IntN(3)])
		a := g.state(rng.Float64())
		var b hashState
		switch rng.IntN(3) {
		case 0:
			b = g.state(rng.Float64())
		default: // a later state of the same hash
			b = g.state(rng.Float64() / 2)
			b.reset = a.reset
			if rng.IntN(4) == 0 {
				b.reset = g.version(a.reset.HLC.WallMillis()-2, 8)
			}
			b.ttl, b.expireAt = a.ttl, a.expireAt
			if rng.IntN(4) == 0 {
				b.ttl, b.expireAt = g.version(a.ttl.HLC.WallMillis()-1, 4), rng.Int64N(3)
			}
			b = joinHash(a, b)
			for i := range b.fields { // some ties: another content, or a tombstone
				if f := &b.fields[i]; rng.IntN(30) == 0 {
					f.del, f.value = !f.del, nil
					if !f.del {
						f.value = g.value()
					}
				}
			}
			if b.ttl.Compare(b.reset) < 0 {
				b.ttl = b.reset
			}
		}
		ae, be := a.encode(), b.encode()
		if _, err := decodeHash(be); err != nil {
			continue // not a state; the mutations below cover those
		}
		j := joinHash(a, b)
		want := bytes.Equal(j.encode(), be)
		sum, ok, valid := supersedes(ae, be)
		if ok != want || !valid {
			t.Fatalf("round %d: supersedes = %v (valid %v), joinHash(a, b) == b is %v\na %+v\nb %+v", round, ok, valid, want, a, b)
		}
		if ok {
			hits++
			if sum.version != b.version() || sum.expireAt != b.expireAt || sum.live != b.live() {
				t.Fatalf("round %d: summary %+v, b's version %v live %d", round, sum, b.version(), b.live())
			}
		}
		// A damaged b.
		bad := slices.Clone(be)
		for range 1 + rng.IntN(3) {
			switch i := rng.IntN(len(bad) + 1); {
			case i == len(bad):
				bad = append(bad, byte(rng.IntN(256)))
			case rng.IntN(4) == 0:
				bad = slices.Delete(bad, i, i+1)
			default:
				bad[i] = byte(rng.IntN(256))
			}
		}
		_, err := decodeHash(bad)
		if _, ok, valid := supersedes(ae, bad); err == nil && !valid || err != nil && ok {
			t.Fatalf("round %d: supersedes of a damaged state: ok %v valid %v, decodeHash: %v", round, ok, valid, err)
		}
	}
	if hits < 10000 {
		t.Errorf("only %d of the pairs superseded: the fast path went untested", hits)
	}
}

// TestHashScanMatchesDecode: scanHash accepts exactly what decodeHash does
// and reads the same version, expiry and live fields.
func TestHashScanMatchesDecode(t *testing.T) {
	rng := newRand(t)
	for round := range 20000 {
		g := newHashGen(rng, 10)
		h0 := g.state(rng.Float64())
		b := h0.encode()
		for range rng.IntN(3) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		h, err := decodeHash(b)
		sum, ok := scanHash(b)
		if ok != (err == nil) {
			t.Fatalf("round %d: scanHash ok %v, decodeHash %v: %x", round, ok, err, b)
		}
		if ok && (sum.version != h.version() || sum.expireAt != h.expireAt || sum.live != h.live() || sum.reset != h.reset || sum.ttl != h.ttl || sum.n != len(h.fields)) {
			t.Fatalf("round %d: scanHash %+v, decoded %+v", round, sum, h)
		}
	}
}

// TestHashUpdateAllocs: an HSET of one field of a small hash allocates the
// HashEdit and the new state, nothing else.
func TestHashUpdateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := open(t, testConfig(testkit.NewClock(epoch)))
	ms := int64(1)
	name, value := []byte("f3"), []byte("value")
	set := func(e *HashEdit) error { e.Set(name, value); return nil }
	for i := range 10 {
		ms++
		if _, _, err := s.HashUpdate("h", v(ms), 0, 0, func(e *HashEdit) error { e.Set(fmt.Appendf(nil, "f%d", i), value); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	n := testing.AllocsPerRun(1000, func() {
		ms++
		if _, _, err := s.HashUpdate("h", v(ms), 0, 0, set); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("HashUpdate of one field: %v allocations, want at most 2", n)
	}
}

// BenchmarkHashSupersedes is mergeHashLocked's check of an HSET's state
// (one field of n changed) against the key's.
func BenchmarkHashSupersedes(b *testing.B) {
	for _, n := range []int{10, 50, 1000} {
		b.Run(fmt.Sprint(n, "fields"), func(b *testing.B) {
			h := hashState{reset: v(1), ttl: v(1)}
			for i := range n {
				h.fields = append(h.fields, hashField{name: fmt.Appendf(nil, "field-%d", i), value: []byte("value-0123456789"), ver: v(2)})
			}
			slices.SortFunc(h.fields, func(x, y hashField) int { return bytes.Compare(x.name, y.name) })
			cur := h.encode()
			h.fields[n/2].ver = v(3)
			in := h.encode()
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, _ := supersedes(cur, in); !ok {
					b.Fatal("does not supersede")
				}
			}
		})
	}
}
