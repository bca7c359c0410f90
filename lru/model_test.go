package lru

import (
	"container/list"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// model is the trivial reference: a map and a list, exact LRU, expiry checked
// when touched, nothing clever. The engine with one shard and no reclaim on
// writes must behave exactly like it, callbacks included.
type model struct {
	order      *list.List // of *mentry, front = most recently used
	m          map[string]*list.Element
	maxEntries int
	maxBytes   int64
	overhead   int64
	bytes      int64
	now        func() int64
	drops      []string
}

type mentry struct {
	key, value string
	exp        int64
	size       int64
}

func newModel(maxEntries int, maxBytes, overhead int64, now func() int64) *model {
	if maxEntries == 0 && maxBytes == 0 {
		maxEntries = DefaultMaxEntries
	}
	return &model{order: list.New(), m: map[string]*list.Element{}, maxEntries: maxEntries, maxBytes: maxBytes, overhead: overhead, now: now}
}

func (m *model) maxEntry() int64 {
	if m.maxBytes == 0 {
		return maxIndex
	}
	return m.maxBytes - m.overhead
}

func (m *model) expired(e *mentry) bool { return e.exp != 0 && e.exp <= m.now() }

func (m *model) remove(el *list.Element, r Reason) {
	e := el.Value.(*mentry)
	m.order.Remove(el)
	delete(m.m, e.key)
	m.bytes -= e.size + m.overhead
	m.drops = append(m.drops, fmt.Sprintf("%s=%s:%v", e.key, e.value, r))
}

// lookup returns the live element of k, removing an expired one.
func (m *model) lookup(k string) *list.Element {
	el := m.m[k]
	if el != nil && m.expired(el.Value.(*mentry)) {
		m.remove(el, Expired)
		return nil
	}
	return el
}

func (m *model) over(extra int64, extraEntries int) bool {
	return (m.maxEntries > 0 && m.order.Len()+extraEntries > m.maxEntries) ||
		(m.maxBytes > 0 && m.bytes+extra > m.maxBytes)
}

func (m *model) evict(extra int64, extraEntries int, keep *list.Element) {
	for m.over(extra, extraEntries) {
		tail := m.order.Back()
		if tail == nil || tail == keep {
			return
		}
		r := Evicted
		if m.expired(tail.Value.(*mentry)) {
			r = Expired
		}
		m.remove(tail, r)
	}
}

func (m *model) get(k string, touch bool) (string, bool) {
	el := m.lookup(k)
	if el == nil {
		return "", false
	}
	if touch {
		m.order.MoveToFront(el)
	}
	return el.Value.(*mentry).value, true
}

func (m *model) set(k, v string, exp int64) bool {
	size := int64(len(k) + len(v))
	el := m.lookup(k)
	switch {
	case size > m.maxEntry():
		if el != nil {
			m.remove(el, Deleted)
		}
		return false
	case exp != 0 && exp <= m.now():
		if el != nil {
			m.remove(el, Deleted)
		}
		return true
	case el != nil:
		e := el.Value.(*mentry)
		m.bytes += size - e.size
		e.value, e.size, e.exp = v, size, exp
		m.order.MoveToFront(el)
		m.evict(0, 0, el)
	default:
		m.evict(size+m.overhead, 1, nil)
		m.m[k] = m.order.PushFront(&mentry{key: k, value: v, exp: exp, size: size})
		m.bytes += size + m.overhead
	}
	return true
}

func (m *model) delete(k string) bool {
	el := m.m[k]
	if el == nil {
		return false
	}
	r := Deleted
	if m.expired(el.Value.(*mentry)) {
		r = Expired
	}
	m.remove(el, r)
	return r == Deleted
}

func (m *model) changeExpiry(k string, exp int64) bool {
	el := m.lookup(k)
	if el == nil {
		return false
	}
	if exp != 0 && exp <= m.now() {
		m.remove(el, Deleted)
	} else {
		el.Value.(*mentry).exp = exp
	}
	return true
}

func (m *model) resize(maxEntries int, maxBytes int64) {
	m.maxEntries, m.maxBytes = maxEntries, maxBytes
	m.evict(0, 0, nil)
}

func (m *model) purge() {
	for el := m.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*mentry)
		m.drops = append(m.drops, fmt.Sprintf("%s=%s:%v", e.key, e.value, Deleted))
	}
	m.order.Init()
	m.m = map[string]*list.Element{}
	m.bytes = 0
}

