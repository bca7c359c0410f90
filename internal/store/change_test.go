package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// changes records what OnChange reports.
type changes struct {
	mu  sync.Mutex
	got []string
}

func (c *changes) on(key string, n Notice) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := key + ":" + n.Change.String()
	if n.Created {
		s += "(new)"
	}
	if n.Event != 0 {
		s += fmt.Sprintf("#%d", n.Event)
	}
	if n.Change == ChangeSet && n.Kind != KindSet {
		s += "[" + n.Kind.String() + "]"
	}
	c.got = append(c.got, s)
}

// take returns what was reported since the last take.
func (c *changes) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	return got
}

// Every change of a live key is reported once, after the locks are
// released (the callback reads the store), and nothing else is.
func TestOnChange(t *testing.T) {
	clock := testkit.NewClock(epoch)
	var c changes
	cfg := testConfig(clock)
	cfg.MaxEntries = 3
	var s *Store
	cfg.OnChange = func(key string, n Notice) {
		s.Peek(key) // would deadlock under the key's lock
		c.on(key, n)
	}
	s = open(t, cfg)
	now := clock.UnixNano()
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"set of a new key", func() { apply(t, s, set("a", "1", v(1)), Applied) }, []string{"a:set(new)"}},
		{"overwrite", func() { apply(t, s, set("a", "2", v(2)), Applied) }, []string{"a:set"}},
		{"stale write", func() { apply(t, s, set("a", "0", v(1)), Stale) }, nil},
		{"delete", func() { apply(t, s, del("a", v(3)), Applied) }, []string{"a:del"}},
		{"delete of an absent key", func() { apply(t, s, del("b", v(4)), Applied) }, nil},
		{"set over a tombstone", func() { apply(t, s, set("a", "3", v(5)), Applied) }, []string{"a:set(new)"}},
		{"already-expired set over a live entry", func() { apply(t, s, setExp("a", "4", v(6), now-1), AlreadyExpired) }, []string{"a:lapsed"}},
		{"already-expired set of an absent key", func() { apply(t, s, setExp("c", "4", v(7), now-1), AlreadyExpired) }, []string{"c:lapsed(new)"}},
		{"conditional write", func() {
			s.Update("u", v(8), func(Entry, bool) (Op, bool) { return Op{Kind: KindSet, Value: []byte("x")}, true })
		}, []string{"u:set(new)"}},
		{"declined conditional write", func() {
			s.Update("u", v(9), func(Entry, bool) (Op, bool) { return Op{}, false })
		}, nil},
		{"expiry", func() {
			apply(t, s, setExp("e", "v", v(10), now+int64(time.Second)), Applied)
			clock.Advance(2 * time.Second)
			s.Reclaim()
		}, []string{"e:set(new)", "e:expired"}},
		{"expired entry found by a write", func() {
			apply(t, s, setExp("f", "v", v(11), clock.UnixNano()+int64(time.Second)), Applied)
			clock.Advance(2 * time.Second)
			apply(t, s, set("f", "w", v(12)), Applied)
		}, []string{"f:set(new)", "f:expired", "f:set(new)"}},
		{"eviction", func() {
			for i := range 3 {
				apply(t, s, set(fmt.Sprint("x", i), "v", v(int64(20+i))), Applied)
			}
		}, []string{"x0:set(new)", "u:evicted", "x1:set(new)", "f:evicted", "x2:set(new)"}}, // u and f were the least recently used
		{"eviction and expiry with removal reports off", func() {
			s.ReportRemovals(false)
			apply(t, s, set("y0", "v", v(30)), Applied)
			apply(t, s, setExp("y1", "v", v(31), clock.UnixNano()+int64(time.Second)), Applied)
			clock.Advance(2 * time.Second)
			s.Reclaim()
		}, []string{"y0:set(new)", "y1:set(new)"}}, // evicted x0 and x1, expired y1: not reported
		{"eviction with removal reports back on", func() {
			s.ReportRemovals(true)
			apply(t, s, set("x1", "v", v(32)), Applied)
			apply(t, s, set("y2", "v", v(33)), Applied)
		}, []string{"x1:set(new)", "x2:evicted", "y2:set(new)"}},
		{"drop after a full sync", func() {
			s.DropUnvouched(func(key string, _ Version) bool { return key != "x1" })
		}, []string{"x1:del"}},
		{"purge", func() { s.Purge() }, nil},
	}
	for _, st := range steps {
		st.do()
		if got := c.take(); !slices.Equal(got, st.want) {
			t.Errorf("%s: reported %v, want %v", st.name, got, st.want)
		}
	}
}

