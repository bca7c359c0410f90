package geocache

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// The class strings as redis-server 7.0.15 answers CONFIG GET after CONFIG
// SET notify-keyspace-events <set>.
func TestKeyspaceEventsSyntax(t *testing.T) {
	n, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for set, want := range map[string]string{
		"": "", "KEA": "AKE", "AKE": "AKE", "Ex": "xE", "Kx": "xK", "Kgx": "gxK", "K$": "$K",
		"KEAmn": "AKEm", "Kn": "nK", "En": "nE", "m": "m", "KEg$lshzxetd": "AKE", "KEg$lshzxetdn": "AKE", "Kl": "lK", "xK": "xK",
	} {
		if err := n.SetKeyspaceEvents(set); err != nil {
			t.Fatalf("SetKeyspaceEvents(%q): %v", set, err)
		}
		if got := n.KeyspaceEvents(); got != want {
			t.Errorf("after %q: %q, want %q", set, got, want)
		}
	}
	if err := n.SetKeyspaceEvents("xK"); err != nil {
		t.Fatal(err)
	}
	if err := n.SetKeyspaceEvents("Kq"); !errors.Is(err, ErrKeyspaceEvents) {
		t.Errorf("an unknown class: %v, want ErrKeyspaceEvents", err)
	}
	if got := n.KeyspaceEvents(); got != "xK" {
		t.Errorf("a refused value changed the setting to %q", got)
	}
}