func (m *model) live() []string {
	var out []string
	for el := m.order.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*mentry); !m.expired(e) {
			out = append(out, e.key+"="+e.value)
		}
	}
	return out
}

// opSource yields op parameters, from a seeded generator or fuzz bytes.
type opSource interface {
	next(n int) int // a number in [0, n)
}

type randSource struct{ r *rand.Rand }

func (s randSource) next(n int) int { return s.r.IntN(n) }

type byteSource struct {
	b []byte
	i int
}

func (s *byteSource) next(n int) int {
	if s.i >= len(s.b) {
		return 0
	}
	v := int(s.b[s.i])
	s.i++
	return v % n
}

func (s *byteSource) done() bool { return s.i >= len(s.b) }

// runModel drives the engine and the model with the same ops from src and
// fails at the first difference. It returns the number of ops run.
func runModel(t *testing.T, src opSource, ops int, stop func() bool) int {
	t.Helper()
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	maxEntries := []int{0, 1, 2, 3, 8, 64}[src.next(6)]
	var maxBytes int64
	if src.next(2) == 0 || maxEntries == 0 {
		maxBytes = int64(200 + src.next(2000))
	}
	defaultTTL := []time.Duration{0, 0, time.Second, 3 * time.Second}[src.next(4)]
	var drops, lockedDrops []string
	c, err := New(Config[string, string]{
		MaxEntries: maxEntries, MaxBytes: maxBytes, DefaultTTL: defaultTTL, Shards: 1,
		Clock: clock, ReclaimInterval: -1,
		OnEvict: func(k, v string, r Reason) { drops = append(drops, fmt.Sprintf("%s=%s:%v", k, v, r)) },
		OnEvictLocked: func(k, v string, r Reason) {
			lockedDrops = append(lockedDrops, fmt.Sprintf("%s=%s:%v", k, v, r))
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	c.test.noWriteReclaim = true
	m := newModel(maxEntries, maxBytes, c.EntryOverhead(), clock.UnixNano)

	key := func() string { return string(rune('a' + src.next(12))) }
	value := func() string { return fmt.Sprintf("v%0*d", src.next(4), src.next(1000)) }
	ttl := func() time.Duration { return time.Duration(src.next(5000)) * time.Millisecond }
	n := 0
	for ; n < ops && (stop == nil || !stop()); n++ {
		var what string
		switch op := src.next(14); op {
		case 0, 1, 2:
			k := key()
			gv, gok := c.Get(k)
			mv, mok := m.get(k, true)
			what = fmt.Sprintf("Get(%s) = %q,%v; model %q,%v", k, gv, gok, mv, mok)
			if gv != mv || gok != mok {
				t.Fatalf("op %d: %s", n, what)
			}
		case 3:
			k := key()
			gv, gok := c.Peek(k)
			mv, mok := m.get(k, false)
			if gv != mv || gok != mok {
				t.Fatalf("op %d: Peek(%s) = %q,%v; model %q,%v", n, k, gv, gok, mv, mok)
			}
		case 4, 5:
			k, v := key(), value()
			var exp int64
			if defaultTTL > 0 {
				exp = clock.UnixNano() + int64(defaultTTL)
			}
			if g, w := c.Set(k, v), m.set(k, v, exp); g != w {
				t.Fatalf("op %d: Set(%s,%s) = %v; model %v", n, k, v, g, w)
			}
		case 6:
			k, v, d := key(), value(), ttl()-500*time.Millisecond
			var exp int64
			switch {
			case d > 0:
				exp = clock.UnixNano() + int64(d)
			case d < 0:
				exp = clock.UnixNano()
			}
			if g, w := c.SetWithTTL(k, v, d), m.set(k, v, exp); g != w {
				t.Fatalf("op %d: SetWithTTL(%s,%s,%v) = %v; model %v", n, k, v, d, g, w)
			}
		case 7:
			k := key()
			if g, w := c.Delete(k), m.delete(k); g != w {
				t.Fatalf("op %d: Delete(%s) = %v; model %v", n, k, g, w)
			}
		case 8:
			k, d := key(), ttl()
			exp := clock.UnixNano() + int64(d)
			if d == 0 {
				exp = clock.UnixNano()
			}
			if g, w := c.Expire(k, d), m.changeExpiry(k, exp); g != w {
				t.Fatalf("op %d: Expire(%s,%v) = %v; model %v", n, k, d, g, w)
			}
		case 9:
			k := key()
			if g, w := c.Persist(k), m.changeExpiry(k, 0); g != w {
				t.Fatalf("op %d: Persist(%s) = %v; model %v", n, k, g, w)
			}
		case 10:
			clock.Advance(ttl())
		case 11:
			// Compute: append to a present value, insert "new" with a TTL otherwise.
			k := key()
			gv, gok := c.Compute(k, func(v string, exp int64, found bool) (string, int64, Action) {
				if found {
					return v + "+", exp, Store
				}
				return "new", clock.UnixNano() + int64(time.Second), Store
			})
			var mv string
			mok := true
			if el := m.lookup(k); el != nil {
				e := el.Value.(*mentry)
				mv = e.value + "+"
				mok = m.set(k, mv, e.exp)
			} else {
				mv = "new"
				mok = m.set(k, mv, clock.UnixNano()+int64(time.Second))
			}
			if !mok {
				mv = ""
			}
			if gv != mv || gok != mok {
				t.Fatalf("op %d: Compute(%s) = %q,%v; model %q,%v", n, k, gv, gok, mv, mok)
			}
		case 12:
			k := key()
			gt, gok := c.TTL(k)
			var mt time.Duration
			el := m.lookup(k)
			if el != nil && el.Value.(*mentry).exp != 0 {
				mt = time.Duration(el.Value.(*mentry).exp - clock.UnixNano())
			}
			if gt != mt || gok != (el != nil) {
				t.Fatalf("op %d: TTL(%s) = %v,%v; model %v,%v", n, k, gt, gok, mt, el != nil)
			}
		case 13:
			switch src.next(8) {
			case 0:
				c.Purge()
				m.purge()
			case 1:
				me := []int{0, 1, 2, 5, 64}[src.next(5)]
				mb := int64(0)
				if me == 0 || src.next(2) == 0 {
					mb = int64(200 + src.next(2000))
				}
				if err := c.Resize(me, mb); err != nil {
					t.Fatalf("op %d: Resize(%d,%d): %v", n, me, mb, err)
				}
				m.resize(me, mb)
			default:
				var got []string
				for k, v := range c.All() {
					got = append(got, k+"="+v)
				}
				if want := m.live(); !slices.Equal(got, want) {
					t.Fatalf("op %d: All = %v; model %v", n, got, want)
				}
			}
		}
		if c.Len() != m.order.Len() || c.Bytes() != m.bytes {
			t.Fatalf("op %d: Len,Bytes = %d,%d; model %d,%d", n, c.Len(), c.Bytes(), m.order.Len(), m.bytes)
		}
		if !slices.Equal(drops, lockedDrops) {
			t.Fatalf("op %d: OnEvict saw %v; OnEvictLocked saw %v", n, drops, lockedDrops)
		}
		if !slices.Equal(drops, m.drops) {
			t.Fatalf("op %d: evictions %v; model %v", n, drops[max(0, len(drops)-5):], m.drops[max(0, len(m.drops)-5):])
		}
	}
	return n
}

func TestModelRandomized(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (set by the test; a failure names it)", seed)
	runs := 200
	if testing.Short() {
		runs = 20
	}
	for i := range runs {
		s := seed + uint64(i)
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			runModel(t, randSource{rand.New(rand.NewPCG(s, s))}, 3000, nil)
		})
	}
}

func FuzzModel(f *testing.F) {
	f.Add([]byte{0, 1, 0, 4, 1, 2, 4, 2, 3, 0, 1, 4, 3, 3})
	f.Add([]byte{5, 0, 3, 6, 1, 4, 9, 10, 200, 0, 2, 0, 13, 1, 2, 1})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice: the quick brown fox"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := &byteSource{b: b}
		runModel(t, src, 1<<20, src.done)
	})
}
