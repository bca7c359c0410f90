package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// Membership runs real gossip on loopback (memberlist's transport is UDP
// and TCP): these tests wait for events with generous deadlines and assert
// outcomes, never durations.

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testMember struct {
	*Membership
	logs    *logBuf
	mu      sync.Mutex
	changes [][]Member
}

func (m *testMember) lastChange() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.changes) == 0 {
		return nil
	}
	return m.changes[len(m.changes)-1]
}

func start(t *testing.T, id uint32, region string, key []byte, join ...string) (*testMember, error) {
	return startAt(t, "127.0.0.1:0", id, region, key, join...)
}

func startAt(t *testing.T, bind string, id uint32, region string, key []byte, join ...string) (*testMember, error) {
	t.Helper()
	tm := &testMember{logs: &logBuf{}}
	name := fmt.Sprint("n", id)
	m, err := StartMembership(MembershipConfig{
		Self:      Member{ID: id, Name: name, ReplAddr: name + ":7380", Addr: name + ":6380"},
		Region:    region,
		BindAddr:  bind,
		Join:      join,
		SecretKey: key,
		OnChange: func(ms []Member) {
			tm.mu.Lock()
			tm.changes = append(tm.changes, ms)
			tm.mu.Unlock()
		},
		Logger: slog.New(slog.NewTextHandler(tm.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return nil, err
	}
	tm.Membership = m
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, tm.logs)
		}
	})
	return tm, nil
}