// OnChange carries the caller's event code with the change it made: the
// op's given to Apply, the one Update's callback returns (also when the
// store turns it into a counter's or a hash's expiry change), HashEdit's;
// none for IncrBy and for what the store does by itself. Notice.Kind says
// what a ChangeSet stored.
func TestOnChangeEvents(t *testing.T) {
	clock := testkit.NewClock(epoch)
	var c changes
	cfg := testConfig(clock)
	cfg.OnChange = c.on
	s := open(t, cfg)
	now := clock.UnixNano()
	boot := v(1).HLC
	const ev Event = 7
	withEvent := func(op Op) Op { op.Event = ev; return op }
	expire := func(key string, vv Version) {
		t.Helper()
		if _, _, _, res := s.Update(key, vv, func(Entry, bool) (Op, bool) {
			return Op{Kind: KindExpire, ExpireAt: now + int64(time.Hour), Event: ev}, true
		}); res != Applied {
			t.Fatalf("expiry of %s: %v", key, res)
		}
	}
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"Apply", func() { apply(t, s, withEvent(set("a", "1", v(2))), Applied) }, []string{"a:set(new)#7"}},
		{"Apply without an event (replicated)", func() { apply(t, s, set("a", "2", v(3)), Applied) }, []string{"a:set"}},
		{"Apply of a delete", func() { apply(t, s, withEvent(del("a", v(4))), Applied) }, []string{"a:del#7"}},
		{"Apply of an expired set", func() { apply(t, s, withEvent(setExp("a", "3", v(5), now-1)), AlreadyExpired) }, []string{"a:lapsed(new)#7"}},
		{"Update", func() {
			s.Update("u", v(6), func(Entry, bool) (Op, bool) { return Op{Kind: KindSet, Value: []byte("x"), Event: ev}, true })
		}, []string{"u:set(new)#7"}},
		{"Update's expiry of a string", func() { expire("u", v(7)) }, []string{"u:set#7"}},
		{"IncrBy", func() {
			if _, _, _, err := s.IncrBy("n", v(8), 1, boot, 0); err != nil {
				t.Fatal(err)
			}
		}, []string{"n:set(new)[counter]"}},
		{"Update's expiry of a counter", func() { expire("n", v(9)) }, []string{"n:set#7[counter]"}},
		{"HashUpdate", func() {
			if _, _, err := s.HashUpdate("h", v(10), 0, 0, func(e *HashEdit) error {
				e.Set([]byte("f"), []byte("1"))
				e.Event = ev
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, []string{"h:set(new)#7[hash]"}},
		{"Update's expiry of a hash", func() { expire("h", v(11)) }, []string{"h:set#7[hash]"}},
		{"HashUpdate that deletes the last field", func() {
			if _, _, err := s.HashUpdate("h", v(12), 0, 0, func(e *HashEdit) error {
				e.Delete([]byte("f"))
				e.Event = ev + 1
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, []string{"h:del#8"}},
	}
	for _, st := range steps {
		st.do()
		if got := c.take(); !slices.Equal(got, st.want) {
			t.Errorf("%s: reported %v, want %v", st.name, got, st.want)
		}
	}
}
