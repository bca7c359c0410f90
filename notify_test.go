package geocache

import (
	"context"
	"errors"
	"slices"
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
		want = []string{"__keyevent@0__:del=k", "__keyevent@0__:new=short", "__keyevent@0__:expired=short",
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