// Every change of a key on a node, made there or replicated from another
// region, is announced to that node's listeners on the keyspace and
// keyevent channels, and only there.
func TestKeyspaceNotifications(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 10*time.Millisecond, func(i int, c *Config) { c.MaxEntries = 2 })
		m.startAll()
		m.linked()
		us, eu := m.nodes[0], m.nodes[1]
		var atUS, atEU inbox
		us.OnMessage(atUS.listen)
		eu.OnMessage(atEU.listen)
		if err := eu.SetKeyspaceEvents("KEA"); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := us.Set(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		want := []string{"__keyspace@0__:k=set", "__keyevent@0__:set=k"}
		testkit.Eventually(t, "eu to announce the replicated set", func() bool { return len(atEU.list()) >= len(want) })
		if got := atEU.list(); !slices.Equal(got, want) {
			t.Fatalf("eu announced %v, want %v", got, want)
		}
		if got := atUS.list(); len(got) != 0 {
			t.Fatalf("us announced %v with notifications off", got)
		}

		if err := eu.SetKeyspaceEvents("Egxen"); err != nil {
			t.Fatal(err)
		}
		atEU.reset()
		if err := eu.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := eu.Set(ctx, "short", []byte("v"), WithTTL(time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the expiry passes; the engine reclaims it
		if _, err := eu.Get("short"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after expiry: %v", err)
		}
		for _, k := range []string{"a", "b", "c"} { // MaxEntries 2: a is evicted
			if err := eu.Set(ctx, k, []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		want = []string{"__keyevent@0__:del=k", "__keyevent@0__:new=short", "__keyevent@0__:expire=short", "__keyevent@0__:expired=short",
			"__keyevent@0__:new=a", "__keyevent@0__:new=b", "__keyevent@0__:evicted=a", "__keyevent@0__:new=c"}
		if got := atEU.list(); !slices.Equal(got, want) {
			t.Errorf("eu announced %v, want %v", got, want)
		}
		// Notifications are each node's own: us announced nothing of eu's
		// writes, and no region stored or replicated them.
		if got := atUS.list(); len(got) != 0 {
			t.Errorf("us announced %v", got)
		}

		if err := eu.SetKeyspaceEvents("Km"); err != nil {
			t.Fatal(err)
		}
		atEU.reset()
		eu.Get("nothing")
		if got, want := atEU.list(), []string{"__keyspace@0__:nothing=keymiss"}; !slices.Equal(got, want) {
			t.Errorf("a miss announced %v, want %v", got, want)
		}
	})
}

// The embedded API announces the events Redis 7.0 announces for the
// command each method stands for, in Redis's order and classes (the same
// sequences internal/resp's script checks against a real redis-server).
func TestKeyspaceEventsOfCommands(t *testing.T) {
	n, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var got inbox
	n.OnMessage(got.listen)
	if err := n.SetKeyspaceEvents("KEAn"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(what string, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var events []string
		for _, m := range got.list() {
			// Every event comes on the keyspace channel, then on the
			// keyevent one.
			if ch, ok := strings.CutPrefix(m, "__keyevent@0__:"); ok {
				event, key, _ := strings.Cut(ch, "=")
				events = append(events, key+":"+event)
			}
		}
		if len(got.list()) != 2*len(events) {
			t.Errorf("%s: %d messages for %d events: %v", what, len(got.list()), len(events), got.list())
		}
		if !slices.Equal(events, want) {
			t.Errorf("%s: announced %v, want %v", what, events, want)
		}
		for i, m := range got.list() {
			if i%2 == 0 && !strings.HasPrefix(m, "__keyspace@0__:") {
				t.Errorf("%s: message %d is %q, want the keyspace channel first", what, i, m)
			}
		}
		got.reset()
	}
	set := func(key, v string, opts ...Option) error { return n.Set(ctx, key, []byte(v), opts...) }
	check("Set", set("s", "1"), "s:new", "s:set")
	check("Set again", set("s", "2"), "s:set")
	check("Set WithTTL", set("s", "3", WithTTL(time.Hour)), "s:set", "s:expire")
	check("Set NoExpiry", set("s", "4", NoExpiry()), "s:set")
	check("Set WithExpireAt in the past", set("s", "5", WithExpireAt(time.Unix(1, 0))), "s:set", "s:expire", "s:expired")
	check("Set WithExpireAt in the past, absent key", set("p", "5", WithExpireAt(time.Unix(1, 0))), "p:new", "p:set", "p:expire", "p:expired")
	check("Set", set("s", "1"), "s:new", "s:set")
	check("Expire", n.Expire(ctx, "s", time.Hour), "s:expire")
	check("Persist", n.Persist(ctx, "s"), "s:persist")
	check("ExpireAt in the past", n.ExpireAt(ctx, "s", time.Unix(1, 0)), "s:del")
	check("Delete of an absent key", n.Delete(ctx, "s"))
	check("Set", set("s", "1"), "s:new", "s:set")
	check("Delete", n.Delete(ctx, "s"), "s:del")

	update := func(key string, ch Change) error {
		_, _, err := n.Update(ctx, key, func(Item, bool) Change { return ch })
		return err
	}
	check("Update", update("u", Change{Action: Put, Value: []byte("ab")}), "u:new", "u:set")
	check("Update naming APPEND", update("u", Change{Action: Put, Value: []byte("abc"), Event: EventAppend}), "u:append")
	_, _, err = n.Update(ctx, "u", func(cur Item, _ bool) Change {
		return Change{Action: Put, Value: cur.Value, ExpireAt: time.Now().Add(time.Hour)}
	})
	check("Update of the expiry", err, "u:expire")
	_, _, err = n.Update(ctx, "u", func(cur Item, _ bool) Change { return Change{Action: Put, Value: cur.Value} })
	check("Update of the expiry, to none", err, "u:persist")
	check("Update naming SET EX", update("u", Change{Action: Put, Value: []byte("x"), ExpireAt: time.Now().Add(time.Hour), Event: EventSetExpire}), "u:set", "u:expire")
	check("Update naming SET EXAT in the past", update("u", Change{Action: Put, Value: []byte("x"), ExpireAt: time.Unix(1, 0), Event: EventSetExpire}), "u:set", "u:expire", "u:expired")
	check("Update naming an event of the node's own", update("u", Change{Action: Put, Value: []byte("x"), Event: eventRenameTo}), "u:new", "u:set")
	check("Update removing", update("u", Change{Action: Remove, Event: EventExpire}), "u:del")

	_, err = n.IncrBy(ctx, "c", 2)
	check("IncrBy", err, "c:new", "c:incrby")
	_, err = n.IncrBy(ctx, "c", -1)
	check("IncrBy", err, "c:incrby")
	check("Expire of a counter", n.Expire(ctx, "c", time.Hour), "c:expire")
	check("Set of a counter", set("c", "7"), "c:set")

	f := func(kv ...string) []Field {
		var fs []Field
		for i := 0; i < len(kv); i += 2 {
			fs = append(fs, Field{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return fs
	}
	_, err = n.HSet(ctx, "h", f("a", "1", "b", "2"))
	check("HSet", err, "h:new", "h:hset")
	_, err = n.HSet(ctx, "h", f("a", "1"))
	check("HSet of the same value", err, "h:hset")
	_, err = n.HDel(ctx, "h", [][]byte{[]byte("zz")})
	check("HDel of no field", err)
	_, err = n.HDel(ctx, "h", [][]byte{[]byte("a")})
	check("HDel", err, "h:hdel")
	check("UpdateHash naming HINCRBY", n.UpdateHash(ctx, "h", func(h *HashTx) error {
		h.Set([]byte("n"), []byte("1"))
		h.SetEvent(EventHincrBy)
		return nil
	}), "h:hincrby")
	check("UpdateHash naming another event", n.UpdateHash(ctx, "h", func(h *HashTx) error {
		h.Set([]byte("n"), []byte("2"))
		h.SetEvent(EventAppend)
		return nil
	}), "h:hset")
	check("Expire of a hash", n.Expire(ctx, "h", time.Hour), "h:expire")
	check("Persist of a hash", n.Persist(ctx, "h"), "h:persist")
	_, err = n.HDel(ctx, "h", [][]byte{[]byte("b"), []byte("n")})
	check("HDel of the last fields", err, "h:hdel", "h:del")
	_, err = n.HSet(ctx, "h", f("a", "1"))
	check("HSet after", err, "h:new", "h:hset")

	check("Set", set("r", "1", WithTTL(time.Hour)), "r:new", "r:set", "r:expire")
	check("Rename", n.Rename(ctx, "r", "r2"), "r2:new", "r:rename_from", "r2:rename_to")
	check("Set", set("r3", "x"), "r3:new", "r3:set")
	check("Rename over a key", n.Rename(ctx, "r2", "r3"), "r3:new", "r2:rename_from", "r3:rename_to")
	check("Rename to itself", n.Rename(ctx, "r3", "r3"))
	ok, err := n.RenameIfAbsent(ctx, "r3", "h")
	check("RenameIfAbsent over a key", err)
	if ok {
		t.Error("RenameIfAbsent over a key renamed")
	}
	_, err = n.RenameIfAbsent(ctx, "h", "h2")
	check("RenameIfAbsent of a hash", err, "h2:new", "h:rename_from", "h2:rename_to")
	_, err = n.Copy(ctx, "h2", "h3", false)
	check("Copy", err, "h3:new", "h3:copy_to")
	_, err = n.Copy(ctx, "h2", "h3", false)
	check("Copy onto a key, without replace", err)
	_, err = n.Copy(ctx, "r3", "h3", true)
	check("Copy onto a key, replacing it", err, "h3:new", "h3:copy_to")
	_, err = n.SetAllIfAbsent(ctx, map[string][]byte{"m2": []byte("2"), "m1": []byte("1")})
	check("SetAllIfAbsent", err, "m1:new", "m1:set", "m2:new", "m2:set")
	_, err = n.Get("nothing")
	check("Get of an absent key with m off", ignoreNotFound(err))
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// With notifications limited to some classes, only their events come,
// each in its class: h for the hash commands, $ for the string ones, g
// for the generic ones.
func TestKeyspaceEventClasses(t *testing.T) {
	n, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var got inbox
	n.OnMessage(got.listen)
	ctx := context.Background()
	run := func() {
		n.Set(ctx, "s", []byte("1"), WithTTL(time.Hour))
		n.IncrBy(ctx, "c", 1)
		n.HSet(ctx, "h", []Field{{Name: []byte("f"), Value: []byte("v")}})
		n.HDel(ctx, "h", [][]byte{[]byte("f")})
	}
	for classes, want := range map[string][]string{
		"Eh": {"__keyevent@0__:hset=h", "__keyevent@0__:hdel=h"},
		"E$": {"__keyevent@0__:set=s", "__keyevent@0__:incrby=c"},
		"Eg": {"__keyevent@0__:expire=s", "__keyevent@0__:del=h"},
		"Kn": {"__keyspace@0__:s=new", "__keyspace@0__:c=new", "__keyspace@0__:h=new"},
	} {
		if err := n.SetKeyspaceEvents(classes); err != nil {
			t.Fatal(err)
		}
		got.reset()
		n.FlushLocal()
		run()
		if !slices.Equal(got.list(), want) {
			t.Errorf("%s: announced %v, want %v", classes, got.list(), want)
		}
	}
}

// A change replicated from another region announces what it did to this
// node's copy, by the type of the value it left: set for a string,
// incrby for a counter, hset for a hash (hdel and del when it leaves no
// field: del), del for a delete.
func TestKeyspaceEventsOfReplicatedChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 10*time.Millisecond, nil)
		m.startAll()
		m.linked()
		us, eu := m.nodes[0], m.nodes[1]
		var atEU inbox
		eu.OnMessage(atEU.listen)
		if err := eu.SetKeyspaceEvents("EA"); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		steps := []struct {
			name string
			do   func() error
			want []string
		}{
			{"SET EX", func() error { return us.Set(ctx, "s", []byte("v"), WithTTL(time.Hour)) }, []string{"set=s"}},
			{"APPEND", func() error {
				_, _, err := us.Update(ctx, "s", func(cur Item, _ bool) Change {
					return Change{Action: Put, Value: append(slices.Clone(cur.Value), 'w'), ExpireAt: cur.ExpireAt, Event: EventAppend}
				})
				return err
			}, []string{"set=s"}},
			{"EXPIRE", func() error { return us.Expire(ctx, "s", 2*time.Hour) }, []string{"set=s"}},
			{"INCR", func() error { _, err := us.IncrBy(ctx, "c", 1); return err }, []string{"incrby=c"}},
			{"HSET", func() error {
				_, err := us.HSet(ctx, "h", []Field{{Name: []byte("f"), Value: []byte("v")}})
				return err
			}, []string{"hset=h"}},
			{"HDEL of the last field", func() error { _, err := us.HDel(ctx, "h", [][]byte{[]byte("f")}); return err }, []string{"del=h"}},
			{"DEL", func() error { return us.Delete(ctx, "s") }, []string{"del=s"}},
		}
		for _, st := range steps {
			atEU.reset()
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			var want []string
			for _, w := range st.want {
				want = append(want, "__keyevent@0__:"+w)
			}
			testkit.Eventually(t, st.name+" to reach eu", func() bool { return len(atEU.list()) >= len(want) })
			time.Sleep(time.Second) // anything more would have come by now (virtual time)
			if got := atEU.list(); !slices.Equal(got, want) {
				t.Errorf("%s: eu announced %v, want %v", st.name, got, want)
			}
		}
	})
}
