package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/hashicorp/memberlist"
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
	return startTuned(t, bind, id, region, key, nil, join...)
}

func startTuned(t *testing.T, bind string, id uint32, region string, key []byte, tune func(*memberlist.Config), join ...string) (*testMember, error) {
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
		tune:   tune,
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
	// n3 came back by its own join: a counts it back and tries it no more.
	if f, r := a.Failed(); f != 0 || r != 1 {
		t.Errorf("after n3's return: %d failed members, %d rejoins; want 0 and 1", f, r)
	}
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
	// A node of another region with the key: the gossip layer would admit
	// it, the merge delegate refuses (a --join naming another region is a
	// mistake, not a warning).
	_, err = start(t, 5, "us", key, a.Addr())
	if err == nil || !strings.Contains(err.Error(), errOtherRegion.Error()) || !strings.Contains(err.Error(), `is of region "eu", this node's is "us"`) {
		t.Errorf("a member of another region joining: %v; want the merge refused", err)
	}
	// n1 refuses on its side of the exchange, which may end after the
	// joiner's own refusal returned.
	testkit.Eventually(t, "n1 counting the merge it refused", func() bool { return a.MergesRefused() > 0 })
	if got := names(a.Members()); got != "n1,n2" {
		t.Errorf("members %s, want n1,n2", got)
	}
	if got := names(b.Members()); got != "n1,n2" {
		t.Errorf("members of n2 %s, want n1,n2", got)
	}
}