func mustStart(t *testing.T, id uint32, join ...string) *testMember {
	t.Helper()
	m, err := start(t, id, "eu", nil, join...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func names(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

// Three members find each other through one; the announcements carry the
// addresses; OnChange reports the live set; a member that stops without a
// word is declared dead by the others, one that leaves is removed, and a
// restarted one comes back.
func TestMembershipJoinFailLeave(t *testing.T) {
	a := mustStart(t, 1)
	b := mustStart(t, 2, a.Addr())
	c := mustStart(t, 3, a.Addr())
	for _, m := range []*testMember{a, b, c} {
		testkit.Eventually(t, "three members", func() bool { return names(m.lastChange()) == "n1,n2,n3" })
	}
	for _, mb := range a.Members() {
		if mb.ReplAddr != mb.Name+":7380" || mb.Addr != mb.Name+":6380" || fmt.Sprint("n", mb.ID) != mb.Name {
			t.Errorf("announcement %+v", mb)
		}
	}

	cAddr := c.Addr()
	c.Close() // a crash: no leave message
	testkit.Eventually(t, "n3 declared dead", func() bool { return names(a.lastChange()) == "n1,n2" && names(b.lastChange()) == "n1,n2" })

	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.Close()
	testkit.Eventually(t, "n2 left", func() bool { return names(a.lastChange()) == "n1" })

	// Restarted at the same gossip address, as a restarted process is.
	c2, err := startAt(t, cAddr, 3, "eu", nil, a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "n3 back", func() bool { return names(a.lastChange()) == "n1,n3" && names(c2.lastChange()) == "n1,n3" })
}

// A member of another region that joins is not counted, with a warning
// naming it; members with another gossip key do not hear each other.
func TestMembershipRefusesStrangers(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, err := start(t, 1, "eu", key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := start(t, 2, "eu", key, a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "two members", func() bool { return names(a.lastChange()) == "n1,n2" })

	if _, err := start(t, 3, "eu", bytes.Repeat([]byte{8}, 32), a.Addr()); err == nil {
		t.Error("a member with another gossip key joined")
	}
	if _, err := start(t, 4, "eu", nil, a.Addr()); err == nil {
		t.Error("a member without the gossip key joined")
	}
	if _, err := start(t, 5, "us", key, a.Addr()); err != nil {
		t.Fatal(err) // the gossip layer admits it: the region check is geocache's
	}
	testkit.Eventually(t, "the other region's member warned about", func() bool {
		return strings.Contains(a.logs.String(), "member of another region") && strings.Contains(a.logs.String(), "node=n5")
	})
	if got := names(a.Members()); got != "n1,n2" {
		t.Errorf("members %s, want n1,n2", got)
	}
	if got := names(b.Members()); got != "n1,n2" {
		t.Errorf("members of n2 %s, want n1,n2", got)
	}
}

// A member's state spreads: the others see it joining, then serving, then
// leaving, each change reported by OnChange, its own included.
func TestMembershipStates(t *testing.T) {
	a := mustStart(t, 1)
	b := mustStart(t, 2, a.Addr())
	stateOf := func(ms []Member, id uint32) MemberState {
		for _, mb := range ms {
			if mb.ID == id {
				return mb.State
			}
		}
		return 255
	}
	for _, s := range []MemberState{Joining, Serving, Leaving} {
		if err := b.SetState(s, 5*time.Second); err != nil {
			t.Fatalf("SetState(%v): %v", s, err)
		}
		if got := stateOf(b.lastChange(), 2); got != s {
			t.Errorf("its own OnChange says %v, want %v", got, s)
		}
		testkit.Eventually(t, "the other member sees "+s.String(), func() bool { return stateOf(a.lastChange(), 2) == s })
	}
	if err := b.SetState(Serving, time.Second); !errors.Is(err, ErrLeaving) {
		t.Errorf("SetState(Serving) after Leaving: %v, want ErrLeaving", err)
	}
	if err := b.SetState(Leaving+1, time.Second); err == nil {
		t.Error("an unknown state was announced")
	}
	b.Close()
	if err := b.SetState(Serving, time.Second); err == nil {
		t.Error("SetState after Close did not fail")
	}
}

// An announcement with a state this version does not know is unreadable:
// the member is ignored rather than given slots it may not be ready for.
func TestAnnouncementStates(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  MemberState
		ok    bool
	}{{"", Serving, true}, {"joining", Joining, true}, {"leaving", Leaving, true}, {"serving", 0, false}, {"draining", 0, false}} {
		mb, ok := announcement{ID: 1, Name: "a", State: tc.state}.member()
		if ok != tc.ok || (ok && mb.State != tc.want) {
			t.Errorf("state %q: %v, %v; want %v, %v", tc.state, mb.State, ok, tc.want, tc.ok)
		}
	}
	for s := Serving; s <= Leaving; s++ {
		if mb, ok := announce("eu", Member{ID: 1, Name: "a", State: s}).member(); !ok || mb.State != s {
			t.Errorf("%v does not round-trip: %v, %v", s, mb.State, ok)
		}
	}
}

func TestMembershipConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MembershipConfig
		want string
	}{
		{"no id", MembershipConfig{Self: Member{Name: "a"}, Region: "eu", BindAddr: "127.0.0.1:0"}, "id, name and region"},
		{"no addr", MembershipConfig{Self: Member{ID: 1, Name: "a"}, Region: "eu"}, "gossip address is required"},
		{"bad key", MembershipConfig{Self: Member{ID: 1, Name: "a"}, Region: "eu", BindAddr: "127.0.0.1:0", SecretKey: []byte("short")}, "16, 24 or 32 bytes"},
		{"bad port", MembershipConfig{Self: Member{ID: 1, Name: "a"}, Region: "eu", BindAddr: "127.0.0.1:x"}, "bad port"},
		{"timeouts", MembershipConfig{Self: Member{ID: 1, Name: "a"}, Region: "eu", BindAddr: "127.0.0.1:0", ProbeInterval: time.Millisecond, ProbeTimeout: time.Second}, "shorter than the probe interval"},
		{"long meta", MembershipConfig{Self: Member{ID: 1, Name: "a", ReplAddr: strings.Repeat("x", 600)}, Region: "eu", BindAddr: "127.0.0.1:0"}, "announcement is"},
		{"bad state", MembershipConfig{Self: Member{ID: 1, Name: "a", State: Leaving + 1}, Region: "eu", BindAddr: "127.0.0.1:0"}, "state"},
	} {
		if _, err := StartMembership(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// memberlist's errors about the sockets this node closed are debug lines
// once it leaves or closes; other errors, and those before, stay errors.
func TestSlogWriterQuietAfterStop(t *testing.T) {
	var buf bytes.Buffer
	var stopping atomic.Bool
	w := slogWriter{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), stopping: &stopping}
	closed := "[ERR] memberlist: Failed to send UDP ping: write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection\n"
	w.Write([]byte(closed))
	stopping.Store(true)
	w.Write([]byte(closed))
	w.Write([]byte("[ERR] memberlist: Failed to receive: EOF\n"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[1], "level=DEBUG") || !strings.Contains(lines[2], "level=ERROR") {
		t.Errorf("levels:\n%s", buf.String())
	}
}
