package resp

import (
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// TestKeyspaceNotificationsAcrossRegions: with CONFIG SET
// notify-keyspace-events on eu's node, a PSUBSCRIBE there hears of a key
// written in us and deleted in eu, as Redis's keyevent messages; us, with
// notifications off, announces nothing.
func TestKeyspaceNotificationsAcrossRegions(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	_, aus := startServer(t, Config{Node: nodes[0]})
	_, aeu := startServer(t, Config{Node: nodes[1]})
	linksUp(t, nodes)
	cus, ceu := newClient(t, aus), newClient(t, aeu)
	if err := ceu.ConfigSet(bg, "notify-keyspace-events", "Eg$").Err(); err != nil {
		t.Fatal(err)
	}
	sub := ceu.PSubscribe(bg, "__keyevent@0__:*")
	defer sub.Close()
	if _, err := sub.Receive(bg); err != nil {
		t.Fatal(err)
	}
	quiet := cus.PSubscribe(bg, "__key*")
	defer quiet.Close()
	if _, err := quiet.Receive(bg); err != nil {
		t.Fatal(err)
	}
	if err := cus.Set(bg, "user:1", "ann", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ch := sub.Channel()
	next := func() string {
		t.Helper()
		select {
		case m := <-ch:
			return m.Channel + " " + m.Payload
		case <-time.After(testkit.EventuallyTimeout):
			t.Fatal("no notification")
			return ""
		}
	}
	if got := next(); got != "__keyevent@0__:set user:1" {
		t.Fatalf("first notification %q", got)
	}
	if err := ceu.Del(bg, "user:1").Err(); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "__keyevent@0__:del user:1" {
		t.Fatalf("second notification %q", got)
	}
	// A notification on us would be delivered during the command that
	// caused it, so before this later message on a matching channel.
	if err := cus.Publish(bg, "__key_sentinel", "end").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-quiet.Channel():
		if m.Channel != "__key_sentinel" {
			t.Fatalf("us, with notifications off, announced %v", m)
		}
	case <-time.After(testkit.EventuallyTimeout):
		t.Fatal("the sentinel message did not arrive")
	}
}