// A stray node of another region in a region's pool (joined by a node
// without the merge check, or before it) does not make the pool another
// region's: a node of the region still joins it, as a split region's two
// sides still merge, and the stray stays ignored.
func TestMembershipStrayOfAnotherRegionDoesNotBlockJoins(t *testing.T) {
	a := mustStart(t, 1)
	b := mustStart(t, 2, a.Addr())
	testkit.Eventually(t, "two members", func() bool { return names(a.lastChange()) == "n1,n2" })
	noCheck := func(c *memberlist.Config) { c.Merge = nil }
	if _, err := startTuned(t, "127.0.0.1:0", 9, "us", nil, noCheck, a.Addr()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the stray in n1's gossip", func() bool { return a.list.NumMembers() == 3 })
	if _, err := start(t, 3, "eu", nil, a.Addr()); err != nil {
		t.Fatalf("a node of region eu joining eu's pool with a stray in it: %v", err)
	}
	testkit.Eventually(t, "three members", func() bool { return names(b.lastChange()) == "n1,n2,n3" })
	if got := names(a.Members()); got != "n1,n2,n3" {
		t.Errorf("members %s, want n1,n2,n3", got)
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

// cutTransport is memberlist's own transport with a switch that drops
// everything this member sends to some addresses: cutting both sides'
// sends partitions them.
type cutTransport struct {
	memberlist.Transport
	mu  sync.Mutex
	cut map[string]bool
}

func (c *cutTransport) set(cut bool, addrs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range addrs {
		c.cut[a] = cut
	}
}

func (c *cutTransport) isCut(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut[addr]
}

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.isCut(addr) {
		return time.Now(), nil // lost on the way
	}
	return c.Transport.WriteTo(b, addr)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.isCut(addr) {
		return nil, fmt.Errorf("dial %s: cut by the test", addr)
	}
	return c.Transport.DialTimeout(addr, timeout)
}

// startCuttable starts a member whose sends can be cut, and which never
// gossips to members it declared dead.
func startCuttable(t *testing.T, id uint32, join ...string) (*testMember, *cutTransport) {
	t.Helper()
	ct := &cutTransport{cut: map[string]bool{}}
	m, err := startTuned(t, "127.0.0.1:0", id, "eu", nil, func(mc *memberlist.Config) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
		if err != nil {
			t.Fatal(err)
		}
		ct.Transport = nt
		mc.Transport = ct
		// Gossip to the dead ends at once, as it does after
		// GossipToTheDeadTime (30 s) in a long partition.
		mc.GossipToTheDeadTime = time.Nanosecond
	}, join...)
	if err != nil {
		t.Fatal(err)
	}
	return m, ct
}

// One member cut from the two others for longer than memberlist gossips
// to the dead: each side declares the other dead and stops talking to it. Once the
// network heals, the region is one again: the members reconnect to the
// failed members' addresses. Without that, both sides stay regions of their
// own for good, each owning every slot.
func TestMembershipHealsAfterALongPartition(t *testing.T) {
	a, at := startCuttable(t, 1)
	b, bt := startCuttable(t, 2, a.Addr())
	c, ct := startCuttable(t, 3, a.Addr())
	all := []*testMember{a, b, c}
	for _, m := range all {
		testkit.Eventually(t, "three members", func() bool { return names(m.lastChange()) == "n1,n2,n3" })
	}

	at.set(true, b.Addr(), c.Addr())
	bt.set(true, a.Addr())
	ct.set(true, a.Addr())
	testkit.Eventually(t, "n1 alone and n2, n3 without it", func() bool {
		return names(a.lastChange()) == "n1" && names(b.lastChange()) == "n2,n3" && names(c.lastChange()) == "n2,n3"
	})
	if f, _ := a.Failed(); f != 2 {
		t.Errorf("n1 tries to reach %d failed members, want 2", f)
	}

	at.set(false, b.Addr(), c.Addr())
	bt.set(false, a.Addr())
	ct.set(false, a.Addr())
	for _, m := range all {
		testkit.Eventually(t, "one region again", func() bool { return names(m.lastChange()) == "n1,n2,n3" })
	}
	if !strings.Contains(a.logs.String()+b.logs.String()+c.logs.String(), "region member reached again") {
		t.Error("no member logged reaching a failed member again")
	}
	rejoins := uint64(0)
	for _, m := range all {
		testkit.Eventually(t, "no failed member left", func() bool { f, _ := m.Failed(); return f == 0 })
		_, r := m.Failed()
		rejoins += r
	}
	if rejoins == 0 {
		t.Error("no member counted reaching a failed member again")
	}
}

// A member that leaves (Leave, without SetState(Leaving) first) is not
// taken for failed: nobody tries to reach it again.
func TestMembershipLeftIsNotRetried(t *testing.T) {
	a := mustStart(t, 1)
	b := mustStart(t, 2, a.Addr())
	testkit.Eventually(t, "two members", func() bool { return names(a.lastChange()) == "n1,n2" })
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.Close()
	testkit.Eventually(t, "n2 gone", func() bool { return names(a.lastChange()) == "n1" })
	if f, _ := a.Failed(); f != 0 {
		t.Errorf("a member that left is tried again (%d failed members)", f)
	}
}

// A failed member's address taken by a node of another region: it is
// reached once, ignored as a stranger, and not tried again, nor counted
// as the failed member back.
func TestMembershipStopsTryingAnAddressTakenByAnother(t *testing.T) {
	a := mustStart(t, 1)
	b := mustStart(t, 2, a.Addr())
	testkit.Eventually(t, "two members", func() bool { return names(a.lastChange()) == "n1,n2" })
	bAddr := b.Addr()
	b.Close() // a crash: no leave message
	testkit.Eventually(t, "n2 declared dead", func() bool { f, _ := a.Failed(); return f == 1 })
	us, err := startAt(t, bAddr, 3, "us", nil)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint32(4); id <= 8; id++ { // a pool of several: any of them may be listed first
		if _, err := start(t, id, "us", nil, us.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "the address no longer tried", func() bool { f, _ := a.Failed(); return f == 0 })
	if n := a.MergesRefused(); n > 2 {
		t.Errorf("%d merges refused: the address was tried again after the first", n)
	}
	if _, r := a.Failed(); r != 0 || strings.Contains(a.logs.String(), "region member reached again") {
		t.Errorf("another region's node at a failed member's address counted as the member back (%d rejoins)", r)
	}
	if got := names(a.Members()); got != "n1" {
		t.Errorf("members %s, want n1", got)
	}
}
